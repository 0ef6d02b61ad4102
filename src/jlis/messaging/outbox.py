from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.orm import Session

from jlis import jsontext
from jlis.bulk import Bound, Prepared, bulk_insert
from jlis.messaging.tables import OutboxRow

_OUTBOX = cast(Table, OutboxRow.__table__)
OUTBOX_TABLE = _OUTBOX.name
_COLUMNS = ("message_id", "source", "destination", "topic", "key", "payload", "created_at", "attempts")
# Prepared once: a counter action publishes one to three messages, for which COPY or SQLAlchemy's
# per-statement machinery would cost more than the insert itself.
_INSERT = Prepared(insert(_OUTBOX).inline(), keys=_COLUMNS)
SMALL = 8  # up to this many messages go in one prepared multi-row INSERT, more through bulk_insert


@functools.cache
def _insert_rows(n: int) -> Prepared:
    """``INSERT ... VALUES (...), ... `` of ``n`` messages: one statement, so one round trip on
    PostgreSQL (psycopg's executemany would open a pipeline for two rows)."""
    values = [{c: bindparam(f"{c}_{i}", type_=_OUTBOX.c[c].type) for c in _COLUMNS} for i in range(n)]
    return Prepared(insert(_OUTBOX).values(values).inline())


_HELD = "jlis.messaging.held"  # Session.info key: messages held back for the relay (see hold)


@dataclass(frozen=True, init=False)
class Message:
    message_id: str
    source: str
    destination: str
    topic: str
    key: str
    payload: dict[str, Any]
    seq: int = 0
    # The payload's JSON text as read from the outbox (or None): a node that passes a message on
    # unchanged writes this text again instead of encoding the dict a second time.
    raw: str | None = field(default=None, compare=False, repr=False)
    # What the node that passed this payload on made of it: (the function it parsed it with, the
    # result), so that a next hop parsing the same payload with the same function in the same relay
    # round takes the result instead (see jlis.juki.nodes.parsed). Never stored.
    parsed: tuple[Any, Any] | None = field(default=None, compare=False, repr=False)

    def __init__(
        self,
        message_id: str,
        source: str,
        destination: str,
        topic: str,
        key: str,
        payload: dict[str, Any],
        seq: int = 0,
        raw: str | None = None,
        parsed: tuple[Any, Any] | None = None,
    ) -> None:
        # A frozen dataclass's own __init__ sets each field through object.__setattr__: ~2 µs a
        # message, ~8 messages a change between the counter and the relay. Filling the instance's
        # dict directly costs a third of that; the instance stays frozen (setattr refuses).
        d = self.__dict__
        d["message_id"], d["source"], d["destination"], d["topic"] = message_id, source, destination, topic
        d["key"], d["payload"], d["seq"], d["raw"], d["parsed"] = key, payload, seq, raw, parsed


def encode_payload(payload: dict[str, Any]) -> str:
    """A payload's JSON text, as the outbox stores it."""
    return jsontext.dumps(payload)


