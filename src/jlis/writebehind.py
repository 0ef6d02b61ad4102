"""Write-behind statements on PostgreSQL: a write whose result nobody reads waits on its connection
and goes to the server with the next statement, in one pipeline (psycopg's pipeline mode): the
client waits for the server once, and the server answers once.

A round trip costs PostgreSQL more than a short statement: measured here, an UPDATE by primary key
sent alone cost the server ~35 µs of CPU and the client ~30 µs, against ~5 and ~10 µs sent with
others. A counter action reads a record, then writes it and its household: its writes can ride
with the next action's read, or with the commit.

The connection keeps the order: every statement, from any cursor of the connection (SQLAlchemy's,
a prepared statement's, a COPY) and the commit send the waiting writes first. A rollback drops
them. What a waiting write does wrong (a constraint it breaks) is raised by the statement or the
commit that sends it: the transaction fails there, as it would have, only later. So a caller
defers only writes it would not catch an error of, and whose row count it does not need.

SQLite has no round trips: there :meth:`jlis.bulk.Bound.defer` runs the statement at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg


class WriteBehindConnection(psycopg.Connection[Any]):
    """A psycopg connection that holds deferred writes until its next statement or commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deferred: list[tuple[str, Any]] = []
        self.cursor_factory = SendingCursor
        self._writer: psycopg.Cursor[Any] | None = None

    def defer(self, query: str, params: Any) -> None:
        """Run ``query`` with ``params`` before the connection's next statement or commit (at once
        in autocommit mode: no commit would come to send it)."""
        if self.autocommit:
            self.cursor().execute(query, params)
            return
        self.deferred.append((query, params))

    def send_deferred(
        self, cursor: psycopg.Cursor[Any] | None = None, query: Any = None, params: Any = None, **kwargs: Any
    ) -> None:
        """Send the waiting writes, and ``query`` on ``cursor`` after them, in one pipeline."""
        waiting, self.deferred = self.deferred, []
        writer = self._writer
        if writer is None or writer.closed:
            writer = self._writer = psycopg.Cursor(self)
        with self.pipeline():
            for q, p in waiting:
                writer.execute(q, p)
            if cursor is not None:
                psycopg.Cursor.execute(cursor, query, params, **kwargs)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        cur = super().cursor(*args, **kwargs)
        if self.deferred and not isinstance(cur, SendingCursor):  # a server cursor, another factory
            self.send_deferred()
        return cur

    def commit(self) -> None:
        if self.deferred:
            self.send_deferred()
        super().commit()

    def rollback(self) -> None:
        self.deferred.clear()
        super().rollback()

    def close(self) -> None:
        self.deferred.clear()
        super().close()


class SendingCursor(psycopg.Cursor[Any]):
    """A cursor of a :class:`WriteBehindConnection`: sends the connection's waiting writes before
    its own statement."""

    @property
    def _owner(self) -> WriteBehindConnection:
        return self.connection  # type: ignore[return-value]  # made by WriteBehindConnection only

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> SendingCursor:
        if self._owner.deferred:
            self._owner.send_deferred(self, query, params, **kwargs)
            return self
        super().execute(query, params, **kwargs)
        return self

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        if self._owner.deferred:
            self._owner.send_deferred()
        super().executemany(query, params_seq, **kwargs)

    @contextmanager
    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Iterator[psycopg.Copy]:
        if self._owner.deferred:
            self._owner.send_deferred()
        with super().copy(statement, params, **kwargs) as copy:
            yield copy

    def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if self._owner.deferred:
            self._owner.send_deferred()
        return super().stream(query, params, **kwargs)
