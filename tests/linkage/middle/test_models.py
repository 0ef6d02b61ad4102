"""Pure rules of the middle server: numbering, the 住民票関係情報 replica, the synthetic replicas."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jlis.errors import InvalidInput
from jlis.linkage.middle.models import (
    PersonFacts,
    RegisterFacts,
    age_on,
    check_local_id,
    check_member_id,
    child_allowance_monthly,
    fiscal_tax_year,
    juminhyo_replica,
    juminhyo_status,
    local_id,
    member_lg_code,
    synthetic_medical_insurance,
    synthetic_pension,
    synthetic_replicas,
)
from jlis.linkage.middle.schemas import load_replica_schemas

TODAY = dt.date(2026, 11, 26)
SCHEMAS = load_replica_schemas()


def test_local_ids() -> None:
    assert local_id("lg-131016", 1) == "131016000000001"
    assert local_id("nenkin", 42) == "000000000000042"
    assert check_local_id(local_id("lg-131016", 999_999_999)) == "131016999999999"
    for seq in (0, 1_000_000_000):
        with pytest.raises(InvalidInput):
            local_id("lg-131016", seq)
    for bad in ("13101600000001", "13101600000000x", 131016000000001):
        with pytest.raises(InvalidInput) as err:
            check_local_id(bad)  # type: ignore[arg-type]
        assert err.value.field == "団体内統合宛名番号"


def test_member_ids() -> None:
    assert check_member_id("lg-131016") == "lg-131016" and member_lg_code("lg-131016") == "131016"
    assert check_member_id("myna-portal") == "myna-portal" and member_lg_code("nenkin") is None
    for bad in ("LG-131016", "lg-", "lg-13101", "x", "nenkin-", "日本年金機構", ""):
        with pytest.raises(InvalidInput):
            check_member_id(bad)


def test_status_of_a_juminhyo_replica() -> None:
    assert juminhyo_status("active", "initial") == "resident"
    assert juminhyo_status("moving_out", "move_out") == "resident"
    assert juminhyo_status("removed", "death") == "deceased"
    assert juminhyo_status("removed", "move_out_confirmed") == "moved_out"


def facts(**over: object) -> RegisterFacts:
    values: dict[str, object] = {
        "name": "山田\u3000花子",
        "name_kana": "ヤマダ\u3000ハナコ",
        "birth_date": dt.date(1990, 1, 1),
        "sex": "female",
        "address": "東京都千代田区千代田1番1号",
        "resident_since": dt.date(2020, 4, 1),
        "relationship": "世帯主",
        "householder_name": "山田\u3000花子",
        "household_size": 2,
        "status": "active",
        "last_reason": "initial",
    }
    return RegisterFacts(**(values | over))  # type: ignore[arg-type]


def test_juminhyo_replica_fits_its_schema() -> None:
    stored = SCHEMAS["juminhyo"].validate(juminhyo_replica(facts()))
    assert stored["status"] == "resident" and stored["household_size"] == 2
    assert stored["birth_date"] == "1990-01-01"
    removed = SCHEMAS["juminhyo"].validate(juminhyo_replica(facts(status="removed", last_reason="death")))
    assert removed["status"] == "deceased"
    assert "householder_name" not in removed and "household_size" not in removed


def test_age_and_tax_year() -> None:
    assert age_on(dt.date(2000, 11, 26), TODAY) == 26
    assert age_on(dt.date(2000, 11, 27), TODAY) == 25
    assert fiscal_tax_year(dt.date(2026, 5, 31)) == 2025
    assert fiscal_tax_year(dt.date(2026, 6, 1)) == 2026


def test_child_allowance_amounts() -> None:
    # one under 3, one of 10, a third child (of 2) counts 30,000; an 19-year-old is out
    kids = [dt.date(2025, 1, 1), dt.date(2016, 5, 1), dt.date(2024, 2, 1), dt.date(2007, 4, 10)]
    assert child_allowance_monthly(kids, TODAY) == 10_000 + 15_000 + 30_000
    # covered until the 31 March after the 18th birthday
    assert child_allowance_monthly([dt.date(2008, 5, 1)], dt.date(2027, 3, 31)) == 10_000
    assert child_allowance_monthly([dt.date(2008, 5, 1)], dt.date(2027, 4, 1)) == 0
    assert child_allowance_monthly([dt.date(2008, 2, 1)], dt.date(2026, 3, 31)) == 10_000
    assert child_allowance_monthly([dt.date(2008, 2, 1)], dt.date(2026, 4, 1)) == 0


def person(birth: dt.date, *, head: bool = False, children: tuple[dt.date, ...] = ()) -> PersonFacts:
    return PersonFacts("131016", birth, head, 1 + len(children), children)


def test_synthetic_replicas_follow_age() -> None:
    child = synthetic_replicas(person(dt.date(2015, 1, 1)), random.Random(1), TODAY)
    assert "local_tax" not in child and "ltc" not in child
    worker = synthetic_replicas(
        person(dt.date(1985, 1, 1), head=True, children=(dt.date(2020, 1, 1),)), random.Random(1), TODAY
    )
    assert (
        worker["child_allowance"]["children"] == 1 and worker["child_allowance"]["monthly_amount"] == 10_000
    )
    assert worker["local_tax"]["tax_year"] == 2026 and worker["local_tax"]["dependents"] == 1
    assert "ltc" not in worker
    elder = synthetic_replicas(person(dt.date(1950, 6, 1)), random.Random(1), TODAY)
    assert "ltc" in elder and "nhi" not in elder  # 75+: 後期高齢者医療, not 国保
    assert synthetic_pension(person(dt.date(1950, 6, 1)), random.Random(1), TODAY) is not None
    assert synthetic_pension(person(dt.date(1970, 6, 1)), random.Random(1), TODAY) is None


@settings(max_examples=150, deadline=None)
@given(
    birth=st.dates(min_value=dt.date(1920, 1, 1), max_value=TODAY),
    head=st.booleans(),
    kids=st.lists(st.dates(min_value=dt.date(2000, 1, 1), max_value=TODAY), max_size=4),
    seed=st.integers(0, 10**6),
)
def test_synthetic_replicas_always_fit_their_schemas_and_repeat(
    birth: dt.date, head: bool, kids: list[dt.date], seed: int
) -> None:
    p = person(birth, head=head, children=tuple(kids) if head else ())
    first = synthetic_replicas(p, random.Random(seed), TODAY)
    assert first == synthetic_replicas(p, random.Random(seed), TODAY)
    for category, data in first.items():
        SCHEMAS[category].validate(data)
    pension = synthetic_pension(p, random.Random(seed), TODAY)
    if pension is not None:
        SCHEMAS["pension"].validate(pension)
        assert dt.date.fromisoformat(SCHEMAS["pension"].validate(pension)["started_on"]) <= TODAY  # type: ignore[arg-type]
    medical = synthetic_medical_insurance(p, random.Random(seed), TODAY, in_nhi="nhi" in first)
    if medical is not None:
        SCHEMAS["medical_insurance"].validate(medical)
        assert "nhi" not in first
    if "child_allowance" in first:
        assert first["child_allowance"]["certified_on"] <= TODAY  # type: ignore[operator]
