"""The kiosk screen through HTTP, as a browser drives it: 行政サービス → card → PIN → certificate →
fee → pay → the PDF, and every refusal of the center shown in Japanese; nothing issued, nothing
charged when refused."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from jlis.auth.models import Principal, PrincipalKind
from jlis.bcl.disasters import DisasterService
from jlis.bcl.models import AreaPart
from jlis.db import transaction
from jlis.jpki.revocation import Reason, Revocations
from jlis.kiosk.center.api import center_of
from jlis.kiosk.center.errors import CenterRefused as CenterSideRefusal
from jlis.kiosk.center.service import register_kiosk
from jlis.kiosk.center.tables import CenterLogRow
from jlis.kiosk.pdf.render import read_binding
from jlis.kiosk.pdf.tables import IssuedDocumentRow
from jlis.kiosk.screen.adapter import DEFAULT_KIOSK_ID, DEFAULT_KIOSK_NAME, InProcessCenter

from .conftest import CARD_PASSPHRASE, CHIYODA, KIOSK, SHINJUKU, Holder, KioskScreenWeb, pdf_text


def test_a_resident_certificate_from_start_to_finish(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = k.holder(CHIYODA, family="佐藤", given="花子")
    idle = k.client.get("/kiosk")
    assert idle.status_code == 200 and "行政サービス" in idle.text
    k.sign_in(holder)
    menu = k.client.get("/kiosk/menu")
    assert menu.status_code == 200, menu.text
    assert "<h1>証明書を選んでください</h1>" in menu.text
    assert "東京都千代田区" in menu.text and "住民票の写し" in menu.text
    r = k.choose("resident", {"scope": "household", "show_relationship": "1", "copies": "2"})
    assert r.status_code == 303 and r.headers["location"] == "/kiosk/fee", r.text
    fee = k.client.get("/kiosk/fee")
    assert "400円" in fee.text and "世帯全員" in fee.text and "続柄あり" in fee.text
    r = k.pay()
    assert r.status_code == 303 and r.headers["location"] == "/kiosk/printed", r.text
    printed = k.client.get("/kiosk/printed")
    assert "取り忘れ" in printed.text
    pdf = k.client.get("/kiosk/document.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("inline")
    text = pdf_text(pdf.content)
    assert "佐藤" in text and "花子" in text
    (row,) = k.world.rows(CenterLogRow)
    assert row.outcome == "issued" and row.charged == 400 and row.copies == 2
    assert read_binding(pdf.content).request_id == row.request_id
    assert row.certificate_number in printed.text
    download = k.client.get("/kiosk/document.pdf?download=1")
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.content == pdf.content
    r = k.post("/kiosk/finish", page="/kiosk/printed", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/kiosk/bye"
    assert "カードをお取りください" in k.client.get("/kiosk/bye").text
    # The kiosk forgot the document.
    assert k.client.get("/kiosk/document.pdf", follow_redirects=False).headers["location"] == "/kiosk"


# ------------------------------------------------------------------------------ the card


def test_a_wrong_pin_is_counted_shown_and_logged_and_the_right_one_still_works(
    kiosk_web: KioskScreenWeb,
) -> None:
    k = kiosk_web
    holder = k.holder()
    k.start()
    k.set_card(holder)
    r = k.enter_pin("9999")
    assert r.status_code == 409, r.text
    assert "暗証番号が違います" in r.text and "残り2回" in r.text
    assert 'data-step="pin"' in r.text
    r = k.enter_pin("12")  # not 4 digits: refused before the card (no try lost)
    assert r.status_code == 422 and "数字4桁" in r.text
    r = k.enter_pin()
    assert r.status_code == 303 and r.headers["location"] == "/kiosk/menu", r.text
    assert [row.code for row in k.world.rows(CenterLogRow)] == ["wrong_pin"]


def test_a_blocked_pin_ends_the_visit(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = k.holder()
    k.start()
    k.set_card(holder)
    k.enter_pin("9999")
    k.enter_pin("9999")
    r = k.enter_pin("9999")
    assert r.status_code == 409
    assert 'id="refusal" data-code="pin_blocked"' in r.text and "ロック" in r.text
    assert "カードをお取りください" in r.text
    assert k.client.get("/kiosk/pin", follow_redirects=False).headers["location"] == "/kiosk"
    _nothing_issued(k)


def test_a_revoked_card_is_refused_with_its_message(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = k.holder()
    with transaction(k.world.factory) as s:
        Revocations(s, k.world.clock, actor="test").revoke_card(holder.card_id, Reason.KEY_COMPROMISE, "test")
    k.start()
    k.set_card(holder)
    r = k.enter_pin()
    assert r.status_code == 409
    assert 'data-code="card_revoked"' in r.text and "失効" in r.text
    _nothing_issued(k)


def test_a_card_file_with_a_wrong_passphrase_or_an_unknown_card(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = k.holder()
    k.start()
    r = k.set_card(holder, passphrase="not the passphrase")
    assert r.status_code == 422 and "パスフレーズが違う" in r.text
    r = k.post("/kiosk/card", {"source": "demo", "card": "../../etc/passwd", "passphrase": "x"})
    assert r.status_code == 422 and "カードを選んでください" in r.text
    assert holder.card_id in k.client.get("/kiosk/card").text  # the reader offers the demo cards


def test_an_uploaded_card_file(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = k.holder(given="一郎")
    data = k.card_file(holder).read_bytes()
    k.start()
    page = k.client.get("/kiosk/card")
    r = k.client.post(
        "/kiosk/card",
        data={"csrf_token": k.csrf(page.text), "source": "upload", "passphrase": CARD_PASSPHRASE},
        files={"card_file": ("mine.jcard", data, "application/octet-stream")},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/kiosk/pin", r.text
    assert k.enter_pin().headers["location"] == "/kiosk/menu"


# ------------------------------------------------------------------------------ refusals


def test_a_moved_out_resident_is_refused_and_not_charged(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = k.holder()
    with k.world.register(CHIYODA) as reg:
        reg.record_move_out(
            holder.resident.id,
            planned_date=k.world.clock.today() + dt.timedelta(days=7),
            destination="神奈川県横浜市鶴見区",
            destination_lg_code="141011",
        )
    k.sign_in(holder)
    k.choose("resident")
    r = k.pay()
    assert r.status_code == 409
    assert "転出の届出をされているため、交付できません。" in r.text
    assert 'id="not-charged"' in r.text and 'data-step="menu"' in r.text
    _nothing_issued(k)
    (row,) = k.world.rows(CenterLogRow)
    assert (row.code, row.charged) == ("moving_out", 0)


def test_a_certificate_server_refusal_is_shown(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    k.sign_in(k.holder())
    k.choose("seal")  # no 印鑑登録
    r = k.pay()
    assert r.status_code == 409 and "印鑑登録がないため" in r.text
    _nothing_issued(k)


def test_a_payment_that_differs_from_the_fee_is_refused(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    k.sign_in(k.holder())
    k.choose("resident")
    r = k.pay(paid="10")
    assert r.status_code == 409 and "手数料と一致しません" in r.text
    _nothing_issued(k)


def test_the_menu_is_the_municipalitys_and_other_kinds_are_not_offered(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    k.sign_in(k.holder(SHINJUKU))
    menu = k.client.get("/kiosk/menu")
    assert "東京都新宿区" in menu.text and 'data-kind="resident"' in menu.text
    assert 'data-kind="resident_items"' not in menu.text  # 新宿区 does not offer it
    assert 'data-kind="damage"' not in menu.text  # no approved 罹災証明書 application
    r = k.client.get("/kiosk/certificates/resident_items", follow_redirects=False)
    assert r.headers["location"] == "/kiosk/menu"
    r = k.choose("resident_items")
    assert r.headers["location"] == "/kiosk/menu"
    koseki = k.client.get("/kiosk/certificates/koseki")
    assert 'name="honseki_lg_code"' in koseki.text and 'name="pref"' in koseki.text  # lists, not a code
    assert "お住まいの市区町村（東京都新宿区）" in koseki.text and f'value="{CHIYODA}"' not in koseki.text
    koseki = k.client.get("/kiosk/certificates/koseki?pref=13")
    assert re.search(f'<option value="{CHIYODA}"\\s*>東京都千代田区</option>', koseki.text)
    for bad in ("999999", "141003", "13101"):  # unknown; a 政令市 (listed by its wards); not a code
        r = k.choose("koseki", {"honseki_lg_code": bad})
        assert r.status_code == 422 and "本籍地の市区町村を一覧から選んでください" in r.text
    r = k.choose("resident", {"copies": "11"})
    assert r.status_code == 422 and "部数を選んでください" in r.text
    r = k.choose("resident", {"scope": "everyone"})
    assert r.status_code == 422
    _nothing_issued(k)


# ------------------------------------------------------------------------------ the kiosk itself


def test_forms_need_the_visits_csrf_token(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = k.holder()
    k.start()
    r = k.client.post("/kiosk/card", data={"source": "demo", "card": holder.card_id, "passphrase": "x"})
    assert r.status_code == 403
    r = k.client.post(
        "/kiosk/card",
        data={"csrf_token": "0" * 64, "source": "demo", "card": holder.card_id, "passphrase": "x"},
    )
    assert r.status_code == 403


def test_pages_follow_the_visit(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    for path in (
        "/kiosk/card",
        "/kiosk/pin",
        "/kiosk/menu",
        "/kiosk/fee",
        "/kiosk/printed",
        "/kiosk/document.pdf",
    ):
        assert k.client.get(path, follow_redirects=False).headers["location"] == "/kiosk"
    k.start()
    for path in ("/kiosk/pin", "/kiosk/menu", "/kiosk/fee", "/kiosk/printed"):
        assert k.client.get(path, follow_redirects=False).headers["location"] == "/kiosk/card"
    assert k.client.get("/kiosk/screen.css").headers["content-type"].startswith("text/css")


def test_an_idle_visit_ends_and_gives_the_card_back(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = k.holder()
    k.sign_in(holder)
    k.world.clock.advance(minutes=6)
    assert k.client.get("/kiosk/menu", follow_redirects=False).headers["location"] == "/kiosk"


def test_another_certificate_in_the_same_visit(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = k.holder(family="鈴木", given="一郎")
    k.sign_in(holder)
    k.choose("resident")
    k.pay()
    first = k.client.get("/kiosk/document.pdf").content
    r = k.post("/kiosk/again", page="/kiosk/printed", follow_redirects=False)
    assert r.headers["location"] == "/kiosk/menu"
    assert k.client.get("/kiosk/document.pdf", follow_redirects=False).headers["location"] == "/kiosk/menu"
    k.choose("resident", {"scope": "household"})
    k.pay()
    second = k.client.get("/kiosk/document.pdf").content
    assert first != second
    rows = k.world.rows(CenterLogRow)
    assert [r.outcome for r in rows] == ["issued", "issued"]
    assert rows[0].request_id != rows[1].request_id
    assert "鈴木" in pdf_text(second)


def test_by_default_the_screen_is_a_registered_kiosk_of_the_apps_center(kiosk_web: KioskScreenWeb) -> None:
    """What ``jlis serve``/``jlis demo`` run: the app's own center (the one its kiosk API serves),
    as the kiosk DEMO-KIOSK-1, which must be registered with the center."""
    k = kiosk_web
    app = k.client.app
    app.state.kiosk_screen_center = None  # type: ignore[attr-defined]
    app.state.kiosk_screen = None  # type: ignore[attr-defined]
    holder = k.holder()
    k.start()
    r = k.set_card(holder)
    assert r.status_code == 409 and 'data-code="unknown_kiosk"' in r.text
    assert "この端末は証明書交付センターに登録されていません。" in r.text
    with transaction(k.world.factory) as s:
        register_kiosk(s, k.world.clock, DEFAULT_KIOSK_ID, DEFAULT_KIOSK_NAME, actor="test")
    k.sign_in(holder)
    k.choose("resident")
    assert k.pay().headers["location"] == "/kiosk/printed"
    center = app.state.kiosk_screen.center  # type: ignore[attr-defined]
    assert isinstance(center, InProcessCenter) and center.center is center_of(app)
    assert [(r.kiosk_id, r.outcome) for r in k.world.rows(CenterLogRow)] == [
        (DEFAULT_KIOSK_ID, "refused"),
        (DEFAULT_KIOSK_ID, "issued"),
    ]


def _approved_damage_application(k: KioskScreenWeb, holder: Holder) -> None:
    """A disaster over 千代田区, the holder's dwelling surveyed 大規模半壊, their application approved."""
    staff = Principal(
        id=1,
        username="staff-131016",
        kind=PrincipalKind.MUNICIPAL_STAFF,
        display_name="窓口",
        lg_code=CHIYODA,
    )
    with transaction(k.world.factory) as s:
        svc = DisasterService(s, k.world.clock, k.world.container.geography, staff)
        disaster = svc.declare(
            name="令和8年11月豪雨",
            cause="heavy_rain",
            occurred_on=k.world.clock.today() - dt.timedelta(days=2),
            area=[AreaPart(CHIYODA, ())],
        ).id
        svc.build_victim_register(disaster, CHIYODA)
        dwelling = {d.address: d.id for d in svc.dwellings(disaster, CHIYODA)}[holder.resident.address.text]
        svc.record_survey(dwelling, damage_ratio=45, surveyed_on=k.world.clock.today())
        svc.decide(svc.apply_at_counter(disaster, CHIYODA, holder.resident.resident_code).id, approve=True)


