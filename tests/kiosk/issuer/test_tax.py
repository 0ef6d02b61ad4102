"""住民税 assessments on the database: recording, reading (audited), and the deterministic seed."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, RuleViolation
from jlis.kiosk.issuer.tables import TaxAssessmentRow
from jlis.kiosk.issuer.tax import TaxRoll, seed_assessments, synthetic_income

from .conftest import CENTER, CHIYODA, SHINJUKU, IssuerWorld, staff

SEED = b"tax-seed"


def test_record_and_get(world: IssuerWorld) -> None:
    p = world.person()
    with transaction(world.factory) as s:
        made = TaxRoll(s, world.clock, CHIYODA, staff()).record(
            p.resident_code,
            2026,
            salary_income=4_000_000,
            other_income=0,
            dependents=2,
            address_on_jan1="東京都新宿区",
        )
    with transaction(world.factory) as s:
        got = TaxRoll(s, world.clock, CHIYODA, CENTER).get(p.resident_code, 2026)
        assert TaxRoll(s, world.clock, CHIYODA, CENTER).get(p.resident_code, 2025) is None
    assert got == made
    assert got.figures.dependents == 2 and got.assessed_on == dt.date(2026, 6, 1)
    with transaction(world.factory) as s, pytest.raises(RuleViolation):
        TaxRoll(s, world.clock, CHIYODA, staff()).record(
            p.resident_code, 2026, salary_income=1, other_income=0, dependents=0, address_on_jan1="x"
        )


@pytest.mark.parametrize(
    ("kw", "error", "field"),
    [
        ({"fiscal_year": 1999}, InvalidInput, "年度"),
        ({"salary_income": -5}, InvalidInput, "給与収入"),
        ({"address_on_jan1": ""}, InvalidInput, "1月1日現在の住所"),
        ({"principal": CENTER}, Forbidden, "principal"),
        ({"principal": staff(SHINJUKU)}, Forbidden, "地方公共団体コード"),
    ],
)
def test_record_refusals(
    world: IssuerWorld, kw: dict[str, object], error: type[Exception], field: str
) -> None:
    p = world.person()
    args: dict[str, object] = {
        "fiscal_year": 2026, "salary_income": 1_000_000, "other_income": 0, "dependents": 0,
        "address_on_jan1": "東京都千代田区", "principal": staff(),
    }  # fmt: skip
    args.update(kw)
    principal = args.pop("principal")
    year = args.pop("fiscal_year")
    with pytest.raises(error) as info, transaction(world.factory) as s:
        TaxRoll(s, world.clock, CHIYODA, principal).record(p.resident_code, year, **args)  # type: ignore[arg-type]
    assert info.value.context["field"] == field  # type: ignore[attr-defined]
    assert world.count(TaxAssessmentRow) == 0


def test_synthetic_income_is_deterministic_and_follows_age() -> None:
    a = synthetic_income(SEED, "12345678906", 2026, 45)
    assert a == synthetic_income(SEED, "12345678906", 2026, 45)
    assert synthetic_income(SEED, "12345678906", 2026, 10) == (0, 0, 0)
    earners = [synthetic_income(SEED, f"{i:011d}", 2026, 45) for i in range(200)]
    assert sum(1 for s, _, _ in earners if s > 0) > 150
    pensioners = [synthetic_income(SEED, f"{i:011d}", 2026, 80) for i in range(50)]
    assert all(d == 0 for _, _, d in pensioners)
    assert sum(1 for _, o, _ in pensioners if o > 0) > 40
    another_seed = [synthetic_income(b"other", f"{i:011d}", 2026, 45) for i in range(20)]
    assert another_seed != earners[:20]


def test_seed_assessments(world: IssuerWorld) -> None:
    old = world.person()
    world.person(given="次郎", given_kana="ジロウ", banchi="2番2号")
    # both moved in two days ago (2026-11-24): after 1 January 2026, so not assessed for 2026 here
    with transaction(world.factory) as s:
        made = seed_assessments(s, world.clock, CHIYODA, 2026, staff(), world.container.registry, seed=SEED)
    assert made == 0
    with transaction(world.factory) as s:
        made = seed_assessments(s, world.clock, CHIYODA, 2027, staff(), world.container.registry, seed=SEED)
    assert made == 2
    with transaction(world.factory) as s:  # idempotent
        assert (
            seed_assessments(s, world.clock, CHIYODA, 2027, staff(), world.container.registry, seed=SEED) == 0
        )
    with world.factory() as s:
        row = s.execute(
            select(TaxAssessmentRow).where(TaxAssessmentRow.resident_code == old.resident_code)
        ).scalar_one()
    salary, other, dependents = synthetic_income(SEED, old.resident_code, 2027, 46)
    assert (row.salary_income, row.other_income, row.dependents) == (salary, other, dependents)
    assert row.address_on_jan1 == old.address.text
    with transaction(world.factory) as s, pytest.raises(Forbidden):
        seed_assessments(s, world.clock, CHIYODA, 2027, CENTER, world.container.registry, seed=SEED)
