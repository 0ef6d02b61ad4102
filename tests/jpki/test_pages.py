"""The J-LIS operator's JPKI pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.jpki.revocation import Reason, Revocations
from jlis.jpki.tables import SIGN

from ..web.support import OPERATOR, STAFF_A, csrf_of
from .revocation_fixtures import JpkiWeb


@pytest.fixture
def web(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[JpkiWeb]:
    with JpkiWeb.start(factory, clock, tmp_path) as w:
        yield w


def test_pages_are_for_operators_only(web: JpkiWeb) -> None:
    r = web.client.get("/jlis/jpki", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    web.login(STAFF_A)
    for path in ("/jlis/jpki", "/jlis/jpki/revocations", "/jlis/jpki/verifiers", "/jlis/jpki/queries"):
        assert web.client.get(path).status_code == 403


def test_overview_shows_generations_counts_and_crls(web: JpkiWeb) -> None:
    sign, _ = web.pki.card()
    with transaction(web.pki.factory) as s:
        svc = Revocations(s, web.pki.clock)
        svc.revoke(svc.certificate(SIGN, sign.serial), Reason.AFFILIATION_CHANGED, "identity:1")
    web.client.get("/jpki/crl/sign/g1.crl", headers=web.headers("bank-a-api"))
    web.login(OPERATOR)
    page = web.client.get("/jlis/jpki")
    assert page.status_code == 200, page.text
    assert 'data-generation="sign-1"' in page.text and 'data-generation="auth-1"' in page.text
    assert "rsa2048-sha256" in page.text and "発行中" in page.text
    assert re.search(
        r"署名用</td><td>カード</td>\s*"
        r'<td class="num">0</td><td class="num">0</td><td class="num">1</td>',
        page.text,
    )
    assert "基本4情報の変更" in page.text
    assert 'data-crl="sign/g1"' in page.text and "最新" in page.text


def test_revocation_log_page_is_audited(web: JpkiWeb) -> None:
    sign, _ = web.pki.card()
    with transaction(web.pki.factory) as s:
        svc = Revocations(s, web.pki.clock, actor="hotline")
        svc.hold(svc.certificate(SIGN, sign.serial), "hotline:call-7")
    web.login(OPERATOR)
    page = web.client.get("/jlis/jpki/revocations")
    assert page.status_code == 200 and sign.serial in page.text and "hotline:call-7" in page.text
    assert "一時保留" in page.text
    with web.pki.factory() as s:
        reads = [e for e in AuditLog("access").entries(s) if e.details.get("purpose") == "失効記録の閲覧"]
    assert len(reads) == 1 and reads[0].actor == OPERATOR


def test_register_and_deactivate_a_verifier(web: JpkiWeb) -> None:
    web.login(OPERATOR)
    token = csrf_of(web.client.get("/jlis/jpki/verifiers").text)
    form = {
        "csrf_token": token,
        "verifier_id": "city-x",
        "name": "X市",
        "basis": "地方公共団体",
        "agreement_no": "X-1",
        "agreement_date": "2026-04-01",
        "username": "city-x-api",
        "password": "correct horse battery",
        "user_verifier": "on",
    }
    r = web.client.post("/jlis/jpki/verifiers", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = web.client.get(r.headers["location"])
    assert 'data-verifier="city-x"' in page.text and "利用者証明検証者" in page.text
    # A refused form comes back with the error and what was typed (not the password).
    bad = web.client.post(
        "/jlis/jpki/verifiers", data={**form, "verifier_id": "city-y", "agreement_date": "2026-02-30"}
    )
    assert bad.status_code == 422 and "agreement_date" in bad.text and 'value="city-y"' in bad.text
    assert "correct horse battery" not in bad.text
    no_csrf = web.client.post(
        "/jlis/jpki/verifiers", data={**form, "csrf_token": "x", "verifier_id": "city-z"}
    )
    assert no_csrf.status_code == 403
    r = web.client.post(
        "/jlis/jpki/verifiers/city-x/deactivate", data={"csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303
    assert "停止" in web.client.get("/jlis/jpki/verifiers").text
    assert (
        web.client.post("/jlis/jpki/verifiers/city-x/explode", data={"csrf_token": token}).status_code == 422
    )
    assert (
        web.client.post("/jlis/jpki/verifiers/nobody/activate", data={"csrf_token": token}).status_code == 404
    )


def test_query_log_page(web: JpkiWeb) -> None:
    sign, _ = web.pki.card()
    req = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(x509.load_der_x509_certificate(sign.der), web.pki.ca_cert(), hashes.SHA1())
        .build()
        .public_bytes(Encoding.DER)
    )
    web.client.post(
        "/jpki/ocsp/sign",
        content=req,
        headers=web.headers(
            "bank-a-api", **{"Content-Type": "application/ocsp-request", "X-JPKI-Purpose": "kyc"}
        ),
    )
    web.login(OPERATOR)
    page = web.client.get("/jlis/jpki/queries?channel=ocsp")
    assert (
        page.status_code == 200 and sign.serial in page.text and "kyc" in page.text and "bank-a" in page.text
    )
    assert web.client.get("/jlis/jpki/queries?channel=smtp").status_code == 422
