"""The portal's pages: sign-in through the simulated user's software (a demo card file or an
uploaded one, and the PIN), then each view and form, with the portal's own session and CSRF."""

from __future__ import annotations

import datetime as dt
import re

from .conftest import CARD_PASSPHRASE, SHINJUKU, SIGN_PASSWORD, TAX, Holder, PortalWeb

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def challenge_of(html: str) -> str:
    m = re.search(r'name="challenge" value="([^"]+)"', html)
    assert m, "no challenge on the sign-in page"
    return m.group(1).replace("&#10;", "\n").replace("&#xa;", "\n")


def csrf(w: PortalWeb, path: str) -> str:
    r = w.client.get(path)
    assert r.status_code == 200, r.text
    m = _CSRF.search(r.text)
    assert m
    return m.group(1)


def sign_in(w: PortalWeb, holder: Holder, pin: str = "1234", *, upload: bool = False) -> object:
    path = w.export(holder, w.cards_dir)
    page = w.client.get("/portal/login")
    assert page.status_code == 200
    data = {"challenge": challenge_of(page.text), "pin": pin, "passphrase": CARD_PASSPHRASE}
    if upload:
        data["source"] = "upload"
        files = {"card_file": ("mine.jcard", path.read_bytes(), "application/json")}
        return w.client.post("/portal/login", data=data, files=files, follow_redirects=False)
    data |= {"source": "demo", "card": holder.card_id}
    return w.client.post("/portal/login", data=data, files={"x": ("", b"")}, follow_redirects=False)


