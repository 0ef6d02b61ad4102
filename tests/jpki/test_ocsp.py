"""The OCSP responder without HTTP: request parsing, the answers, the delegated responder
certificates, pre-signed answers and their freshness after a revocation."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from asn1crypto import ocsp as aocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.jpki.ocsp import (
    MAX_REQUEST_BYTES,
    MalformedRequest,
    OcspResponder,
    ResponseStatus,
    _subject_public_key_bits,
    decode_get_path,
    ensure_responders,
    parse_request,
)
from jlis.jpki.profile import NEXT_GEN, Algorithm
from jlis.jpki.revocation import Reason, Revocations, notify_issued, unsubscribe
from jlis.jpki.tables import AUTH, SIGN, CertificateRow, OcspResponderRow

from .revocation_fixtures import Pki, holder

UTC = dt.UTC


@pytest.fixture
def pki(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[Pki]:
    with Pki.start(factory, clock, tmp_path) as p:
        yield p


@pytest.fixture
def responder(pki: Pki) -> Iterator[OcspResponder]:
    r = OcspResponder(pki.factory, pki.clock, pki.keystore, pki.signer_for)
    yield r
    r.stop()


def request_for(
    cert: CertificateRow | x509.Certificate,
    issuer: x509.Certificate,
    *,
    nonce: bytes | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    c = x509.load_der_x509_certificate(cert.der) if isinstance(cert, CertificateRow) else cert
    builder = ocsp.OCSPRequestBuilder().add_certificate(c, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def multi_request(pairs: list[tuple[CertificateRow, x509.Certificate]], nonce: bytes | None = None) -> bytes:
    """A request for several certificates (cryptography builds one certificate per request only)."""
    items = []
    for row, issuer in pairs:
        single = aocsp.OCSPRequest.load(request_for(row, issuer))
        items.append(single["tbs_request"]["request_list"][0])
    tbs: dict[str, object] = {"request_list": items}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    return bytes(aocsp.OCSPRequest({"tbs_request": tbs}).dump())


def check_signed(der: bytes, ca: x509.Certificate) -> ocsp.OCSPResponse:
    """The response is successful, signed by a delegated responder certificate issued by ``ca``."""
    resp = ocsp.load_der_ocsp_response(der)
    assert resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    (responder_cert,) = resp.certificates
    assert responder_cert.issuer == ca.subject
    responder_cert.verify_directly_issued_by(ca)
    eku = responder_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    responder_cert.extensions.get_extension_for_class(x509.OCSPNoCheck)
    key = responder_cert.public_key()
    assert resp.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(key).digest  # type: ignore[arg-type]
    assert resp.signature_hash_algorithm is not None
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), resp.signature_hash_algorithm)
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))
    return resp


def _status(der: bytes) -> int:
    return ocsp.load_der_ocsp_response(der).response_status.value


# ----------------------------------------------------------------------------------- parsing


def test_parse_a_single_request_with_a_nonce(pki: Pki) -> None:
    sign, _ = pki.card()
    parsed = parse_request(request_for(sign, pki.ca_cert(), nonce=b"n" * 16))
    (q,) = parsed.queries
    assert q.hash_name == "sha1" and format(q.serial, "x") == sign.serial
    assert parsed.nonce == b"n" * 16


def test_parse_several_certificates(pki: Pki) -> None:
    a, _ = pki.card(card_id="a")
    b, _ = pki.card(card_id="b")
    parsed = parse_request(multi_request([(a, pki.ca_cert()), (b, pki.ca_cert())], nonce=b"x" * 20))
    assert [format(q.serial, "x") for q in parsed.queries] == [a.serial, b.serial]
    assert parsed.nonce == b"x" * 20


@pytest.mark.parametrize(
    "der",
    [b"", b"\x30\x00", b"garbage", b"\x30\x03\x02\x01\x01", b"\x30" + b"\x82\xff\xff" + b"\x00" * 10],
)
def test_garbage_is_malformed(der: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_request(der)


def test_oversized_requests_and_nonces_are_malformed(pki: Pki) -> None:
    sign, _ = pki.card()
    with pytest.raises(MalformedRequest):
        parse_request(b"\x30" * (MAX_REQUEST_BYTES + 1))
    with pytest.raises(MalformedRequest, match="nonce"):
        parse_request(request_for(sign, pki.ca_cert(), nonce=b"n" * 33))


def test_get_paths_decode_every_base64_flavour() -> None:
    der = bytes(range(250))  # contains the bytes that become + and / in base64
    std = base64.b64encode(der).decode()
    assert "+" in std and "/" in std
    for text in (
        std,
        std.rstrip("="),
        quote(std, safe=""),
        base64.urlsafe_b64encode(der).decode().rstrip("="),
    ):
        assert decode_get_path(text) == der
    with pytest.raises(MalformedRequest):
        decode_get_path("not*base64")
    with pytest.raises(MalformedRequest):
        decode_get_path("")


# ----------------------------------------------------------------------------------- answers


def test_good_revoked_held_and_unknown(pki: Pki, responder: OcspResponder) -> None:
    ca = pki.ca_cert()
    good, _ = pki.card(card_id="g")
    revoked, _ = pki.card(card_id="r")
    held, _ = pki.card(card_id="h")
    with transaction(pki.factory) as s:
        svc = Revocations(s, pki.clock)
        svc.revoke(svc.certificate(SIGN, revoked.serial), Reason.AFFILIATION_CHANGED, "identity:1")
        svc.hold(svc.certificate(SIGN, held.serial), "hotline:1")
    now = pki.clock.now().astimezone(UTC)

    answer = responder.answer(SIGN, request_for(good, ca))
    resp = check_signed(answer.der, ca)
    assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD and answer.result == "good"
    assert resp.this_update_utc == now and resp.next_update_utc == now + dt.timedelta(days=1)
    assert resp.produced_at_utc == now and resp.serial_number == int(good.serial, 16)

    answer = responder.answer(SIGN, request_for(revoked, ca))
    resp = check_signed(answer.der, ca)
    assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_time_utc == now and resp.revocation_reason is x509.ReasonFlags.affiliation_changed
    assert answer.result == "revoked:affiliationChanged"

    resp = check_signed(responder.answer(SIGN, request_for(held, ca)).der, ca)
    assert resp.revocation_reason is x509.ReasonFlags.certificate_hold

    stranger = x509.load_der_x509_certificate(good.der)
    unknown = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *_hashes(ca), stranger.serial_number + 1, hashes.SHA1()
    )
    answer = responder.answer(SIGN, unknown.build().public_bytes(Encoding.DER))
    assert check_signed(answer.der, ca).certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert answer.result == "unknown"


def _hashes(ca: x509.Certificate) -> tuple[bytes, bytes]:
    spki = ca.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha1(ca.subject.public_bytes()).digest(), hashlib.sha1(
        _subject_public_key_bits(spki)
    ).digest()


def test_sha256_cert_ids_are_answered_in_kind(pki: Pki, responder: OcspResponder) -> None:
    sign, _ = pki.card()
    resp = check_signed(
        responder.answer(SIGN, request_for(sign, pki.ca_cert(), algorithm=hashes.SHA256())).der, pki.ca_cert()
    )
    assert isinstance(resp.hash_algorithm, hashes.SHA256)
    assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD


def test_a_nonce_is_echoed_under_a_live_signature(pki: Pki, responder: OcspResponder) -> None:
    sign, _ = pki.card()
    ca = pki.ca_cert()
    one = responder.answer(SIGN, request_for(sign, ca, nonce=b"1" * 16)).der
    two = responder.answer(SIGN, request_for(sign, ca, nonce=b"2" * 16)).der
    for der, nonce in ((one, b"1" * 16), (two, b"2" * 16)):
        resp = check_signed(der, ca)
        assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert responder.cached(SIGN, request_for(sign, ca, nonce=b"1" * 16)) is None


def test_several_certificates_in_one_request(pki: Pki, responder: OcspResponder) -> None:
    a, _ = pki.card(card_id="a")
    b, _ = pki.card(card_id="b")
    _revoke(pki, SIGN, b.serial)
    answer = responder.answer(SIGN, multi_request([(a, pki.ca_cert()), (b, pki.ca_cert())]))
    assert answer.results == ("good", "revoked:affiliationChanged")
    parsed = aocsp.OCSPResponse.load(answer.der)
    singles = parsed["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]
    assert [s["cert_status"].name for s in singles] == ["good", "revoked"]


def _revoke(pki: Pki, kind: str, serial: str, reason: Reason = Reason.AFFILIATION_CHANGED) -> None:
    with transaction(pki.factory) as s:
        svc = Revocations(s, pki.clock)
        svc.revoke(svc.certificate(kind, serial), reason, f"test:{serial}")


def test_foreign_issuers_and_the_other_hierarchy_are_unauthorized(pki: Pki, responder: OcspResponder) -> None:
    sign, auth = pki.card()
    assert _status(responder.answer(AUTH, request_for(sign, pki.ca_cert(SIGN))).der) == 6
    assert _status(responder.answer(SIGN, request_for(auth, pki.ca_cert(AUTH))).der) == 6
    # A certificate of another CA entirely.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other")])
    now = pki.clock.now()
    other = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    answer = responder.answer(SIGN, request_for(other, other))
    assert answer.status == ResponseStatus.UNAUTHORIZED and answer.result == "unauthorized"


def test_certificates_of_two_generations_in_one_request_are_unauthorized(
    pki: Pki, responder: OcspResponder
) -> None:
    a, _ = pki.card(card_id="a")
    with transaction(pki.factory) as s:
        pki.ca(s).rollover(SIGN)
    b = pki.issue(SIGN, holder(), card_id="b")
    responder.load()
    answer = responder.answer(SIGN, multi_request([(a, pki.ca_cert(SIGN, 1)), (b, pki.ca_cert(SIGN, 2))]))
    assert answer.status == ResponseStatus.UNAUTHORIZED
    # Each on its own is answered by its own generation's responder.
    check_signed(responder.answer(SIGN, request_for(b, pki.ca_cert(SIGN, 2))).der, pki.ca_cert(SIGN, 2))
    check_signed(responder.answer(SIGN, request_for(a, pki.ca_cert(SIGN, 1))).der, pki.ca_cert(SIGN, 1))


def test_a_generation_made_elsewhere_is_picked_up(
    pki: Pki, responder: OcspResponder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with transaction(pki.factory) as s:
        pki.ca(s).rollover(SIGN, Algorithm.P384_SHA384)
    sign = pki.issue(SIGN, holder(), profile=NEXT_GEN)
    monkeypatch.setattr("jlis.jpki.ocsp.ISSUER_RELOAD_INTERVAL", 0.0)
    resp = check_signed(
        responder.answer(SIGN, request_for(sign, pki.ca_cert(SIGN, 2))).der, pki.ca_cert(SIGN, 2)
    )
    assert resp.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA384


def test_garbage_and_internal_errors_are_ocsp_statuses(
    pki: Pki, responder: OcspResponder, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign, _ = pki.card()
    assert responder.answer(SIGN, b"\x00\x01").status == ResponseStatus.MALFORMED_REQUEST
    assert _status(responder.answer(SIGN, b"junk").der) == 1

    def boom(*_a: object, **_k: object) -> bytes:
        raise RuntimeError("the key store is gone")

    monkeypatch.setattr(responder, "_sign", boom)
    answer = responder.answer(SIGN, request_for(sign, pki.ca_cert()))
    assert answer.status == ResponseStatus.INTERNAL_ERROR and _status(answer.der) == 2


# ----------------------------------------------------------------------------------- pre-signed answers


def test_answers_without_a_nonce_are_presigned_and_served_from_memory(
    pki: Pki, responder: OcspResponder
) -> None:
    sign, _ = pki.card()
    req = request_for(sign, pki.ca_cert())
    assert responder.cached(SIGN, req) is None  # never asked before
    first = responder.answer(SIGN, req)
    hit = responder.cached(SIGN, req)
    assert hit is not None and hit.der == first.der and hit.result == "good"
    assert responder.cached(AUTH, req) is None  # the other path's kind is never served from the cache


def test_a_revocation_in_this_process_is_never_answered_stale(pki: Pki, responder: OcspResponder) -> None:
    sign, _ = pki.card()
    req = request_for(sign, pki.ca_cert())
    responder.answer(SIGN, req)
    _revoke(pki, SIGN, sign.serial)
    assert responder.cached(SIGN, req) is None  # dropped when the revocation committed
    resp = check_signed(responder.answer(SIGN, req).der, pki.ca_cert())
    assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
    hit = responder.cached(SIGN, req)
    assert hit is not None and hit.result == "revoked:affiliationChanged"


def test_the_background_thread_resigns_a_changed_answer(pki: Pki, responder: OcspResponder) -> None:
    sign, _ = pki.card()
    req = request_for(sign, pki.ca_cert())
    responder.answer(SIGN, req)
    _revoke(pki, SIGN, sign.serial)
    responder._drain_resign()  # what the background thread does after the commit
    hit = responder.cached(SIGN, req)
    assert hit is not None and hit.result.startswith("revoked")


def test_another_process_sees_the_revocation_through_the_feed(pki: Pki, responder: OcspResponder) -> None:
    sign, _ = pki.card()
    req = request_for(sign, pki.ca_cert())
    responder.answer(SIGN, req)
    unsubscribe(responder)  # as if the revocation were made by another process
    _revoke(pki, SIGN, sign.serial)
    assert responder.cached(SIGN, req) is not None  # not yet: the poll has not run
    assert responder.sync() == 1
    assert responder.cached(SIGN, req) is None
    assert (
        check_signed(responder.answer(SIGN, req).der, pki.ca_cert()).certificate_status
        is ocsp.OCSPCertStatus.REVOKED
    )
    assert responder.sync() == 0


def test_old_answers_are_signed_again(pki: Pki, responder: OcspResponder) -> None:
    sign, _ = pki.card()
    req = request_for(sign, pki.ca_cert())
    first = responder.answer(SIGN, req)
    pki.clock.advance(minutes=59)
    assert responder.cached(SIGN, req) is not None
    pki.clock.advance(minutes=2)
    assert responder.cached(SIGN, req) is None
    again = responder.answer(SIGN, req)
    assert again.der != first.der
    assert ocsp.load_der_ocsp_response(again.der).this_update_utc == pki.clock.now().astimezone(UTC).replace(
        microsecond=0
    )


def test_issued_certificates_are_presigned(pki: Pki, responder: OcspResponder) -> None:
    key = pki.key_for(None)  # type: ignore[arg-type]
    with transaction(pki.factory) as s:
        row = pki.ca(s).issue(
            SIGN,
            key.public_key(),  # type: ignore[attr-defined]
            holder(),
            card_id="new",
            card_expires_on=pki.clock.today() + dt.timedelta(days=3650),
        )
        s.flush()
        notify_issued(s, [row])
    req = request_for(row, pki.ca_cert())
    responder._drain_resign()
    assert responder.cached(SIGN, req) is not None


def test_prewarm_signs_every_answer(pki: Pki, responder: OcspResponder) -> None:
    rows = [pki.card(card_id=f"c{i}")[0] for i in range(3)]
    assert responder.prewarm(SIGN) == 3
    assert all(responder.cached(SIGN, request_for(r, pki.ca_cert())) is not None for r in rows)


# ----------------------------------------------------------------------------------- responder certificates


def test_each_generation_gets_a_responder_certificate_renewed_in_time(pki: Pki) -> None:
    with transaction(pki.factory) as s:
        rows = ensure_responders(s, pki.clock, pki.keystore, pki.signer_for)
    assert len(rows) == 2  # sign g1, auth g1
    with transaction(pki.factory) as s:
        assert [r.id for r in ensure_responders(s, pki.clock, pki.keystore, pki.signer_for)] == [
            r.id for r in rows
        ]
    for row in rows:
        cert = x509.load_der_x509_certificate(row.certificate_der)
        assert row.not_after - row.not_before == dt.timedelta(days=90)
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and not bc.value.ca
    pki.clock.advance(days=61)
    with transaction(pki.factory) as s:
        renewed = ensure_responders(s, pki.clock, pki.keystore, pki.signer_for)
    assert {r.id for r in renewed}.isdisjoint({r.id for r in rows})
    with pki.factory() as s:
        assert len(s.scalars(select(OcspResponderRow)).all()) == 4


def test_a_renewed_responder_signs_from_then_on(pki: Pki, responder: OcspResponder) -> None:
    sign, _ = pki.card()
    req = request_for(sign, pki.ca_cert())
    old = ocsp.load_der_ocsp_response(responder.answer(SIGN, req).der).certificates[0]
    pki.clock.advance(days=61)
    responder.load()
    new = ocsp.load_der_ocsp_response(responder.answer(SIGN, req).der).certificates[0]
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc > pki.clock.now()


def test_a_revoked_generation_is_no_longer_answered_for(pki: Pki, responder: OcspResponder) -> None:
    sign, _ = pki.card()
    req = request_for(sign, pki.ca_cert())
    responder.answer(SIGN, req)
    assert responder.cached(SIGN, req) is not None
    with transaction(pki.factory) as s:
        Revocations(s, pki.clock).revoke_generation(pki.generation(SIGN), Reason.CA_COMPROMISE, "drill")
    assert responder.cached(SIGN, req) is None
    assert responder.answer(SIGN, req).status == ResponseStatus.UNAUTHORIZED
