from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from jlis.bulk import bulk_insert
from jlis.messaging.tables import OutboxRow

# Core insert on the table, built once: each publish only binds parameters (an ORM insert with
# .values() would rebuild and re-key the statement on every call, the relay's main cost).
_OUTBOX = cast(Table, OutboxRow.__table__)
_INSERT = insert(_OUTBOX)


@dataclass(frozen=True)
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


def _encode(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def new_message_id() -> str:
    return str(uuid.uuid4())


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
    session.execute(
        _INSERT,
        {
            "message_id": mid,
            "source": source,
            "destination": destination,
            "topic": topic,
            "key": key,
            "payload": _encode(payload),
            "created_at": now,
            "attempts": 0,
        },
    )
    return mid


def publish_many(session: Session, messages: Sequence[Message], *, now: dt.datetime) -> None:
    """Several messages in one bulk insert (COPY on PostgreSQL), in the given order (so in sequence
    order), inside the caller's transaction, as :func:`publish` would write them one by one.
    ``seq`` is ignored; a message's ``raw`` text, when set, is written as its payload."""
    if not messages:
        return
    if now.tzinfo is None:  # COPY would read a naive time in the session's zone
        raise ValueError(f"an aware datetime is required, got {now!r}")
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
                "payload": m.raw if m.raw is not None else _encode(m.payload),
                "created_at": now,
                "attempts": 0,
            }
            for m in messages
        ],
    )
