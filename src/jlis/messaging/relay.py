from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, not_, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from jlis import jsontext
from jlis.bulk import Prepared, bulk_insert
from jlis.clock import Clock
from jlis.db import read_only, transaction
from jlis.gcpause import collector_paused
from jlis.keyset import select_by_keys
from jlis.messaging.outbox import Message, hold, release, write_held
from jlis.messaging.tables import PARKED, InboxRow, OutboxRow
from jlis.planned import Plan, PlanRefused, ReplayMismatch, merge_reads, planning, replay

log = logging.getLogger(__name__)

# A handler applies messages addressed to one node, in order, inside the caller's transaction.
# It may publish onward messages in that same transaction (the next hop's outbox).
Handler = Callable[[Session, str, list[Message]], None]

MAX_WAVES = 8  # hops a round follows at most before leaving the rest to the next round


@runtime_checkable
class GroupHandler(Protocol):
    """A handler that can also apply many nodes' batches in one call (a fixed number of statements
    for the whole round instead of per node): ``groups`` are ``(node, messages)`` pairs, each node
    once, each list in sequence order, with the same effect as calling the handler per node in
    that order. A handler without ``apply_groups`` is called node by node."""

    def __call__(self, session: Session, node: str, messages: list[Message], /) -> None: ...

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]], /) -> None: ...


_O: Table = OutboxRow.__table__  # type: ignore[assignment]
_INBOX: Table = InboxRow.__table__  # type: ignore[assignment]
_COLUMNS = (_O.c.seq, _O.c.message_id, _O.c.source, _O.c.destination, _O.c.topic, _O.c.key, _O.c.payload)
_IS_PARKED = text(PARKED)
# Statements built once: each round only binds parameters. The parked keys are left out through
# their partial index (ix_outbox_parked). SQLite's planner, without statistics, would rather read
# every waiting row for them, each round: it is told the index. On PostgreSQL an anti-join probes
# that index per row: a NOT IN whose sub-query the planner guessed too large to hash (a young
# table's statistics) was run again for every waiting row.
_PENDING = {
    "sqlite": select(*_COLUMNS)
    .where(
        _O.c.key.not_in(
            text(f'SELECT "key" FROM outbox INDEXED BY ix_outbox_parked WHERE {PARKED}').columns(_O.c.key)
        )
    )
    .order_by(_O.c.seq)
    .limit(bindparam("limit")),
    "postgresql": select(*_COLUMNS)
    .where(text(f'NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p."key" = outbox."key" AND p.{PARKED})'))
    .order_by(_O.c.seq)
    .limit(bindparam("limit")),
}
# The oldest waiting messages in seq order, up to the round's batch: an index scan of the primary
# key that stops at the limit. A delete-heavy queue's statistics are often young or stale; the
# planner then guessed a (parallel) scan of the whole table, dead rows and all, every round.
_IN_SEQ_ORDER = text(
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off; "
    "SET LOCAL max_parallel_workers_per_gather = 0"
)
# The relay's own transactions on PostgreSQL commit without waiting for the WAL flush. Everything
# they write is derived from outbox rows that were committed durably by their publishers, so a
# relay commit lost to a server crash (PostgreSQL loses a tail of the WAL, in order, never a hole)
# only means those messages are delivered again, and the inbox makes that harmless: an ack cannot
# outlive its delivery, which comes earlier in the WAL. The publishers (a counter, an agency's
# provision log) still commit synchronously. This spares the relay a disk flush per round.
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
_PARKED = select(*_COLUMNS).where(_IS_PARKED).order_by(_O.c.seq)
_PARKED_KEY_LIST = select(_O.c.key).where(_IS_PARKED).distinct()
# What waits for some destinations (a JSON list) after the last message a round took: one seek of the
# outbox's destination index per destination, so the read is as long as what waits for the wave's
# destinations, not as the whole queue behind the round.
_WAITING_FOR = {
    "sqlite": Prepared(
        text(
            'SELECT o.destination, o."key" FROM json_each(:destinations) AS d CROSS JOIN outbox AS o '
            "INDEXED BY ix_outbox_destination ON o.destination = d.value WHERE o.seq > :seq"
        ).columns(_O.c.destination, _O.c.key)
    ),
    "postgresql": Prepared(
        text(
            'SELECT o.destination, o."key" FROM json_array_elements_text(CAST(:destinations AS json)) '
            'AS d(value) CROSS JOIN LATERAL (SELECT destination, "key" FROM outbox '
            "WHERE destination = d.value AND seq > :seq OFFSET 0) AS o"
        ).columns(_O.c.destination, _O.c.key)
    ),
}
# A delivered message leaves the outbox (see OutboxRow): the ack deletes it. Its sequence numbers
# travel as one JSON parameter: one statement text whatever their number (an expanding IN of 500
# would be compiled, and parsed by the driver, every round). A delete, not an update: on
# PostgreSQL an update of the row wrote it again with its payload and two index entries (measured:
# the relay's share of the server's CPU 0.254 → 0.220 ms a change).
_ACK_SEQS = {
    "sqlite": "SELECT value FROM json_each(:seqs)",
    "postgresql": "SELECT CAST(value AS bigint) FROM json_array_elements_text(CAST(:seqs AS json))",
}
_ACK = {
    dialect: Prepared(delete(_O).where(_O.c.seq.in_(text(sql).columns(_O.c.seq))))
    for dialect, sql in _ACK_SEQS.items()
}
_FAIL = (
    update(_O)
    .where(_O.c.seq == bindparam("k_seq"))
    .values(attempts=_O.c.attempts + 1, last_error=bindparam("v_error"))
)


