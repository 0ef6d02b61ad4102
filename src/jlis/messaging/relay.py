from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import Clock
from jlis.db import transaction
from jlis.messaging.outbox import Message
from jlis.messaging.tables import InboxRow, OutboxRow

log = logging.getLogger(__name__)

# A handler applies messages addressed to one node, in order, inside the caller's transaction.
# It may publish onward messages in that same transaction (the next hop's outbox).
Handler = Callable[[Session, str, list[Message]], None]

MAX_ATTEMPTS = 5  # a message failing this often is parked rather than retried for ever


@dataclass
class RelayStats:
    delivered: int = 0
    duplicates: int = 0
    failed: int = 0


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
    ) -> None:
        self._factory = factory
        self._clock = clock
        self._handlers = handlers
        # Test seam: called at the named points so a crash test can die exactly there.
        self._crash_hook = crash_hook or (lambda _point: None)
        self.stats = RelayStats()

    def _handler_for(self, destination: str) -> Handler | None:
        return self._handlers.get(destination.split(":", 1)[0])

    def pending(self, limit: int) -> list[Message]:
        """The oldest deliverable messages. A message that failed ``MAX_ATTEMPTS`` times is parked
        (left for an operator, see :func:`parked`), and so is everything behind it with the same
        key, so order per key holds while other keys flow on."""
        with self._factory() as s:
            parked_keys = (
                select(OutboxRow.key)
                .where(OutboxRow.delivered_at.is_(None), OutboxRow.attempts >= MAX_ATTEMPTS)
                .scalar_subquery()
            )
            rows = s.execute(
                select(OutboxRow)
                .where(OutboxRow.delivered_at.is_(None), OutboxRow.key.not_in(parked_keys))
                .order_by(OutboxRow.seq)
                .limit(limit)
            ).scalars()
            return [_message(r) for r in rows]

    def run_once(self, batch: int = 1000) -> int:
        """Deliver up to ``batch`` pending messages; return how many were handled."""
        messages = self.pending(batch)
        if not messages:
            return 0
        by_destination: dict[str, list[Message]] = {}
        for m in messages:
            by_destination.setdefault(m.destination, []).append(m)
        done: list[int] = []
        for destination, group in by_destination.items():
            handler = self._handler_for(destination)
            if handler is None:
                log.warning("no handler for destination %s; %d messages wait", destination, len(group))
                self._fail(group[0], LookupError(f"no handler for destination {destination}"))
                continue
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

    def drain(self, batch: int = 1000, max_rounds: int = 1_000_000) -> int:
        total = 0
        for _ in range(max_rounds):
            n = self.run_once(batch)
            if n == 0:
                break
            total += n
        return total

    def _apply(self, destination: str, handler: Handler, group: list[Message]) -> None:
        with transaction(self._factory) as s:
            ids = [m.message_id for m in group]
            seen: set[str] = set()
            for chunk in _chunks(ids, 500):
                seen.update(
                    s.execute(
                        select(InboxRow.message_id).where(
                            InboxRow.node == destination, InboxRow.message_id.in_(chunk)
                        )
                    ).scalars()
                )
            fresh = [m for m in group if m.message_id not in seen]
            self.stats.duplicates += len(group) - len(fresh)
            if fresh:
                handler(s, destination, fresh)
                now = self._clock.now()
                s.execute(
                    insert(InboxRow),
                    [{"node": destination, "message_id": m.message_id, "applied_at": now} for m in fresh],
                )
            self._crash_hook("inside-apply")
        self.stats.delivered += len(group)

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
        with transaction(self._factory) as s:
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.seq == m.seq)
                .values(attempts=OutboxRow.attempts + 1, last_error=repr(exc)[:2000])
            )

    def _ack(self, seqs: list[int]) -> None:
        if not seqs:
            return
        now = self._clock.now()
        with transaction(self._factory) as s:
            for chunk in _chunks(seqs, 500):
                s.execute(update(OutboxRow).where(OutboxRow.seq.in_(chunk)).values(delivered_at=now))


T = TypeVar("T")


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def parked(session: Session) -> list[Message]:
    """Messages that failed ``MAX_ATTEMPTS`` times: they and their key wait for an operator."""
    rows = session.execute(
        select(OutboxRow)
        .where(OutboxRow.delivered_at.is_(None), OutboxRow.attempts >= MAX_ATTEMPTS)
        .order_by(OutboxRow.seq)
    ).scalars()
    return [_message(r) for r in rows]


def _message(r: OutboxRow) -> Message:
    return Message(r.message_id, r.source, r.destination, r.topic, r.key, json.loads(r.payload), r.seq)


def pending_counts(session: Session, destinations: Sequence[str]) -> Counter[tuple[str, str]]:
    """Undelivered messages per (destination, source): what a status page shows."""
    o = OutboxRow.__table__.c
    out: Counter[tuple[str, str]] = Counter()
    for chunk in _chunks(list(destinations), 500):
        rows = session.execute(
            select(o.destination, o.source, func.count())
            .where(o.destination.in_(chunk), o.delivered_at.is_(None))
            .group_by(o.destination, o.source)
        )
        for destination, source, n in rows:
            out[(destination, source)] += n
    return out
