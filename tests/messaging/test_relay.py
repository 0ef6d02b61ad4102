"""The relay: forwards made in a round are delivered in that round when it held every deliverable
message, and otherwise wait their turn; order per key, parked keys and failures are respected."""

from __future__ import annotations

import datetime as dt
import gc
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import JST, FixedClock
from jlis.db import Base, import_all_tables, make_engine
from jlis.messaging import MAX_ATTEMPTS, Message, Relay, publish, publish_many
from jlis.messaging.relay import _IN_SEQ_ORDER, _PENDING, _WAITING_FOR, Kinds
from jlis.messaging.tables import InboxRow, OutboxRow


def _forward(message_id: str, destination: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{message_id}>{destination}"))


class Chain:
    """Node kinds a → b → c: a and b pass each message on (same key), c keeps what it got.
    ``calls`` is every (node, key, payload value) applied, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.refuse: set[str] = set()
        self.clock = FixedClock(dt.datetime(2026, 11, 26, 9, 0, tzinfo=JST))

    def handler(self, kind: str, onward: str | None):  # type: ignore[no-untyped-def]
        def apply(session: Session, node: str, messages: list[Message]) -> None:
            for m in messages:
                if m.payload["v"] in self.refuse and kind == "c":
                    raise ValueError(f"refused {m.payload['v']}")
                self.calls.append((node, m.key, m.payload["v"]))
            if onward:
                publish_many(
                    session,
                    [
                        Message(_forward(m.message_id, onward), node, onward, "t", m.key, m.payload)
                        for m in messages
                    ],
                    now=self.clock.now(),
                )

        return apply

    def relay(self, factory: sessionmaker[Session]) -> Relay:
        return Relay(
            factory,
            self.clock,
            {"a": self.handler("a", "b:1"), "b": self.handler("b", "c:1"), "c": self.handler("c", None)},
        )


def send(factory: sessionmaker[Session], chain: Chain, destination: str, key: str, v: str) -> None:
    with factory() as s, s.begin():
        publish(
            s,
            source="t",
            destination=destination,
            topic="t",
            key=key,
            payload={"v": v},
            now=chain.clock.now(),
        )


def count(factory: sessionmaker[Session], *where: object, table: type = OutboxRow) -> int:
    with factory() as s:
        return int(s.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_forwards_follow_in_the_round_that_made_them(factory: sessionmaker[Session]) -> None:
    chain = Chain()
    relay = chain.relay(factory)
    for i in range(3):
        send(factory, chain, "a:1", f"k{i}", f"v{i}")
    assert relay.run_once() == 3  # one round: a, then b, then c
    assert [(n, v) for n, _, v in chain.calls] == [
        ("a:1", "v0"), ("a:1", "v1"), ("a:1", "v2"),
        ("b:1", "v0"), ("b:1", "v1"), ("b:1", "v2"),
        ("c:1", "v0"), ("c:1", "v1"), ("c:1", "v2"),
    ]  # fmt: skip
    assert relay.stats.followed == 6 and relay.run_once() == 0
    # A forward delivered in the round that made it is never written to the outbox, so nothing can
    # send it again: only the messages sent to a have inbox rows; delivered, they left the outbox.
    assert count(factory) == 0
    assert count(factory, table=InboxRow) == 3 == count(factory, InboxRow.node == "a:1", table=InboxRow)


def test_a_round_runs_with_the_cyclic_collector_held_off(factory: sessionmaker[Session]) -> None:
    chain = Chain()
    seen: list[bool] = []
    relay = chain.relay(factory)
    handler = relay._handlers["a"]

    def watching(s: Session, node: str, messages: list[Message]) -> None:
        seen.append(gc.isenabled())
        handler(s, node, messages)

    relay._handlers["a"] = watching
    send(factory, chain, "a:1", "k", "v")
    was = gc.isenabled()
    assert relay.run_once() == 1
    assert seen == [False] and gc.isenabled() == was


def test_a_round_that_did_not_hold_everything_still_follows_where_nothing_waits(
    factory: sessionmaker[Session],
) -> None:
    chain = Chain()
    relay = chain.relay(factory)
    for i in range(3):
        send(factory, chain, "a:1", "k", f"v{i}")
    assert relay.run_once(batch=2) == 2  # v2 waits at a; nothing waits for b or c with key k
    assert relay.stats.followed == 4
    assert count(factory) == 1  # v2 at a
    relay.drain()
    assert [v for n, _, v in chain.calls if n == "c:1"] == ["v0", "v1", "v2"]  # order per key held


def test_a_forward_waits_behind_what_waits_for_its_node_after_the_round(
    factory: sessionmaker[Session],
) -> None:
    """A round that did not take every deliverable message does not follow a forward to a
    destination and key that a message it did not take is for: that one is older."""
    chain = Chain()
    relay = chain.relay(factory)
    send(factory, chain, "a:1", "k", "mine")
    send(factory, chain, "b:1", "k", "older")  # for b, older than the forward of "mine"
    send(factory, chain, "a:1", "j", "other")
    assert relay.run_once(batch=1) == 1  # "mine" only
    assert relay.stats.followed == 0
    relay.drain()
    assert [v for n, _, v in chain.calls if n == "b:1"] == ["older", "mine", "other"]
    assert [v for n, _, v in chain.calls if n == "c:1"] == ["older", "mine", "other"]


def test_what_waited_for_a_node_goes_before_a_forward_to_it(factory: sessionmaker[Session]) -> None:
    chain = Chain()
    relay = chain.relay(factory)
    send(factory, chain, "a:1", "k", "first")
    relay.run_once(follow=False)  # "first" now waits for b
    send(factory, chain, "a:1", "k", "second")
    relay.run_once()  # b gets "first", then the forward of "second"
    assert [v for n, _, v in chain.calls if n == "b:1"] == ["first", "second"]
    assert [v for n, _, v in chain.calls if n == "c:1"] == ["first", "second"]


def test_a_parked_key_keeps_its_forwards_waiting(factory: sessionmaker[Session]) -> None:
    chain = Chain()
    relay = chain.relay(factory)
    send(factory, chain, "x:1", "stuck", "parked")  # no handler for x: fails until parked
    with factory() as s, s.begin():
        s.execute(update(OutboxRow).values(attempts=MAX_ATTEMPTS))
    send(factory, chain, "a:1", "stuck", "v1")
    send(factory, chain, "a:1", "free", "v2")
    relay.drain()
    assert [(n, v) for n, _, v in chain.calls] == [("a:1", "v2"), ("b:1", "v2"), ("c:1", "v2")]
    # "stuck" is parked, so even its message to a waits (the relay never reads it), and nothing follows.
    assert count(factory) == 2


def test_a_failure_in_a_followed_hop_undoes_the_round_and_falls_back(factory: sessionmaker[Session]) -> None:
    chain = Chain()
    relay = chain.relay(factory)
    chain.refuse.add("bad")
    send(factory, chain, "a:1", "k1", "good")
    send(factory, chain, "a:1", "k2", "bad")
    assert relay.run_once() == 2  # the round failed at c; node by node, a applies both
    assert count(factory, OutboxRow.destination == "b:1") == 2
    chain.calls.clear()
    relay.drain()
    assert ("c:1", "k1", "good") in chain.calls and ("c:1", "k2", "bad") not in chain.calls
    with factory() as s:
        stuck = s.execute(select(OutboxRow.destination, OutboxRow.key)).all()
    assert [tuple(r) for r in stuck] == [("c:1", "k2")]
    assert count(factory, table=InboxRow) == 5  # a×2, b×2, c×1


def test_finding_parked_keys_reads_their_index_not_every_waiting_row(tmp_path: Path) -> None:
    """SQLite: the pending query leaves parked keys out through ix_outbox_parked; a plan that read
    every waiting row for them made each round slower the longer the queue. The outbox itself is
    read in seq order (its rowid), from the first waiting message."""
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    import_all_tables()
    Base.metadata.create_all(engine)
    with engine.connect() as conn:
        sql = str(_PENDING["sqlite"].compile(engine))
        plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", (10, 0))]
    engine.dispose()
    scans = [step for step in plan if step.startswith("SCAN outbox")]
    assert scans == [
        "SCAN outbox",
        "SCAN outbox USING INDEX ix_outbox_parked",
    ]


def test_what_waits_for_a_waves_destinations_is_sought_not_scanned(tmp_path: Path) -> None:
    """SQLite: a full round reads what waits after it for its forwards' destinations only, by a
    seek of the outbox's destination index from the round's last sequence number on; a
    read of everything after it made each round of a relay behind a long queue read that queue."""
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    import_all_tables()
    Base.metadata.create_all(engine)
    with engine.connect() as conn:
        sql = _WAITING_FOR["sqlite"]._plan(engine.dialect).sql
        plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ('["b:1"]', 0))]
    engine.dispose()
    assert [step for step in plan if " o " in f"{step} "] == [
        "SEARCH o USING INDEX ix_outbox_destination (destination=? AND seq>?)"
    ]


def test_a_relay_for_some_kinds_leaves_the_others_waiting(factory: sessionmaker[Session]) -> None:
    chain = Chain()
    handlers = {"a": chain.handler("a", "b:1"), "b": chain.handler("b", "c:1"), "c": chain.handler("c", None)}
    first = Relay(factory, chain.clock, handlers, kinds=Kinds(frozenset({"c"}), others=True))
    last = Relay(factory, chain.clock, handlers, kinds=Kinds(frozenset({"c"})))
    send(factory, chain, "a:1", "k", "v1")
    send(factory, chain, "c:1", "j", "direct")  # already addressed to the other relay's kind
    assert first.drain() == 1
    assert [(n, v) for n, _, v in chain.calls] == [("a:1", "v1"), ("b:1", "v1")]
    assert count(factory) == 2  # "direct" and the forward to c
    assert last.drain() == 2
    assert [(n, v) for n, _, v in chain.calls][2:] == [("c:1", "direct"), ("c:1", "v1")]
    assert first.drain() == last.drain() == 0


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_a_round_walks_the_waiting_messages_in_seq_order_however_young_the_statistics(
    engine: Engine,
) -> None:
    """PostgreSQL: delivered messages are deleted, so a busy outbox is mostly dead rows until VACUUM,
    and its statistics are young or stale. The pending query still walks the primary key and stops
    at the round's limit, and probes the parked keys' index per row: it once scanned the whole
    table (in parallel) and ran the parked keys' sub-query again for every row."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO outbox (message_id, source, destination, topic, key, payload, created_at, "
                "attempts) SELECT 'm-' || i, 's', 'd:' || (i % 7), 't', 'k' || (i % 500), '{}', now(), "
                "CASE WHEN i % 1000 = 0 THEN 5 ELSE 0 END FROM generate_series(1, 20000) AS i"
            )
        )
        conn.execute(text("DELETE FROM outbox WHERE seq % 4 <> 0"))
    with engine.begin() as conn:
        conn.execute(_IN_SEQ_ORDER)
        sql = str(_PENDING["postgresql"].compile(engine))
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}", {"limit": 1000}))
    assert "Index Scan using pk_outbox on outbox" in plan, plan
    assert "ix_outbox_parked" in plan, plan
    assert "Seq Scan" not in plan and "Gather" not in plan and "SubPlan" not in plan, plan
