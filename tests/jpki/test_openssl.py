"""Independent checkers of what we publish (issue §9): ``openssl verify -crl_check`` with our CRLs,
``openssl ocsp`` against our responder over real HTTP (uvicorn on a free port), and pkilint on our
CRLs, ARLs, OCSP responses and responder certificates.

pkilint findings of ERROR or FATAL fail the test. Warnings and notices are collected and compared
with :data:`ACCEPTED` (each with its reason, repeated in the report to the lead); anything else fails.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from pkilint import loader, pkix
from pkilint.pkix import certificate, extension, name
from pkilint.pkix import crl as pkilint_crl
from pkilint.pkix import ocsp as pkilint_ocsp
from pkilint.validation import ValidationFindingSeverity
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import JST, FixedClock
from jlis.db import transaction
from jlis.jpki.profile import NEXT_GEN, Algorithm
from jlis.jpki.revocation import Reason, Revocations
from jlis.jpki.tables import AUTH, SIGN, CertificateRow

from ..conftest import require_or_skip
from .revocation_fixtures import SHINJUKU, JpkiWeb, holder

OPENSSL = shutil.which("openssl")
# pkilint findings below ERROR that we keep on purpose (code → reason). Empty: none are raised today.
ACCEPTED: dict[str, str] = {}


@pytest.fixture
def now_clock() -> FixedClock:
    # openssl checks times against the real clock: the CA, the CRLs and the answers are made "now".
    return FixedClock(dt.datetime.now(JST).replace(microsecond=0) - dt.timedelta(minutes=1))


@pytest.fixture
def web(factory: sessionmaker[Session], now_clock: FixedClock, tmp_path: Path) -> Iterator[JpkiWeb]:
    with JpkiWeb.start(factory, now_clock, tmp_path) as w:
        yield w


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(web: JpkiWeb) -> Iterator[str]:
    """The same app, served over real HTTP by uvicorn in a thread."""
    port = _free_port()
    srv = uvicorn.Server(
        uvicorn.Config(web.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def _pem(path: Path, cert: x509.Certificate | CertificateRow) -> Path:
    c = x509.load_der_x509_certificate(cert.der) if isinstance(cert, CertificateRow) else cert
    path.write_bytes(c.public_bytes(Encoding.PEM))
    return path


def _crl_pem(path: Path, der: bytes) -> Path:
    path.write_bytes(x509.load_der_x509_crl(der).public_bytes(Encoding.PEM))
    return path


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    require_or_skip(OPENSSL is not None, "the openssl command")
    return subprocess.run([str(OPENSSL), *map(str, args)], capture_output=True, text=True, timeout=60)


def _revoke(web: JpkiWeb, kind: str, serial: str, reason: Reason = Reason.AFFILIATION_CHANGED) -> None:
    with transaction(web.pki.factory) as s:
        svc = Revocations(s, web.pki.clock)
        svc.revoke(svc.certificate(kind, serial), reason, f"test:{serial}")


def _fetch_crl(web: JpkiWeb, path: str, user: str = "both-co-api") -> bytes:
    r = web.client.get(path, headers=web.headers(user))
    assert r.status_code == 200, r.text
    return r.content


# ----------------------------------------------------------------------------------- openssl verify


@pytest.mark.parametrize("partition", [False, True])
def test_openssl_verify_with_our_crls(web: JpkiWeb, tmp_path: Path, partition: bool) -> None:
    who = holder(lg_code=SHINJUKU, address="東京都新宿区西新宿2丁目8番1号")
    good, _ = web.pki.card(who, card_id="good")
    bad, _ = web.pki.card(holder(lg_code=SHINJUKU, address="東京都新宿区西新宿1丁目"), card_id="bad")
    _revoke(web, SIGN, bad.serial)
    path = f"/jpki/crl/sign/g1/{SHINJUKU}.crl" if partition else "/jpki/crl/sign/g1.crl"
    crl = _crl_pem(tmp_path / "crl.pem", _fetch_crl(web, path))
    ca = _pem(tmp_path / "ca.pem", web.pki.ca_cert(SIGN))
    ok = _openssl("verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl, _pem(tmp_path / "good.pem", good))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout
    no = _openssl("verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl, _pem(tmp_path / "bad.pem", bad))
    assert no.returncode != 0
    assert "certificate revoked" in no.stdout + no.stderr


def test_openssl_verify_finds_a_hold_and_a_next_generation_list(web: JpkiWeb, tmp_path: Path) -> None:
    with transaction(web.pki.factory) as s:
        web.pki.ca(s).rollover(AUTH, Algorithm.P384_SHA384)
    held = web.pki.issue(AUTH, holder(), profile=NEXT_GEN)
    with transaction(web.pki.factory) as s:
        svc = Revocations(s, web.pki.clock)
        svc.hold(svc.certificate(AUTH, held.serial), "hotline:1")
    crl = _crl_pem(tmp_path / "crl.pem", _fetch_crl(web, "/jpki/crl/auth/g2.crl", "login-co-api"))
    ca = _pem(tmp_path / "ca.pem", web.pki.ca_cert(AUTH, 2))
    out = _openssl("verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl, _pem(tmp_path / "held.pem", held))
    assert out.returncode != 0 and "certificate revoked" in out.stdout + out.stderr


# ----------------------------------------------------------------------------------- openssl ocsp


def _ocsp(url: str, web: JpkiWeb, tmp_path: Path, kind: str, row: CertificateRow, *extra: str) -> str:
    ca = _pem(tmp_path / f"{kind}-ca.pem", web.pki.ca_cert(kind))
    user = "bank-a-api" if kind == SIGN else "login-co-api"
    out = _openssl(
        "ocsp",
        "-issuer",
        ca,
        "-cert",
        _pem(tmp_path / f"{row.serial}.pem", row),
        "-url",
        f"{url}/jpki/ocsp/{kind}",
        "-header",
        f"Authorization=Bearer {web.token(user)}",
        "-header",
        "X-JPKI-Purpose=openssl-check",
        "-CAfile",
        ca,
        *extra,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Response verify OK" in out.stderr + out.stdout
    return out.stdout


def test_openssl_ocsp_good_and_revoked(web: JpkiWeb, server: str, tmp_path: Path) -> None:
    good, auth = web.pki.card(card_id="good")
    bad, _ = web.pki.card(card_id="bad")
    _revoke(web, SIGN, bad.serial, Reason.KEY_COMPROMISE)
    out = _ocsp(server, web, tmp_path, SIGN, good)  # with a nonce (openssl's default): signed live
    assert f"{good.serial}.pem: good" in out
    out = _ocsp(server, web, tmp_path, SIGN, bad, "-no_nonce")  # pre-signed
    assert f"{bad.serial}.pem: revoked" in out and "Reason: keyCompromise" in out
    out = _ocsp(server, web, tmp_path, AUTH, auth)
    assert f"{auth.serial}.pem: good" in out
    # Verified with the responder certificate given explicitly, too (-VAfile).
    answer = x509.ocsp.load_der_ocsp_response(_post(web, SIGN, good))
    va = tmp_path / "responder.pem"
    va.write_bytes(answer.certificates[0].public_bytes(Encoding.PEM))
    out = _ocsp(server, web, tmp_path, SIGN, good, "-VAfile", str(va))
    assert f"{good.serial}.pem: good" in out
    log = web.client.get(
        "/api/v1/jpki/status-queries", params={"channel": "ocsp"}, headers=web.headers("jlis-operator")
    )
    assert {q["purpose"] for q in log.json()} >= {"openssl-check"}


def test_openssl_ocsp_sees_a_revocation_at_once(web: JpkiWeb, server: str, tmp_path: Path) -> None:
    sign, _ = web.pki.card()
    assert f"{sign.serial}.pem: good" in _ocsp(server, web, tmp_path, SIGN, sign, "-no_nonce")
    _revoke(web, SIGN, sign.serial)
    assert f"{sign.serial}.pem: revoked" in _ocsp(server, web, tmp_path, SIGN, sign, "-no_nonce")


def test_openssl_ocsp_without_a_token_is_refused(web: JpkiWeb, server: str, tmp_path: Path) -> None:
    sign, _ = web.pki.card()
    ca = _pem(tmp_path / "ca.pem", web.pki.ca_cert(SIGN))
    out = _openssl(
        "ocsp", "-issuer", ca, "-cert", _pem(tmp_path / "s.pem", sign), "-url", f"{server}/jpki/ocsp/sign"
    )
    assert out.returncode != 0 and "401" in out.stdout + out.stderr


# ----------------------------------------------------------------------------------- pkilint


def _findings(results: object) -> list[tuple[str, str, str]]:
    out = []
    for result in results:  # type: ignore[attr-defined]
        for fd in result.finding_descriptions:
            out.append((fd.finding.severity.name, fd.finding.code, str(result.node.path)))
    return out


def _check(findings: list[tuple[str, str, str]]) -> None:
    serious = [f for f in findings if ValidationFindingSeverity[f[0]] <= ValidationFindingSeverity.ERROR]
    assert serious == [], serious
    unexplained = [f for f in findings if f[1] not in ACCEPTED and f[0] in ("WARNING", "NOTICE")]
    assert unexplained == [], unexplained


def lint_crl(der: bytes) -> list[tuple[str, str, str]]:
    """As ``lint_crl lint -t CRL|ARL -p PKIX`` (the type only matters to the CA/B profile)."""
    validator = pkilint_crl.create_pkix_crl_validator_container(
        [
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [
            pkilint_crl.create_issuer_validator_container([]),
            pkilint_crl.create_validity_validator_container([]),
            pkilint_crl.create_extensions_validator_container([]),
        ],
    )
    doc = loader.RFC5280CertificateListDocumentLoader().load_der_document(der, "crl")
    return _findings(validator.validate(doc.root))


def lint_ocsp_response(der: bytes) -> list[tuple[str, str, str]]:
    validator = pkilint_ocsp.create_pkix_ocsp_response_validator_container(
        [
            pkilint_ocsp.create_response_decoder(),
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [],
    )
    doc = loader.RFC6960OCSPResponseDocumentLoader().load_der_document(der, "ocsp")
    return _findings(validator.validate(doc.root))


def lint_pkix_cert(der: bytes) -> list[tuple[str, str, str]]:
    validator = certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )
    doc = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "cert")
    return _findings(validator.validate(doc.root))


def _post(web: JpkiWeb, kind: str, row: CertificateRow, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_der_x509_certificate(row.der), web.pki.ca_cert(kind), hashes.SHA1()
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    r = web.client.post(
        f"/jpki/ocsp/{kind}",
        content=builder.build().public_bytes(Encoding.DER),
        headers=web.headers("both-co-api", **{"Content-Type": "application/ocsp-request"}),
    )
    assert r.status_code == 200
    return r.content


def test_pkilint_finds_nothing_wrong_in_our_crls(web: JpkiWeb) -> None:
    sign, auth = web.pki.card(holder(lg_code=SHINJUKU, address="東京都新宿区西新宿2丁目8番1号"))
    held, _ = web.pki.card(card_id="held")
    _revoke(web, SIGN, sign.serial)
    _revoke(web, AUTH, auth.serial, Reason.UNSPECIFIED)
    with transaction(web.pki.factory) as s:
        Revocations(s, web.pki.clock).hold(
            Revocations(s, web.pki.clock).certificate(SIGN, held.serial), "hotline"
        )
    with transaction(web.pki.factory) as s:
        web.pki.ca(s).rollover(SIGN)
    with transaction(web.pki.factory) as s:
        Revocations(s, web.pki.clock).revoke_generation(
            web.pki.generation(SIGN, 1), Reason.SUPERSEDED, "retired"
        )
    for path in (
        "/jpki/crl/sign/g1.crl",
        f"/jpki/crl/sign/g1/{SHINJUKU}.crl",
        "/jpki/crl/auth/g1.crl",
        "/jpki/crl/sign/g2.crl",
    ):
        _check(lint_crl(_fetch_crl(web, path)))
    _check(lint_crl(_fetch_crl(web, "/jpki/arl/sign.crl")))
    _check(lint_crl(_fetch_crl(web, "/jpki/arl/auth.crl")))


def test_pkilint_finds_nothing_wrong_in_our_ocsp_responses(web: JpkiWeb) -> None:
    good, auth = web.pki.card(card_id="good")
    bad, _ = web.pki.card(card_id="bad")
    held, _ = web.pki.card(card_id="held")
    _revoke(web, SIGN, bad.serial)
    with transaction(web.pki.factory) as s:
        svc = Revocations(s, web.pki.clock)
        svc.hold(svc.certificate(SIGN, held.serial), "hotline")
    answers = [
        _post(web, SIGN, good),
        _post(web, SIGN, good, nonce=b"n" * 16),
        _post(web, SIGN, bad),
        _post(web, SIGN, held),
        _post(web, AUTH, auth),
    ]
    for der in answers:
        _check(lint_ocsp_response(der))
    responders = {ocsp.load_der_ocsp_response(d).certificates[0].public_bytes(Encoding.DER) for d in answers}
    assert len(responders) == 2
    for der in responders:
        _check(lint_pkix_cert(der))


def test_the_lint_helpers_do_find_problems(web: JpkiWeb) -> None:
    """The checkers above would fail: a CRL without AKI or CRL number, an OCSP response without
    the responder's certificate's key usage... here a CRL made the careless way."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = web.pki.clock.now()
    careless = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(web.pki.ca_cert().subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )
    findings = lint_crl(careless)
    assert any(sev == "ERROR" for sev, _code, _path in findings), findings
    with pytest.raises(AssertionError):
        _check(findings)
