"""Application rules that need no database: the 申請書ID, fees, the renewal window, 特急発行."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from jlis.card.applications import (
    APPLICATION_ID_LENGTH,
    Channel,
    ExpressCase,
    ReissueReason,
    check_express,
    express_chargeable,
    express_deadline,
    fee_yen,
    new_application_id,
    parse_application_id,
    renewal_opens_on,
)
from jlis.errors import InvalidInput, RuleViolation

TODAY = dt.date(2026, 11, 26)


def test_application_id_layout_and_check_digit() -> None:
    rng = random.Random(1)
    app_id = new_application_id("131016", TODAY, rng)
    assert len(app_id) == APPLICATION_ID_LENGTH and app_id.isdigit()
    assert app_id.startswith("131016" + "20261126")
    assert parse_application_id(app_id) == app_id
    assert parse_application_id(" " + app_id[:10] + "-" + app_id[10:]) == app_id
    wrong = app_id[:-1] + str((int(app_id[-1]) + 1) % 10)
    with pytest.raises(InvalidInput, match="check digit"):
        parse_application_id(wrong)


def test_every_single_digit_error_in_the_body_is_caught_or_maps_to_zero() -> None:
    app_id = new_application_id("131016", TODAY, random.Random(2))
    caught = 0
    for i in range(APPLICATION_ID_LENGTH - 1):
        d = (int(app_id[i]) + 1) % 10
        changed = app_id[:i] + str(d) + app_id[i + 1 :]
        try:
            parse_application_id(changed)
        except InvalidInput:
            caught += 1
    assert caught >= APPLICATION_ID_LENGTH - 3  # mod 11 lets remainder 0/1 collide, rarely


@pytest.mark.parametrize(
    ("value", "rule"),
    [("123", "must be 23 digits"), ("13101620261126ABCDEFGH1", "only digits"), ("", "must be 23 digits")],
)
def test_bad_application_ids(value: str, rule: str) -> None:
    with pytest.raises(InvalidInput, match=rule) as exc:
        parse_application_id(value)
    assert exc.value.field == "申請書ID"


def test_application_id_needs_a_real_municipality_code() -> None:
    with pytest.raises(InvalidInput):
        new_application_id("131017", TODAY, random.Random(1))


def test_fees() -> None:
    assert fee_yen(chargeable=False, express=False) == 0
    assert fee_yen(chargeable=False, express=True) == 0
    assert fee_yen(chargeable=True, express=False) == 1000
    assert fee_yen(chargeable=True, express=False, certificates=False) == 800
    assert fee_yen(chargeable=True, express=True) == 2000
    assert fee_yen(chargeable=True, express=True, certificates=False) == 1800
    assert ReissueReason.LOST.chargeable and ReissueReason.DAMAGED.chargeable
    assert not any(
        r.chargeable for r in (ReissueReason.RENEWAL, ReissueReason.DEFECT, ReissueReason.CODE_CHANGE)
    )
    assert express_chargeable(ExpressCase.LOST, holder_responsible=False)
    assert express_chargeable(ExpressCase.DAMAGED, holder_responsible=True)
    assert not express_chargeable(ExpressCase.DAMAGED, holder_responsible=False)
    assert not express_chargeable(ExpressCase.INFANT, holder_responsible=True)


@pytest.mark.parametrize(
    ("expires", "opens"),
    [
        (dt.date(2030, 2, 17), dt.date(2029, 11, 18)),
        (dt.date(2030, 5, 31), dt.date(2030, 3, 1)),  # 31 May − 3 months → 28 Feb, +1 day
        (dt.date(2032, 5, 29), dt.date(2032, 3, 1)),  # leap year: 29 Feb, +1 day
    ],
)
def test_renewal_window(expires: dt.date, opens: dt.date) -> None:
    assert renewal_opens_on(expires) == opens


def test_renewal_window_next_generation_is_a_year() -> None:
    assert renewal_opens_on(dt.date(2036, 2, 17), next_generation=True) == dt.date(2035, 2, 18)


def test_express_deadlines() -> None:
    birth = dt.date(2026, 3, 1)
    assert express_deadline(ExpressCase.INFANT, event_date=None, birth_date=birth) == dt.date(2027, 2, 28)
    assert express_deadline(ExpressCase.LOST, event_date=TODAY, birth_date=birth) == TODAY + dt.timedelta(30)
    with pytest.raises(InvalidInput, match="must be given"):
        express_deadline(ExpressCase.DAMAGED, event_date=None, birth_date=birth)


def test_check_express_target_and_window() -> None:
    birth = dt.date(1980, 1, 1)
    target = check_express(
        ExpressCase.DAMAGED,
        event_date=TODAY - dt.timedelta(30),
        birth_date=birth,
        today=TODAY,
        channel=Channel.COUNTER,
    )
    assert target == TODAY + dt.timedelta(7)
    with pytest.raises(RuleViolation, match="within 30 days"):
        check_express(
            ExpressCase.DAMAGED,
            event_date=TODAY - dt.timedelta(31),
            birth_date=birth,
            today=TODAY,
            channel=Channel.COUNTER,
        )
    with pytest.raises(RuleViolation, match="at the counter") as exc:
        check_express(
            ExpressCase.DAMAGED, event_date=TODAY, birth_date=birth, today=TODAY, channel=Channel.ONLINE
        )
    assert exc.value.field == "申請方法"
    with pytest.raises(InvalidInput, match="future"):
        check_express(
            ExpressCase.RELEASED,
            event_date=TODAY + dt.timedelta(1),
            birth_date=birth,
            today=TODAY,
            channel=Channel.COUNTER,
        )


def test_infant_until_the_day_before_the_first_birthday() -> None:
    birth = dt.date(2025, 11, 27)
    check_express(ExpressCase.INFANT, event_date=None, birth_date=birth, today=TODAY, channel=Channel.COUNTER)
    with pytest.raises(RuleViolation, match="under 1 year"):
        check_express(
            ExpressCase.INFANT,
            event_date=None,
            birth_date=dt.date(2025, 11, 26),
            today=TODAY,
            channel=Channel.COUNTER,
        )


def test_enum_parsing_names_the_field() -> None:
    with pytest.raises(InvalidInput) as exc:
        Channel.parse("fax")
    assert exc.value.field == "申請方法"
    with pytest.raises(InvalidInput) as exc:
        ExpressCase.parse("vip")
    assert exc.value.field == "特急発行"
    assert ReissueReason.parse(" lost ") is ReissueReason.LOST
