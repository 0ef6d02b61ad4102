"""The counter API of the certificate server's data over real HTTP (TestClient on the app with
this router mounted): scope, seals, measures, 本籍地利用登録 and the counter's certificate content."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth import passwords
from jlis.clock import FixedClock
from jlis.kiosk.issuer.api import router
from jlis.kiosk.issuer.tables import IssuanceRow
from jlis.web import create_app
from jlis.web.deps import check_route_guards

from ...web.support import FAST_HASHER, OPERATOR, PASSWORD, STAFF_A, STAFF_B, make_container, world_users
from .conftest import CHIYODA, IssuerWorld, png


def issuance_state(s: Session, number: str) -> tuple[str, str | None]:
    row = s.execute(select(IssuanceRow).where(IssuanceRow.certificate_number == number)).scalar_one()
    return row.state, row.document_sha256


class Api(IssuerWorld):
    client: TestClient

    def headers(self, username: str) -> dict[str, str]:
        r = self.client.post("/api/v1/token", json={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def api(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[Api]:
    previous = passwords.use_hasher(FAST_HASHER)
    try:
        container = make_container(factory, clock, tmp_path)
        world_users(container)
        app = create_app(container)
        app.include_router(router)
        check_route_guards(app.routes)
        with TestClient(app, base_url="https://testserver") as client:
            world = Api(container)
            world.client = client
            yield world
    finally:
        passwords.use_hasher(previous)


BASE = f"/api/v1/municipalities/{CHIYODA}/kiosk"


def test_seal_lifecycle_over_http(api: Api) -> None:
    p = api.person()
    staff = api.headers(STAFF_A)
    body = {"resident_code": p.resident_code, "impression_png_base64": base64.b64encode(png()).decode()}
    r = api.client.post(f"{BASE}/seals", json=body, headers=staff)
    assert r.status_code == 201, r.text
    number = r.json()["registration_no"]
    assert r.json()["status"] == "active" and r.json()["width_px"] == 128
    r = api.client.get(f"{BASE}/seals/{number}", headers=staff)
    assert r.status_code == 200 and r.json()["resident_code"] == p.resident_code
    r = api.client.post(f"{BASE}/seals", json=body, headers=staff)
    assert r.status_code == 409 and r.json()["field"] == "印鑑登録"
    r = api.client.post(f"{BASE}/seals/{number}/abolish", json={"reason": "request"}, headers=staff)
    assert r.status_code == 200 and r.json()["status"] == "abolished"
    bad = {"resident_code": p.resident_code, "impression_png_base64": "***"}
    r = api.client.post(f"{BASE}/seals", json=bad, headers=staff)
    assert r.status_code == 422 and r.json()["field"] == "印影"


def test_scope(api: Api) -> None:
    p = api.person()
    body = {"resident_code": p.resident_code, "impression_png_base64": base64.b64encode(png()).decode()}
    assert api.client.post(f"{BASE}/seals", json=body).status_code == 401
    assert api.client.post(f"{BASE}/seals", json=body, headers=api.headers(STAFF_B)).status_code == 403
    assert api.client.post(f"{BASE}/seals", json=body, headers=api.headers(OPERATOR)).status_code == 403


def test_counter_certificate_and_refusal(api: Api) -> None:
    p = api.person()
    staff = api.headers(STAFF_A)
    body = {"resident_code": p.resident_code, "kind": "resident", "request_id": "counter-0001"}
    r = api.client.post(f"{BASE}/certificates", json=body, headers=staff)
    assert r.status_code == 409
    assert r.json()["code"] == "moved_in_today"
    assert r.json()["message"] == "転入の届出をされた当日は交付できません。翌日以降にご利用ください。"
    api.next_day()
    staff = api.headers(STAFF_A)  # a token lasts less than a day
    r = api.client.post(f"{BASE}/certificates", json=body, headers=staff)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["subject_name"] == "山田\u3000太郎" and out["request_id"] == "counter-0001"
    assert out["issuer_title"] == "東京都千代田区長"
    assert out["sections"][0]["rows"][0] == {"label": "氏名", "value": "山田\u3000太郎"}
    with api.container.factory() as s:  # delivered as content: issued at once, no document
        assert issuance_state(s, out["certificate_number"]) == ("issued", None)
    r = api.client.post(f"{BASE}/certificates", json=body, headers=staff)
    assert r.status_code == 409 and r.json()["code"] == "request_replayed"
    r = api.client.post(f"{BASE}/certificates", json={**body, "kind": "passport"}, headers=staff)
    assert r.status_code == 422 and r.json()["field"] == "証明書の種類"


def test_measure_and_honseki_use(api: Api) -> None:
    p = api.person(honseki_lg=CHIYODA)
    api.koseki_for(p)
    api.next_day()
    staff = api.headers(STAFF_A)
    r = api.client.post(f"{BASE}/support-measures", json={"resident_code": p.resident_code}, headers=staff)
    assert r.status_code == 201
    measure = r.json()["id"]
    body = {"resident_code": p.resident_code, "kind": "resident", "request_id": "counter-0002"}
    r = api.client.post(f"{BASE}/certificates", json=body, headers=staff)
    assert r.status_code == 409 and r.json()["code"] == "dv_support"
    assert api.client.post(f"{BASE}/support-measures/{measure}/lift", headers=staff).status_code == 204
    assert api.client.post(f"{BASE}/certificates", json=body, headers=staff).status_code == 200
    r = api.client.post(f"{BASE}/honseki-use", json={"resident_code": p.resident_code}, headers=staff)
    assert r.status_code == 204
    r = api.client.post(f"{BASE}/honseki-use", json={"resident_code": p.resident_code}, headers=staff)
    assert r.status_code == 409
    r = api.client.post(
        f"{BASE}/support-measures",
        json={"resident_code": p.resident_code, "until": "2026-02-30"},
        headers=staff,
    )
    assert r.status_code == 422 and r.json()["field"] == "終了日"


def test_the_counter_prints_a_signed_certificate_that_verifies(api: Api) -> None:
    """The counter's printout: the same rules, then a PDF signed by the municipality's 職責証明書,
    bound to its request and registered for public verification."""
    import io

    from pypdf import PdfReader

    from jlis.db import transaction
    from jlis.kiosk.pdf.render import check_binding
    from jlis.kiosk.pdf.service import documents_for
    from jlis.lgwan.ca import ensure_organisation_pki

    with transaction(api.container.factory) as s:
        ensure_organisation_pki(
            s, api.container.clock, api.container.keystore, "https://testserver", [CHIYODA], actor="test"
        )
    p = api.person()
    api.next_day()
    staff = api.headers(STAFF_A)
    body = {"resident_code": p.resident_code, "kind": "resident", "request_id": "counter-pdf-1"}
    r = api.client.post(f"{BASE}/certificates/pdf", json=body, headers=staff)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    number, code = r.headers["x-certificate-number"], r.headers["x-verification-code"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(r.content)).pages)
    assert "山田" in text and "太郎" in text and number in text
    check_binding(r.content, certificate_number=number, request_id="counter-pdf-1")
    with api.container.factory() as s:
        docs = documents_for(s, api.container)
        assert docs.verify_code(number, code).verdict.value == "valid"
        assert docs.verify_pdf(r.content).verdict.value == "valid"
        assert issuance_state(s, number) == ("issued", hashlib.sha256(r.content).hexdigest())
    other = api.client.post(f"{BASE}/certificates/pdf", json=body, headers=api.headers(STAFF_B))
    assert other.status_code == 403  # staff of another 団体
    refused = api.client.post(f"{BASE}/certificates/pdf", json=body, headers=staff)
    assert refused.status_code == 409 and refused.json()["code"] == "request_replayed"
