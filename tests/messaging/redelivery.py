"""Messages delivered again, as after a relay that died between applying a round and its ack (the
ack deletes them from the outbox): a test takes copies of the waiting rows before the relay runs and
puts them back afterwards."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.messaging.tables import OutboxRow

OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]


def waiting(factory: sessionmaker[Session], *where: ColumnElement[bool]) -> list[dict[str, Any]]:
    """The waiting messages (``where`` narrows them), in seq order, every column but the seq."""
    columns = [c for c in OUTBOX.c if c.name != "seq"]
    with factory() as s:
        return [dict(r._mapping) for r in s.execute(select(*columns).where(*where).order_by(OUTBOX.c.seq))]


def publish_again(factory: sessionmaker[Session], rows: list[dict[str, Any]]) -> None:
    """Put ``rows`` (from :func:`waiting`) back in the outbox, each under a new seq."""
    with factory() as s, s.begin():
        s.execute(insert(OUTBOX), rows)
