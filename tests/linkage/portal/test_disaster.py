"""罹災証明書 online through マイナポータル: a holder signed in with the card (the real sign-in page:
demo card file, PIN, the portal's challenge) sees the disasters of their municipality, applies, and
follows the application to 交付決定 and the kiosk. The municipality's side (declaration, victim
register, survey, decision) is jlis.bcl's DisasterService, driven here as its staff would."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from jlis.audit.tables import AuditEntryRow
from jlis.auth.models import Principal, PrincipalKind
from jlis.bcl.disasters import DisasterService
from jlis.bcl.models import AreaPart
from jlis.bcl.tables import DamageApplicationRow
from jlis.db import transaction
from jlis.jpki.revocation import Revocations
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.policy import PolicyBook, load_policies
from jlis.linkage.portal import disaster as portal_disaster
from jlis.linkage.portal.disaster import PortalDisasterDesk
from jlis.registry import Placement

from .conftest import CHIYODA, SHINJUKU, Holder, PortalWeb
from .test_pages import sign_in as page_sign_in

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def staff(lg_code: str = CHIYODA) -> Principal:
    return Principal(
        id=1,
        username=f"staff-{lg_code}",
        kind=PrincipalKind.MUNICIPAL_STAFF,
        display_name="被災者支援担当",
        lg_code=lg_code,
    )


@pytest.fixture
def web(portal_web: PortalWeb) -> Iterator[PortalWeb]:
    """The portal with the 罹災証明書 page and API mounted, as the lead wires them."""
    from jlis.web.deps import check_route_guards

    app = portal_web.client.app
    app.include_router(portal_disaster.router)
    app.include_router(portal_disaster.api_router)
    check_route_guards(app.routes)
    yield portal_web


def declare(w: PortalWeb, lg_code: str = CHIYODA, *, build: bool = True, days_ago: int = 2) -> str:
    with transaction(w.factory) as s:
        svc = DisasterService(s, w.clock, w.container.geography, staff(lg_code))
        view = svc.declare(
            name="令和8年11月豪雨",
            cause="heavy_rain",
            occurred_on=w.clock.today() - dt.timedelta(days=days_ago),
            area=[AreaPart(lg_code)],
        )
        if build:
            svc.build_victim_register(view.id, lg_code)
    return view.id


def decide(w: PortalWeb, application: str, *, approve: bool, ratio: float = 45, reason: str = "") -> None:
    with transaction(w.factory) as s:
        svc = DisasterService(s, w.clock, w.container.geography, staff())
        if approve:
            row = s.get(DamageApplicationRow, application)
            assert row is not None
            svc.record_survey(row.dwelling_id, damage_ratio=ratio, surveyed_on=w.clock.today())
        svc.decide(application, approve=approve, reason=reason or None)


def entry(html: str, disaster_id: str) -> str:
    """The card of one disaster on the page."""
    m = re.search(
        rf'<div class="card disaster" data-disaster="{disaster_id}".*?(?=<div class="card disaster"|$)',
        html,
        re.S,
    )
    assert m, f"{disaster_id} is not on the page"
    return m.group(0)


def state(html: str, disaster_id: str) -> str:
    m = re.search(r'data-state="([a-z_]+)"', entry(html, disaster_id))
    assert m
    return m.group(1)


def apply(w: PortalWeb, disaster_id: str, **extra: str) -> Any:
    page = w.client.get("/portal/disaster")
    assert page.status_code == 200, page.text
    m = _CSRF.search(page.text)
    assert m
    data = {"csrf_token": m.group(1), "disaster_id": disaster_id, **extra}
    return w.client.post("/portal/disaster/apply", data=data, follow_redirects=False)


def sign_in(w: PortalWeb, holder: Holder) -> Any:
    """The real sign-in page: the demo card file, the PIN, the portal's challenge."""
    return page_sign_in(w, holder)


def signed_in(w: PortalWeb, holder: Holder) -> Holder:
    r = sign_in(w, holder)
    assert r.status_code == 303, r.text
    return holder


def applications(w: PortalWeb) -> list[DamageApplicationRow]:
    with w.factory() as s:
        return list(s.scalars(select(DamageApplicationRow).order_by(DamageApplicationRow.id)))


# ----------------------------------------------------------------------------------------- the flow