def test_a_damage_certificate_once_the_households_application_is_approved(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    holder = k.holder(family="中村", given="優子")
    _approved_damage_application(k, holder)
    k.sign_in(holder)
    menu = k.client.get("/kiosk/menu")
    assert 'data-kind="damage"' in menu.text and "対象の災害: 令和8年11月豪雨" in menu.text
    assert k.choose("damage").headers["location"] == "/kiosk/fee"
    assert '<td id="fee">0円</td>' in k.client.get("/kiosk/fee").text  # free (fees.toml)
    r = k.pay()
    assert r.status_code == 303, re.findall(r'id="error">([^<]*)<', r.text)
    assert "罹災証明書" in k.client.get("/kiosk/printed").text
    text = pdf_text(k.client.get("/kiosk/document.pdf").content)
    assert "罹災証明書" in text and "中村" in text and "大規模半壊" in text
    (row,) = k.world.rows(CenterLogRow)
    assert (row.kind, row.outcome, row.charged) == ("damage", "issued", 0)


def _nothing_issued(k: KioskScreenWeb) -> None:
    assert k.world.count(IssuedDocumentRow) == 0
    assert all(r.outcome == "refused" and r.charged == 0 for r in k.world.rows(CenterLogRow))


def test_ending_the_visit_ends_the_centers_session(kiosk_web: KioskScreenWeb) -> None:
    k = kiosk_web
    k.sign_in(k.holder())
    screen = k.client.app.state.kiosk_screen  # type: ignore[attr-defined]
    visit = screen.visits.get(k.client.cookies.get("jlis_kiosk"))
    session = k.world.center.session_by_token(KIOSK, visit.center.handle)
    assert k.world.center.menu(session).lg_code == CHIYODA
    k.post("/kiosk/finish", page="/kiosk/menu")
    with pytest.raises(CenterSideRefusal) as info:
        k.world.center.menu(session)
    assert info.value.code == "session_unknown"
    assert len(screen.visits) == 0
