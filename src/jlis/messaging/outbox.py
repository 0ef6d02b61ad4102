from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from jlis.messaging.tables import OutboxRow

# Core insert on the table, built once: each publish only binds parameters (an ORM insert with
# .values() would rebuild and re-key the statement on every call, the relay's main cost).
_INSERT = insert(cast(Table, OutboxRow.__table__))


@dataclass(frozen=True)
class Message:
    message_id: str
    source: str
    destination: str
    topic: str
    key: str
    payload: dict[str, Any]
    seq: int = 0


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
            "payload": json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
            "created_at": now,
            "attempts": 0,
        },
    )
    return mid


def publish_many(session: Session, messages: Sequence[Message], *, now: dt.datetime) -> None:
    """Several messages in one executemany, in the given order (so in sequence order), inside the
    caller's transaction, as :func:`publish` would write them one by one. ``seq`` is ignored."""
    if not messages:
        return
    session.execute(
        _INSERT,
        [
            {
                "message_id": m.message_id,
                "source": m.source,
                "destination": m.destination,
                "topic": m.topic,
                "key": m.key,
                "payload": json.dumps(m.payload, ensure_ascii=False, separators=(",", ":")),
                "created_at": now,
                "attempts": 0,
            }
            for m in messages
        ],
    )