@dataclass(frozen=True)
class Kinds:
    """The destination kinds one relay delivers to when several relays share an outbox (the 住基ネット
    and the 附票 system, say): ``names``, or, with ``others``, every kind but those. Forwards to a
    kind outside them are written to wait for the relay that has it."""

    names: frozenset[str]
    others: bool = False

    def __contains__(self, kind: object) -> bool:
        return (kind in self.names) != self.others

    def where(self) -> ColumnElement[bool]:
        d = _O.c.destination
        named = or_(*((d == k) | d.like(f"{k}:%") for k in sorted(self.names)))
        return not_(named) if self.others else named


@dataclass
class RelayStats:
    delivered: int = 0  # applied (or found in the inbox), forwards followed in the same round included
    duplicates: int = 0
    failed: int = 0
    followed: int = 0  # forwards delivered in the round that published them
    planned: int = 0  # rounds planned outside SQLite's write lock and replayed under it
    unplanned: int = 0  # rounds whose plan was refused or did not replay: run the ordinary way

    def restore(self, other: RelayStats) -> None:
        """Take back what an abandoned attempt counted."""
        for name in ("delivered", "duplicates", "failed", "followed"):
            setattr(self, name, getattr(other, name))


class Relay:
    """Delivers outbox messages to their destination nodes, at least once, in sequence order.

    ``handlers`` maps a node kind (the part of the destination before ``:``, e.g. ``pref`` for
    ``pref:13``) to the handler of that kind.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        clock: Clock,
        handlers: dict[str, Handler],
        *,
        crash_hook: Callable[[str], None] | None = None,
        plannable: Callable[[Message], bool] | None = None,
        kinds: Kinds | None = None,
    ) -> None:
        self._factory = factory
        self._clock = clock
        self._handlers = handlers
        self._kinds = kinds
        self._pending = (
            _PENDING
            if kinds is None
            else {dialect: stmt.where(kinds.where()) for dialect, stmt in _PENDING.items()}
        )
        # On SQLite, rounds whose messages all pass ``plannable`` are planned outside the write lock
        # (see _planned_round): their handlers must read and write only tables no one but this
        # relay writes, and do nothing outside the session (a plan that is refused runs again).
        bind = factory.kw.get("bind")
        self._plannable = plannable if bind is not None and bind.dialect.name == "sqlite" else None
        # Test seam: called at the named points so a crash test can die exactly there.
        self._crash_hook = crash_hook or (lambda _point: None)
        self.stats = RelayStats()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with transaction(self._factory) as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(_ASYNC_COMMIT)
            yield s

    def _handler_for(self, destination: str) -> Handler | None:
        kind = destination.split(":", 1)[0]
        if self._kinds is not None and kind not in self._kinds:
            return None  # another relay's: a forward to it waits for that relay
        return self._handlers.get(kind)

    def pending(self, limit: int) -> list[Message]:
        """The oldest deliverable messages. A message that failed ``MAX_ATTEMPTS`` times is parked
        (left for an operator, see :func:`parked`), and so is everything behind it with the same
        key, so order per key holds while other keys flow on."""
        with self._factory() as s:
            dialect = s.get_bind().dialect.name
            if dialect == "postgresql":
                # Walk the primary key in seq order and stop at ``limit`` (see _IN_SEQ_ORDER).
                # A bitmap scan visits every entry left by delivered (deleted) rows until VACUUM,
                # each round; an index scan marks those entries dead as it passes.
                s.execute(_IN_SEQ_ORDER)
            return [_message(r) for r in s.execute(self._pending[dialect], {"limit": limit})]

    def run_once(self, batch: int = 1000, *, follow: bool = True) -> int:
        """Deliver up to ``batch`` pending messages, and (``follow``) the forwards they cause (see
        :meth:`_follow`); return how many pending messages were handled."""
        with collector_paused():  # a round keeps what it allocates to its end (jlis.gcpause)
            return self._run_once(batch, follow)

    def _run_once(self, batch: int, follow: bool) -> int:
        messages = self.pending(batch)
        if not messages:
            return 0
        # Fewer than asked for: every deliverable message is in hand, so nothing older can wait
        # for the destination and key of a forward made now, and the forwards may follow at once.
        # Otherwise the messages after the last one taken may: a forward follows only to a
        # destination and key none of them is for (see _follow).
        beyond = None if len(messages) < batch else messages[-1].seq
        by_destination: dict[str, list[Message]] = {}
        for m in messages:
            by_destination.setdefault(m.destination, []).append(m)
        groups: list[tuple[str, Handler, list[Message]]] = []
        for destination, group in by_destination.items():
            handler = self._handler_for(destination)
            if handler is None:
                log.warning("no handler for destination %s; %d messages wait", destination, len(group))
                self._fail(group[0], LookupError(f"no handler for destination {destination}"))
                continue
            groups.append((destination, handler, group))
        done: list[int] = []
        try:
            self._round(groups, follow, beyond)
            done = [m.seq for _, _, group in groups for m in group]
        except Exception:
            log.exception("a round of %d messages failed; retrying node by node", len(messages))
            for destination, handler, group in groups:
                try:
                    self._apply(destination, handler, group)
                    done.extend(m.seq for m in group)
                except Exception:
                    log.exception("batch to %s failed; retrying one message at a time", destination)
                    done.extend(self._apply_one_by_one(destination, handler, group))
        self._crash_hook("after-apply-before-ack")
        self._ack(done)
        self._crash_hook("after-ack")
        return len(done)

    def _round(
        self, groups: list[tuple[str, Handler, list[Message]]], follow: bool, beyond: int | None
    ) -> None:
        """Apply the round in one transaction. The nodes share this database, so one transaction
        carries the whole round: each node's inbox still makes its part idempotent. Nodes on
        separate databases would each get their own transaction, which is what the fallback in
        :meth:`run_once` does."""
        plannable = self._plannable
        if (
            plannable is not None
            and all(plannable(m) for _, _, g in groups for m in g)
            and self._planned_round(groups, follow, beyond)
        ):
            return
        with self._transaction() as s:
            self._work(s, groups, follow, beyond, None)
            self._crash_hook("inside-apply")

    def _work(
        self,
        s: Session,
        groups: list[tuple[str, Handler, list[Message]]],
        follow: bool,
        beyond: int | None,
        plannable: Callable[[Message], bool] | None,
    ) -> None:
        if follow:
            self._follow(s, groups, beyond, plannable)
        else:
            self._apply_in(s, groups)

    def _planned_round(
        self, groups: list[tuple[str, Handler, list[Message]]], follow: bool, beyond: int | None
    ) -> bool:
        """SQLite: run the round's reads and Python on a snapshot, recording its writes, then replay
        only the writes under the write lock, which the round thus holds for a fraction of its
        time (jlis.planned). Sound because the handlers of plannable messages read and write only
        the nodes' own tables, which no one else writes, and only one relay runs a round at a time
        (a second one would collide on the inbox's key and its replay would roll back). Forwards
        to a node that is not plannable wait for the next round. False when the plan was refused
        or did not replay: the caller then runs the round the ordinary way."""
        before = dataclasses.replace(self.stats)
        try:
            self._replay(self._plan(groups, follow, beyond))
        except (PlanRefused, ReplayMismatch) as why:
            log.debug("round not planned: %s", why)
            self.stats.restore(before)
            self.stats.unplanned += 1
            return False
        except BaseException:
            self.stats.restore(before)
            raise
        self.stats.planned += 1
        return True

    def _plan(
        self, groups: list[tuple[str, Handler, list[Message]]], follow: bool, beyond: int | None
    ) -> Plan:
        """The round on a snapshot (no write lock), its writes recorded."""
        with self._factory() as s:
            read_only(s)
            with planning(s.connection().connection.driver_connection) as plan:
                self._work(s, groups, follow, beyond, self._plannable)
            s.rollback()
        return plan

    def _replay(self, plan: Plan) -> None:
        """The round's writes, under the write lock."""
        with self._transaction() as s:
            replay(s.connection().connection.driver_connection, plan)
            self._crash_hook("inside-apply")

    def drain(self, batch: int = 1000, max_rounds: int = 1_000_000) -> int:
        total = 0
        for _ in range(max_rounds):
            n = self.run_once(batch)
            if n == 0:
                break
            total += n
        return total

    def _apply(self, destination: str, handler: Handler, group: list[Message]) -> None:
        with self._transaction() as s:
            self._apply_in(s, [(destination, handler, group)])
            self._crash_hook("inside-apply")

    def _follow(
        self,
        s: Session,
        groups: list[tuple[str, Handler, list[Message]]],
        beyond: int | None = None,
        plannable: Callable[[Message], bool] | None = None,
    ) -> None:
        """Apply the groups, then, in the same transaction, the forwards their handlers publish, wave
        after wave (CS → 都道府県 → 全国 in one round). The tiers share this database, so a forward can be
        delivered in the transaction that makes it instead of being written, read back, delivered and
        acknowledged by later rounds: it never enters the outbox, so nothing can send it again, and it
        needs no inbox row. Its record is its node's history row, under its derived id (each hop's id
        derives from the one before, see jlis.messaging.outbox.derived_message_id). A second relay
        delivering the same messages meanwhile collides on the first hop's inbox row, which the round
        still writes, and its whole transaction rolls back. Order per destination and key
        holds because whatever was older went in an earlier wave, or, when the caller did not take every
        deliverable message (``beyond``: the sequence number of the last it took), waits after it: a
        forward to a destination and key one of those waiting messages is for waits too (read per wave,
        for the wave's destinations only, see :meth:`_waiting`), and so does every later forward to a
        destination and key the round left a forward waiting for. A relay that falls behind thus still
        follows the forwards of the counters' messages, which nothing else waits for, instead of leaving
        every hop to later rounds (each then written, read back and acknowledged: more work per message
        the further behind it is). A forward whose key is parked, or with no handler, or (``plannable``
        given: a planned round) that is not plannable, is written to the outbox and waits."""
        parked = set(s.execute(_PARKED_KEY_LIST).scalars())
        held_back: set[tuple[str, str]] = set()  # (destination, key) of forwards this round left waiting
        wave = groups
        for depth in range(MAX_WAVES):
            hold(s)
            try:
                self._apply_in(s, wave, new=depth > 0)
            finally:
                held = release(s)
            if not held:
                return
            waiting = self._waiting(s, beyond, {m.destination for m, _at in held})
            follow: dict[str, list[Message]] = {}
            left: list[tuple[Message, dt.datetime]] = []  # forwards that wait, in their order
            for m, at in held:
                pair = (m.destination, m.key)
                handler = self._handler_for(m.destination)
                if (
                    handler is None
                    or m.key in parked
                    or pair in waiting
                    or pair in held_back
                    or depth == MAX_WAVES - 1
                    or (plannable is not None and not plannable(m))
                ):
                    held_back.add(pair)
                    left.append((m, at))
                else:
                    follow.setdefault(m.destination, []).append(m)
            write_held(s, left)
            wave = [(d, h, ms) for d, ms in follow.items() if (h := self._handler_for(d)) is not None]
            self.stats.followed += sum(len(ms) for ms in follow.values())
            if not wave:
                return

    def _waiting(self, s: Session, beyond: int | None, destinations: set[str]) -> set[tuple[str, str]]:
        """The (destination, key) pairs of the messages that wait for ``destinations`` after the
        sequence number ``beyond`` (none when the round took every deliverable message). Forwards
        this round wrote to the outbox are among them in the database, but a planned round's
        snapshot does not show them: :meth:`_follow` keeps them itself (``held_back``), which makes
        this read sound in a plan (merge_reads)."""
        if beyond is None:
            return set()
        raw = s.connection().connection.driver_connection
        merge_reads(raw, _O.name)
        stmt = _WAITING_FOR[s.get_bind().dialect.name]
        rows = stmt.rows(s, {"destinations": jsontext.dumps(sorted(destinations)), "seq": beyond})
        return {(d, k) for d, k in rows}

    def _apply_in(
        self, s: Session, groups: list[tuple[str, Handler, list[Message]]], *, new: bool = False
    ) -> None:
        """Apply the groups (one per destination) in the caller's transaction: skip what each
        node's inbox already holds, hand the rest to the handlers (all groups of a handler in one
        call where it can take them), then record the applied ids in the inboxes. ``new``: the
        messages were made in this transaction and never enter the outbox, so no inbox holds them
        and none needs to (see :meth:`_follow`)."""
        seen = (
            set()
            if new
            else {
                (r[0], r[1])
                for r in select_by_keys(
                    s,
                    _INBOX,
                    ("node", "message_id"),
                    [(d, m.message_id) for d, _, group in groups for m in group],
                    ("node", "message_id"),
                )
            }
        )
        # Per handler, its fresh groups in the order the destinations first appear in the round.
        calls: dict[int, tuple[Handler, list[tuple[str, list[Message]]]]] = {}
        inbox: list[tuple[str, str]] = []
        delivered = 0
        for destination, handler, group in groups:
            delivered += len(group)
            fresh = [m for m in group if (destination, m.message_id) not in seen] if seen else group
            self.stats.duplicates += len(group) - len(fresh)
            if fresh:
                calls.setdefault(id(handler), (handler, []))[1].append((destination, fresh))
                if not new:
                    inbox.extend((destination, m.message_id) for m in fresh)
        for handler, handler_groups in calls.values():
            if isinstance(handler, GroupHandler):
                handler.apply_groups(s, handler_groups)
            else:
                for destination, fresh in handler_groups:
                    handler(s, destination, fresh)
        if inbox:
            now = self._clock.now()
            bulk_insert(s, _INBOX, [{"node": n, "message_id": i, "applied_at": now} for n, i in inbox])
        self.stats.delivered += delivered

    def _apply_one_by_one(self, destination: str, handler: Handler, group: list[Message]) -> list[int]:
        done: list[int] = []
        blocked_keys: set[str] = set()
        for m in group:
            if m.key in blocked_keys:  # keep order per key: nothing overtakes a failed message
                continue
            try:
                self._apply(destination, handler, [m])
                done.append(m.seq)
            except Exception as exc:
                blocked_keys.add(m.key)
                self._fail(m, exc)
        return done

    def _fail(self, m: Message, exc: Exception) -> None:
        self.stats.failed += 1
        with self._transaction() as s:
            s.execute(_FAIL, {"k_seq": m.seq, "v_error": repr(exc)[:2000]})

    def _ack(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._transaction() as s:
            for chunk in _chunks(seqs, 5000):
                ack = _ACK[s.get_bind().dialect.name]
                ack.run(s, {"seqs": jsontext.dumps(chunk)})


T = TypeVar("T")


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def parked(session: Session) -> list[Message]:
    """Messages that failed ``MAX_ATTEMPTS`` times: they and their key wait for an operator."""
    return [_message(r) for r in session.execute(_PARKED)]


def _message(r: Sequence[Any]) -> Message:
    seq, message_id, source, destination, topic, key, payload = r
    return Message(message_id, source, destination, topic, key, jsontext.loads(payload), seq, payload)


def pending_counts(session: Session, destinations: Sequence[str]) -> Counter[tuple[str, str]]:
    """Messages waiting per (destination, source): what a status page shows."""
    o = OutboxRow.__table__.c
    out: Counter[tuple[str, str]] = Counter()
    for chunk in _chunks(list(destinations), 500):
        rows = session.execute(
            select(o.destination, o.source, func.count())
            .where(o.destination.in_(chunk))
            .group_by(o.destination, o.source)
        )
        for destination, source, n in rows:
            out[(destination, source)] += n
    return out
