"""Group commit: concurrent actions share a commit, each caller gets its own result only once it is
durable, and a failing action fails alone with nothing of it written."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from jlis.errors import RuleViolation
from jlis.groupcommit import CONFLICT_RETRIES, GroupCommit, Outcome, Planning, _Job

meta = MetaData()
notes = Table(
    "gc_notes", meta, Column("id", Integer, primary_key=True), Column("text", String(20), unique=True)
)


@pytest.fixture
def desk(factory: sessionmaker[Session]) -> GroupCommit:
    engine = factory.kw["bind"]
    meta.drop_all(engine)
    meta.create_all(engine)
    desk = GroupCommit(factory, name="test-desk").start()
    yield desk
    desk.stop()
    meta.drop_all(engine)


def add(text: str) -> object:
    def work(s: Session) -> int:
        s.execute(insert(notes).values(text=text))
        return int(s.execute(select(func.count()).select_from(notes)).scalar_one())

    return work


def texts(factory: sessionmaker[Session]) -> list[str]:
    with factory() as s:
        return sorted(s.execute(select(notes.c.text)).scalars())


def test_concurrent_actions_share_commits_and_all_land(
    desk: GroupCommit, factory: sessionmaker[Session]
) -> None:
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: desk.run(add(f"n{i}")), range(400)))  # type: ignore[arg-type]
    assert texts(factory) == sorted(f"n{i}" for i in range(400))
    # Each caller saw the table with its own row in it, and the counts are one serial order.
    assert sorted(results) == list(range(1, 401))
    assert desk.actions == 400
    assert desk.groups < 400  # some commits carried several actions


def test_a_refused_action_fails_alone_with_nothing_written(
    desk: GroupCommit, factory: sessionmaker[Session]
) -> None:
    def refused(s: Session) -> None:
        s.execute(insert(notes).values(text="half"))  # written before it fails: must not stay
        raise RuleViolation("状態", "refused")

    started, gate = threading.Event(), threading.Event()

    def slow(s: Session) -> str:
        started.set()
        gate.wait(5)  # holds the committer so that the next submissions queue up as one group
        s.execute(insert(notes).values(text="first"))
        return "first"

    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(desk.run, slow)
        assert started.wait(5)
        others = [pool.submit(desk.run, add(f"ok{i}")) for i in range(3)]
        bad = pool.submit(desk.run, refused)
        more = [pool.submit(desk.run, add(f"ok{i}")) for i in range(3, 6)]
        while desk._queue.qsize() < 7:
            threading.Event().wait(0.001)
        gate.set()
        assert first.result(10) == "first"
        with pytest.raises(RuleViolation, match="refused"):
            bad.result(10)
        for f in others + more:
            f.result(10)
    assert texts(factory) == sorted(["first", *(f"ok{i}" for i in range(6))])
    # The slow one; then, rerun in order: the three before the refused one, the refused one alone
    # (failed: no group), the three after it.
    assert desk.groups == 3


def test_a_database_error_fails_only_its_own_caller(
    desk: GroupCommit, factory: sessionmaker[Session]
) -> None:
    desk.run(add("taken"))  # type: ignore[arg-type]
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(desk.run, add("taken" if i == 3 else f"x{i}")) for i in range(8)]
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result(10))
            except IntegrityError:
                outcomes.append("duplicate")
    assert outcomes.count("duplicate") == 1
    assert texts(factory) == sorted(["taken", *(f"x{i}" for i in range(8) if i != 3)])


def test_without_the_committer_an_action_runs_in_its_own_transaction(factory: sessionmaker[Session]) -> None:
    engine = factory.kw["bind"]
    meta.drop_all(engine)
    meta.create_all(engine)
    desk = GroupCommit(factory, name="idle")  # never started
    assert desk.run(add("alone")) == 1  # type: ignore[arg-type]

    def refused(s: Session) -> None:
        s.execute(insert(notes).values(text="gone"))
        raise RuleViolation("状態", "refused")

    with pytest.raises(RuleViolation):
        desk.run(refused)
    assert texts(factory) == ["alone"]
    assert desk.groups == 0
    meta.drop_all(engine)


def test_stop_commits_what_is_queued(factory: sessionmaker[Session]) -> None:
    engine = factory.kw["bind"]
    meta.drop_all(engine)
    meta.create_all(engine)
    desk = GroupCommit(factory, name="stopping").start()
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(desk.run, add(f"q{i}")) for i in range(50)]
        desk.stop()
        for f in futures:
            f.result(10)  # answered: committed by the committer or, after the stop, alone
    assert len(texts(factory)) == 50
    meta.drop_all(engine)


def test_group_size_is_bounded() -> None:
    with pytest.raises(ValueError, match="max_group"):
        GroupCommit(sessionmaker(), name="x", max_group=0)


def put(note: str) -> object:
    """An insert that asks for no row id (a Core insert reads ``lastrowid``, which a plan refuses)."""

    def work(s: Session) -> str:
        s.execute(text("INSERT INTO gc_notes (text) VALUES (:t)"), {"t": note})
        return note

    return work


def test_a_planned_group_replays_its_writes_and_runs_what_the_plan_gave_up_after_it(
    factory: sessionmaker[Session],
) -> None:
    """On SQLite the group runs first on a snapshot with its writes recorded, then only those are
    replayed, with what ``finish`` leaves for the live transaction; an action the plan refuses (here:
    it reads a table the plan wrote) or that fails runs after it, the ordinary way. On PostgreSQL
    the group commit stops planning at its first group."""
    engine = factory.kw["bind"]
    meta.drop_all(engine)
    meta.create_all(engine)
    finished: list[str] = []

    def finish(s: Session) -> Callable[[Session], None]:
        finished.append("planned")
        return lambda live: live.execute(insert(notes).values(text="live"))  # live: may read lastrowid

    planning = Planning(
        tables=frozenset({"gc_notes"}),
        prepare=lambda s: None,
        mark=lambda s: None,
        rewind=lambda s, mark: None,
        finish=finish,
    )
    desk = GroupCommit(factory, name="planned", planning=planning)

    def refused(s: Session) -> None:
        s.execute(insert(notes).values(text="half"))
        raise RuleViolation("状態", "refused")

    jobs = [_Job(w) for w in (put("a"), add("counted"), refused, put("b"))]  # type: ignore[arg-type]
    desk._run(jobs)
    assert [j.future.result() for j in (jobs[0], jobs[3])] == ["a", "b"]
    assert isinstance(jobs[2].future.exception(), RuleViolation)
    if engine.dialect.name == "sqlite":
        assert jobs[1].future.result() == 4  # ran after the plan: it sees a, b and live
        assert texts(factory) == sorted(["a", "b", "counted", "live"])
        assert (desk.planned_groups, desk.planned_actions, desk.given_up) == (1, 2, 2)
        assert finished == ["planned"]
    else:
        assert jobs[1].future.result() == 2  # in order: after a
        assert texts(factory) == sorted(["a", "b", "counted"])
        assert desk.planning is None and desk.planned_groups == 0 and finished == []
    meta.drop_all(engine)


def test_prefetch_gets_the_hints_of_a_group_that_names_more_than_one_read(
    desk: GroupCommit, factory: sessionmaker[Session]
) -> None:
    seen: list[tuple[list[object], bool]] = []
    desk.prefetch = lambda s, hints: seen.append((hints, s.in_transaction()))
    desk._run([_Job(add("a"), 1), _Job(add("b")), _Job(add("c"), 3)])  # type: ignore[arg-type]
    desk._run([_Job(add("d"), 4), _Job(add("e"))])  # type: ignore[arg-type]
    desk._run([_Job(add("f"), 6)])  # type: ignore[arg-type]
    assert seen == [([1, 3], True)]  # one hint alone is read as cheaply by its own action
    assert texts(factory) == ["a", "b", "c", "d", "e", "f"]


def test_an_outcome_is_set_once_and_given_to_every_caller_that_waits() -> None:
    done: Outcome[int] = Outcome()
    with pytest.raises(TimeoutError):
        done.result(0.01)
    with ThreadPoolExecutor(3) as pool:
        waiting = [pool.submit(done.result, 5) for _ in range(3)]
        assert not done.done()
        done.set_result(7)
        assert [w.result(5) for w in waiting] == [7, 7, 7] and done.done()
    with pytest.raises(RuntimeError, match="set already"):
        done.set_exception(ValueError("late"))
    failed: Outcome[int] = Outcome()
    failed.set_exception(ValueError("refused"))
    assert isinstance(failed.exception(0), ValueError)
    with pytest.raises(ValueError, match="refused"):
        failed.result()


class Raced(Exception):
    """What a database says when another writer changed what the work read (a test's stand-in)."""


def _racy_desk(factory: sessionmaker[Session], races: int) -> tuple[GroupCommit, list[int]]:
    """A desk whose groups fail at their end, the first ``races`` times, as if another writer had
    changed what they read; and the list of those ends."""
    ends: list[int] = []

    def finish(s: Session) -> None:
        ends.append(1)
        if len(ends) <= races:
            raise Raced

    desk = GroupCommit(
        factory,
        name="racy",
        finish=finish,
        conflict=lambda e: RuleViolation("記録", "raced") if isinstance(e, Raced) else None,
    )
    return desk, ends


@pytest.mark.parametrize("started", [True, False], ids=["grouped", "alone"])
def test_work_a_concurrent_writer_raced_runs_again(factory: sessionmaker[Session], started: bool) -> None:
    engine = factory.kw["bind"]
    meta.create_all(engine)
    desk, ends = _racy_desk(factory, races=2)
    if not started:  # without the committer, work runs alone, without finish: the work races
        runs: list[int] = []

        def racy_alone(s: Session) -> int:
            runs.append(1)
            s.execute(insert(notes).values(text=f"run{len(runs)}"))
            if len(runs) <= 2:
                raise Raced
            return len(runs)

        assert desk.run(racy_alone) == 3
        assert ends == []
    else:
        desk.start()
        try:
            assert desk.run(add("once")) == 1  # type: ignore[arg-type]
        finally:
            desk.stop()
        assert len(ends) == 3 and desk.groups == 1
    assert desk.conflicts == 2
    assert texts(factory) == (["once"] if started else ["run3"])  # nothing of the raced runs
    meta.drop_all(engine)


def test_a_group_raced_on_every_run_runs_each_action_alone_and_those_callers_get_the_conflict(
    factory: sessionmaker[Session],
) -> None:
    engine = factory.kw["bind"]
    meta.create_all(engine)
    desk, ends = _racy_desk(factory, races=99)
    jobs = [_Job(add(f"g{i}")) for i in range(3)]  # type: ignore[arg-type]
    desk._run(jobs)  # as the committer would
    errors = [j.future.exception() for j in jobs]
    assert all(isinstance(e, RuleViolation) and isinstance(e.__cause__, Raced) for e in errors), errors
    # The group ran 1 + CONFLICT_RETRIES times; then each action as often, alone.
    assert len(ends) == (1 + CONFLICT_RETRIES) * 4
    assert texts(factory) == []
    meta.drop_all(engine)


def test_a_failure_that_is_no_race_is_not_run_again(factory: sessionmaker[Session]) -> None:
    engine = factory.kw["bind"]
    meta.create_all(engine)
    desk, _ends = _racy_desk(factory, races=0)
    runs: list[int] = []

    def refused(s: Session) -> None:
        runs.append(1)
        raise RuleViolation("状態", "refused")

    with pytest.raises(RuleViolation, match="refused"):
        desk.run(refused)
    assert runs == [1] and desk.conflicts == 0
    meta.drop_all(engine)