def new_message_id() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix time in milliseconds, then random bits. Ids made one
    after another sort together, so the outbox's unique index and each node's inbox take them at
    their right edge, a page per round, instead of a random page per message (and PostgreSQL logs
    no full-page image of a cold index page per message). The time in an id only places it; it is
    never read back as a fact."""
    return _uuid_text(time.time_ns() // 1_000_000, _random_10(), 7)


# The random part of new ids, taken from the OS 256 ids at a time: a counter action makes two ids,
# and a getrandom system call each was ~2 % of the counter's CPU. A forked child starts its own
# pool (it would hand out its parent's bytes again).
_POOL: list[bytes] = []
os.register_at_fork(after_in_child=_POOL.clear)


def _random_10() -> bytes:
    try:
        return _POOL.pop()  # atomic: threads never share a popped value
    except IndexError:
        block = os.urandom(2560)
        _POOL.extend(block[i : i + 10] for i in range(0, 2560, 10))
        return _POOL.pop()


def derived_message_id(message_id: str, name: str) -> str:
    """The id of a message made from ``message_id`` (e.g. the forward of an applied message to
    ``name``), the same every time: its first 48 bits are those of ``message_id`` (so it sorts
    with it, see :func:`new_message_id`), the rest SHA-1 of both, as a UUIDv8 (RFC 9562)."""
    digest = hashlib.sha1(f"{message_id}>{name}".encode()).digest()
    try:
        prefix = int(message_id[:8] + message_id[9:13], 16) if message_id[8:9] == "-" else None
    except ValueError:
        prefix = None  # not a UUID's text: the digest places it
    if prefix is None:
        return _uuid_text(int.from_bytes(digest[10:16], "big"), digest[:10], 8)
    return _uuid_text(prefix, digest[:10], 8)


def _uuid_text(prefix: int, rest: bytes, version: int) -> str:
    """``str(uuid.UUID(...))`` of a 48-bit prefix and 80 more bits, version and variant set,
    without building UUID objects (a relay round makes thousands)."""
    b = bytearray(prefix.to_bytes(6, "big") + rest)
    b[6] = (b[6] & 0x0F) | (version << 4)
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def publish(
    session: Session,
    *,
    source: str,
    destination: str,
    topic: str,
    key: str,
    payload: dict[str, Any],
    now: dt.datetime,
    message_id: str | None = None,
) -> str:
    """Write a message to the outbox inside the caller's transaction; it leaves only if that commits."""
    mid = message_id or new_message_id()
    held = session.info.get(_HELD)
    if held is not None:
        held.append((Message(mid, source, destination, topic, key, payload), now))
        return mid
    _INSERT.run(
        session,
        {
            "message_id": mid,
            "source": source,
            "destination": destination,
            "topic": topic,
            "key": key,
            "payload": encode_payload(payload),
            "created_at": now,
            "attempts": 0,
        },
    )
    return mid


def publish_many(
    session: Session, messages: Sequence[Message], *, now: dt.datetime, bound: Bound | None = None
) -> None:
    """Several messages in one bulk insert (COPY on PostgreSQL), in the given order (so in sequence
    order), inside the caller's transaction, as :func:`publish` would write them one by one.
    ``seq`` is ignored; a message's ``raw`` text, when set, is written as its payload. ``bound``:
    the session's connection already taken for prepared statements (see jlis.bulk.Bound)."""
    if not messages:
        return
    if now.tzinfo is None:  # COPY would read a naive time in the session's zone
        raise ValueError(f"an aware datetime is required, got {now!r}")
    held = session.info.get(_HELD)
    if held is not None:
        held.extend((m, now) for m in messages)
        return
    rows = [
        {
            "message_id": m.message_id,
            "source": m.source,
            "destination": m.destination,
            "topic": m.topic,
            "key": m.key,
            "payload": m.raw if m.raw is not None else encode_payload(m.payload),
            "created_at": now,
            "attempts": 0,
        }
        for m in messages
    ]
    if len(rows) <= SMALL:
        _insert_rows(len(rows)).run(
            bound or session, {f"{c}_{i}": v for i, row in enumerate(rows) for c, v in row.items()}
        )
    else:
        bulk_insert(session, _OUTBOX, rows)


# ------------------------------------------------------------------- holding back (the relay's cascade)


def hold(session: Session) -> None:
    """From now on, what is published in ``session`` is kept in memory instead of written (see
    :func:`release`): a group of counter actions writes its messages at its end, and the relay
    delivers a forward in the transaction that made it, writing only those that wait."""
    session.info[_HELD] = []


def release(session: Session) -> list[tuple[Message, dt.datetime]]:
    """What was published since :func:`hold` (each message with its publication time), in order;
    publishing writes to the outbox again. Nothing held is written: see :func:`write_held`."""
    held: list[tuple[Message, dt.datetime]] = session.info.pop(_HELD, [])
    return held


def held_count(session: Session) -> int:
    """How many messages ``session`` holds (see :func:`rewind_held`)."""
    return len(session.info.get(_HELD, ()))


def rewind_held(session: Session, count: int) -> None:
    """Drop the messages held after the first ``count`` (a planned action that is given up)."""
    held = session.info.get(_HELD)
    if held is not None:
        del held[count:]


def write_held(session: Session, held: Sequence[tuple[Message, dt.datetime]]) -> None:
    """Write released messages to the outbox, to wait for delivery, in their order."""
    if not held:
        return
    bulk_insert(
        session,
        _OUTBOX,
        [
            {
                "message_id": m.message_id,
                "source": m.source,
                "destination": m.destination,
                "topic": m.topic,
                "key": m.key,
                "payload": m.raw if m.raw is not None else encode_payload(m.payload),
                "created_at": now,
                "attempts": 0,
            }
            for m, now in held
        ],
    )
