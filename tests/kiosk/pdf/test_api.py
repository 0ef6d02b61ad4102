from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.kiosk.pdf.service import CertificateDocuments, IssuedDocument

from ...web.support import PASSWORD, STAFF_A, STAFF_B, assert_error
from .conftest import SUBJECT, PooledKeyStore, make_content, web_app

Docs = Callable[[Session], CertificateDocuments]


def _issue(factory: sessionmaker[Session], documents: Docs) -> IssuedDocument:
    with transaction(factory) as s:
        return documents(s).issue(make_content(), actor="issuer")


def _token(client, username: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/token", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_verify_by_code_and_by_pdf(
    factory: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    pooled_keystore: PooledKeyStore,
    documents: Docs,
) -> None:
    doc = _issue(factory, documents)
    clock.advance(minutes=1)
    with web_app(factory, clock, tmp_path, pooled_keystore) as (client, _):
        r = client.get("/api/v1/kiosk/verify", params={"n": doc.certificate_number, "c": doc.code})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (
            body["verdict"] == "valid"
            and body["sha256"] == doc.sha256
            and body["kind_label"] == "住民票の写し"
        )
        assert SUBJECT not in r.text and "髙橋" not in r.text
        r = client.get("/api/v1/kiosk/verify", params={"n": doc.certificate_number, "c": "A" * 16})
        assert r.json()["verdict"] == "invalid" and r.json()["sha256"] is None
        assert_error(client.get("/api/v1/kiosk/verify", params={"n": "x", "c": "1"}), 422, "code")

        pdf = client.post(
            "/api/v1/kiosk/verify/pdf", content=doc.pdf, headers={"content-type": "application/pdf"}
        )
        assert pdf.status_code == 200 and pdf.json()["verdict"] == "valid", pdf.text
        tampered = bytearray(doc.pdf)
        tampered[doc.pdf.index(b"/Author") + 9] ^= 1
        bad = client.post("/api/v1/kiosk/verify/pdf", content=bytes(tampered))
        assert bad.json()["verdict"] == "invalid" and bad.json()["sha256"] != doc.sha256
        assert_error(client.post("/api/v1/kiosk/verify/pdf", content=b""), 422, "pdf")


def test_revoke_needs_staff_of_the_issuing_municipality(
    factory: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    pooled_keystore: PooledKeyStore,
    documents: Docs,
) -> None:
    doc = _issue(factory, documents)
    with web_app(factory, clock, tmp_path, pooled_keystore) as (client, _):
        path = f"/api/v1/municipalities/131016/kiosk/documents/{doc.certificate_number}/revoke"
        assert client.post(path, json={"reason": "誤交付"}).status_code == 401
        assert (
            client.post(path, json={"reason": "誤交付"}, headers=_token(client, STAFF_B)).status_code == 403
        )
        other = f"/api/v1/municipalities/131041/kiosk/documents/{doc.certificate_number}/revoke"
        assert (
            client.post(other, json={"reason": "誤交付"}, headers=_token(client, STAFF_B)).status_code == 403
        )
        r = client.post(path, json={"reason": "誤交付"}, headers=_token(client, STAFF_A))
        assert r.status_code == 200 and r.json()["verdict"] == "revoked", r.text
        again = client.get("/api/v1/kiosk/verify", params={"n": doc.certificate_number, "c": doc.code})
        assert again.json()["verdict"] == "revoked"


def test_ca_publishes_its_roots_and_crl(
    factory: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    pooled_keystore: PooledKeyStore,
    documents: Docs,
) -> None:
    _issue(factory, documents)
    with web_app(factory, clock, tmp_path, pooled_keystore) as (client, _):
        roots = x509.load_pem_x509_certificates(client.get("/lgwan/ca/certificates").content)
        r = client.get("/lgwan/ca/crl")
        assert r.headers["content-type"] == "application/pkix-crl"
        crl = x509.load_der_x509_crl(r.content)
        assert crl.is_signature_valid(roots[0].public_key())  # type: ignore[arg-type]
