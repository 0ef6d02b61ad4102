"""A relay round behind a long queue: does a round cost more the more waits behind it?

    .venv/bin/python -m bench.relay_backlog [--waiting 300000] [--batch 5000] [--rounds 3]

A relay that falls behind takes full rounds (as many messages as its batch), and a full round must
know what waits after it before it follows the forwards it makes (Relay._follow). This bench fills
the outbox with messages for the first node of a three-node chain (a → b → c, each passing every
message on under its key), then times full rounds on two fresh SQLite databases: one with exactly
``--batch`` messages waiting (the baseline: nothing after the round), one with ``--waiting``
messages, their rounds alternated. The ratio of the two rounds' times is the figure: ~1 when a round
reads only what waits for its forwards' destinations, growing with the queue when it reads the queue.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from sqlalchemy.orm import Session

from bench.common import fresh_sqlite, machine
from jlis.clock import JST, FixedClock
from jlis.db import make_session_factory
from jlis.messaging import Message, Relay, publish_many
from jlis.messaging.outbox import derived_message_id, new_message_id

CLOCK = FixedClock(dt.datetime(2026, 11, 26, 9, 0, tzinfo=JST))
CHAIN = {"a": "b:1", "b": "c:1", "c": None}


def passer(onward: str | None):  # type: ignore[no-untyped-def]
    def apply(session: Session, node: str, messages: list[Message]) -> None:
        if onward is not None:
            forwards = [
                Message(derived_message_id(m.message_id, onward), node, onward, "t", m.key, m.payload)
                for m in messages
            ]
            publish_many(session, forwards, now=CLOCK.now())

    return apply


class Queue:
    """A relay over a fresh SQLite database with ``waiting`` messages queued for ``a:1``."""

    def __init__(self, waiting: int, batch: int) -> None:
        self.factory = make_session_factory(fresh_sqlite(f"backlog-{waiting}"))
        self.batch = batch
        self._add(waiting, "k")
        self.relay = Relay(self.factory, CLOCK, {kind: passer(onward) for kind, onward in CHAIN.items()})
        self.rounds = 0

    def _add(self, n: int, prefix: str) -> None:
        with self.factory() as s, s.begin():
            ids = [new_message_id() for _ in range(n)]
            messages = [Message(mid, "t", "a:1", "t", f"{prefix}{i}", {"v": i}) for i, mid in enumerate(ids)]
            publish_many(s, messages, now=CLOCK.now())

    def full_round(self) -> float:
        """Seconds of one full round; then as many messages join the queue's end, so the next round
        is as far behind as this one was."""
        started = time.perf_counter()
        assert self.relay.run_once(self.batch) == self.batch
        took = time.perf_counter() - started
        self.rounds += 1
        self._add(self.batch, f"r{self.rounds}-")
        return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--waiting", type=int, default=300_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    base, behind = Queue(args.batch, args.batch), Queue(args.waiting, args.batch)
    base.full_round(), behind.full_round()  # warm-up: statements compiled, pages cached
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(args.rounds):  # alternated, so a machine that speeds up or slows down hits both
        times[0].append(base.full_round())
        times[1].append(behind.full_round())
    for q in (base, behind):  # every forward followed in the round that made it
        assert q.relay.stats.followed == 2 * args.batch * q.rounds, q.relay.stats
    b, w = (statistics.median(t) for t in times)
    print(f"relay rounds behind a queue (SQLite, chain a → b → c) — {machine()}")
    print(
        f"full round of {args.batch:,}: {b * 1000:.0f} ms with nothing after it, {w * 1000:.0f} ms "
        f"with {args.waiting - args.batch:,} more waiting; ratio {w / b:.2f} "
        f"(medians of {args.rounds}, alternated)"
    )


if __name__ == "__main__":
    main()
