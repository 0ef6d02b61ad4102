"""The issuance rules as pure functions: hours and closures at their edges, ages on birthdays
(2/29 included), layout limits, the states of a 住民票, and 本籍地利用登録."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from jlis.clock import JST
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer import rules
from jlis.kiosk.issuer.errors import IssuanceRefused, RefusalReason
from jlis.kiosk.issuer.policy import load_policies
from jlis.registry.models import Address, ChangeReason, PersonName, ResidentView, Sex, Status

POLICY = load_policies().for_municipality("131016")
SHINJUKU_POLICY = load_policies().for_municipality("131041")
TODAY = dt.date(2026, 11, 27)


def at(y: int, m: int, d: int, hh: int, mm: int) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=JST)


def code_of(fn: object, *args: object, **kw: object) -> str | None:
    try:
        fn(*args, **kw)  # type: ignore[operator]
    except IssuanceRefused as exc:
        return exc.code
    return None


def person(**kw: object) -> ResidentView:
    base = ResidentView(
        id=1,
        lg_code="131016",
        resident_code="12345678906",
        my_number="123456789018",
        name=PersonName("山田", "太郎", "ヤマダ", "タロウ"),
        former_surname=None,
        former_surname_kana=None,
        alias=None,
        nationality="JP",
        birth_date=dt.date(1980, 4, 1),
        sex=Sex.MALE,
        household_id=1,
        household_no="0000000001",
        is_head=True,
        relationship="世帯主",
        address=Address("131016", "t", "1番1号", "東京都千代田区千代田1番1号"),
        honseki=None,
        honseki_lg_code=None,
        resident_since=dt.date(2020, 1, 1),
        address_since=dt.date(2020, 1, 1),
        notified_on=dt.date(2020, 1, 1),
        previous_address=None,
        status=Status.ACTIVE,
        last_reason=ChangeReason.MOVE_IN,
        last_change_date=dt.date(2020, 1, 1),
        version=1,
        removed_on=None,
        move_destination=None,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("when", "code"),
    [
        (at(2026, 11, 27, 6, 29), "closed_hours"),
        (at(2026, 11, 27, 6, 30), None),
        (at(2026, 11, 27, 22, 59), None),
        (at(2026, 11, 27, 23, 0), "closed_hours"),
        (at(2026, 12, 28, 22, 0), None),
        (at(2026, 12, 29, 10, 0), "closed_year_end"),
        (at(2027, 1, 1, 10, 0), "closed_year_end"),
        (at(2027, 1, 3, 22, 0), "closed_year_end"),
        (at(2027, 1, 4, 6, 30), None),
        (at(2026, 11, 28, 10, 0), None),  # Saturday: the 住民票 every day
    ],
)
def test_resident_hours(when: dt.datetime, code: str | None) -> None:
    assert code_of(rules.check_open, CertificateKind.RESIDENT, when, POLICY) == code


def test_hours_are_judged_in_jst() -> None:
    utc_evening = dt.datetime(2026, 11, 26, 21, 30, tzinfo=dt.UTC)  # 06:30 JST on the 27th
    assert code_of(rules.check_open, CertificateKind.RESIDENT, utc_evening, POLICY) is None
    utc_late = dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.UTC)  # 23:00 JST
    assert code_of(rules.check_open, CertificateKind.RESIDENT, utc_late, POLICY) == "closed_hours"


def test_koseki_hours_override_per_municipality() -> None:
    saturday = at(2026, 11, 28, 10, 0)
    assert code_of(rules.check_open, CertificateKind.KOSEKI, saturday, SHINJUKU_POLICY) == "closed_hours"
    assert code_of(rules.check_open, CertificateKind.KOSEKI, at(2026, 11, 27, 8, 59), SHINJUKU_POLICY)
    assert code_of(rules.check_open, CertificateKind.KOSEKI, at(2026, 11, 27, 9, 0), SHINJUKU_POLICY) is None
    assert code_of(rules.check_open, CertificateKind.FUHYO, at(2026, 11, 27, 17, 0), SHINJUKU_POLICY)
    # 千代田区 opens 戸籍 every day until 23:00, 附票 keeps the default
    assert code_of(rules.check_open, CertificateKind.KOSEKI, saturday, POLICY) is None
    assert code_of(rules.check_open, CertificateKind.FUHYO, saturday, POLICY) == "closed_hours"


def test_closure_wraps_over_new_year_or_not() -> None:
    assert rules.in_closure(dt.date(2026, 12, 31), ((12, 29), (1, 3)))
    assert not rules.in_closure(dt.date(2026, 6, 1), ((12, 29), (1, 3)))
    assert rules.in_closure(dt.date(2026, 5, 4), ((5, 3), (5, 5)))
    assert not rules.in_closure(dt.date(2026, 5, 6), ((5, 3), (5, 5)))


@pytest.mark.parametrize(
    ("birth", "day", "age"),
    [
        (dt.date(2011, 11, 28), dt.date(2026, 11, 27), 14),
        (dt.date(2011, 11, 28), dt.date(2026, 11, 28), 15),
        (dt.date(2008, 2, 29), dt.date(2023, 2, 28), 14),
        (dt.date(2008, 2, 29), dt.date(2023, 3, 1), 15),
        (dt.date(2008, 2, 29), dt.date(2024, 2, 29), 16),
    ],
)
def test_age_on(birth: dt.date, day: dt.date, age: int) -> None:
    assert rules.age_on(birth, day) == age


def test_subject_states() -> None:
    flagged: set[str] = set()
    assert code_of(rules.check_subject, person(), TODAY, POLICY, flagged=flagged) is None
    dead = person(status=Status.REMOVED, last_reason=ChangeReason.DEATH)
    assert code_of(rules.check_subject, dead, TODAY, POLICY, flagged=flagged) == "deceased"
    gone = person(status=Status.REMOVED, last_reason=ChangeReason.MOVE_OUT_CONFIRMED)
    assert code_of(rules.check_subject, gone, TODAY, POLICY, flagged=flagged) == "moved_out"
    leaving = person(status=Status.MOVING_OUT, last_reason=ChangeReason.MOVE_OUT)
    assert code_of(rules.check_subject, leaving, TODAY, POLICY, flagged=flagged) == "moving_out"
    arrived = person(last_reason=ChangeReason.SPECIAL_MOVE_IN, notified_on=TODAY)
    assert code_of(rules.check_subject, arrived, TODAY, POLICY, flagged=flagged) == "moved_in_today"
    relocated = person(last_reason=ChangeReason.RELOCATION, notified_on=TODAY)
    assert code_of(rules.check_subject, relocated, TODAY, POLICY, flagged=flagged) is None
    assert code_of(rules.check_subject, person(), TODAY, POLICY, flagged={"12345678906"}) == "dv_support"
    young = person(birth_date=dt.date(2012, 1, 1))
    assert code_of(rules.check_subject, young, TODAY, POLICY, flagged=flagged) == "under_age"
    assert code_of(rules.check_subject, young, TODAY, replace(POLICY, min_age=0), flagged=flagged) is None


def test_layout_limits_count_characters_without_blanks() -> None:
    name20 = PersonName("あ" * 10, "い" * 10, "ア", "イ")
    assert code_of(rules.check_subject, person(name=name20), TODAY, POLICY, flagged=()) is None
    name21 = PersonName("あ" * 11, "い" * 10, "ア", "イ")
    assert code_of(rules.check_subject, person(name=name21), TODAY, POLICY, flagged=()) == "name_too_long"
    long_address = Address("131016", "t", "1", "東" * 65)
    assert code_of(rules.check_subject, person(address=long_address), TODAY, POLICY, flagged=()) == (
        "address_too_long"
    )


def test_household_rules() -> None:
    head, wife = person(), person(resident_code="23456789010", relationship="妻", is_head=False)
    assert code_of(rules.check_household, [head, wife], TODAY, POLICY, flagged=()) is None
    leaving = replace(wife, status=Status.MOVING_OUT)
    assert (
        code_of(rules.check_household, [head, leaving], TODAY, POLICY, flagged=()) == "household_moving_out"
    )
    assert (
        code_of(rules.check_household, [head, wife], TODAY, POLICY, flagged={"23456789010"}) == "dv_support"
    )


def test_honseki_access_and_offer_and_my_number() -> None:
    assert code_of(rules.check_honseki_access, lives_here=True, registered=False) is None
    assert code_of(rules.check_honseki_access, lives_here=False, registered=True) is None
    assert code_of(rules.check_honseki_access, lives_here=False, registered=False) == "no_honseki_use"
    assert code_of(rules.check_offered, CertificateKind.RESIDENT_ITEMS, SHINJUKU_POLICY) == "not_offered"
    assert code_of(rules.check_offered, CertificateKind.DAMAGE, POLICY) is None
    assert code_of(rules.check_offered, CertificateKind.DAMAGE, replace(POLICY, offered=frozenset())) == (
        "not_offered"
    )
    assert code_of(rules.check_my_number, True, POLICY) == "my_number_not_allowed"
    assert code_of(rules.check_my_number, False, POLICY) is None


def test_current_fiscal_year_switches_in_june() -> None:
    assert rules.current_fiscal_year(dt.date(2026, 5, 31), POLICY) == 2025
    assert rules.current_fiscal_year(dt.date(2026, 6, 1), POLICY) == 2026


def test_every_reason_has_a_japanese_message_and_a_field() -> None:
    for reason in RefusalReason:
        assert reason.message.endswith("。")
        assert reason.field
        err = IssuanceRefused(reason, "detail")
        body = err.to_dict()
        assert body["code"] == reason.value and body["message"] == reason.message
        assert body["error"] == "refused" and err.http_status == 409