def test_apply_online_and_see_it_approved_for_the_kiosk(web: PortalWeb) -> None:
    w = web
    holder = w.holder()
    disaster_id = declare(w)
    signed_in(w, holder)
    page = w.client.get("/portal/disaster")
    assert page.status_code == 200
    assert "令和8年11月豪雨" in page.text and state(page.text, disaster_id) == "can_apply"
    assert "罹災証明書の交付を申請する" in entry(page.text, disaster_id)
    assert 'href="/portal/disaster"' in w.client.get("/portal").text  # the nav link

    r = apply(w, disaster_id)
    assert r.status_code == 303, r.text
    (row,) = applications(w)
    assert r.headers["location"] == f"/portal/disaster?applied={row.id}"
    assert row.resident_code == holder.resident.resident_code and row.channel == "online"
    assert row.applied_by.startswith("resident:")

    page = w.client.get(f"/portal/disaster?applied={row.id}")
    assert f'受付番号 <span class="mono">{row.id}</span>' in page.text
    card = entry(page.text, disaster_id)
    assert state(page.text, disaster_id) == "received" and f'data-application="{row.id}"' in card
    assert "受付" in card and "オンライン (マイナポータル)" in card
    assert "罹災証明書の交付を申請する" not in card  # one open application per person
    assert holder.resident.resident_code not in page.text and holder.resident.my_number not in page.text

    decide(w, row.id, approve=True, ratio=45)
    card = entry(w.client.get("/portal/disaster").text, disaster_id)
    assert 'data-state="issuable"' in card
    assert "交付決定" in card and "大規模半壊" in card
    assert (
        "キオスク端末" in card and "手数料: 無料" in card and "06:30〜23:00 (12月29日〜1月3日を除く)" in card
    )
    assert "千代田区" in card


def test_the_applicant_is_the_card_holder_whatever_the_form_says(web: PortalWeb) -> None:
    w = web
    holder, other = w.holder(), w.holder()  # both listed; the other never signs in
    disaster_id = declare(w)
    signed_in(w, holder)
    r = apply(w, disaster_id, resident_code=other.resident.resident_code, serial="1")
    assert r.status_code == 303
    (row,) = applications(w)
    assert row.resident_code == holder.resident.resident_code != other.resident.resident_code


def test_a_second_application_is_refused_and_a_rejected_one_may_be_followed(web: PortalWeb) -> None:
    w = web
    holder = w.holder()
    disaster_id = declare(w)
    signed_in(w, holder)
    assert apply(w, disaster_id).status_code == 303
    again = apply(w, disaster_id)
    assert again.status_code == 409 and "既に申請があります" in again.text
    assert len(applications(w)) == 1

    first = applications(w)[0].id
    decide(w, first, approve=False, reason="住家に被害が確認できません")
    page = w.client.get("/portal/disaster").text
    card = entry(page, disaster_id)
    assert state(page, disaster_id) == "rejected"
    assert "却下" in card and "住家に被害が確認できません" in card and "罹災証明書の交付を申請する" in card
    assert apply(w, disaster_id).status_code == 303
    assert [a.status for a in applications(w)] == ["rejected", "received"]


def test_a_person_not_in_the_victim_register_cannot_apply(web: PortalWeb) -> None:
    w = web
    holder = w.holder()
    disaster_id = declare(w, build=False)  # declared, victim register not built yet
    signed_in(w, holder)
    page = w.client.get("/portal/disaster").text
    card = entry(page, disaster_id)
    assert state(page, disaster_id) == "not_listed" and "被災者台帳に登載されていません" in card
    assert "罹災証明書の交付を申請する" not in card
    r = apply(w, disaster_id)
    assert r.status_code == 409 and "被災者台帳に登載されていません" in r.text
    assert applications(w) == []


def test_only_the_disasters_of_the_holders_municipality_are_shown(web: PortalWeb) -> None:
    w = web
    holder = w.holder(SHINJUKU)
    chiyoda = declare(w, CHIYODA)
    signed_in(w, holder)
    page = w.client.get("/portal/disaster").text
    assert chiyoda not in page and "宣言された災害はありません" in page
    r = apply(w, chiyoda)
    assert r.status_code == 409 and "被災者台帳に登載されていません" in r.text
    assert applications(w) == []


