"""The counter's card pages: list, card, 交付通知書 (send and print), delivery with PINs, lifting a
suspension and re-issue; CSRF on every form, refused forms shown again without the PINs, and
staff confined to their own municipality."""

from __future__ import annotations

import html
from typing import Any

import httpx

from jlis.card.hotline import Caller, SuspensionReason
from jlis.card.lifecycle import CardState, VoidReason

from ..web.support import STAFF_A, STAFF_B
from .conftest import AUTH_PIN, CHIYODA, JUKI_PIN, SIGN_PASSWORD, TEXT_PIN, CardWeb

PAGES = f"/counter/{CHIYODA}/cards"


def submit(w: CardWeb, path: str, data: dict[str, str], *, csrf_from: str | None = None) -> httpx.Response:
    form = dict(data)
    form["csrf_token"] = w.page_csrf(csrf_from or path)
    return w.client.post(path, data=form, follow_redirects=False)


def text(r: httpx.Response) -> str:
    return html.unescape(r.text)


def shipped_card(w: CardWeb) -> tuple[Any, str]:
    r = w.person()
    w.apply(r)
    (card,) = w.produce()
    w.ship(card.id)
    return r, card.id


DELIVERY = {
    "doc_notice": "on",
    "doc_passport": "on",
    "sign_password": SIGN_PASSWORD,
    "auth_pin": AUTH_PIN,
    "juki_pin": JUKI_PIN,
    "text_pin": TEXT_PIN,
}


def test_notice_delivery_and_the_card_page(card_web: CardWeb) -> None:
    card_web.login(STAFF_A)
    _r, card_id = shipped_card(card_web)
    listing = card_web.client.get(PAGES)
    assert listing.status_code == 200 and card_id in listing.text and "山田\u3000太郎" in listing.text
    sent = submit(card_web, f"{PAGES}/{card_id}/notice", {}, csrf_from=f"{PAGES}/{card_id}")
    assert sent.status_code == 303 and sent.headers["location"] == f"{PAGES}/{card_id}/notice"
    notice = card_web.client.get(sent.headers["location"])
    assert notice.status_code == 200
    assert "交付通知書" in notice.text and "受取期限" in notice.text and "2027年2月24日" in notice.text
    delivered = submit(card_web, f"{PAGES}/{card_id}/deliver", DELIVERY)
    assert delivered.status_code == 303 and delivered.headers["location"] == f"{PAGES}/{card_id}?done=deliver"
    page = card_web.client.get(delivered.headers["location"])
    body = text(page)
    assert "カードを交付しました" in body and "署名用" in body and "利用者証明用" in body and "有効" in body
    assert card_web.card(card_id).state is CardState.ACTIVE


def test_refused_delivery_comes_back_without_the_pins(card_web: CardWeb) -> None:
    card_web.login(STAFF_A)
    _r, card_id = shipped_card(card_web)
    card_web.notify(card_id)
    bad = submit(
        card_web, f"{PAGES}/{card_id}/deliver", {**DELIVERY, "auth_pin": "12", "representative": "代理 太郎"}
    )
    assert bad.status_code == 422
    body = text(bad)
    assert "利用者証明用電子証明書の暗証番号" in body and "4 digits" in body
    assert SIGN_PASSWORD not in body and JUKI_PIN not in body  # PINs are never echoed
    assert 'value="代理 太郎"' in body and 'name="doc_passport" checked' in body
    no_id = submit(card_web, f"{PAGES}/{card_id}/deliver", {**DELIVERY, "doc_passport": ""})
    assert no_id.status_code == 409 and "本人確認書類" in text(no_id)
    assert card_web.card(card_id).state is CardState.NOTIFIED


def test_forms_need_the_csrf_token(card_web: CardWeb) -> None:
    card_web.login(STAFF_A)
    _r, card_id = shipped_card(card_web)
    card_web.notify(card_id)
    r = card_web.client.post(f"{PAGES}/{card_id}/deliver", data=DELIVERY, follow_redirects=False)
    assert r.status_code == 403
    r = card_web.client.post(
        f"{PAGES}/{card_id}/deliver", data={**DELIVERY, "csrf_token": "forged"}, follow_redirects=False
    )
    assert r.status_code == 403
    assert card_web.card(card_id).state is CardState.NOTIFIED


def test_lift_and_reissue_pages(card_web: CardWeb) -> None:
    card_web.login(STAFF_A)
    r = card_web.person()
    card_id = card_web.active_card(r)
    with card_web.service() as svc:
        svc.hotline.suspend(Caller(CHIYODA, "山田", "太郎", r.birth_date), SuspensionReason.LOST)
    refused = submit(card_web, f"{PAGES}/{card_id}/lift", {"doc_passport": "on"})
    assert refused.status_code == 409 and "my_number_card" in text(refused)
    lifted = submit(card_web, f"{PAGES}/{card_id}/lift", {"doc_my_number_card": "on"})
    assert lifted.status_code == 303 and "done=lift" in lifted.headers["location"]
    assert "一時停止を解除しました" in text(card_web.client.get(lifted.headers["location"]))
    form = card_web.client.get(f"{PAGES}/{card_id}/reissue")
    assert form.status_code == 200 and "1,000 円" in form.text
    missing = submit(
        card_web,
        f"{PAGES}/{card_id}/reissue",
        {"reason": "lost", "doc_passport": "on", "lost_outside_home": "on"},
    )
    assert missing.status_code == 422 and "遺失届の受理番号" in text(missing)
    done = submit(
        card_web,
        f"{PAGES}/{card_id}/reissue",
        {"reason": "lost", "doc_passport": "on", "lost_outside_home": "on", "police_report_no": "R-1"},
    )
    assert done.status_code == 303
    page = text(card_web.client.get(done.headers["location"]))
    assert "再交付申請を受け付けました" in page and "手数料 1000 円" in page
    assert card_web.card(card_id).void_reason is VoidReason.LOST_REISSUED


def test_staff_see_their_own_municipality_only(card_web: CardWeb) -> None:
    _r, card_id = shipped_card(card_web)
    anonymous = card_web.client.get(f"{PAGES}/{card_id}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    card_web.login(STAFF_B)
    assert card_web.client.get(PAGES).status_code == 403
    assert card_web.client.get(f"/counter/131041/cards/{card_id}").status_code == 403
    assert card_web.client.get("/counter/131041/cards").status_code == 200
