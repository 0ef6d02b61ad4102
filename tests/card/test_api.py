"""The card API: the whole flow over HTTP (J-LIS application, batch, shipment, counter notice and
delivery, hotline, lift), refusals in the house JSON format, and the guards: no token 401, another
municipality's staff or another principal kind 403."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from jlis.card.lifecycle import CardState

from ..web.support import OPERATOR, STAFF_A, STAFF_B, assert_error
from .conftest import AUTH_PIN, CHIYODA, JUKI_PIN, SIGN_PASSWORD, TEXT_PIN, CardWeb

COUNTER = f"/api/v1/municipalities/{CHIYODA}/cards"
JLIS = "/api/v1/jlis/cards"
HOTLINE = "/api/v1/card-hotline/suspensions"


def post(w: CardWeb, path: str, body: dict[str, Any] | None = None, user: str = STAFF_A) -> Any:
    return w.client.post(path, json=body or {}, headers=w.headers(user))


def get(w: CardWeb, path: str, user: str = STAFF_A) -> Any:
    return w.client.get(path, headers=w.headers(user))


def application_body(w: CardWeb, r: Any, **kw: Any) -> dict[str, Any]:
    return {
        "lg_code": r.lg_code,
        "my_number": r.my_number,
        "family_name": r.name.family,
        "given_name": r.name.given,
        "birth_date": r.birth_date.isoformat(),
        **kw,
    }


def card_at_counter(w: CardWeb) -> tuple[Any, str]:
    r = w.person()
    resp = post(w, f"{JLIS}/applications", application_body(w, r, channel="online"), OPERATOR)
    assert resp.status_code == 201, resp.text
    batch = post(w, f"{JLIS}/batches", {"limit": 10}, OPERATOR)
    assert batch.status_code == 201, batch.text
    (card,) = batch.json()["cards"]
    shipped = post(w, f"{JLIS}/batches/{batch.json()['batch_id']}/shipment", user=OPERATOR)
    assert shipped.status_code == 200 and shipped.json()[0]["state"] == "shipped"
    notice = post(w, f"{COUNTER}/{card['id']}/notice")
    assert notice.status_code == 200 and notice.json()["name"] == "山田\u3000太郎"
    return r, card["id"]


DELIVERY = {
    "documents": ["notice", "driver_licence"],
    "sign_password": SIGN_PASSWORD,
    "auth_pin": AUTH_PIN,
    "juki_pin": JUKI_PIN,
    "text_pin": TEXT_PIN,
}


def test_whole_flow_over_http(card_web: CardWeb) -> None:
    _r, card_id = card_at_counter(card_web)
    delivered = post(card_web, f"{COUNTER}/{card_id}/delivery", DELIVERY)
    assert delivered.status_code == 200, delivered.text
    body = delivered.json()
    assert body["card"]["state"] == "active" and body["sign_serial"] and body["auth_serial"]
    suspended = post(
        card_web,
        HOTLINE,
        {
            "lg_code": CHIYODA,
            "family_name": "山田",
            "given_name": "太郎",
            "birth_date": "1980-04-01",
            "reason": "lost",
        },
        OPERATOR,
    )
    assert suspended.status_code == 201 and suspended.json()["state"] == "suspended"
    lifted = post(card_web, f"{COUNTER}/{card_id}/lift", {"documents": ["my_number_card"]})
    assert lifted.status_code == 200 and lifted.json()["state"] == "active"
    events = get(card_web, f"{COUNTER}/{card_id}/events").json()
    assert [e["event"] for e in events] == ["manufacture", "ship", "notify", "deliver", "suspend", "lift"]
    listed = get(card_web, f"{COUNTER}?state=active").json()
    assert [c["id"] for c in listed] == [card_id]
    reissued = post(card_web, f"{COUNTER}/{card_id}/reissue", {"reason": "lost", "documents": ["passport"]})
    assert reissued.status_code == 201 and reissued.json()["fee_yen"] == 1000
    assert get(card_web, f"{COUNTER}/{card_id}").json()["void_reason"] == "lost_reissued"


def test_refusals_name_the_field_and_rule(card_web: CardWeb) -> None:
    _r, card_id = card_at_counter(card_web)
    assert_error(
        post(card_web, f"{COUNTER}/{card_id}/delivery", {**DELIVERY, "auth_pin": "12"}),
        422,
        "利用者証明用電子証明書の暗証番号",
        "4 digits",
    )
    assert_error(
        post(card_web, f"{COUNTER}/{card_id}/delivery", {**DELIVERY, "documents": ["passport"]}),
        409,
        "本人確認書類",
        "notice",
    )
    assert_error(
        post(card_web, f"{COUNTER}/{card_id}/lift", {"documents": ["my_number_card"]}), 409, "カードの状態"
    )
    assert_error(get(card_web, f"{COUNTER}?state=lost"), 422, "state")
    assert_error(get(card_web, f"{COUNTER}/NOPE"), 404, "カード")
    wrong_name = application_body(card_web, card_web.person(), family_name="田中")
    counter_form = {k: v for k, v in wrong_name.items() if k != "lg_code"}  # the path names it
    assert_error(post(card_web, f"{COUNTER}/applications", counter_form), 409, "氏", "住民票")
    assert_error(
        post(card_web, f"{JLIS}/applications", {**wrong_name, "channel": "counter"}, OPERATOR),
        422,
        "申請方法",
    )
    assert get(card_web, f"{COUNTER}/{card_id}").json()["state"] == CardState.NOTIFIED.value


def test_wrong_pin_is_counted_over_http(card_web: CardWeb) -> None:
    _r, card_id = card_at_counter(card_web)
    post(card_web, f"{COUNTER}/{card_id}/delivery", DELIVERY)
    first = post(card_web, f"{JLIS}/{card_id}/phone", {"sign_password": "WRONG1"}, OPERATOR)
    second = post(card_web, f"{JLIS}/{card_id}/phone", {"sign_password": "WRONG1"}, OPERATOR)
    assert first.status_code == second.status_code == 403
    assert (first.json()["tries_left"], second.json()["tries_left"]) == (4, 3)
    ok = post(
        card_web, f"{JLIS}/{card_id}/phone", {"sign_password": SIGN_PASSWORD, "device": "Pixel"}, OPERATOR
    )
    assert ok.status_code == 201 and ok.json()["chip_id"] == f"{card_id}-phone"


def test_express_and_expiry_for_operators(card_web: CardWeb) -> None:
    r = card_web.person()
    day = card_web.clock.today().isoformat()
    body = application_body(card_web, r, express="released", express_event_date=day)
    del body["lg_code"]
    created = post(card_web, f"{COUNTER}/applications", body)
    assert created.status_code == 201, created.text
    assert created.json()["target_date"] == (card_web.clock.today() + dt.timedelta(days=7)).isoformat()
    report = get(card_web, f"{JLIS}/express?open_only=true", OPERATOR).json()
    assert [(i["status"], i["case"]) for i in report] == [("on_track", "released")]
    assert post(card_web, f"{JLIS}/expiry-run", user=OPERATOR).json() == {"voided": []}
    app_id = created.json()["id"]
    assert get(card_web, f"{JLIS}/applications/{app_id}", OPERATOR).json()["status"] == "accepted"
    assert_error(get(card_web, f"{JLIS}/applications/123", OPERATOR), 422, "申請書ID")


@pytest.mark.parametrize(
    ("method", "path", "user", "status"),
    [
        ("get", COUNTER, None, 401),
        ("get", COUNTER, STAFF_B, 403),
        ("get", COUNTER, OPERATOR, 403),
        ("post", f"{COUNTER}/applications", STAFF_B, 403),
        ("post", f"{COUNTER}/X/delivery", None, 401),
        ("post", HOTLINE, STAFF_A, 403),
        ("post", HOTLINE, None, 401),
        ("post", f"{JLIS}/batches", STAFF_A, 403),
        ("get", f"{JLIS}/express", None, 401),
        ("post", f"{JLIS}/applications", "agency-nenkin", 403),
    ],
)
def test_guards(card_web: CardWeb, method: str, path: str, user: str | None, status: int) -> None:
    headers = card_web.headers(user) if user else {}
    resp = getattr(card_web.client, method)(
        path, headers=headers, **({"json": {}} if method == "post" else {})
    )
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] in ("unauthenticated", "forbidden")


def test_other_municipalitys_card_is_refused(card_web: CardWeb) -> None:
    _r, card_id = card_at_counter(card_web)
    shinjuku = "/api/v1/municipalities/131041/cards"
    assert_error(get(card_web, f"{shinjuku}/{card_id}", STAFF_B), 403, "地方公共団体コード")
    assert_error(
        post(card_web, f"{shinjuku}/{card_id}/delivery", DELIVERY, STAFF_B), 403, "地方公共団体コード"
    )
    assert get(card_web, f"{COUNTER}/{card_id}").json()["state"] == "notified"


def test_openapi_lists_the_card_routes(card_web: CardWeb) -> None:
    paths = card_web.client.get("/openapi.json").json()["paths"]
    assert f"{'/api/v1/municipalities/{lg_code}/cards'}/{{card_id}}/delivery" in paths
    assert "/api/v1/card-hotline/suspensions" in paths and "/api/v1/jlis/cards/batches" in paths
