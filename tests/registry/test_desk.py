"""The counter's group commit: actions of one group write their history rows, messages and audited
reads in bulk at the group's end, in the order the actions made them, and a refused action leaves
none."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.errors import RuleViolation
from jlis.groupcommit import GroupCommit
from jlis.messaging.tables import OutboxRow
from jlis.registry import NewPerson, PersonName, Placement, ResidentView, Sex, store
from jlis.registry.desk import counter_group_commit
from jlis.registry.events import TOPIC_IDENTITY
from jlis.registry.service import ACCESS_LOG
from jlis.registry.tables import HistoryRow

from .conftest import Counter


def test_a_group_writes_history_and_messages_in_action_order(
    counter: Counter, factory: sessionmaker[Session]
) -> None:
    people = [counter.move_in(given=f"太郎{'一二三四五六'[i]}") for i in range(6)]
    with counter.service() as svc:
        svc.record_death(people[3].id, died_on=counter.clock.today())
    desk = counter_group_commit(factory).start()
    started, gate = threading.Event(), threading.Event()

    def hold_the_desk(s: Session) -> None:
        started.set()
        gate.wait(5)

    def relocate(i: int) -> object:
        placement = Placement(counter.town(index=i + 1), f"{i + 1}番")
        today = counter.clock.today()
        return desk.run(
            lambda s: counter.service_on(s).record_relocation(people[i].id, placement, moved_on=today)
        )

    try:
        with ThreadPoolExecutor(8) as pool:
            first = pool.submit(desk.run, hold_the_desk)
            assert started.wait(5)
            futures = []
            for i in range(6):  # queued in this order behind the held desk: one group
                futures.append(pool.submit(relocate, i))
                while desk._queue.qsize() < i + 1:
                    threading.Event().wait(0.001)
            gate.set()
            first.result(10)
            for i, f in enumerate(futures):
                if i == 3:
                    with pytest.raises(RuleViolation):
                        f.result(10)
                else:
                    f.result(10)
    finally:
        desk.stop()
    with factory() as s:
        h = HistoryRow
        relocated = (
            s.execute(select(h.resident_id).where(h.reason == "relocation").order_by(h.id)).scalars().all()
        )
        assert relocated == [people[i].id for i in (0, 1, 2, 4, 5)]  # in order; the deceased: none
        keys = (
            s.execute(
                select(OutboxRow.key)
                .where(
                    OutboxRow.topic == TOPIC_IDENTITY, OutboxRow.key.in_([p.resident_code for p in people])
                )
                .order_by(OutboxRow.seq)
            )
            .scalars()
            .all()
        )
    codes = [people[i].resident_code for i in (0, 1, 2, 4, 5)]
    assert [k for k in keys if k in codes][-5:] == codes  # the relocations' messages, in order


def test_a_groups_audited_reads_reach_the_access_log_at_its_end(
    counter: Counter, factory: sessionmaker[Session]
) -> None:
    people = [counter.move_in(given=f"花子{'一二'[i]}") for i in range(2)]
    codes = [p.resident_code for p in people]
    desk = counter_group_commit(factory).start()
    seen_inside: list[int] = []

    def read_both(s: Session) -> None:
        svc = counter.service_on(s)
        for p in people:
            svc.get(p.id, purpose="異動処理")
        seen_inside.append(len([e for e in ACCESS_LOG.entries(s) if e.subject in codes]))

    try:
        desk.run(read_both)
    finally:
        desk.stop()
    assert seen_inside == [0]  # held while the group ran: the head was not locked yet
    with factory() as s:
        entries = [e for e in ACCESS_LOG.entries(s) if e.subject in codes]
        assert [e.subject for e in entries] == codes
        assert all(e.details["purpose"] == "異動処理" for e in entries)
        assert ACCESS_LOG.verify(s).ok


def _as_one_group(desk: GroupCommit, actions: list[tuple[Callable[[Session], object], int]]) -> list[object]:
    """Run ``actions`` (each with the record it names) in one group: queued behind a held desk."""
    started, gate = threading.Event(), threading.Event()

    def hold_the_desk(s: Session) -> None:
        started.set()
        gate.wait(5)

    with ThreadPoolExecutor(len(actions) + 1) as pool:
        first = pool.submit(desk.run, hold_the_desk)
        assert started.wait(5)
        futures = []
        for i, (work, rid) in enumerate(actions):
            futures.append(pool.submit(desk.run, work, hint=rid))
            while desk._queue.qsize() < i + 1:
                threading.Event().wait(0.001)
        groups = desk.groups
        gate.set()
        first.result(10)
        results = [f.result(10) for f in futures]
    assert desk.groups == groups + 2  # the held one, then these together
    return results


def _loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The residents read one by one (store.LOAD_WITH_HOUSEHOLD) from now on."""
    calls: list[object] = []
    one_by_one = store.LOAD_WITH_HOUSEHOLD.first

    def counted(on: object, params: dict[str, object]) -> object:
        calls.append(params["rid"])
        return one_by_one(on, params)  # type: ignore[arg-type]

    monkeypatch.setattr(store.LOAD_WITH_HOUSEHOLD, "first", counted)
    return calls


