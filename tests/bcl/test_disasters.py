from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from jlis.audit import AuditLog
from jlis.bcl.disasters import ResidentDesk, get_disaster, list_disasters
from jlis.bcl.identity import CardHolder
from jlis.bcl.models import ApplicationStatus, AreaPart, Channel, DamageGrade, DisasterCause, SurveyRound
from jlis.bcl.tables import DamageApplicationRow, VictimRow
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.registry import Placement

from .conftest import AGENCY, CHIYODA, OPERATOR, SHINJUKU, BclWorld, staff


def holder_of(resident_code: str, lg_code: str = CHIYODA) -> CardHolder:
    return CardHolder(resident_code, lg_code, "abc123", "card-1")


def count(world: BclWorld, table: type) -> int:
    with world.factory() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


# ------------------------------------------------------------------------------------ declaring


def test_staff_declare_a_disaster_over_towns_of_their_own_municipality(bcl_world: BclWorld) -> None:
    towns = (bcl_world.town(CHIYODA, 0), bcl_world.town(CHIYODA, 1))
    did = bcl_world.declare(CHIYODA, towns=towns)
    with bcl_world.factory() as s:
        view = get_disaster(s, did)
        assert list_disasters(s, lg_code=CHIYODA)[0].id == did
        assert list_disasters(s, lg_code=SHINJUKU) == []
    assert did == f"D{bcl_world.clock.today() - dt.timedelta(days=2):%Y%m%d}-01"
    assert view.cause is DisasterCause.HEAVY_RAIN and view.area == (AreaPart(CHIYODA, tuple(sorted(towns))),)
    assert view.declared_by == "staff-131016" and not view.closed
    assert bcl_world.declare(CHIYODA).endswith("-02")  # a second one that day


def test_declaring_is_checked_and_a_refusal_changes_nothing(bcl_world: BclWorld) -> None:
    today = bcl_world.clock.today()
    good = {"name": "地震", "cause": "earthquake", "occurred_on": today}
    cases = [
        (staff(CHIYODA), {"area": [AreaPart(SHINJUKU)]}, Forbidden),
        (staff(CHIYODA), {"area": [AreaPart(CHIYODA), AreaPart(SHINJUKU)]}, Forbidden),
        (AGENCY, {"area": [AreaPart(CHIYODA)]}, Forbidden),
        (OPERATOR, {"area": [AreaPart("131000")]}, InvalidInput),  # 東京都 itself keeps no register
        (OPERATOR, {"area": [AreaPart(CHIYODA, ("131016999999999",))]}, InvalidInput),
        (OPERATOR, {"area": [AreaPart(CHIYODA)], "name": " "}, InvalidInput),
        (OPERATOR, {"area": [AreaPart(CHIYODA)], "cause": "meteor"}, InvalidInput),
        (OPERATOR, {"area": [AreaPart(CHIYODA)], "occurred_on": today + dt.timedelta(days=1)}, InvalidInput),
    ]
    for principal, changes, error in cases:
        with pytest.raises(error), bcl_world.disasters(principal) as svc:
            svc.declare(**{**good, **changes})  # type: ignore[arg-type]
    with bcl_world.factory() as s:
        assert list_disasters(s) == []
    with bcl_world.disasters(OPERATOR) as svc:
        view = svc.declare(**good, area=[AreaPart(CHIYODA), AreaPart(SHINJUKU)])  # type: ignore[arg-type]
    assert view.covers(CHIYODA) and view.covers(SHINJUKU)


# ------------------------------------------------------------------------------------ victim register


