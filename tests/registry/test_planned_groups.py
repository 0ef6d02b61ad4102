"""Planned counter groups (SQLite): a group of counter actions runs on a snapshot with its writes
recorded, and holds the write lock only to replay them; what the plan cannot vouch for runs after
it, the ordinary way, and the outcome is that of a serial run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from jlis.groupcommit import GroupCommit, _Job
from jlis.messaging.tables import OutboxRow
from jlis.registry import PersonName, Placement, ResidentView, Sex
from jlis.registry.desk import counter_group_commit
from jlis.registry.service import ACCESS_LOG, NewPerson
from jlis.registry.store import HouseholdIds
from jlis.registry.tables import HouseholdRow, RegisterVersionRow, ResidentRow

from ..conftest import sqlite_engine
from .conftest import Counter, history_reasons


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: groups are planned there alone (PostgreSQL's writers do not queue on one lock;
    tests/test_groupcommit.py checks that the group commit stops planning there)."""
    with sqlite_engine(tmp_path / "test.sqlite3") as eng:
        yield eng


def _group(desk: GroupCommit, works: list[Callable[[Session], Any]]) -> list[Any]:
    """Run ``works`` as one group (as the committer would), and each caller's result or error."""
    jobs = [_Job(w) for w in works]
    desk._run(jobs)
    return [j.future.exception() or j.future.result() for j in jobs]


def _relocate(counter: Counter, who: ResidentView, town: int, banchi: str) -> Callable[[Session], Any]:
    today = counter.clock.today()
    return lambda s: counter.service_on(s).record_relocation(
        who.id, Placement(counter.town(index=town), banchi), moved_on=today
    )[0]


def test_a_planned_group_writes_what_a_serial_run_would(
    counter: Counter, factory: sessionmaker[Session]
) -> None:
    people = [counter.move_in(given=f"一郎{'一二三四'[i]}") for i in range(4)]
    desk = counter_group_commit(factory)
    today = counter.clock.today()

    def rename(s: Session) -> ResidentView:
        svc = counter.service_on(s)
        current = svc.get(people[2].id, purpose="異動処理")
        name = PersonName("佐藤", current.name.given, "サトウ", current.name.given_kana)
        return svc.record_name_change(people[2].id, name, changed_on=today, cause="婚姻")

    results = _group(
        desk,
        [
            _relocate(counter, people[0], 1, "3番"),
            lambda s: counter.service_on(s).record_correction(
                people[1].id, {"banchi": "9番地"}, reason="誤記"
            ),
            rename,
            _relocate(counter, people[3], 2, "4番"),
        ],
    )
    assert not any(isinstance(r, BaseException) for r in results), results
    assert (desk.planned_groups, desk.planned_actions, desk.given_up, desk.replays_failed) == (1, 4, 0, 0)
    with factory() as s:
        rows = {r.id: r for r in s.execute(select(ResidentRow)).scalars()}
        assert rows[people[0].id].banchi == "3番" and rows[people[0].id].version == people[0].version + 1
        assert rows[people[1].id].banchi == "9番地"
        assert rows[people[2].id].family_name == "佐藤"
        assert rows[people[3].id].town_id == counter.town(index=2)
        # What each caller got is what was committed.
        assert results[2].name.family == "佐藤" and results[2].version == rows[people[2].id].version
        # Every change sent its messages, and the audited read is in the access log, chained.
        sent = s.execute(
            select(func.count())
            .select_from(OutboxRow)
            .where(OutboxRow.key.in_([p.resident_code for p in people]))
        ).scalar_one()
        assert sent >= 4
        assert [e.subject for e in ACCESS_LOG.entries(s)][-1] == people[2].resident_code
        assert ACCESS_LOG.verify(s).ok
        assert s.get(RegisterVersionRow, counter.lg_code) is not None
    for p in people:
        assert history_reasons(factory, p.id)[-1][0] == p.version + 1


def test_an_action_that_reads_what_an_earlier_one_of_its_group_changed_runs_after_the_plan(
    counter: Counter, factory: sessionmaker[Session]
) -> None:
    """The snapshot does not show the first relocation: the second, of the same person, is given up
    by the plan and runs after it, on the committed first one."""
    who = counter.move_in()
    desk = counter_group_commit(factory)
    first, second = _group(desk, [_relocate(counter, who, 1, "5番"), _relocate(counter, who, 2, "6番")])
    assert (desk.planned_actions, desk.given_up) == (1, 1)
    assert (first.version, second.version) == (who.version + 1, who.version + 2)
    assert second.previous_address == first.address.text
    assert [r for _, r in history_reasons(factory, who.id)] == ["move_in", "relocation", "relocation"]


def test_a_member_of_a_household_an_earlier_action_changed_is_read_after_the_plan(
    counter: Counter, factory: sessionmaker[Session]
) -> None:
    """A resident counts with his household: the head moving out alone (世帯分離) changes who the
    remaining members are, so a later action on a member is given up by the plan."""
    head = counter.move_in(given="父")
    child = counter.move_in(given="子", household_id=head.household_id, relationship="子")
    desk = counter_group_commit(factory)
    moved, corrected = _group(
        desk,
        [
            _relocate(counter, head, 1, "7番"),
            lambda s: counter.service_on(s).record_correction(child.id, {"banchi": "8番地"}, reason="誤記"),
        ],
    )
    assert (desk.planned_actions, desk.given_up) == (1, 1)
    assert moved.household_id != head.household_id  # the head founded a new household
    assert corrected.is_head is False and corrected.household_id == head.household_id


