"""本籍地利用登録申請 at the kiosk, through the pages as a browser drives them: the menu offers it to a
person whose 本籍 is elsewhere; the 本籍地 is picked from the master's lists (prefecture, then
municipality) with the 筆頭者's name; the 本籍 municipality's staff approve or reject it over its
API; only an approved application lets 戸籍 certificates through. Nothing is charged for it."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select, update

from jlis.audit import AuditLog
from jlis.auth.models import Principal, PrincipalKind
from jlis.db import transaction
from jlis.kiosk.center.tables import CenterLogRow
from jlis.kiosk.issuer.errors import RefusalReason
from jlis.kiosk.issuer.koseki import KosekiBook, NewMember
from jlis.kiosk.issuer.models import KosekiEvent
from jlis.kiosk.issuer.tables import HonsekiApplicationRow, HonsekiUseRow
from jlis.kiosk.screen.pages import APPLIED
from jlis.registry.tables import ResidentRow

from ...web.support import PASSWORD, STAFF_A, STAFF_B, world_users
from .conftest import CHIYODA, KIOSK, SHINJUKU, Holder, KioskScreenWeb, pdf_text

API = f"/api/v1/municipalities/{CHIYODA}/kiosk/honseki-applications"
NO_USE = "本籍地利用登録がないため、戸籍の証明書を交付できません。"


def _honseki_elsewhere(k: KioskScreenWeb) -> Holder:
    """A holder living in 新宿区 whose 住民票 names a 本籍 in 千代田区, where a 戸籍 lists them as
    its 筆頭者 (井上 豊)."""
    w = k.world
    holder = k.holder(SHINJUKU, family="井上", given="豊")
    r = holder.resident
    with transaction(w.factory) as s:
        # The test world's 転入 carries no 本籍: set it as the 転出証明書 would have.
        s.execute(
            update(ResidentRow)
            .where(ResidentRow.id == r.id)
            .values(honseki="東京都千代田区千代田1番地", honseki_lg_code=CHIYODA)
        )
        staff = Principal(
            id=1, username=STAFF_A, kind=PrincipalKind.MUNICIPAL_STAFF, display_name="窓口", lg_code=CHIYODA
        )
        member = NewMember(
            r.name.family, r.name.given, r.birth_date, r.sex, "井上\u3000一郎", "井上\u3000花子", "長男",
            r.resident_code, (KosekiEvent(r.birth_date, "出生", "【出生地】東京都千代田区"),),
        )  # fmt: skip
        KosekiBook(s, w.clock, CHIYODA, staff).create(
            "東京都千代田区千代田1番地", made_on=dt.date(2005, 5, 5), made_reason="婚姻", members=[member]
        )
    world_users(w.container)
    return holder


def _staff(k: KioskScreenWeb, username: str = STAFF_A) -> dict[str, str]:
    r = k.client.post("/api/v1/token", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _apply(k: KioskScreenWeb, data: dict[str, str]) -> Any:
    return k.post("/kiosk/honseki-use", data, page="/kiosk/honseki-use?pref=13", follow_redirects=False)


def _applications(k: KioskScreenWeb) -> list[HonsekiApplicationRow]:
    with k.world.factory() as s:
        return list(s.scalars(select(HonsekiApplicationRow).order_by(HonsekiApplicationRow.id)))


def _koseki_refused_before_approval(k: KioskScreenWeb) -> None:
    r = k.choose("koseki", {"pref": "13", "honseki_lg_code": CHIYODA})
    assert r.status_code == 303 and r.headers["location"] == "/kiosk/fee", r.text
    r = k.pay()
    assert r.status_code == 409 and NO_USE in r.text and "手数料はいただいていません" in r.text


APPLICATION = {"pref": "13", "honseki_lg_code": CHIYODA, "head_family_name": "井上", "head_given_name": "豊"}


def test_apply_at_the_kiosk_then_approved_then_the_koseki_is_issued(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = _honseki_elsewhere(k)
    k.sign_in(holder)
    menu = k.client.get("/kiosk/menu")
    assert 'id="honseki-use"' in menu.text and "本籍地の証明書（利用登録申請）" in menu.text
    _koseki_refused_before_approval(k)
    assert RefusalReason.NO_HONSEKI_USE.message.startswith(NO_USE)

    # the 本籍地 from lists: the prefectures first, then the municipalities of the one chosen
    page = k.client.get("/kiosk/honseki-use")
    assert page.status_code == 200 and '<select name="pref"' in page.text and "北海道" in page.text
    assert f'value="{CHIYODA}"' not in page.text
    page = k.client.get("/kiosk/honseki-use?pref=13")
    assert re.search(f'<option value="{CHIYODA}"\\s*>東京都千代田区</option>', page.text)
    assert 'name="head_family_name"' in page.text and 'name="head_given_name"' in page.text
    r = _apply(k, APPLICATION)
    assert r.status_code == 200 and APPLIED in r.text and "東京都千代田区" in r.text
    assert APPLIED == "申請を受け付けました。本籍地での確認後（数日）ご利用いただけます。"
    (app,) = _applications(k)
    assert (app.lg_code, app.resident_code, app.state, app.kiosk_id) == (
        CHIYODA,
        holder.resident.resident_code,
        "pending",
        KIOSK,
    )
    assert (app.head_family_name, app.head_given_name, app.decided_at) == ("井上", "豊", None)
    assert k.world.count(HonsekiUseRow) == 0
    # nothing charged: no issuance row was logged as charged
    assert all(row.charged == 0 for row in k.world.rows(CenterLogRow))

    # a second application while one is pending is refused clearly
    r = _apply(k, APPLICATION)
    assert r.status_code == 409 and "本籍地利用登録の申請はすでに受け付けています" in r.text
    assert len(_applications(k)) == 1
    _koseki_refused_before_approval(k)  # still pending: no 戸籍 yet

    # days later the 本籍 municipality's staff approve it
    k.world.clock.advance(days=3)
    listed = k.client.get(API, headers=_staff(k))
    assert listed.status_code == 200, listed.text
    (pending,) = listed.json()
    assert pending["state"] == "pending" and pending["head_family_name"] == "井上"
    r = k.client.post(f"{API}/{pending['id']}/approve", headers=_staff(k))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved" and r.json()["decided_by"] == STAFF_A
    assert k.client.get(API, headers=_staff(k)).json() == []
    assert k.world.count(HonsekiUseRow) == 1
    r = k.client.post(f"{API}/{pending['id']}/approve", headers=_staff(k))
    assert r.status_code == 409  # decided once

    # the resident comes back: the 戸籍 certificate of the 本籍地 is issued
    k.sign_in(holder)
    r = k.choose("koseki", {"pref": "13", "honseki_lg_code": CHIYODA})
    assert r.status_code == 303, r.text
    r = k.pay()
    assert r.status_code == 303 and r.headers["location"] == "/kiosk/printed", r.text
    pdf = k.client.get("/kiosk/document.pdf")
    assert "井上" in pdf_text(pdf.content)
    # an application after the registration is refused as already registered
    assert k.post("/kiosk/again", page="/kiosk/printed", follow_redirects=False).status_code == 303
    r = _apply(k, APPLICATION)
    assert r.status_code == 409 and "本籍地利用登録はすでに済んでいます" in r.text

    with k.world.factory() as s:
        actions = [e.action for e in AuditLog("access").entries(s) if e.action.startswith("honseki_use.")]
    assert actions == ["honseki_use.apply", "honseki_use.approve"]


def test_a_rejected_application(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = _honseki_elsewhere(k)
    k.sign_in(holder)
    assert _apply(k, {**APPLICATION, "head_given_name": "一郎"}).status_code == 200  # not the 筆頭者
    (app,) = _applications(k)
    staff = _staff(k)
    r = k.client.post(f"{API}/{app.id}/approve", headers=staff)  # the 筆頭者 does not match
    assert r.status_code == 409 and r.json()["field"] == "筆頭者"
    r = k.client.post(f"{API}/{app.id}/reject", json={"reason": ""}, headers=staff)
    assert r.status_code == 422 and r.json()["field"] == "却下の理由"
    r = k.client.post(f"{API}/{app.id}/reject", json={"reason": "x" * 201}, headers=staff)
    assert r.status_code == 422 and r.json()["field"] == "却下の理由"
    r = k.client.post(
        f"{API}/{app.id}/reject", json={"reason": "筆頭者の氏名が戸籍と一致しません"}, headers=staff
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["state"], out["reason"], out["decided_by"]) == (
        "rejected",
        "筆頭者の氏名が戸籍と一致しません",
        STAFF_A,
    )
    assert k.world.count(HonsekiUseRow) == 0
    listed = k.client.get(f"{API}?state=rejected", headers=staff).json()
    assert [a["id"] for a in listed] == [app.id]
    _koseki_refused_before_approval(k)  # rejected: still no 戸籍 at the kiosk
    # the resident may apply again, with the right 筆頭者
    assert _apply(k, APPLICATION).status_code == 200
    assert [a.state for a in _applications(k)] == ["rejected", "pending"]
    with k.world.factory() as s:
        entries = [e for e in AuditLog("access").entries(s) if e.action == "honseki_use.reject"]
    assert len(entries) == 1 and entries[0].details["reason"] == "筆頭者の氏名が戸籍と一致しません"
    assert entries[0].actor == STAFF_A


def test_staff_of_another_municipality_are_refused(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    k.sign_in(_honseki_elsewhere(k))
    assert _apply(k, APPLICATION).status_code == 200
    (app,) = _applications(k)
    other = _staff(k, STAFF_B)  # 新宿区's staff
    assert k.client.get(API, headers=other).status_code == 403
    assert k.client.post(f"{API}/{app.id}/approve", headers=other).status_code == 403
    r = k.client.post(f"{API}/{app.id}/reject", json={"reason": "不明"}, headers=other)
    assert r.status_code == 403
    assert k.client.get(API).status_code == 401
    # 新宿区's own list does not show 千代田区's applications
    r = k.client.get(f"/api/v1/municipalities/{SHINJUKU}/kiosk/honseki-applications", headers=other)
    assert r.status_code == 200 and r.json() == []
    assert _applications(k)[0].state == "pending"


def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    k.sign_in(_honseki_elsewhere(k))
    cases = [
        ({"honseki_lg_code": "999999"}, "本籍地の市区町村を一覧から選んでください"),  # unknown
        ({"honseki_lg_code": "141003"}, "本籍地の市区町村を一覧から選んでください"),  # a 政令市: its wards
        ({"honseki_lg_code": ""}, "本籍地の市区町村を一覧から選んでください"),
        ({"head_family_name": "  "}, "筆頭者の氏を入力してください"),
        ({"head_given_name": ""}, "筆頭者の名を入力してください"),
        ({"head_family_name": "井" * 51}, "筆頭者の氏が長すぎます"),
        ({"head_given_name": "豊" * 51}, "筆頭者の名が長すぎます"),
    ]
    for change, message in cases:
        r = _apply(k, {**APPLICATION, **change})
        assert r.status_code == 422 and message in r.text, (change, r.text)
    assert _applications(k) == []
    assert k.client.get("/kiosk/menu").status_code == 200  # the visit goes on


def test_the_center_refuses_bad_input_by_field(kiosk_web: KioskScreenWeb) -> None:
    """The same checks at the center and the 本籍 server, for a kiosk that skipped its own."""
    from jlis.kiosk.center.errors import CenterRefused

    k = kiosk_web
    holder = _honseki_elsewhere(k)
    session = k.world.login(holder)
    cases = [
        (("999999", "井上", "豊"), "unknown_municipality", "市区町村"),
        ((CHIYODA, "", "豊"), "invalid_request", "筆頭者の氏"),
        ((CHIYODA, "井上", "豊" * 51), "invalid_request", "筆頭者の名"),
    ]
    for args, code, field in cases:
        try:
            k.world.center.apply_honseki_use(session, *args)
        except CenterRefused as exc:
            assert (exc.code, exc.context["field"]) == (code, field)
        else:
            raise AssertionError(f"{args} accepted")
    assert _applications(k) == []
    applied = k.world.center.apply_honseki_use(session, CHIYODA, "井上", "豊")
    assert (applied.lg_code, applied.municipality) == (CHIYODA, "東京都千代田区")


def test_no_entry_for_a_person_whose_honseki_is_here(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    k.sign_in(k.holder(CHIYODA))  # no 本籍 elsewhere
    assert 'id="honseki-use"' not in k.client.get("/kiosk/menu").text
    r = k.client.get("/kiosk/honseki-use", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/kiosk/menu"
    r = _apply_without_entry(k)
    assert r.status_code == 303 and r.headers["location"] == "/kiosk/menu"
    assert _applications(k) == []


def _apply_without_entry(k: KioskScreenWeb) -> Any:
    return k.post("/kiosk/honseki-use", APPLICATION, page="/kiosk/menu", follow_redirects=False)