def test_the_victim_register_lists_who_lived_in_the_area_on_the_day(bcl_world: BclWorld) -> None:
    w = bcl_world
    head = w.person(CHIYODA, town=0, banchi="1番1号")
    wife = w.person(
        CHIYODA, town=0, household_id=head.household_id, relationship="妻", given="花子", given_kana="ハナコ"
    )
    neighbour = w.person(CHIYODA, town=1, banchi="2番2号")
    elsewhere = w.person(CHIYODA, town=3, banchi="5番5号")  # a town outside the area
    died = w.person(CHIYODA, town=1, banchi="3番3号")
    w.person(SHINJUKU)  # another municipality
    did = w.declare(CHIYODA, towns=(w.town(CHIYODA, 0), w.town(CHIYODA, 1)), days_ago=2)
    with w.register(CHIYODA) as reg:
        reg.record_death(died.id, died_on=w.clock.today() - dt.timedelta(days=2))  # died in the disaster
    newcomer = w.person(CHIYODA, town=0, banchi="9番9号", days_ago=1)  # moved in after it
    with w.disasters() as svc:
        report = svc.build_victim_register(did, CHIYODA)
    assert (report.listed, report.already, report.dwellings) == (4, 0, 3)
    with w.disasters() as svc:
        victims = svc.victims(did, CHIYODA)
    codes = {v.resident_code for v in victims}
    assert codes == {head.resident_code, wife.resident_code, neighbour.resident_code, died.resident_code}
    assert elsewhere.resident_code not in codes and newcomer.resident_code not in codes
    by_code = {v.resident_code: v for v in victims}
    assert by_code[wife.resident_code].dwelling_id == by_code[head.resident_code].dwelling_id
    assert by_code[wife.resident_code].household_no == head.household_no
    assert (
        by_code[wife.resident_code].name == wife.name.full
        and by_code[wife.resident_code].relationship == "妻"
    )
    assert by_code[died.resident_code].register_status == "removed"
    # idempotent: a rebuild lists only whoever is new (nobody here)
    with w.disasters() as svc:
        again = svc.build_victim_register(did, CHIYODA)
    assert (again.listed, again.already) == (0, 4)
    assert count(w, VictimRow) == 4
    # audited: one entry per person listed, and per person read
    with w.factory() as s:
        entries = [e for e in AuditLog("access").entries(s) if e.details.get("system") == "bcl"]
    assert sorted(e.subject or "" for e in entries if e.details["purpose"] == "被災者台帳") == sorted(codes)
    assert len([e for e in entries if e.details["purpose"] == "被災者台帳閲覧"]) == 4


def test_only_staff_of_a_municipality_of_the_area_work_on_its_part(bcl_world: BclWorld) -> None:
    bcl_world.person(CHIYODA)
    did = bcl_world.declare(CHIYODA)
    with pytest.raises(Forbidden), bcl_world.disasters(staff(SHINJUKU)) as svc:
        svc.build_victim_register(did, CHIYODA)
    with pytest.raises(RuleViolation), bcl_world.disasters(staff(SHINJUKU)) as svc:
        svc.build_victim_register(did, SHINJUKU)  # not in the area
    with pytest.raises(Forbidden), bcl_world.disasters(OPERATOR) as svc:
        svc.victims(did, CHIYODA)  # the operator declares, but does not read the victim register
    with pytest.raises(NotFound), bcl_world.disasters() as svc:
        svc.victims("D20200101-01", CHIYODA)
    assert count(bcl_world, VictimRow) == 0


# ------------------------------------------------------------------------------------ surveys


def _listed(world: BclWorld) -> tuple[str, int, list[str]]:
    head = world.person(CHIYODA, banchi="1番1号")
    wife = world.person(
        CHIYODA, household_id=head.household_id, relationship="妻", given="花子", given_kana="ハナコ"
    )
    did = world.declare(CHIYODA)
    with world.disasters() as svc:
        svc.build_victim_register(did, CHIYODA)
        [dwelling] = svc.dwellings(did, CHIYODA)
    return did, dwelling.id, [head.resident_code, wife.resident_code]