def test_a_group_reads_the_records_its_actions_name_ahead_in_one_statement(
    counter: Counter, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [counter.move_in(given=f"次郎{'一二三'[i]}") for i in range(3)]
    today = counter.clock.today()
    desk = counter_group_commit(factory, planned=False).start()  # SQLite too: ordinary groups
    loads = _loads(monkeypatch)

    def correct(i: int) -> Callable[[Session], object]:
        return lambda s: counter.service_on(s).record_correction(
            people[i].id, {"banchi": f"{i + 2}番"}, reason="誤記"
        )

    try:
        views = _as_one_group(desk, [(correct(i), people[i].id) for i in range(3)])
    finally:
        desk.stop()
    postgres = factory.kw["bind"].dialect.name == "postgresql"
    assert loads == ([] if postgres else [p.id for p in people])  # SQLite has no round trips to save
    assert [v.address.banchi for v in views] == ["2番", "3番", "4番"]  # type: ignore[attr-defined]
    assert all(v.last_change_date == today for v in views)  # type: ignore[attr-defined]


def test_a_record_read_ahead_is_read_again_after_an_earlier_action_changed_its_household(
    counter: Counter, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A and B share a household. A moves alone (others stay: A founds a household); then B moves
    alone in the same group: read ahead, B still had an active housemate, but A has gone, so B
    must stay in the household (no 世帯分離)."""
    a = counter.move_in(given="一郎")
    b = counter.move_in(given="二郎", household_id=a.household_id, relationship="子")
    today = counter.clock.today()
    desk = counter_group_commit(factory, planned=False).start()  # SQLite too: ordinary groups
    loads = _loads(monkeypatch)

    def move(person: ResidentView, n: int) -> Callable[[Session], object]:
        placement = Placement(counter.town(index=n), f"{n}番")
        return lambda s: counter.service_on(s).record_relocation(person.id, placement, moved_on=today)

    try:
        moved_a, moved_b = _as_one_group(desk, [(move(a, 1), a.id), (move(b, 2), b.id)])
    finally:
        desk.stop()
    assert moved_a[0].household_id != a.household_id  # type: ignore[index]
    assert moved_b[0].household_id == a.household_id  # type: ignore[index]
    postgres = factory.kw["bind"].dialect.name == "postgresql"
    assert loads == ([b.id] if postgres else [a.id, b.id])  # B's read ahead no longer held


def test_a_birth_in_the_group_makes_a_housemates_record_read_ahead_stale(
    counter: Counter, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lives alone. A child is born into A's household, then A moves alone in the same group:
    read ahead, A had nobody to leave behind, but now the child stays, so A founds a household."""
    a = counter.move_in(given="花子", sex=Sex.FEMALE)
    today = counter.clock.today()
    desk = counter_group_commit(factory, planned=False).start()  # SQLite too: ordinary groups
    loads = _loads(monkeypatch)
    child = NewPerson(PersonName.checked("山田", "陽太", "ヤマダ", "ヨウタ"), today, Sex.MALE)
    placement = Placement(counter.town(index=3), "3番")

    def born(s: Session) -> object:
        return counter.service_on(s).record_birth(child, household_id=a.household_id)

    def move(s: Session) -> object:
        return counter.service_on(s).record_relocation(a.id, placement, moved_on=today)

    try:
        baby, moved = _as_one_group(desk, [(born, a.id), (move, a.id)])
    finally:
        desk.stop()
    assert baby.household_id == a.household_id  # type: ignore[attr-defined]
    assert moved[0].household_id != a.household_id  # type: ignore[index]
    assert loads == [a.id]  # read again on PostgreSQL too


def test_an_audited_read_leaves_the_record_read_ahead_to_the_change_after_it(
    counter: Counter, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [counter.move_in(given=f"三郎{'一二'[i]}") for i in range(2)]
    desk = counter_group_commit(factory, planned=False).start()  # SQLite too: ordinary groups
    loads = _loads(monkeypatch)

    def read_then_correct(i: int) -> Callable[[Session], object]:
        def work(s: Session) -> object:
            svc = counter.service_on(s)
            svc.get(people[i].id, purpose="異動処理")
            return svc.record_correction(people[i].id, {"banchi": "9番"}, reason="誤記")

        return work

    try:
        views = _as_one_group(desk, [(read_then_correct(i), p.id) for i, p in enumerate(people)])
    finally:
        desk.stop()
    assert [v.address.banchi for v in views] == ["9番", "9番"]  # type: ignore[attr-defined]
    postgres = factory.kw["bind"].dialect.name == "postgresql"
    assert loads == ([] if postgres else [p.id for p in people for _ in "12"])
