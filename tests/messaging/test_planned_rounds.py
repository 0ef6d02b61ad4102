"""Planned relay rounds on SQLite (Relay(plannable=...), jlis.planned): the round runs on a snapshot
outside the write lock and only its writes are replayed under it. The outcome is the ordinary one;
a write by someone else in between is harmless, a second relay's delivery in between makes the
replay fail over to the ordinary path, and a round that cannot be planned runs the ordinary way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import JST, FixedClock
from jlis.db import Base, import_all_tables, make_engine, make_session_factory
from jlis.messaging import Message, Relay, publish, publish_many
from jlis.messaging.outbox import derived_message_id
from jlis.messaging.tables import InboxRow, OutboxRow
from jlis.planned import Plan

CLOCK = FixedClock(dt.datetime(2026, 11, 26, 9, 0, tzinfo=JST))
NOW = CLOCK.now()


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    import_all_tables()
    Base.metadata.create_all(engine)
    with engine.begin() as c:
        for kind in "abc":
            c.execute(
                text(f"CREATE TABLE kv_{kind} (node TEXT, k TEXT, v TEXT, n INTEGER, PRIMARY KEY (node, k))")
            )
        c.execute(text("CREATE TABLE other (n INTEGER)"))
    yield make_session_factory(engine)
    engine.dispose()


def keeper(kind: str, onward: str | None, *, reread: bool = False) -> Any:
    """A node that keeps, in its own table, the last value per key with a count of values seen: it
    reads what it has, then writes, as the network's nodes do. ``reread``: it reads its table again
    after writing. Then it passes each message on to ``onward``."""
    table = f"kv_{kind}"

    def apply(session: Session, node: str, messages: list[Message]) -> None:
        seen = dict(
            session.execute(text(f"SELECT k, n FROM {table} WHERE node = :node"), {"node": node}).all()
        )
        rows = {}
        for m in messages:
            seen[m.key] = seen.get(m.key, 0) + 1
            rows[m.key] = {"node": node, "k": m.key, "v": m.payload["v"], "n": seen[m.key]}
        session.execute(
            text(f"INSERT OR REPLACE INTO {table} VALUES (:node, :k, :v, :n)"), list(rows.values())
        )
        if reread:
            session.execute(text(f"SELECT count(*) FROM {table}"))
        if onward:
            publish_many(
                session,
                [
                    Message(derived_message_id(m.message_id, onward), node, onward, "t", m.key, m.payload)
                    for m in messages
                ],
                now=CLOCK.now(),
            )

    return apply


def relay(factory: sessionmaker[Session], *, plannable: Any = lambda m: True, reread: bool = False) -> Relay:
    handlers = {"a": keeper("a", "b:1"), "b": keeper("b", "c:1", reread=reread), "c": keeper("c", None)}
    return Relay(factory, CLOCK, handlers, plannable=plannable)


def send(factory: sessionmaker[Session], key: str, v: str) -> None:
    with factory() as s, s.begin():
        publish(s, source="t", destination="a:1", topic="t", key=key, payload={"v": v}, now=CLOCK.now())


def state(factory: sessionmaker[Session]) -> tuple[list[tuple[Any, ...]], int, int]:
    """The nodes' rows, the inbox's rows, and the messages waiting (a delivered one leaves the outbox)."""
    with factory() as s:
        kv = [
            tuple(r)
            for kind in "abc"
            for r in s.execute(text(f"SELECT node, k, v, n FROM kv_{kind} ORDER BY node, k"))
        ]
        inbox = s.execute(select(func.count()).select_from(InboxRow)).scalar_one()
        waiting = s.execute(select(func.count()).select_from(OutboxRow)).scalar_one()
    return kv, inbox, waiting


EXPECTED_KV = [
    (node, k, v, n) for node in ("a:1", "b:1", "c:1") for k, v, n in (("x", "x2", 2), ("y", "y1", 1))
]


def test_a_planned_round_does_what_an_ordinary_one_does(factory: sessionmaker[Session]) -> None:
    r = relay(factory)
    send(factory, "x", "x1")
    send(factory, "y", "y1")
    send(factory, "x", "x2")
    r.drain()
    assert state(factory) == (EXPECTED_KV, 3, 0)  # the forwards followed: no outbox or inbox rows
    assert (r.stats.planned, r.stats.unplanned, r.stats.followed) == (1, 0, 6)


def test_someone_elses_write_between_plan_and_replay_is_harmless(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Relay._replay

    def counter_commits_first(self: Relay, plan: Plan) -> None:
        with factory() as s, s.begin():  # as a counter would, while the relay was planning
            s.execute(text("INSERT INTO other VALUES (1)"))
            publish(
                s, source="t", destination="a:1", topic="t", key="y", payload={"v": "late"}, now=CLOCK.now()
            )
        real(self, plan)

    monkeypatch.setattr(Relay, "_replay", counter_commits_first)
    r = relay(factory)
    for key, v in (("x", "x1"), ("y", "y1"), ("x", "x2")):
        send(factory, key, v)
    assert r.run_once() == 3
    monkeypatch.undo()
    assert r.stats.planned == 1
    assert state(factory)[0] == EXPECTED_KV  # the late message was not in the plan: it waits
    r.drain()
    assert [row[2:] for row in state(factory)[0] if row[1] == "y"] == [("late", 2)] * 3


def test_a_second_relay_delivering_meanwhile_makes_the_replay_fail_over(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Relay._replay
    rival = relay(factory, plannable=None)

    def rival_first(self: Relay, plan: Plan) -> None:
        rival.run_once()  # delivers the same messages, the ordinary way, and commits first
        real(self, plan)

    monkeypatch.setattr(Relay, "_replay", rival_first)
    r = relay(factory)
    for key, v in (("x", "x1"), ("y", "y1"), ("x", "x2")):
        send(factory, key, v)
    r.run_once()  # the replay collides on the inbox and rolls back; node by node finds them applied
    monkeypatch.undo()
    assert (r.stats.planned, rival.stats.delivered, r.stats.duplicates) == (0, 9, 3)
    assert state(factory) == (EXPECTED_KV, 3, 0)  # each applied once


def test_a_round_that_reads_what_it_wrote_runs_the_ordinary_way(factory: sessionmaker[Session]) -> None:
    r = relay(factory, reread=True)
    for key, v in (("x", "x1"), ("y", "y1"), ("x", "x2")):
        send(factory, key, v)
    r.drain()
    assert state(factory) == (EXPECTED_KV, 3, 0)
    assert r.stats.unplanned >= 1
    assert r.stats.delivered == 9  # what the refused plan counted was taken back


def test_forwards_to_a_node_that_may_not_be_planned_wait_for_an_ordinary_round(
    factory: sessionmaker[Session],
) -> None:
    r = relay(factory, plannable=lambda m: not m.destination.startswith("c:"))
    for key, v in (("x", "x1"), ("y", "y1"), ("x", "x2")):
        send(factory, key, v)
    assert r.run_once() == 3  # planned: a and b, the forwards to c written to wait
    assert (r.stats.planned, r.stats.unplanned) == (1, 0)
    assert state(factory)[2] == 3
    r.drain()  # the waiting messages to c: an ordinary round
    # c's messages were written to wait and read back: inbox rows; b's followed: none
    assert state(factory) == (EXPECTED_KV, 6, 0)
    assert r.stats.planned == 1


def test_a_forward_left_waiting_keeps_later_forwards_to_its_node_and_key_behind_it(
    factory: sessionmaker[Session],
) -> None:
    """One round carries a key to b twice, in two waves: "direct" (y → b, wave 1) and "via a"
    (x → a → b, wave 2). The first may not be planned, so it is written to wait; the second must
    wait behind it rather than reach b first."""

    def passer(onward: str) -> Any:
        def apply(session: Session, node: str, messages: list[Message]) -> None:
            forwards = [
                Message(derived_message_id(m.message_id, onward), node, onward, "t", m.key, m.payload)
                for m in messages
            ]
            publish_many(session, forwards, now=CLOCK.now())

        return apply

    handlers = {
        "x": passer("a:1"),
        "y": passer("b:1"),
        "a": keeper("a", "b:1"),
        "b": keeper("b", "c:1"),
        "c": keeper("c", None),
    }
    r = Relay(
        factory,
        CLOCK,
        handlers,
        plannable=lambda m: not (m.destination == "b:1" and m.payload["v"] == "direct"),
    )
    with factory() as s, s.begin():
        for destination, v in (("y:1", "direct"), ("x:1", "via a")):
            publish(s, source="t", destination=destination, topic="t", key="k", payload={"v": v}, now=NOW)
    assert r.run_once() == 2
    assert (r.stats.planned, r.stats.followed) == (1, 1)  # x → a only: a's forward waits too
    with factory() as s:
        assert s.execute(text("SELECT count(*) FROM kv_b")).scalar_one() == 0  # both wait for b
    r.drain()
    kv = state(factory)[0]
    assert [row for row in kv if row[0] != "a:1"] == [("b:1", "k", "via a", 2), ("c:1", "k", "via a", 2)]
