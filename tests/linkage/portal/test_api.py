"""The portal's HTTP API: card login, the holder's views, members' notices, the municipality's
decision on an online 転出届, and a verifier collecting consents."""

from __future__ import annotations

import base64
import datetime as dt

from jlis.jpki.rp.login import Challenge, respond

from ...web.support import STAFF_A, STAFF_B, assert_error
from .conftest import MEMBER_PASSWORD, SHINJUKU, SIGN_PASSWORD, TAX, Holder, PortalWeb

LOGIN = "/api/v1/portal/login"


def api_login(w: PortalWeb, holder: Holder) -> dict[str, str]:
    challenge = w.client.post(f"{LOGIN}/challenge").json()["challenge"]
    answer = respond(holder.reader, Challenge.from_text(challenge), "1234").to_dict()
    r = w.client.post(f"{LOGIN}/verify", json={"challenge": challenge, **answer})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["certificate"].startswith("g1:")
    return {"Authorization": f"Bearer {body['token']}"}


def test_card_login_and_the_exchange_history(portal_web: PortalWeb) -> None:
    w = portal_web
    holder = w.holder()
    w.replica(holder, "local_tax", TAX)
    headers = api_login(w, holder)
    assert w.client.get("/api/v1/portal/history", headers=headers).json() == []
    answer = w.agency_query(holder)
    history = w.client.get("/api/v1/portal/history", headers=headers).json()
    assert [(h["exchange_no"], h["requester"], h["outcome"]) for h in history] == [
        (answer.exchange_no, "日本年金機構", "provided")
    ]
    assert "合計所得金額" in history[0]["items"]
    # No token, a staff token, a made-up token: no portal session.
    assert_error(w.client.get("/api/v1/portal/history"), 401, "Authorization")
    assert_error(w.client.get("/api/v1/portal/history", headers=w.headers(STAFF_A)), 401, "Authorization")
    w.client.post("/api/v1/portal/logout", headers=headers)
    assert_error(w.client.get("/api/v1/portal/history", headers=headers), 401, "Authorization")


def test_a_login_answer_works_once_and_only_for_its_challenge(portal_web: PortalWeb) -> None:
    w = portal_web
    holder = w.holder()
    challenge = w.client.post(f"{LOGIN}/challenge").json()["challenge"]
    answer = respond(holder.reader, Challenge.from_text(challenge), "1234").to_dict()
    assert w.client.post(f"{LOGIN}/verify", json={"challenge": challenge, **answer}).status_code == 200
    again = w.client.post(f"{LOGIN}/verify", json={"challenge": challenge, **answer})
    assert_error(again, 409, "challenge.nonce")  # on record in the database
    other = w.client.post(f"{LOGIN}/challenge").json()["challenge"]
    assert_error(
        w.client.post(f"{LOGIN}/verify", json={"challenge": other, **answer}), 422, "response.signature"
    )


def test_a_member_posts_a_notice_by_its_own_code(portal_web: PortalWeb) -> None:
    w = portal_web
    holder = w.holder()
    headers = api_login(w, holder)
    nenkin = w.headers("linkage-nenkin", MEMBER_PASSWORD)
    body = {"code": w.code_of("nenkin", holder), "title": "年金額のお知らせ", "body": "改定しました"}
    r = w.client.post("/api/v1/linkage/notices", json=body, headers=nenkin)
    assert r.status_code == 201, r.text
    notices = w.client.get("/api/v1/portal/notices", headers=headers).json()
    assert [(n["sender_name"], n["title"], n["read"]) for n in notices] == [
        ("日本年金機構", "年金額のお知らせ", False)
    ]
    # Another member's code, and a caller that is no member.
    bad = {**body, "code": w.code_of("lg-131016", holder)}
    assert_error(w.client.post("/api/v1/linkage/notices", json=bad, headers=nenkin), 404, "code")
    assert_error(
        w.client.post("/api/v1/linkage/notices", json=body, headers=w.headers(STAFF_A)), 403, "principal"
    )