def test_a_closed_disaster_takes_no_more_applications(web: PortalWeb) -> None:
    w = web
    holder = w.holder()
    disaster_id = declare(w)
    with transaction(w.factory) as s:
        DisasterService(s, w.clock, w.container.geography, staff()).close(disaster_id)
    signed_in(w, holder)
    page = w.client.get("/portal/disaster").text
    assert state(page, disaster_id) == "closed" and "罹災証明書の交付を申請する" not in entry(
        page, disaster_id
    )
    r = apply(w, disaster_id)
    assert r.status_code == 409 and "申請受付は終了しています" in r.text


def test_a_household_members_approval_lets_the_others_print_theirs(web: PortalWeb) -> None:
    w = web
    head = w.holder()
    spouse = w.holder(household_id=head.resident.household_id, relationship="妻")
    disaster_id = declare(w)
    r = sign_in(w, head)
    assert r.status_code == 303
    assert apply(w, disaster_id).status_code == 303
    decide(w, applications(w)[0].id, approve=True, ratio=55)
    w.client.cookies.clear()
    assert sign_in(w, spouse).status_code == 303
    page = w.client.get("/portal/disaster").text
    card = entry(page, disaster_id)
    assert state(page, disaster_id) == "issuable" and "キオスク端末" in card
    assert "data-application" not in card  # the spouse did not apply themself
    assert "罹災証明書の交付を申請する" not in card


def test_a_victim_who_moved_away_still_sees_and_applies_where_they_were_listed(web: PortalWeb) -> None:
    w = web
    holder = w.holder()
    disaster_id = declare(w)
    today = w.clock.today()
    with transaction(w.factory) as s:
        _view, cert = w.container.registry(s, CHIYODA, "staff-131016").record_move_out(
            holder.resident.id,
            planned_date=today,
            destination="東京都新宿区西新宿二丁目8番1号",
            destination_lg_code=SHINJUKU,
            special=True,
        )
    w.relay().drain()
    with transaction(w.factory) as s:
        w.container.registry(s, SHINJUKU, "staff-131041").record_special_move_in(
            cert.certificate_no, Placement(w.town(SHINJUKU), "8番1号", None, "世帯主"), moved_on=today
        )
    w.relay().drain()
    signed_in(w, holder)
    page = w.client.get("/portal/disaster").text
    assert "新宿区 (お住まいの市区町村)" in page and state(page, disaster_id) == "can_apply"
    assert apply(w, disaster_id).status_code == 303
    (row,) = applications(w)
    assert row.lg_code == CHIYODA  # the municipality that listed them decides
    decide(w, row.id, approve=True, ratio=35)
    card = entry(w.client.get("/portal/disaster").text, disaster_id)
    assert 'data-state="issuable"' in card and "中規模半壊" in card and "交付する市区町村: 千代田区" in card


# ----------------------------------------------------------------------------------------- guards


