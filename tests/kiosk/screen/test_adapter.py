"""The screen's adapter to the center: the screen's choices become the center's request, the
center's menu and refusals become the screen's (same codes, same Japanese messages)."""

from __future__ import annotations

import datetime as dt

import pytest

from jlis.errors import Forbidden, InvalidInput
from jlis.kiosk.center.errors import CenterReason
from jlis.kiosk.center.errors import CenterRefused as CenterSideRefusal
from jlis.kiosk.center.models import Menu as CenterMenu
from jlis.kiosk.center.models import MenuItem, Server, options_for
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.errors import IssuanceRefused, RefusalReason
from jlis.kiosk.issuer.models import DEFAULT_RESIDENT_ITEMS, IssueOptions
from jlis.kiosk.screen import adapter
from jlis.kiosk.screen.adapter import HONSEKI_FIELD, describe, issue_options_for
from jlis.kiosk.screen.pages import chosen_options, parse_copies

K = CertificateKind


def _menu(*, my_number: bool = False, disasters: tuple[tuple[str, str], ...] = ()) -> CenterMenu:
    items = tuple(MenuItem(k, k.label, 200, options_for(k), k in (K.KOSEKI, K.FUHYO)) for k in K)
    return CenterMenu("131016", "東京都千代田区", Server.OWN, items, disasters, my_number)


def _item(menu: CenterMenu, kind: CertificateKind) -> MenuItem:
    return next(i for i in menu.items if i.kind is kind)


def test_the_resident_certificates_options() -> None:
    menu = _menu()
    options = adapter.offer_options(_item(menu, K.RESIDENT), menu, dt.date(2026, 11, 26))
    names = [o.name for o in options]
    assert names == ["scope", "show_honseki", "show_relationship"]  # no 個人番号 unless allowed
    assert (
        options[0].choices == (("self", "本人のみ"), ("household", "世帯全員"))
        and options[0].default == "self"
    )
    allowed = _menu(my_number=True)
    names = [
        o.name for o in adapter.offer_options(_item(allowed, K.RESIDENT), allowed, dt.date(2026, 11, 26))
    ]
    assert "show_my_number" in names


def test_items_years_and_the_honseki_municipality() -> None:
    menu = _menu()
    items = adapter.offer_options(_item(menu, K.RESIDENT_ITEMS), menu, dt.date(2026, 11, 26))
    assert {o.name.removeprefix("item_") for o in items if o.default == "1"} == set(DEFAULT_RESIDENT_ITEMS)
    (year,) = adapter.offer_options(_item(menu, K.INCOME), menu, dt.date(2026, 5, 31))
    assert [v for v, _ in year.choices] == ["", "2025", "2024", "2023"]  # 2026年度 from June
    (year,) = adapter.offer_options(_item(menu, K.INCOME), menu, dt.date(2026, 6, 1))
    assert year.choices[1] == ("2026", "2026年度")
    (honseki,) = adapter.offer_options(_item(menu, K.KOSEKI), menu, dt.date(2026, 11, 26))
    assert honseki.name == HONSEKI_FIELD and honseki.place and not honseki.text
    assert adapter.offer_options(_item(menu, K.SEAL), menu, dt.date(2026, 11, 26)) == ()


def test_the_screens_choices_become_the_centers_options() -> None:
    assert issue_options_for(
        K.RESIDENT, {"scope": "household", "show_honseki": True, "show_relationship": False}
    ) == IssueOptions(household=True, show_honseki=True)
    assert issue_options_for(K.RESIDENT, {}) == IssueOptions()
    assert issue_options_for(K.RESIDENT_ITEMS, {"item_name": True, "item_address": True}) == IssueOptions(
        items=("name", "address")
    )
    with pytest.raises(InvalidInput):  # nothing to certify
        issue_options_for(K.RESIDENT_ITEMS, {"item_name": False})
    assert issue_options_for(K.INCOME, {"fiscal_year": "2025"}) == IssueOptions(fiscal_year=2025)
    assert issue_options_for(K.INCOME, {}) == IssueOptions()
    # options of another kind are not passed on
    assert issue_options_for(K.SEAL, {"scope": "household", "show_honseki": True}) == IssueOptions()


def test_what_was_chosen_in_words() -> None:
    assert describe(K.RESIDENT, IssueOptions(household=True, show_relationship=True)) == (
        "世帯全員",
        "本籍なし",
        "続柄あり",
    )
    assert describe(K.RESIDENT_ITEMS, IssueOptions(items=("name", "address"))) == ("氏名", "住所")
    assert describe(K.INCOME, IssueOptions()) == ("最新の年度",)
    assert describe(K.SEAL, IssueOptions()) == ()


def test_refusals_keep_their_code_and_message_and_end_the_visit_when_they_must() -> None:
    revoked = adapter._refusal(CenterSideRefusal.of(CenterReason.CARD_REVOKED))
    assert revoked.code == "card_revoked" and revoked.fatal
    assert revoked.message == CenterReason.CARD_REVOKED.message
    server = adapter._refusal(IssuanceRefused(RefusalReason.MOVING_OUT))
    assert server.code == "moving_out" and not server.fatal
    assert server.message == RefusalReason.MOVING_OUT.message
    other = adapter._refusal(InvalidInput("部数", "must be an integer from 1 to 10"))
    assert other.code == "invalid_input" and not other.fatal and other.message == adapter.INVALID_CHOICE
    forbidden = adapter._refusal(Forbidden("this needs a municipal_staff principal"))
    assert forbidden.code == "forbidden" and forbidden.message == adapter.NOT_ISSUED


def test_the_forms_choices_are_checked_against_the_offer() -> None:
    menu = _menu()
    offer_options = adapter.offer_options(_item(menu, K.RESIDENT), menu, dt.date(2026, 11, 26))
    from jlis.kiosk.screen.port import Offer

    offer = Offer("resident", "住民票の写し", 200, offer_options)
    assert chosen_options(offer, {"scope": "household", "show_honseki": "1"}) == {
        "scope": "household",
        "show_honseki": True,
        "show_relationship": False,
    }
    assert chosen_options(offer, {})["scope"] == "self"  # the default
    with pytest.raises(InvalidInput):
        chosen_options(offer, {"scope": "everyone"})
    koseki = Offer(
        "koseki", "戸籍", 450, adapter.offer_options(_item(menu, K.KOSEKI), menu, dt.date(2026, 11, 26))
    )
    assert chosen_options(koseki, {HONSEKI_FIELD: " 131041 "}) == {HONSEKI_FIELD: "131041"}
    assert chosen_options(koseki, {HONSEKI_FIELD: ""}) == {}
    with pytest.raises(InvalidInput):
        chosen_options(koseki, {HONSEKI_FIELD: "1" * 21})
    assert parse_copies("3", 10) == 3
    for bad in ("0", "11", "", "-1", "2.5", "１"):
        with pytest.raises(InvalidInput):
            parse_copies(bad, 10)