def test_the_municipality_accepts_an_online_move_out(portal_web: PortalWeb) -> None:
    w = portal_web
    holder = w.holder()
    _token, user = w.sign_in(holder)
    with w.factory() as s, s.begin():
        filed = w.portal(s).file_move_out(
            user,
            destination="東京都新宿区西新宿2丁目8番1号",
            destination_lg_code=SHINJUKU,
            planned_date=w.clock.today() + dt.timedelta(days=3),
        )
    base = "/api/v1/municipalities/131016/portal-move-outs"
    listed = w.client.get(base, headers=w.headers(STAFF_A)).json()
    assert [r["request_no"] for r in listed] == [filed.request_no]
    assert_error(w.client.get(base, headers=w.headers(STAFF_B)), 403, "地方公共団体コード")
    r = w.client.post(f"{base}/{filed.id}/accept", headers=w.headers(STAFF_A))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted" and r.json()["certificate_no"].startswith("TS")
    assert_error(
        w.client.post(f"{base}/{filed.id}/reject", json={"reason": "x"}, headers=w.headers(STAFF_A)),
        409,
        "転出届",
    )
    assert w.client.get(base, headers=w.headers(STAFF_A)).json() == []
    assert len(w.client.get(f"{base}?status=all", headers=w.headers(STAFF_A)).json()) == 1
    assert_error(w.client.get(f"{base}?status=odd", headers=w.headers(STAFF_A)), 422, "status")


def test_a_verifier_collects_its_consents(portal_web: PortalWeb) -> None:
    from jlis.linkage.portal import client

    w = portal_web
    holder = w.holder()
    verifier = w.verifier()
    _token, user = w.sign_in(holder)
    with w.factory() as s:
        terms = w.portal(s).consent_request(verifier.id, "住所変更の確認")
    document = client.sign_consent(holder.reader, terms, SIGN_PASSWORD, clock=w.clock)
    with w.factory() as s, s.begin():
        w.portal(s).record_consent(user, document)
    headers = w.headers("verifier-bank-a", MEMBER_PASSWORD)
    (consent,) = w.client.get("/api/v1/portal/verifier/consents", headers=headers).json()
    assert base64.b64decode(consent["consent"]) == document
    # The verifier sends it on to J-LIS with the signing certificate it holds.
    held = base64.b64encode(holder.reader.read_certificate("sign", pin=SIGN_PASSWORD)).decode()
    assert consent["purpose"] == "住所変更の確認"
    r = w.client.post(
        "/api/v1/jpki/basic4", json={"certificate": held, "consent": consent["consent"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == f"{holder.resident.name.family}\u3000{holder.resident.name.given}"
    assert_error(
        w.client.get("/api/v1/portal/verifier/consents", headers=w.headers(STAFF_A)), 403, "principal"
    )


def test_identity_provisions_and_self_information(portal_web: PortalWeb) -> None:
    w = portal_web
    holder = w.holder()
    w.replica(holder, "local_tax", TAX)
    headers = api_login(w, holder)
    identity = w.client.get("/api/v1/portal/identity", headers=headers).json()
    assert identity["name"].startswith(holder.resident.name.family) and identity["lg_code"] == "131016"
    assert holder.resident.resident_code not in str(identity)
    assert w.client.get("/api/v1/portal/provisions", headers=headers).json() == []
    r = w.client.post("/api/v1/portal/self-information/local_tax", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "provided" and body["data"]["total_income"] == 3_200_000
    assert {"label": "合計所得金額", "value": "3,200,000"} in body["shown"]
    assert_error(w.client.post("/api/v1/portal/self-information/nope", headers=headers), 422, "category")
    assert_error(w.client.post("/api/v1/portal/self-information/local_tax"), 401, "Authorization")


def test_file_a_move_out_and_read_a_notice_through_the_api(portal_web: PortalWeb) -> None:
    w = portal_web
    holder, other = w.holder(), w.holder()
    headers, other_headers = api_login(w, holder), api_login(w, other)
    body = {
        "destination": "東京都新宿区西新宿2丁目8番1号",
        "destination_lg_code": SHINJUKU,
        "planned_date": (w.clock.today() + dt.timedelta(days=2)).isoformat(),
    }
    r = w.client.post("/api/v1/portal/move-outs", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["lg_code"] == "131016" and r.json()["status"] == "submitted"
    assert_error(w.client.post("/api/v1/portal/move-outs", json=body, headers=headers), 409, "転出届")
    bad = body | {"planned_date": "2026-02-30"}
    assert_error(
        w.client.post("/api/v1/portal/move-outs", json=bad, headers=other_headers), 422, "転出予定日"
    )
    accepted = w.client.post(
        f"/api/v1/municipalities/131016/portal-move-outs/{r.json()['id']}/accept", headers=w.headers(STAFF_A)
    )
    assert accepted.status_code == 200, accepted.text
    (notice,) = w.client.get("/api/v1/portal/notices", headers=headers).json()
    assert notice["title"] == "転出届を受理しました"
    assert_error(
        w.client.post(f"/api/v1/portal/notices/{notice['id']}/read", headers=other_headers), 404, "お知らせ"
    )
    assert w.client.post(f"/api/v1/portal/notices/{notice['id']}/read", headers=headers).json()["read_at"]
    assert w.client.get("/api/v1/portal/notices", headers=headers).json()[0]["read"] is True
