"""The synthetic population: realistic shape, valid data, the same people for the same seed, and
every tier of the network loaded with them."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.codes import MyNumber, ResidentCode
from jlis.juki.tables import CsIdentity, NationalIdentity, PrefIdentity
from jlis.masters import load_geography
from jlis.registry.models import check_kana
from jlis.registry.tables import HistoryRow, HouseholdRow, ResidentRow
from jlis.seed import PopulationGenerator, Seeder, choose_municipalities

SECRET = b"seed-test-secret-000000000000000"


def test_generation_is_realistic_and_repeatable(clock: FixedClock) -> None:
    geo = load_geography()
    lg_codes = choose_municipalities(geo, 4)
    assert len({geo.municipality(c).pref_code for c in lg_codes}) == 2  # two prefectures
    households = list(PopulationGenerator(geo, lg_codes, clock.today(), seed=9).households(6000))
    again = list(PopulationGenerator(geo, lg_codes, clock.today(), seed=9).households(6000))
    assert households == again
    people = [p for hh in households for p in hh.members]
    assert len(people) == 6000
    ages = [(clock.today() - p.birth_date).days // 365 for p in people]
    assert min(ages) == 0 and max(ages) >= 95 and all(0 <= a <= 101 for a in ages)
    foreign = [p for p in people if p.nationality != "JP"]
    assert 0.01 < len(foreign) / len(people) < 0.06
    assert any(p.alias for p in foreign) and not any(p.alias for p in people if p.nationality == "JP")
    assert 0 < sum(1 for p in people if p.former_surname) < len(people) * 0.05
    sizes = Counter(len(hh.members) for hh in households)
    assert sizes[1] > sizes[5] > 0
    for hh in households:
        assert hh.members[0].relationship == "世帯主"
        assert hh.town.lg_code == hh.lg_code
        assert (hh.honseki_lg_code is None) == (hh.members[0].nationality != "JP")
    for p in people:
        check_kana("氏の振り仮名", p.family_kana)
        assert p.birth_date <= clock.today()


def test_seeder_writes_the_register_and_every_tier(factory: sessionmaker[Session], clock: FixedClock) -> None:
    geo = load_geography()
    lg_codes = choose_municipalities(geo, 2)
    report = Seeder(factory, clock=clock, geography=geo, secret=SECRET).run(lg_codes, 700, seed=2, chunk=300)
    assert report.residents == 700
    with factory() as s:

        def count(table: type, *where: object) -> int:
            return s.execute(select(func.count()).select_from(table).where(*where)).scalar_one()  # type: ignore[arg-type]

        assert count(ResidentRow) == count(HistoryRow) == count(NationalIdentity) == count(CsIdentity) == 700
        assert count(PrefIdentity) == 700 and count(HouseholdRow) == report.households
        for row in s.execute(select(ResidentRow).limit(50)).scalars():
            ResidentCode.parse(row.resident_code)
            MyNumber.parse(row.my_number)
            assert geo.town(row.town_id).lg_code == row.lg_code
            assert row.birth_date <= clock.today() and row.address_since >= row.birth_date
        heads = s.execute(select(HouseholdRow.head_resident_id)).scalars().all()
        assert None not in heads
    # a second run adds people without clashing with the first
    Seeder(factory, clock=clock, geography=geo, secret=SECRET).run(lg_codes, 100, seed=3)
    with factory() as s:
        assert s.execute(select(func.count()).select_from(NationalIdentity)).scalar_one() == 800
