"""The counter's group commit: actions of one group write their history rows, messages and audited
reads in bulk at the group's end, in the order the actions made them, and a refused action leaves
none."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from jlis.errors import Conflict, InvalidInput, RuleViolation
from jlis.groupcommit import CONFLICT_RETRIES, GroupCommit
from jlis.messaging.tables import OutboxRow
from jlis.registry import NewPerson, PersonName, Placement, ResidentView, Sex, store
from jlis.registry.desk import counter_group_commit
from jlis.registry.events import TOPIC_IDENTITY
from jlis.registry.service import ACCESS_LOG
from jlis.registry.tables import HistoryRow, HouseholdRow, RegisterVersionRow, ResidentRow

from .conftest import Counter, history_reasons, move_out_to_tsurumi


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


# ------------------------------------------------------------------ another process writes the same records


def _rename_meanwhile(counter: Counter, who: ResidentView, times: int) -> Callable[[], None]:
    """Another process (its own session and commit) changes ``who``'s name, the first ``times``
    times it is called (from within an action, after the action read the record)."""
    done: list[int] = []

    def meddle() -> None:
        if len(done) < times:
            given = f"乙{'一二三四五六'[len(done)]}"
            done.append(1)
            with counter.service() as other:
                other.record_name_change(
                    who.id,
                    PersonName("佐藤", given, "サトウ", "オツ"),
                    changed_on=counter.clock.today(),
                    cause="婚姻",
                )

    return meddle


def _relocate(counter: Counter, who: ResidentView) -> Callable[[Session], object]:
    placement = Placement(counter.town(index=2), "12番")
    today = counter.clock.today()
    return lambda s: counter.service_on(s).record_relocation(who.id, placement, moved_on=today)[0]


def _after_each_read(
    monkeypatch: pytest.MonkeyPatch, then: Callable[[], None], read: str = "LOAD_WITH_HOUSEHOLD.first"
) -> None:
    """``then()`` right after an action reads through ``read`` (a prepared statement of
    jlis.registry.store and its method; by default the record), before it writes anything."""
    name, method = read.split(".")
    statement = getattr(store, name)
    original = getattr(statement, method)
    inside: list[bool] = []  # the other process's own reads are not raced

    def read_then(on: object, params: dict[str, object]) -> object:
        found = original(on, params)
        if not inside:
            inside.append(True)
            try:
                then()
            finally:
                inside.pop()
        return found

    monkeypatch.setattr(statement, method, read_then)


def test_a_change_another_process_made_after_the_group_read_the_record_ahead_is_kept(
    counter: Counter, factory: sessionmaker[Session]
) -> None:
    """A group reads a and b ahead; while its first action runs, another process renames b; then
    the group relocates b from the record it read ahead. Both changes stand, one after the other:
    on PostgreSQL the group's history row of b's next version clashes with the other's and the
    group runs again; on SQLite the planned group's replay finds the register's version moved."""
    a, b = counter.move_in(given="甲"), counter.move_in(given="乙")
    desk = counter_group_commit(factory).start()
    meddle = _rename_meanwhile(counter, b, times=1)
    today = counter.clock.today()

    def relocate_a(s: Session) -> object:
        (view,) = counter.service_on(s).record_relocation(
            a.id, Placement(counter.town(index=1), "10番"), moved_on=today
        )
        meddle()
        return view

    try:
        _moved_a, moved_b = _as_one_group(desk, [(relocate_a, a.id), (_relocate(counter, b), b.id)])
    finally:
        desk.stop()
    assert moved_b.name.family == "佐藤" and moved_b.address.banchi == "12番"  # type: ignore[attr-defined]
    assert history_reasons(factory, b.id) == [(1, "move_in"), (2, "name_change"), (3, "relocation")]


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
@pytest.mark.parametrize("started", [True, False], ids=["grouped", "alone"])
def test_an_action_another_process_raced_runs_again_and_both_changes_stand(
    counter: Counter, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, started: bool
) -> None:
    """PostgreSQL only: SQLite's writers take the lock before they read (see store.raced). The
    relocation read b; another process renamed b before the relocation was written: it is run
    again on the renamed record, its caller never sees the clash."""
    b = counter.move_in(given="乙")
    desk = counter_group_commit(factory)
    if started:
        desk.start()
    try:
        _after_each_read(monkeypatch, _rename_meanwhile(counter, b, times=1))
        view = desk.run(_relocate(counter, b), hint=b.id)
    finally:
        desk.stop()
    assert view.name.given == "乙一" and view.address.banchi == "12番"  # type: ignore[attr-defined]
    assert view.version == b.version + 2  # type: ignore[attr-defined]
    assert history_reasons(factory, b.id) == [(1, "move_in"), (2, "name_change"), (3, "relocation")]
    assert desk.conflicts == 1


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
@pytest.mark.parametrize("started", [True, False], ids=["grouped", "alone"])
def test_an_action_raced_on_every_run_fails_with_a_conflict_and_writes_nothing(
    counter: Counter, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, started: bool
) -> None:
    b = counter.move_in(given="乙")
    desk = counter_group_commit(factory)
    if started:
        desk.start()
    try:
        with pytest.raises(Conflict) as raised:
            _after_each_read(monkeypatch, _rename_meanwhile(counter, b, times=99))
            desk.run(_relocate(counter, b), hint=b.id)
    finally:
        desk.stop()
    assert raised.value.http_status == 409
    assert raised.value.to_dict()["field"] == "住民票" and raised.value.kind == "conflict"
    assert getattr(raised.value.__cause__, "sqlstate", None) == "23505"  # the history row's clash
    assert desk.conflicts == CONFLICT_RETRIES
    renames = [(v, "name_change") for v in range(2, CONFLICT_RETRIES + 3)]  # one before each run
    assert history_reasons(factory, b.id) == [(1, "move_in"), *renames]
    with factory() as s:
        assert s.get_one(ResidentRow, b.id).banchi != "12番"


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    ("read", "reruns"),
    [("OTHER_ACTIVE_MEMBERS.rows", 0), ("LOAD_RESIDENT.first", 1)],
    ids=["after-the-members", "after-the-new-head"],
)
def test_a_head_named_while_another_process_moves_that_person_away_is_refused(
    counter: Counter, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, read: str, reruns: int
) -> None:
    """The head moves out naming b the new head; another process moves b away alone (b founds a
    household of its own) right after the move-out read the members, or b's record. The first
    finds b gone when it reads b's record; the second's change of b's record clashes with the
    other's, and on its rerun b is no longer a member. Either way the caller is refused, and no
    household is left with a head who is not in it."""
    head = counter.move_in(given="一郎")
    b = counter.move_in(given="二郎", household_id=head.household_id, relationship="子")
    counter.move_in(given="三郎", household_id=head.household_id, relationship="子")
    today = counter.clock.today()
    moved: list[ResidentView] = []

    def move_b_away() -> None:
        if not moved:
            with counter.service() as other:
                moved.extend(
                    other.record_relocation(b.id, Placement(counter.town(index=3), "3番"), moved_on=today)
                )

    _after_each_read(monkeypatch, move_b_away, read)
    desk = counter_group_commit(factory)
    with pytest.raises(InvalidInput, match="新世帯主"):
        desk.run(
            lambda s: move_out_to_tsurumi(counter.service_on(s), head.id, new_head_id=b.id),
            hint=head.id,
        )
    assert desk.conflicts == reruns and moved[0].household_id != head.household_id and moved[0].is_head
    with factory() as s:
        assert s.get_one(HouseholdRow, head.household_id).head_resident_id == head.id  # nothing written
        assert s.get_one(ResidentRow, head.id).status == "active"


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_a_deadlock_between_two_writers_counts_as_a_race_and_another_clash_does_not(engine: Engine) -> None:
    """Two transactions update two rows in opposite orders: PostgreSQL aborts one of them, and
    store.raced takes its error for a race (the group commit then runs the action again). A unique
    key other than the history's version is no race."""
    with engine.begin() as conn:
        conn.execute(
            insert(RegisterVersionRow),
            [{"lg_code": "900001", "version": 0}, {"lg_code": "900002", "version": 0}],
        )
    bump = text("UPDATE reg_versions SET version = version + 1 WHERE lg_code = :lg")
    both_hold_one = threading.Barrier(2)

    def write(order: tuple[str, str]) -> BaseException | None:
        with engine.connect() as conn, conn.begin():
            conn.execute(bump, {"lg": order[0]})
            both_hold_one.wait(5)
            try:
                conn.execute(bump, {"lg": order[1]})
            except Exception as exc:
                return exc
        return None

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(write, [("900001", "900002"), ("900002", "900001")]))
    (deadlock,) = [o for o in outcomes if o is not None]
    assert isinstance(store.raced(deadlock), Conflict), deadlock
    with pytest.raises(IntegrityError) as duplicate, engine.begin() as conn:
        conn.execute(insert(RegisterVersionRow).values(lg_code="900001", version=0))
    assert store.raced(duplicate.value) is None
    assert store.raced(RuleViolation("状態", "refused")) is None
