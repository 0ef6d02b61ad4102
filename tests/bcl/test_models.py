from __future__ import annotations

import datetime as dt

import pytest

from jlis.bcl.models import (
    GRADE_THRESHOLDS,
    AreaPart,
    DamageGrade,
    DisasterCause,
    Schedule,
    SurveyRound,
    application_id,
    check_area,
    check_occurred_on,
    check_schedule,
    disaster_id,
    grade_for_ratio,
    normalise_serial,
    parse_disaster_id,
    was_resident_on,
)
from jlis.clock import JST
from jlis.errors import InvalidInput

CHIYODA = "131016"


@pytest.mark.parametrize(
    ("ratio", "grade"),
    [
        (100, DamageGrade.TOTAL),
        (50, DamageGrade.TOTAL),
        (49.9, DamageGrade.LARGE_SCALE_HALF),
        (40, DamageGrade.LARGE_SCALE_HALF),
        (39.99, DamageGrade.MEDIUM_SCALE_HALF),
        (30, DamageGrade.MEDIUM_SCALE_HALF),
        (29, DamageGrade.HALF),
        (20, DamageGrade.HALF),
        (19.5, DamageGrade.SEMI_HALF),
        (10, DamageGrade.SEMI_HALF),
        (9.99, DamageGrade.PARTIAL),
        (0, DamageGrade.PARTIAL),
    ],
)
def test_grade_follows_the_damage_ratio_at_each_boundary(ratio: float, grade: DamageGrade) -> None:
    assert grade_for_ratio(ratio) is grade


@pytest.mark.parametrize("bad", [-0.1, 100.01, "30", True])
def test_a_ratio_outside_0_to_100_or_not_a_number_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInput) as err:
        grade_for_ratio(bad)  # type: ignore[arg-type]
    assert err.value.field == "損害割合"


def test_the_six_grades_have_the_labels_of_a_damage_certificate() -> None:
    assert [g.label for g in DamageGrade] == [
        "全壊",
        "大規模半壊",
        "中規模半壊",
        "半壊",
        "準半壊",
        "準半壊に至らない(一部損壊)",
    ]
    assert {g for _, g in GRADE_THRESHOLDS} == set(DamageGrade)


def test_grades_and_causes_parse_from_value_or_japanese_label() -> None:
    assert DamageGrade.parse("大規模半壊") is DamageGrade.LARGE_SCALE_HALF
    assert DamageGrade.parse("一部損壊") is DamageGrade.PARTIAL
    assert DamageGrade.parse("half") is DamageGrade.HALF
    assert DisasterCause.parse("地震") is DisasterCause.EARTHQUAKE
    with pytest.raises(InvalidInput):
        DamageGrade.parse("ほぼ全壊")
    with pytest.raises(InvalidInput):
        DisasterCause.parse("meteor")
    assert SurveyRound.parse("2") is SurveyRound.SECOND
    with pytest.raises(InvalidInput):
        SurveyRound.parse(3)


def test_area_needs_a_municipality_each_once_and_its_own_towns() -> None:
    with pytest.raises(InvalidInput, match="at least one"):
        check_area([])
    with pytest.raises(InvalidInput) as err:
        check_area([AreaPart(CHIYODA), AreaPart(CHIYODA)])
    assert err.value.field == "area[1].lg_code"
    with pytest.raises(InvalidInput) as err:
        check_area([AreaPart(CHIYODA, ("131041000000001",))])
    assert err.value.rule == "must be towns of that municipality"
    with pytest.raises(InvalidInput):
        check_area([AreaPart(CHIYODA, ("1310161", "1310161"))])
    (part,) = check_area([AreaPart(CHIYODA, ("1310169", "1310161"))])
    assert part.town_ids == ("1310161", "1310169")
    assert part.covers(CHIYODA, "1310161") and not part.covers(CHIYODA, "1310162")
    assert AreaPart(CHIYODA).covers(CHIYODA, "anything") and not AreaPart(CHIYODA).covers("131041", "x")


def test_occurred_on_is_not_in_the_future_nor_long_ago() -> None:
    today = dt.date(2026, 11, 26)
    assert check_occurred_on(today, today) == today
    with pytest.raises(InvalidInput):
        check_occurred_on(today + dt.timedelta(days=1), today)
    with pytest.raises(InvalidInput):
        check_occurred_on(dt.date(2020, 1, 1), today)


def test_who_lived_there_on_the_day() -> None:
    day = dt.date(2026, 11, 20)
    before, after = day - dt.timedelta(days=1), day + dt.timedelta(days=1)
    assert was_resident_on(status="active", address_since=before, removed_on=None, day=day)
    assert was_resident_on(status="active", address_since=day, removed_on=None, day=day)
    assert not was_resident_on(status="active", address_since=after, removed_on=None, day=day)
    # died in the disaster or moved away afterwards: still a victim
    assert was_resident_on(status="removed", address_since=before, removed_on=day, day=day)
    assert was_resident_on(status="removed", address_since=before, removed_on=after, day=day)
    assert not was_resident_on(status="removed", address_since=before, removed_on=before, day=day)
    assert was_resident_on(status="moving_out", address_since=before, removed_on=None, day=day)


def test_identifiers() -> None:
    did = disaster_id(dt.date(2026, 11, 20), 1)
    assert did == "D20261120-01"
    assert parse_disaster_id(f" {did} ") == did
    assert application_id(did, 12) == "D20261120-01-000012"
    with pytest.raises(InvalidInput):
        parse_disaster_id("20261120-01")
    with pytest.raises(InvalidInput):
        disaster_id(dt.date(2026, 11, 20), 100)


def test_serials_are_normalised_like_jpki_stores_them() -> None:
    assert normalise_serial("0x00AB:CD") == "abcd"
    assert normalise_serial("0") == "0"
    with pytest.raises(InvalidInput):
        normalise_serial("xyz")
    with pytest.raises(InvalidInput):
        normalise_serial("")


def test_schedule_runs_once_after_a_long_outage_and_keeps_its_grid() -> None:
    start = dt.datetime(2026, 11, 26, 2, 0, tzinfo=JST)
    s = Schedule(CHIYODA, dt.timedelta(hours=6), start, keep=3)
    assert not s.due(start - dt.timedelta(seconds=1))
    assert s.due(start)
    assert s.after_run(start) == start + dt.timedelta(hours=6)
    assert s.after_run(start + dt.timedelta(hours=1)) == start + dt.timedelta(hours=6)
    # down for a day and a bit: the next slot is on the 6-hour grid after now, not in the past
    late = start + dt.timedelta(hours=25)
    assert s.after_run(late) == start + dt.timedelta(hours=30)
    assert s.after_run(start - dt.timedelta(hours=1)) == start


def test_schedule_limits() -> None:
    with pytest.raises(InvalidInput) as err:
        check_schedule(dt.timedelta(minutes=1), 3)
    assert err.value.field == "interval"
    with pytest.raises(InvalidInput) as err:
        check_schedule(dt.timedelta(hours=1), 0)
    assert err.value.field == "keep"
    check_schedule(dt.timedelta(hours=1), 1)
