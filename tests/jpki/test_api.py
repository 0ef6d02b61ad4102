"""The HTTP face: CA certificates, CRLs, ARLs and OCSP for registered verifiers only, the operator's
API, the latest-基本4情報 API, and a fuzz of the OCSP endpoint."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.jpki import api as jpki_api
from jlis.jpki.ocsp import MAX_REQUEST_BYTES
from jlis.jpki.tables import AUTH, SIGN, CertificateRow
from jlis.web.deps import check_route_guards, iter_api_routes, route_guards

from ..web.support import OPERATOR, STAFF_A, assert_error
from .revocation_fixtures import CHIYODA, JpkiWeb

OCSP_REQ = {"Content-Type": "application/ocsp-request"}


@pytest.fixture
def web(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[JpkiWeb]:
    with JpkiWeb.start(factory, clock, tmp_path) as w:
        yield w


def ocsp_request(row: CertificateRow, issuer: x509.Certificate, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_der_x509_certificate(row.der), issuer, hashes.SHA1()
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def status_of(body: bytes) -> ocsp.OCSPResponse:
    return ocsp.load_der_ocsp_response(body)


def queries(web: JpkiWeb, **params: str) -> list[dict[str, object]]:
    r = web.client.get("/api/v1/jpki/status-queries", params=params, headers=web.headers(OPERATOR))
    assert r.status_code == 200, r.text
    return list(r.json())


# ----------------------------------------------------------------------------------- guards


def test_every_route_is_guarded(web: JpkiWeb) -> None:
    check_route_guards(web.app.routes)
    guards = [
        (sorted(r.methods or ()), r.path, route_guards(r))
        for r in iter_api_routes(web.app.routes)
        if r.path.startswith(("/jpki", "/api/v1/jpki", "/jlis/jpki"))
    ]
    assert len(guards) >= 20
    assert all(g for _m, _p, g in guards)


# ----------------------------------------------------------------------------------- CA certificates


def test_ca_certificates_are_public(web: JpkiWeb) -> None:
    r = web.client.get("/jpki/ca/sign/g1.cer")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pkix-cert"
    assert x509.load_der_x509_certificate(r.content) == web.pki.ca_cert(SIGN)
    assert x509.load_der_x509_certificate(web.client.get("/jpki/ca/auth/g1.cer").content) == web.pki.ca_cert(
        AUTH
    )
    assert_error(web.client.get("/jpki/ca/sign/g7.cer"), 404, "generation")
    assert_error(web.client.get("/jpki/ca/root/g1.cer"), 404, "ca_kind")


# ----------------------------------------------------------------------------------- CRLs


def test_crls_for_registered_verifiers_only(web: JpkiWeb) -> None:
    sign, auth = web.pki.card()
    r = web.client.get("/jpki/crl/sign/g1.crl")
    assert_error(r, 401, "Authorization")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_error(
        web.client.get("/jpki/crl/sign/g1.crl", headers={"Authorization": "Bearer nope"}),
        401,
        "Authorization",
    )
    assert_error(web.client.get("/jpki/crl/sign/g1.crl", headers=web.headers(OPERATOR)), 403, "principal")
    assert_error(
        web.client.get("/jpki/crl/sign/g1.crl", headers=web.headers("login-co-api")), 403, "verifier"
    )
    assert_error(web.client.get("/jpki/crl/auth/g1.crl", headers=web.headers("bank-a-api")), 403, "verifier")

    purpose = quote("口座開設の本人確認")
    r = web.client.get(
        "/jpki/crl/sign/g1.crl", headers=web.headers("bank-a-api", **{"X-JPKI-Purpose": purpose})
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(r.content)
    assert crl.is_signature_valid(web.pki.ca_cert().public_key())  # type: ignore[arg-type]
    r = web.client.get(f"/jpki/crl/sign/g1/{CHIYODA}.crl", headers=web.headers("both-co-api"))
    assert r.status_code == 200
    assert x509.load_der_x509_crl(r.content).extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert web.client.get("/jpki/crl/auth/g1.crl", headers=web.headers("login-co-api")).status_code == 200
    assert web.client.get("/jpki/arl/sign.crl", headers=web.headers("login-co-api")).status_code == 200
    assert_error(
        web.client.get("/jpki/crl/sign/g9.crl", headers=web.headers("bank-a-api")), 404, "CA generation"
    )
    assert_error(
        web.client.get("/jpki/crl/sign/g1/abc.crl", headers=web.headers("bank-a-api")), 422, "lg_code"
    )

    log = queries(web, channel="crl")
    assert [q["result"] for q in reversed(log)] == [
        "refused:unauthenticated",
        "refused:unauthenticated",
        "refused:forbidden",
        "refused:forbidden",
        "refused:forbidden",
        "crl:g1",
        f"crl:g1/{CHIYODA}",
        "crl:g1",
        "crl:arl",
    ]
    assert log[-6]["purpose"] == "口座開設の本人確認" and log[-6]["verifier_id"] == "bank-a"
    assert log[-4]["verifier_id"] == "login-co"  # refused, but known
    _ = (sign, auth)


# ----------------------------------------------------------------------------------- OCSP


def test_ocsp_post_and_get(web: JpkiWeb) -> None:
    sign, auth = web.pki.card()
    req = ocsp_request(sign, web.pki.ca_cert(SIGN))
    r = web.client.post("/jpki/ocsp/sign", content=req, headers=web.headers("bank-a-api", **OCSP_REQ))
    assert r.status_code == 200 and r.headers["content-type"] == "application/ocsp-response"
    assert status_of(r.content).certificate_status is ocsp.OCSPCertStatus.GOOD
    for encoded in (
        base64.b64encode(req).decode(),
        quote(base64.b64encode(req).decode(), safe=""),
        base64.urlsafe_b64encode(req).decode().rstrip("="),
    ):
        r = web.client.get(f"/jpki/ocsp/sign/{encoded}", headers=web.headers("bank-a-api"))
        assert r.status_code == 200 and status_of(r.content).certificate_status is ocsp.OCSPCertStatus.GOOD
    auth_req = ocsp_request(auth, web.pki.ca_cert(AUTH), nonce=b"z" * 16)
    r = web.client.post("/jpki/ocsp/auth", content=auth_req, headers=web.headers("login-co-api", **OCSP_REQ))
    resp = status_of(r.content)
    assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"z" * 16


def test_ocsp_refusals_are_http_errors_and_on_record(web: JpkiWeb) -> None:
    sign, auth = web.pki.card()
    req = ocsp_request(sign, web.pki.ca_cert(SIGN))
    assert_error(web.client.post("/jpki/ocsp/sign", content=req, headers=OCSP_REQ), 401, "Authorization")
    assert_error(
        web.client.post("/jpki/ocsp/sign", content=req, headers=web.headers("login-co-api", **OCSP_REQ)),
        403,
        "verifier",
    )
    assert_error(
        web.client.post("/jpki/ocsp/sign", content=req, headers=web.headers(STAFF_A, **OCSP_REQ)),
        403,
        "principal",
    )
    assert_error(
        web.client.post("/jpki/ocsp/root", content=req, headers=web.headers("bank-a-api")), 404, "ca_kind"
    )
    # The signing certificate asked at the authentication responder: the responder is not authoritative.
    r = web.client.post("/jpki/ocsp/auth", content=req, headers=web.headers("both-co-api", **OCSP_REQ))
    assert (
        r.status_code == 200 and status_of(r.content).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    )
    results = [(q["verifier_id"], q["result"], q["serial"]) for q in reversed(queries(web, channel="ocsp"))]
    assert results == [
        (None, "refused:unauthenticated", None),
        ("login-co", "refused:forbidden", None),
        (None, "refused:forbidden", None),
        ("both-co", "unauthorized", sign.serial),
    ]
    _ = auth


def test_oversized_and_garbage_requests_are_malformed(web: JpkiWeb) -> None:
    headers = web.headers("bank-a-api", **OCSP_REQ)
    for body in (b"", b"garbage", b"\x30" * (MAX_REQUEST_BYTES + 1)):
        r = web.client.post("/jpki/ocsp/sign", content=body, headers=headers)
        assert r.status_code == 200
        assert status_of(r.content).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    r = web.client.get("/jpki/ocsp/sign/%%%not-base64", headers=web.headers("bank-a-api"))
    assert status_of(r.content).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_a_revocation_through_the_api_is_answered_at_once(web: JpkiWeb) -> None:
    sign, _ = web.pki.card()
    req = ocsp_request(sign, web.pki.ca_cert(SIGN))
    headers = web.headers("bank-a-api", **OCSP_REQ)
    assert status_of(
        web.client.post("/jpki/ocsp/sign", content=req, headers=headers).content
    ).certificate_status is (ocsp.OCSPCertStatus.GOOD)
    body = {"ca_kind": "sign", "serial": sign.serial, "reason": "keyCompromise", "cause": "report 1"}
    assert_error(
        web.client.post("/api/v1/jpki/revocations", json=body, headers=web.headers("bank-a-api")),
        403,
        "principal",
    )
    r = web.client.post("/api/v1/jpki/revocations", json=body, headers=web.headers(OPERATOR))
    assert r.status_code == 200, r.text
    assert r.json()["changed"] and r.json()["status"] == "revoked" and r.json()["reason"] == "keyCompromise"
    resp = status_of(web.client.post("/jpki/ocsp/sign", content=req, headers=headers).content)
    assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason is x509.ReasonFlags.key_compromise
    r = web.client.post("/api/v1/jpki/revocations", json=body, headers=web.headers(OPERATOR))
    assert not r.json()["changed"]
    assert_error(
        web.client.post(
            "/api/v1/jpki/revocations",
            json={**body, "reason": "certificateHold"},
            headers=web.headers(OPERATOR),
        ),
        422,
        "reason",
    )
    assert_error(
        web.client.post(
            "/api/v1/jpki/revocations", json={**body, "serial": "abcd"}, headers=web.headers(OPERATOR)
        ),
        404,
        "certificate",
    )
    crl = web.client.get("/jpki/crl/sign/g1.crl", headers=web.headers("bank-a-api"))
    assert [format(r.serial_number, "x") for r in x509.load_der_x509_crl(crl.content)] == [sign.serial]


def test_answers_are_not_given_when_the_log_cannot_be_written(
    web: JpkiWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jlis.jpki.verifiers import LogUnavailable

    sign, _ = web.pki.card()
    req = ocsp_request(sign, web.pki.ca_cert(SIGN))
    headers = web.headers("bank-a-api", **OCSP_REQ)

    def full(_record: object) -> None:
        raise LogUnavailable("disk full")

    async def broken(_record: object) -> None:
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(web.services().log, "enqueue", full)
        r = web.client.post("/jpki/ocsp/sign", content=req, headers=headers)
        assert (
            r.status_code == 200 and status_of(r.content).response_status is ocsp.OCSPResponseStatus.TRY_LATER
        )
    # In durable mode each answer waits for its record's commit.
    monkeypatch.setattr(web.services(), "durable_log", True)
    r = web.client.post("/jpki/ocsp/sign", content=req, headers=headers)
    assert status_of(r.content).certificate_status is ocsp.OCSPCertStatus.GOOD
    assert len(queries(web, channel="ocsp")) == 1  # the refused answer had no record, and no answer
    monkeypatch.setattr(web.services().log, "record_async", broken)
    r = web.client.post("/jpki/ocsp/sign", content=req, headers=headers)
    assert status_of(r.content).response_status is ocsp.OCSPResponseStatus.TRY_LATER


# ----------------------------------------------------------------------------------- verifiers


def test_operators_register_and_deactivate_verifiers(web: JpkiWeb) -> None:
    body = {
        "verifier_id": "bank-z",
        "name": "Z銀行",
        "signature_verifier": True,
        "user_verifier": False,
        "basis": "主務大臣認定事業者",
        "agreement_no": "Z-1",
        "agreement_date": "2026-04-01",
        "username": "bank-z-api",
        "password": "correct horse battery",
    }
    assert_error(web.client.post("/api/v1/jpki/verifiers", json=body), 401, "Authorization")
    assert_error(
        web.client.post("/api/v1/jpki/verifiers", json=body, headers=web.headers("bank-a-api")),
        403,
        "principal",
    )
    r = web.client.post("/api/v1/jpki/verifiers", json=body, headers=web.headers(OPERATOR))
    assert r.status_code == 201, r.text
    assert r.json()["verifier_id"] == "bank-z" and r.json()["username"] == "bank-z-api"
    assert_error(
        web.client.post("/api/v1/jpki/verifiers", json=body, headers=web.headers(OPERATOR)),
        409,
        "verifier_id",
    )
    assert_error(
        web.client.post(
            "/api/v1/jpki/verifiers",
            json={**body, "verifier_id": "x", "username": "x-api"},
            headers=web.headers(OPERATOR),
        ),
        422,
        "verifier_id",
    )
    listed = web.client.get("/api/v1/jpki/verifiers", headers=web.headers(OPERATOR)).json()
    assert {v["verifier_id"] for v in listed} == {"bank-a", "login-co", "both-co", "bank-z"}

    sign, _ = web.pki.card()
    req = ocsp_request(sign, web.pki.ca_cert(SIGN))
    headers = web.headers("bank-z-api", **OCSP_REQ)
    assert web.client.post("/jpki/ocsp/sign", content=req, headers=headers).status_code == 200
    r = web.client.post("/api/v1/jpki/verifiers/bank-z/deactivate", headers=web.headers(OPERATOR))
    assert r.status_code == 200 and not r.json()["active"]
    assert_error(web.client.post("/jpki/ocsp/sign", content=req, headers=headers), 401, "Authorization")
    assert web.client.post("/api/v1/jpki/verifiers/bank-z/activate", headers=web.headers(OPERATOR)).json()[
        "active"
    ]
    assert_error(
        web.client.post("/api/v1/jpki/verifiers/nobody/activate", headers=web.headers(OPERATOR)),
        404,
        "verifier_id",
    )


def test_status_query_log_is_for_operators(web: JpkiWeb) -> None:
    assert_error(
        web.client.get("/api/v1/jpki/status-queries", headers=web.headers("bank-a-api")), 403, "principal"
    )
    assert_error(
        web.client.get("/api/v1/jpki/status-queries", params={"limit": 0}, headers=web.headers(OPERATOR)),
        422,
        "limit",
    )
    assert queries(web) == []


def test_crl_status(web: JpkiWeb) -> None:
    web.client.get("/jpki/crl/sign/g1.crl", headers=web.headers("bank-a-api"))
    r = web.client.get("/api/v1/jpki/crl-status", headers=web.headers(OPERATOR))
    assert [(c["ca_kind"], c["scope"], c["stale"]) for c in r.json()] == [("sign", "g1", False)]


# ----------------------------------------------------------------------------------- 基本4情報


def test_basic4_refusals(web: JpkiWeb) -> None:
    sign, _ = web.pki.card()
    body = {"certificate": base64.b64encode(sign.der).decode(), "consent": base64.b64encode(b"junk").decode()}
    assert_error(web.client.post("/api/v1/jpki/basic4", json=body), 401, "Authorization")
    assert_error(
        web.client.post("/api/v1/jpki/basic4", json=body, headers=web.headers(OPERATOR)), 403, "principal"
    )
    assert_error(
        web.client.post(
            "/api/v1/jpki/basic4", json={**body, "consent": "***"}, headers=web.headers("bank-a-api")
        ),
        422,
        "consent",
    )
    r = web.client.post("/api/v1/jpki/basic4", json=body, headers=web.headers("bank-a-api"))
    assert_error(r, 403, "consent", "CMS SignedData")
    r = web.client.post("/api/v1/jpki/basic4", json=body, headers=web.headers("login-co-api"))
    assert_error(r, 403, "verifier")
    assert [q["result"] for q in reversed(queries(web, channel="basic4"))] == [
        "refused:consent",
        "refused:verifier",
    ]


# ----------------------------------------------------------------------------------- fuzz


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_ocsp_requests_never_crash(web: JpkiWeb, data: st.DataObject) -> None:
    if not hasattr(web, "_fuzz_req"):
        row = web.pki.card(card_id="fuzz")[0]
        web._fuzz_req = ocsp_request(row, web.pki.ca_cert(SIGN))  # type: ignore[attr-defined]
    valid: bytes = web._fuzz_req  # type: ignore[attr-defined]
    choice = data.draw(st.sampled_from(["random", "flip", "truncate", "splice"]))
    if choice == "random":
        body = data.draw(st.binary(max_size=600))
    elif choice == "flip":
        i = data.draw(st.integers(0, len(valid) - 1))
        body = valid[:i] + bytes([valid[i] ^ data.draw(st.integers(1, 255))]) + valid[i + 1 :]
    elif choice == "truncate":
        body = valid[: data.draw(st.integers(0, len(valid) - 1))]
    else:
        i = data.draw(st.integers(0, len(valid)))
        body = valid[:i] + data.draw(st.binary(min_size=1, max_size=40)) + valid[i:]
    headers = web.headers("bank-a-api", **OCSP_REQ)
    r = web.client.post("/jpki/ocsp/sign", content=body, headers=headers)
    assert r.status_code == 200, r.text
    status = status_of(r.content).response_status
    assert status in (
        ocsp.OCSPResponseStatus.SUCCESSFUL,
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
        ocsp.OCSPResponseStatus.UNAUTHORIZED,
    )
    g = web.client.get(f"/jpki/ocsp/sign/{quote(base64.b64encode(body).decode(), safe='')}", headers=headers)
    assert g.status_code == 200 and status_of(g.content).response_status == status


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.text(min_size=1, max_size=80))
def test_fuzzed_get_paths_never_crash(web: JpkiWeb, path: str) -> None:
    # "." and ".." stay unquoted and are dot-segments: the client resolves them away (RFC 3986), so
    # the request goes to /jpki/ocsp/sign/ or above, not to a GET of an encoded request.
    assume(path not in (".", ".."))
    r = web.client.get("/jpki/ocsp/sign/" + quote(path, safe=""), headers=web.headers("bank-a-api"))
    assert r.status_code in (200, 404), r.text
    if r.status_code == 200:
        assert status_of(r.content).response_status in (
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
            ocsp.OCSPResponseStatus.SUCCESSFUL,
            ocsp.OCSPResponseStatus.UNAUTHORIZED,
        )


# ----------------------------------------------------------------------------------- CLI


def test_operator_cli(web: JpkiWeb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    url = web.pki.factory.kw["bind"].url.render_as_string(hide_password=False)
    monkeypatch.setenv("JLIS_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("JLIS_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(jpki_api.cli, [*args, "--database-url", url])
        assert result.exit_code == 0, result.output
        return result.output

    out = run("verifier-register", "city-q", "--name", "Q市", "--username", "city-q-api", "--password",
              "correct horse battery", "--no-signature", "--user", "--basis", "地方公共団体")  # fmt: skip
    assert "registered city-q (利用者証明検証者)" in out
    assert "city-q\tactive" in run("verifier-list")
    assert "inactive" in run("verifier-set", "city-q", "--inactive")
    sign, _ = web.pki.card()
    out = run("revoke", "sign", sign.serial, "--reason", "keyCompromise", "--cause", "report 9")
    assert f"sign {sign.serial}: revoked (keyCompromise)" in out
    assert "unchanged" in run("revoke", "sign", sign.serial, "--reason", "keyCompromise", "--cause", "again")
    run("crl", "sign", "--generation", "1", "--out", str(tmp_path / "g1.crl"))
    crl = x509.load_der_x509_crl((tmp_path / "g1.crl").read_bytes())
    assert [format(r.serial_number, "x") for r in crl] == [sign.serial]
    run("crl", "auth", "--out", str(tmp_path / "arl.pem"), "--pem")
    assert (tmp_path / "arl.pem").read_bytes().startswith(b"-----BEGIN X509 CRL-----")
    bad = runner.invoke(jpki_api.cli, ["revoke", "sign", "abc", "--reason", "keyCompromise", "--cause", "x",
                                       "--database-url", url])  # fmt: skip
    assert bad.exit_code == 2 and "certificate not found" in bad.output
