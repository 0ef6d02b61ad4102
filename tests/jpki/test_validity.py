"""Card and certificate validity (facts §10, §3.2, §3.8), including 29 February and the caps."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jlis.clock import JST
from jlis.errors import InvalidInput
from jlis.jpki.profile import CURRENT, NEXT_GEN
from jlis.jpki.validity import (
    add_months,
    age_on,
    card_expiry,
    certificate_expiry,
    certificate_not_after,
    end_of_day,
    nth_birthday_after,
)

D = dt.date


def test_real_certificate_example() -> None:
    # facts §3.2: issued 2025-10-27, holder born on 17 February, valid to 2030-02-17.
    assert nth_birthday_after(D(1980, 2, 17), D(2025, 10, 27), 5) == D(2030, 2, 17)


def test_birthday_counts_strictly_after_the_day_of_issue() -> None:
    birth = D(1990, 6, 10)
    assert nth_birthday_after(birth, D(2026, 6, 9), 1) == D(2026, 6, 10)
    assert nth_birthday_after(birth, D(2026, 6, 10), 1) == D(2027, 6, 10)  # issued on the birthday
    assert nth_birthday_after(birth, D(2026, 6, 11), 5) == D(2031, 6, 10)


def test_29_february_falls_on_28_february_in_common_years() -> None:
    birth = D(2000, 2, 29)
    assert nth_birthday_after(birth, D(2026, 3, 1), 1) == D(2027, 2, 28)
    assert nth_birthday_after(birth, D(2026, 3, 1), 2) == D(2028, 2, 29)
    assert nth_birthday_after(birth, D(2027, 2, 28), 1) == D(2028, 2, 29)  # issued on the birthday
    assert age_on(birth, D(2018, 2, 27)) == 17
    assert age_on(birth, D(2018, 2, 28)) == 18


def test_n_must_be_positive_and_birth_before_issue() -> None:
    with pytest.raises(ValueError):
        nth_birthday_after(D(1990, 1, 1), D(2026, 1, 1), 0)
    with pytest.raises(InvalidInput) as err:
        nth_birthday_after(D(2027, 1, 1), D(2026, 1, 1), 5)
    assert err.value.field == "birth_date"


def test_card_to_the_10th_birthday_from_18() -> None:
    birth = D(2008, 11, 26)
    assert card_expiry(birth, D(2026, 11, 26), CURRENT) == D(2036, 11, 26)  # 18 today: adult
    assert card_expiry(birth, D(2026, 11, 25), CURRENT) == D(2030, 11, 26)  # 17: 5th birthday


def test_next_generation_card_adds_a_month() -> None:
    assert card_expiry(D(1990, 6, 10), D(2027, 1, 5), NEXT_GEN) == D(2036, 7, 10)
    # 31 January + 1 month is the end of February.
    assert card_expiry(D(1990, 1, 31), D(2027, 1, 5), NEXT_GEN) == D(2036, 2, 29)
    assert card_expiry(D(1990, 1, 31), D(2026, 1, 5), NEXT_GEN) == D(2035, 2, 28)


def test_certificate_to_the_5th_birthday_capped_by_the_card() -> None:
    birth, issued = D(1990, 6, 10), D(2026, 11, 26)
    card = card_expiry(birth, issued, CURRENT)
    assert certificate_expiry(birth, issued, card, CURRENT) == D(2031, 6, 10)
    assert certificate_expiry(birth, issued, D(2029, 3, 31), CURRENT) == D(2029, 3, 31)  # card ends first


def test_minor_certificate_ends_with_the_card() -> None:
    birth, issued = D(2015, 4, 1), D(2026, 11, 26)
    card = card_expiry(birth, issued, CURRENT)
    assert card == D(2031, 4, 1)
    assert certificate_expiry(birth, issued, card, CURRENT) == card


def test_next_generation_certificate_runs_with_the_card() -> None:
    birth, issued = D(1990, 6, 10), D(2027, 1, 5)
    card = card_expiry(birth, issued, NEXT_GEN)
    assert certificate_expiry(birth, issued, card, NEXT_GEN) == card == D(2036, 7, 10)


def test_card_already_expired_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        certificate_expiry(D(1990, 1, 1), D(2026, 11, 26), D(2026, 11, 25), CURRENT)
    assert err.value.field == "card_expires_on"


def test_not_after_is_the_end_of_the_day_in_jst() -> None:
    at = certificate_not_after(D(1990, 6, 10), D(2026, 11, 26), D(2036, 6, 10), CURRENT)
    assert at == dt.datetime(2031, 6, 10, 23, 59, 59, tzinfo=JST)
    assert end_of_day(D(2031, 6, 10)).astimezone(dt.UTC) == dt.datetime(
        2031, 6, 10, 14, 59, 59, tzinfo=dt.UTC
    )


def test_add_months_clamps() -> None:
    assert add_months(D(2026, 1, 31), 1) == D(2026, 2, 28)
    assert add_months(D(2026, 12, 15), 1) == D(2027, 1, 15)
    assert add_months(D(2026, 3, 31), 240) == D(2046, 3, 31)


_births = st.dates(min_value=D(1900, 1, 1), max_value=D(2026, 1, 1))
_issues = st.dates(min_value=D(2026, 1, 1), max_value=D(2040, 12, 31))


@given(_births, _issues)
def test_certificate_never_outlives_the_card_and_is_a_birthday(birth: dt.date, issued: dt.date) -> None:
    card = card_expiry(birth, issued, CURRENT)
    cert = certificate_expiry(birth, issued, card, CURRENT)
    assert issued < cert <= card
    assert (cert.month, cert.day) == (birth.month, birth.day) or (birth.month, birth.day) == (2, 29)
    # The 5th birthday after issue is 4 to 5 years away.
    assert dt.timedelta(days=4 * 365) <= cert - issued <= dt.timedelta(days=5 * 366)


@given(_births, _issues)
def test_adult_card_runs_9_to_10_years(birth: dt.date, issued: dt.date) -> None:
    card = card_expiry(birth, issued, CURRENT)
    years = 10 if age_on(birth, issued) >= 18 else 5
    assert dt.timedelta(days=(years - 1) * 365) <= card - issued <= dt.timedelta(days=years * 366)