def test_the_page_needs_a_portal_session_and_the_form_its_csrf_token(web: PortalWeb) -> None:
    w = web
    holder = w.holder()
    disaster_id = declare(w)
    r = w.client.get("/portal/disaster", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/portal/login"
    signed_in(w, holder)
    forged = w.client.post(
        "/portal/disaster/apply", data={"csrf_token": "x", "disaster_id": disaster_id}, follow_redirects=False
    )
    assert forged.status_code == 403
    bad = apply(w, disaster_id="D2026-1")
    assert bad.status_code == 422 and "災害ID" in bad.text
    assert applications(w) == []


def test_a_card_put_on_hold_mid_session_applies_for_no_one(web: PortalWeb) -> None:
    w = web
    holder = w.holder()
    disaster_id = declare(w)
    signed_in(w, holder)
    assert w.client.get("/portal/disaster").status_code == 200
    with transaction(w.factory) as s:
        assert Revocations(s, w.clock, actor="hotline").hold_card(holder.card_id, "紛失の届出")
    page = w.client.get("/portal/disaster")
    assert page.status_code == 409 and "電子証明書が有効ではありません" in page.text
    assert "カードでログイン中" in page.text and disaster_id not in page.text  # the portal's page, no data
    m = _CSRF.search(page.text)
    assert m
    data = {"csrf_token": m.group(1), "disaster_id": disaster_id}
    r = w.client.post("/portal/disaster/apply", data=data, follow_redirects=False)
    assert r.status_code == 409 and "電子証明書が有効ではありません" in r.text
    assert applications(w) == []


# ----------------------------------------------------------------------------------------- API


def test_the_api_with_the_portal_session_token(web: PortalWeb) -> None:
    w = web
    holder = w.holder()
    disaster_id = declare(w)
    token, _user = w.sign_in(holder)
    headers = {"Authorization": f"Bearer {token}"}
    assert w.client.get("/api/v1/portal/disasters").status_code == 401
    r = w.client.get("/api/v1/portal/disasters", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["lg_code"] == CHIYODA and body["municipality"] == "千代田区"
    (d,) = body["disasters"]
    assert d["id"] == disaster_id and d["state"] == "can_apply" and d["listed"] and d["kiosk"] is None
    made = w.client.post(f"/api/v1/portal/disasters/{disaster_id}/applications", headers=headers)
    assert made.status_code == 201, made.text
    assert "resident_code" not in made.json() and made.json()["status"] == "received"
    again = w.client.post(f"/api/v1/portal/disasters/{disaster_id}/applications", headers=headers)
    assert again.status_code == 409 and again.json()["field"] == "罹災証明書申請"
    decide(w, made.json()["id"], approve=True, ratio=25)
    (d,) = w.client.get("/api/v1/portal/disasters", headers=headers).json()["disasters"]
    assert d["state"] == "issuable" and d["applications"][0]["grade"] == "半壊"
    assert d["kiosk"] == {
        "lg_code": CHIYODA,
        "municipality": "千代田区",
        "at_kiosk": True,
        "fee": 0,
        "opens": "06:30",
        "closes": "23:00",
        "weekdays_only": False,
        "closed": "12月29日〜1月3日",
        "min_age": 15,
    }
    assert holder.resident.resident_code not in r.text
    with warnings.catch_warnings():  # the portal fixture mounts the portal's routers a second time
        warnings.simplefilter("ignore", UserWarning)  # over the app's: duplicate operation ids
        paths = w.client.get("/openapi.json").json()["paths"]
    assert "/api/v1/portal/disasters/{disaster_id}/applications" in paths


# ----------------------------------------------------------------------------------------- service


def test_records_name_the_person_by_the_portals_code_and_the_reads_are_audited(web: PortalWeb) -> None:
    w = web
    holder = w.holder()
    disaster_id = declare(w)
    _token, user = w.sign_in(holder)
    with transaction(w.factory) as s:
        made = PortalDisasterDesk(s, w.portal_deps, user).apply(disaster_id)
    with w.factory() as s:
        portal = s.scalars(
            select(AuditEntryRow).where(
                AuditEntryRow.chain == "linkage.portal", AuditEntryRow.action == "damage_application"
            )
        ).all()
        access = s.scalars(
            select(AuditEntryRow).where(
                AuditEntryRow.chain == "access", AuditEntryRow.subject == holder.resident.resident_code
            )
        ).all()
    (entry_,) = portal
    assert entry_.subject == user.portal_code and json.loads(entry_.details)["application"] == made.id
    assert holder.resident.resident_code not in str(entry_.details)
    purposes = [str(json.loads(a.details).get("purpose", "")) for a in access]
    assert "罹災証明書 (マイナポータル) の申請" in purposes  # J-LIS's look-up of the holder
    assert "罹災証明書申請" in purposes  # the BCL's read for the application


def test_a_municipality_that_does_not_offer_it_at_the_kiosk_says_the_counter(web: PortalWeb) -> None:
    w = web
    holder = w.holder()
    disaster_id = declare(w)
    _token, user = w.sign_in(holder)
    book = load_policies()
    counter_only = PolicyBook(
        dataclasses.replace(book.default, offered=book.default.offered - {CertificateKind.DAMAGE}), {}
    )
    with transaction(w.factory) as s:
        made = PortalDisasterDesk(s, w.portal_deps, user).apply(disaster_id)
    decide(w, made.id, approve=True)
    with transaction(w.factory) as s:
        (e,) = PortalDisasterDesk(s, w.portal_deps, user, policies=counter_only).overview().entries
        (default,) = PortalDisasterDesk(s, w.portal_deps, user).overview().entries
    assert e.issuable and e.kiosk is not None and not e.kiosk.at_kiosk
    assert default.kiosk is not None and default.kiosk.at_kiosk and default.kiosk.fee == 0
