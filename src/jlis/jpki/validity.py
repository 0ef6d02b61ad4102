"""Validity of the card and of its certificates (facts §10, §3.2, §3.8). Pure date arithmetic.

- "The n-th birthday after issue" counts birthdays strictly after the day of issue: a card issued on
  the holder's birthday ends on the birthday n years later, one issued the day after ends n years and
  (almost) one year later. A real certificate issued 2025-10-27 to a holder born on 17 February ends
  on 2030-02-17 (facts §3.2), which this rule gives.
- A 29 February birthday falls on 28 February in common years: 民法 §143(2) ends a period counted in
  years on the day before the corresponding day, or, if there is none, on the last day of the month.
  Age is counted the same way (年齢計算ニ関スル法律), so a holder born on 29 February is 18 on
  28 February of a common year.
- Certificates end at 23:59:59 JST on their last day (:func:`end_of_day`).
"""

from __future__ import annotations

import calendar
import datetime as dt

from jlis.clock import JST
from jlis.errors import InvalidInput
from jlis.jpki.profile import CardProfile


def anniversary(birth: dt.date, year: int) -> dt.date:
    """The birthday in ``year``; 29 February becomes 28 February in a common year."""
    if birth.month == 2 and birth.day == 29 and not calendar.isleap(year):
        return dt.date(year, 2, 28)
    return birth.replace(year=year)


def nth_birthday_after(birth: dt.date, on: dt.date, n: int) -> dt.date:
    """The ``n``-th birthday strictly after ``on`` (n ≥ 1)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    if on < birth:
        raise InvalidInput("birth_date", "must not be after the day of issue")
    first_year = on.year if anniversary(birth, on.year) > on else on.year + 1
    return anniversary(birth, first_year + n - 1)


def age_on(birth: dt.date, on: dt.date) -> int:
    """Completed years on ``on`` (the birthday counts: one is n years old from the n-th birthday)."""
    if on < birth:
        raise InvalidInput("birth_date", "must not be after the day of issue")
    years = on.year - birth.year
    return years if anniversary(birth, on.year) <= on else years - 1


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months``, clamped to the end of a shorter month (民法 §143(2))."""
    total = day.year * 12 + day.month - 1 + months
    year, month = divmod(total, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def card_expiry(birth: dt.date, issued_on: dt.date, profile: CardProfile) -> dt.date:
    """The card's last day: the 10th birthday after issue for a holder of 18 or over on the day of
    issue, the 5th under 18, plus the profile's extra months (next-generation card: one month)."""
    years = (
        profile.card_years_adult
        if age_on(birth, issued_on) >= profile.adult_age
        else profile.card_years_minor
    )
    return add_months(nth_birthday_after(birth, issued_on, years), profile.card_extra_months)


def certificate_expiry(
    birth: dt.date, issued_on: dt.date, card_expires_on: dt.date, profile: CardProfile
) -> dt.date:
    """A certificate's last day: the profile's n-th birthday after issue (5th today, 10th + 1 month for
    the next-generation card), never beyond the card."""
    if card_expires_on < issued_on:
        raise InvalidInput("card_expires_on", "must not be before the day of issue")
    own = add_months(nth_birthday_after(birth, issued_on, profile.cert_years), profile.cert_extra_months)
    return min(own, card_expires_on)


def end_of_day(day: dt.date) -> dt.datetime:
    """23:59:59 JST on ``day``: the instant a certificate's last day ends (seconds are the finest unit
    X.509 time carries)."""
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=JST)


def certificate_not_after(
    birth: dt.date, issued_on: dt.date, card_expires_on: dt.date, profile: CardProfile
) -> dt.datetime:
    """The notAfter instant of a certificate (see :func:`certificate_expiry`)."""
    return end_of_day(certificate_expiry(birth, issued_on, card_expires_on, profile))