def test_a_write_by_another_process_since_the_snapshot_makes_the_group_run_the_ordinary_way(
    counter: Counter, factory: sessionmaker[Session]
) -> None:
    """The group only reads b; another process corrects b after the plan's snapshot was taken. The
    replay's guard sees the register's version moved: the group runs again the ordinary way, and
    the read shows the correction."""
    a, b = counter.move_in(given="甲"), counter.move_in(given="乙")
    desk = counter_group_commit(factory)
    today = counter.clock.today()
    meddled: list[bool] = []

    def relocate_while_another_writes(s: Session) -> ResidentView:
        (view,) = counter.service_on(s).record_relocation(
            a.id, Placement(counter.town(index=1), "10番"), moved_on=today
        )
        if not meddled:
            meddled.append(True)
            with counter.service() as other:
                other.record_correction(b.id, {"banchi": "11番地"}, reason="誤記")
        return view

    moved, read = _group(desk, [relocate_while_another_writes, lambda s: counter.service_on(s).get(b.id)])
    assert desk.replays_failed == 1 and desk.planned_groups == 0
    assert moved.version == a.version + 1
    assert read.address.banchi == "11番地" and read.version == b.version + 1
    # A refused replay costs a rerun, and refusals come in runs: the next group is not planned,
    # the one after it is again.
    for planned in (0, 1):
        _group(desk, [lambda s: counter.service_on(s).get(b.id)])
        assert desk.planned_groups == planned


def test_an_action_a_plan_cannot_run_runs_after_it(counter: Counter, factory: sessionmaker[Session]) -> None:
    """A birth inserts a resident, whose id only the database gives: given up by the plan, it runs
    the ordinary way; the other actions of the group are replayed."""
    mother = counter.move_in(given="母")
    other = counter.move_in(given="他")
    desk = counter_group_commit(factory)
    born = counter.clock.today()
    results = _group(
        desk,
        [
            lambda s: counter.service_on(s).record_birth(
                NewPerson(PersonName("山田", "赤子", "ヤマダ", "アカゴ"), born, Sex.FEMALE),
                household_id=mother.household_id,
            ),
            _relocate(counter, other, 3, "13番"),
        ],
    )
    assert not any(isinstance(r, BaseException) for r in results), results
    assert (desk.planned_actions, desk.given_up) == (1, 1)
    assert results[0].household_id == mother.household_id


def test_a_refused_action_of_a_planned_group_fails_alone_leaving_nothing(
    counter: Counter, factory: sessionmaker[Session]
) -> None:
    a, b = counter.move_in(given="甲"), counter.move_in(given="乙")
    desk = counter_group_commit(factory)
    with factory() as s:
        entries = len(ACCESS_LOG.entries(s))

    def read_then_refuse(s: Session) -> None:
        svc = counter.service_on(s)
        svc.get(a.id, purpose="異動処理")  # held for the access log, then given up with the action
        svc.record_correction(a.id, {}, reason="誤記")  # no item: refused

    refused, moved = _group(desk, [read_then_refuse, _relocate(counter, b, 1, "14番")])
    assert type(refused).__name__ == "InvalidInput"
    assert moved.version == b.version + 1
    with factory() as s:
        # The refused caller's read was written once, by its ordinary run (which got as far as
        # the refusal and was rolled back): nothing of the given-up plan part.
        assert len(ACCESS_LOG.entries(s)) == entries
    assert [r for _, r in history_reasons(factory, a.id)] == ["move_in"]


def test_households_founded_in_a_plan_take_reserved_ids_that_ordinary_inserts_never_reuse(
    counter: Counter, factory: sessionmaker[Session], engine: Engine
) -> None:
    head = counter.move_in(given="父")
    child = counter.move_in(given="子", household_id=head.household_id, relationship="子")
    desk = counter_group_commit(factory)
    (moved,) = _group(desk, [_relocate(counter, child, 1, "15番")])
    assert desk.planned_actions == 1
    assert moved.household_id != head.household_id and moved.is_head
    assert moved.household_no == f"{moved.household_id:010d}"
    later = counter.move_in(given="後")  # an ordinary insert: above the reserved block
    assert later.household_id >= moved.household_id + HouseholdIds.BLOCK
    with engine.connect() as conn:
        seq = conn.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'reg_households'")).scalar()
    assert seq == later.household_id
    with factory() as s:
        assert s.get(HouseholdRow, moved.household_id).head_resident_id == child.id  # type: ignore[union-attr]


def test_every_writing_action_counts_a_write_of_its_register_and_a_read_does_not(
    counter: Counter, factory: sessionmaker[Session]
) -> None:
    def version() -> int | None:
        with factory() as s:
            row = s.get(RegisterVersionRow, counter.lg_code)
            return None if row is None else row.version

    who = counter.move_in()
    before = version()
    assert before is not None and before >= 1
    with counter.service() as svc:
        svc.get(who.id)
    assert version() == before
    with counter.service() as svc:
        svc.record_correction(who.id, {"banchi": "2番地"}, reason="誤記")
    assert version() == before + 1