def test_sign_in_with_a_demo_card_and_see_the_history(portal_web: PortalWeb) -> None:
    w = portal_web
    holder = w.holder()
    w.replica(holder, "local_tax", TAX)
    r = w.client.get("/portal", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/portal/login"
    page = w.client.get("/portal/login")
    assert holder.card_id not in page.text  # not exported yet
    r = sign_in(w, holder)
    assert r.status_code == 303 and r.headers["location"] == "/portal", getattr(r, "text", "")
    assert "カードでログイン中" in w.client.get("/portal").text
    answer = w.agency_query(holder)
    history = w.client.get("/portal/history").text
    assert f'data-exchange="{answer.exchange_no}"' in history and "日本年金機構" in history
    identity = w.client.get("/portal/identity").text
    assert holder.resident.name.family in identity
    assert holder.resident.resident_code not in identity and holder.resident.my_number not in identity


def test_a_wrong_pin_says_how_many_tries_are_left(portal_web: PortalWeb) -> None:
    w = portal_web
    holder = w.holder()
    r = sign_in(w, holder, pin="0000")
    assert r.status_code == 422 and "残り 2 回" in r.text  # type: ignore[attr-defined]
    r = sign_in(w, holder, pin="12a4")
    assert r.status_code == 422  # type: ignore[attr-defined]
    assert w.client.get("/portal", follow_redirects=False).status_code == 303


def test_sign_in_with_an_uploaded_card_file(portal_web: PortalWeb) -> None:
    w = portal_web
    holder = w.holder()
    r = sign_in(w, holder, upload=True)
    assert r.status_code == 303  # type: ignore[attr-defined]
    page = w.client.get("/portal/login")
    bad = w.client.post(
        "/portal/login",
        data={
            "challenge": challenge_of(page.text),
            "pin": "1234",
            "passphrase": "wrong-pass",
            "source": "upload",
        },
        files={"card_file": ("x.jcard", w.export(holder, w.cards_dir).read_bytes(), "application/json")},
    )
    assert bad.status_code == 422 and "passphrase" in bad.text


def test_self_information_notices_and_logout(portal_web: PortalWeb) -> None:
    w = portal_web
    holder = w.holder()
    w.replica(holder, "local_tax", TAX)
    sign_in(w, holder)
    token = csrf(w, "/portal/self")
    r = w.client.post("/portal/self", data={"csrf_token": token, "category": "local_tax"})
    assert r.status_code == 200 and "合計所得金額" in r.text and "3,200,000" in r.text
    with w.factory() as s, s.begin():
        notice = w.portal(s).post_notice(
            w.member("nenkin"), w.code_of("nenkin", holder), "確認のお願い", "本文"
        )
    assert 'id="unread">1<' in w.client.get("/portal").text
    w.client.post(f"/portal/notices/{notice.id}/read", data={"csrf_token": token})
    assert 'id="unread"' not in w.client.get("/portal").text
    assert w.client.post("/portal/self", data={"category": "local_tax"}).status_code == 403
    w.client.post("/portal/logout", data={"csrf_token": token})
    assert w.client.get("/portal/history", follow_redirects=False).status_code == 303


def test_move_out_form(portal_web: PortalWeb) -> None:
    w = portal_web
    holder = w.holder()
    sign_in(w, holder)
    token = csrf(w, "/portal/move-out")
    form = {
        "csrf_token": token,
        "destination": "東京都新宿区西新宿2丁目8番1号",
        "destination_lg_code": SHINJUKU,
        "planned_date": (w.clock.today() + dt.timedelta(days=40)).isoformat(),
    }
    r = w.client.post("/portal/move-out", data=form)
    assert r.status_code == 422 and "30日以内" in r.text
    r = w.client.post("/portal/move-out", data=form | {"planned_date": w.clock.today().isoformat()})
    assert r.status_code == 200 and "転出届を提出しました" in r.text and "届出済" in r.text


def test_consent_form_signs_with_the_card(portal_web: PortalWeb) -> None:
    w = portal_web
    holder = w.holder()
    w.verifier()
    sign_in(w, holder)
    token = csrf(w, "/portal/consents")
    form = {
        "csrf_token": token,
        "verifier_id": "bank-a",
        "purpose": "口座の住所確認",
        "days": "90",
        "source": "demo",
        "card": holder.card_id,
        "passphrase": CARD_PASSPHRASE,
        "password": "WRONG1",
    }
    r = w.client.post("/portal/consents", data=form, files={"x": ("", b"")})
    assert r.status_code == 422 and "残り" in r.text
    r = w.client.post("/portal/consents", data=form | {"password": SIGN_PASSWORD}, files={"x": ("", b"")})
    assert r.status_code == 200 and "同意書に署名し" in r.text and "口座の住所確認" in r.text


def test_the_counter_decides_online_move_outs(portal_web: PortalWeb) -> None:
    from ...web.support import STAFF_A, STAFF_B

    w = portal_web
    a, b = w.holder(), w.holder()
    _t, user_a = w.sign_in(a)
    _t, user_b = w.sign_in(b)
    with w.factory() as s, s.begin():
        for user in (user_a, user_b):
            w.portal(s).file_move_out(
                user,
                destination="東京都新宿区西新宿1番1号",
                destination_lg_code=SHINJUKU,
                planned_date=w.clock.today(),
            )
    w.web.login(STAFF_B)
    assert w.client.get("/counter/131016/portal-move-outs").status_code == 403
    w.web.login(STAFF_A)
    page = w.client.get("/counter/131016/portal-move-outs")
    assert page.status_code == 200 and page.text.count("data-request=") == 2
    token = csrf(w, "/counter/131016/portal-move-outs")
    ids = re.findall(r'data-request="(\d+)"', page.text)
    r = w.client.post(f"/counter/131016/portal-move-outs/{ids[0]}/accept", data={"csrf_token": token})
    assert r.status_code == 200 and "TS" in r.text and r.text.count("data-request=") == 1
    r = w.client.post(
        f"/counter/131016/portal-move-outs/{ids[1]}/reject", data={"csrf_token": token, "reason": ""}
    )
    assert r.status_code == 422 and "項目: reason" in r.text
    r = w.client.post(
        f"/counter/131016/portal-move-outs/{ids[1]}/reject",
        data={"csrf_token": token, "reason": "転出先不明"},
    )
    assert "審査待ちの転出届はありません" in r.text and "転出先不明" in r.text