def test_surveys_grade_the_dwelling_and_a_second_survey_supersedes(bcl_world: BclWorld) -> None:
    did, dwelling_id, _ = _listed(bcl_world)
    today = bcl_world.clock.today()
    with bcl_world.disasters() as svc:
        first = svc.record_survey(dwelling_id, damage_ratio=25, surveyed_on=today, note="外観目視")
        assert first.grade is DamageGrade.HALF and first.round is SurveyRound.FIRST
        assert svc.dwellings(did, CHIYODA)[0].grade is DamageGrade.HALF
        second = svc.record_survey(dwelling_id, damage_ratio=41.5, surveyed_on=today, round=2)
        assert second.grade is DamageGrade.LARGE_SCALE_HALF
        assert svc.dwellings(did, CHIYODA)[0].grade is DamageGrade.LARGE_SCALE_HALF
        assert [s.grade for s in svc.surveys(dwelling_id)] == [DamageGrade.HALF, DamageGrade.LARGE_SCALE_HALF]
    bad = [
        ({"damage_ratio": 120, "surveyed_on": today}, InvalidInput),
        ({"damage_ratio": 10, "surveyed_on": today + dt.timedelta(days=1)}, InvalidInput),
        ({"damage_ratio": 10, "surveyed_on": today - dt.timedelta(days=30)}, InvalidInput),  # before it
        ({"damage_ratio": 10, "surveyed_on": today, "round": 1}, RuleViolation),  # first after second
    ]
    for kwargs, error in bad:
        with pytest.raises(error), bcl_world.disasters() as svc:
            svc.record_survey(dwelling_id, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(Forbidden), bcl_world.disasters(staff(SHINJUKU)) as svc:
        svc.record_survey(dwelling_id, damage_ratio=60, surveyed_on=today)
    with bcl_world.disasters() as svc:
        assert len(svc.surveys(dwelling_id)) == 2


# ------------------------------------------------------------------------------------ applications


def test_a_resident_applies_online_and_staff_decide(bcl_world: BclWorld) -> None:
    did, dwelling_id, (head, wife) = _listed(bcl_world)
    with transaction(bcl_world.factory) as s:
        desk = ResidentDesk(s, bcl_world.clock, holder_of(head))
        assert [d.id for d in desk.disasters()] == [did]
        app = desk.apply(did)
    assert app.channel is Channel.ONLINE and app.status is ApplicationStatus.RECEIVED
    assert app.id == f"{did}-000001" and app.dwelling_id == dwelling_id
    with pytest.raises(RuleViolation), transaction(bcl_world.factory) as s:
        ResidentDesk(s, bcl_world.clock, holder_of(head)).apply(did)  # one open application each
    # no decision before the dwelling is surveyed
    with pytest.raises(RuleViolation) as err, bcl_world.disasters() as svc:
        svc.decide(app.id, approve=True)
    assert err.value.field == "被害認定調査"
    with bcl_world.disasters() as svc:
        svc.record_survey(dwelling_id, damage_ratio=55, surveyed_on=bcl_world.clock.today())
        decided = svc.decide(app.id, approve=True)
    assert decided.status is ApplicationStatus.APPROVED and decided.grade is DamageGrade.TOTAL
    with pytest.raises(RuleViolation), bcl_world.disasters() as svc:
        svc.decide(app.id, approve=False, reason="重複")  # decided once
    with transaction(bcl_world.factory) as s:
        [mine] = ResidentDesk(s, bcl_world.clock, holder_of(head)).applications()
        assert ResidentDesk(s, bcl_world.clock, holder_of(wife)).applications() == []
    assert mine.status is ApplicationStatus.APPROVED
    with bcl_world.factory() as s:
        own = [e for e in AuditLog("access").entries(s) if e.actor == "resident:abc123"]
    assert {e.details["purpose"] for e in own} >= {
        "被災者台帳(本人)",
        "罹災証明書申請",
        "罹災証明書申請(本人)",
    }
    assert {e.subject for e in own if e.details["purpose"] == "罹災証明書申請(本人)"} == {head, wife}


def test_counter_application_rejection_and_a_new_application(bcl_world: BclWorld) -> None:
    did, _, (head, _wife) = _listed(bcl_world)
    with bcl_world.disasters() as svc:
        app = svc.apply_at_counter(did, CHIYODA, head)
        assert app.channel is Channel.COUNTER
        with pytest.raises(InvalidInput):
            svc.decide(app.id, approve=False, reason="")  # a rejection says why
    with bcl_world.disasters() as svc:
        rejected = svc.decide(app.id, approve=False, reason="被災住家ではない")
        assert rejected.status is ApplicationStatus.REJECTED and rejected.reason == "被災住家ではない"
        again = svc.apply_at_counter(did, CHIYODA, head)
        assert again.id.endswith("-000002")
        listed = svc.applications(did, CHIYODA, status=ApplicationStatus.RECEIVED)
    assert [a.id for a in listed] == [again.id]


def test_applications_are_refused_for_people_not_listed_and_after_closing(bcl_world: BclWorld) -> None:
    did, _, (head, _) = _listed(bcl_world)
    stranger = bcl_world.person(CHIYODA, banchi="7番7号", days_ago=1)  # moved in after the disaster
    with pytest.raises(RuleViolation) as err, transaction(bcl_world.factory) as s:
        ResidentDesk(s, bcl_world.clock, holder_of(stranger.resident_code)).apply(did)
    assert err.value.field == "被災者台帳"
    with pytest.raises(Forbidden), bcl_world.disasters(staff(SHINJUKU)) as svc:
        svc.apply_at_counter(did, CHIYODA, head)
    with bcl_world.disasters() as svc:
        assert svc.close(did).closed
    with pytest.raises(RuleViolation), transaction(bcl_world.factory) as s:
        ResidentDesk(s, bcl_world.clock, holder_of(head)).apply(did)
    assert count(bcl_world, DamageApplicationRow) == 0


def test_a_person_who_moved_within_the_municipality_afterwards_is_listed_by_hand(bcl_world: BclWorld) -> None:
    """The build does not find a person who moved within the municipality after the disaster (the
    register row describes the new address only); staff list them at the damaged dwelling."""
    w = bcl_world
    person = w.person(CHIYODA, town=0)
    area_town = w.town(CHIYODA, 0)
    did = w.declare(CHIYODA, towns=(area_town,), days_ago=2)
    with w.register(CHIYODA) as reg:
        reg.record_relocation(person.id, Placement(w.town(CHIYODA, 4), "1番1号"), moved_on=w.clock.today())
    with w.disasters() as svc:
        assert svc.build_victim_register(did, CHIYODA).listed == 0
        with pytest.raises(RuleViolation):
            svc.add_victim(did, CHIYODA, person.resident_code, town_id=w.town(CHIYODA, 4), banchi="1番1号")
        victim = svc.add_victim(did, CHIYODA, person.resident_code, town_id=area_town, banchi="1番1号")
    assert victim.address == w.geo.address_text(area_town, "1番1号")
    assert victim.name == person.name.full
    with pytest.raises(RuleViolation), w.disasters() as svc:
        svc.add_victim(did, CHIYODA, person.resident_code, town_id=area_town, banchi="1番1号")
    with pytest.raises(NotFound), w.disasters() as svc:
        svc.add_victim(did, CHIYODA, "12345678903", town_id=area_town, banchi="1番1号")
    with w.disasters() as svc:
        assert [d.address for d in svc.dwellings(did, CHIYODA)] == [victim.address]


def test_the_database_itself_keeps_one_open_application_per_person(bcl_world: BclWorld) -> None:
    did, dwelling_id, (head, _) = _listed(bcl_world)
    now = bcl_world.clock.now()

    def row(n: int, status: str) -> DamageApplicationRow:
        return DamageApplicationRow(
            id=f"{did}-{n:06d}", disaster_id=did, lg_code=CHIYODA, resident_code=head, household_no="1",
            dwelling_id=dwelling_id, channel="counter", applied_at=now, applied_by="t", status=status,
        )  # fmt: skip

    with transaction(bcl_world.factory) as s:
        s.add_all([row(1, "rejected"), row(2, "rejected"), row(3, "received")])
    with pytest.raises(IntegrityError), transaction(bcl_world.factory) as s:
        s.add(row(4, "approved"))
    assert count(bcl_world, DamageApplicationRow) == 3
