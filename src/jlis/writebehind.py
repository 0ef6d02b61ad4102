"""Write-behind statements on PostgreSQL: a write whose result nobody reads waits on its connection
and goes to the server with the next statement, in one pipeline (libpq's pipeline mode): the
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

The waiting writes and the statement that sends them (:meth:`WriteBehindConnection.send_deferred`,
which :class:`jlis.bulk.Prepared` uses) go through libpq's pipeline directly (``psycopg.pq``), as
statements this module prepares on the connection once, their parameters dumped by psycopg's own
``Transformer`` when they are deferred (a bad parameter fails its caller, and nothing is sent).
psycopg's own pipeline ran ~20 µs of Python per statement and flushed and polled the socket after
each, where this flushes once: measured with the counters alone on PostgreSQL (12,000 changes,
three alternated pairs), their CPU per change −20 %, the server's −7 %. A statement of any other
cursor sends the waiting writes first, then runs as psycopg runs it. A write deferred before its
transaction ran anything runs at once: psycopg begins the transaction as it should.
psycopg deallocates *every* prepared statement (``DEALLOCATE ALL``) when it clears its own cache
(after a rollback, a ``ROLLBACK TO SAVEPOINT``, a ``DROP``...): the hook on that
(:meth:`WriteBehindConnection._deallocate`) makes this module prepare its statements again, under
new names. A statement dropped behind psycopg's back (a raw ``DEALLOCATE ALL``) fails the one
transaction that used it, and every statement is prepared again.

SQLite has no round trips: there :meth:`jlis.bulk.Prepared.defer` runs the statement at once.
"""

from __future__ import annotations

import re
import select
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.errors import error_from_result

if not hasattr(psycopg.Connection, "_deallocate"):  # see WriteBehindConnection._deallocate
    raise ImportError(
        f"jlis.writebehind needs psycopg 3.3 or later (its DEALLOCATE hook), not {psycopg.__version__}"
    )

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_IDLE = pq.TransactionStatus.IDLE


# A statement ready to send: (its text and parameter types: the key of its preparation), its
# parameters as psycopg dumped them, their formats.
Ready = tuple[tuple[bytes, tuple[int, ...]], list[Any], list[Any]]


@dataclass(frozen=True)
class Sent:
    """What the statement sent after the waiting writes returned: its rows (tuples, as psycopg's
    default cursor gives them) and its row count."""

    rows: list[tuple[Any, ...]]
    rowcount: int


class WriteBehindConnection(psycopg.Connection[Any]):
    """A psycopg connection that holds deferred writes until its next statement or commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deferred: list[Ready] = []  # bound when deferred: a bad parameter fails its caller
        self.cursor_factory = SendingCursor
        self._statements = _Statements(self)

    def defer(self, query: str, params: Any) -> None:
        """Run ``query`` with ``params`` before the connection's next statement or commit: at once
        when nothing of a transaction ran yet (the write begins it, as psycopg begins one) and in
        autocommit mode (no commit would come to send it)."""
        if self.autocommit or self.pgconn.transaction_status == _IDLE:
            self.cursor().execute(query, params)
            return
        self.deferred.append(self._statements.bind(query, params))

    def send_deferred(self, query: str | None = None, params: Any = None) -> Sent | None:
        """Send the waiting writes, and ``query`` after them, in one pipeline; ``query``'s rows.
        Without a query and with nothing waiting, nothing is sent: every statement of the
        connection and its commit call this first."""
        if not self.deferred and (query is None or self.pgconn.transaction_status == _IDLE):
            # Nothing waits; with no transaction begun, psycopg's own execution begins it as it
            # should (isolation level, read only): a write deferred first ran at once for that.
            return None
        last = None if query is None else self._statements.bind(query, params)  # may fail: nothing sent
        waiting, self.deferred = self.deferred, []
        with self.lock:
            return self._statements.send(waiting, last)

    def _deallocate(self, name: bytes | None) -> Any:  # psycopg's own, overridden
        """psycopg's own ``DEALLOCATE`` (it sends ``DEALLOCATE ALL`` when it clears its cache of
        prepared statements): with ``None`` it drops this module's statements too."""
        if name is None:
            self._statements.forget()
        return super()._deallocate(name)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        cur = super().cursor(*args, **kwargs)
        if self.deferred and not isinstance(cur, SendingCursor):  # a server cursor, another factory
            self.send_deferred()
        return cur

    def commit(self) -> None:
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
        self._owner.send_deferred()
        super().execute(query, params, **kwargs)
        return self

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        self._owner.send_deferred()
        super().executemany(query, params_seq, **kwargs)

    @contextmanager
    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Iterator[psycopg.Copy]:
        self._owner.send_deferred()
        with super().copy(statement, params, **kwargs) as copy:
            yield copy

    def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        self._owner.send_deferred()
        return super().stream(query, params, **kwargs)


# psycopg's placeholders, as SQLAlchemy's psycopg dialect writes them: %(name)s or %s, and %% for %.
_PLACEHOLDER = re.compile(rb"%\(([^)]+)\)s|%s|%%")


def to_numbered(query: str, encoding: str = "utf-8") -> tuple[bytes, tuple[str, ...] | int]:
    """``query`` with PostgreSQL's ``$n`` parameters, encoded: the text, and the names in ``$n``
    order (for a mapping of parameters) or their number (for a sequence)."""
    names: list[str] = []
    positional = 0

    def number(m: re.Match[bytes]) -> bytes:
        nonlocal positional
        if m.group(0) == b"%%":
            return b"%"
        if m.group(1) is None:
            positional += 1
            return b"$%d" % positional
        name = m.group(1).decode()
        if name not in names:
            names.append(name)
        return b"$%d" % (names.index(name) + 1)

    text = _PLACEHOLDER.sub(number, query.encode(encoding))
    if names and positional:
        raise ValueError("a query mixes named and positional placeholders")
    return text, tuple(names) if names else positional


class _Statements:
    """The statements this module prepared on one connection, and the sending of a pipeline."""

    def __init__(self, conn: WriteBehindConnection) -> None:
        self.conn = conn
        self._tx: Any = None  # a psycopg Transformer (C or Python, chosen at import)
        self.numbered: dict[str, tuple[bytes, tuple[str, ...] | int]] = {}
        self.names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self.made = 0  # names are never used twice: one dropped on the server may still exist

    def forget(self) -> None:
        self.names.clear()

    @property
    def tx(self) -> Any:
        """The connection's dumpers and loaders, as its cursors use them: taken at the first
        statement, after whatever the connection's creator registered (SQLAlchemy's on-connect)."""
        if self._tx is None:
            self._tx = Transformer(self.conn)
        return self._tx

    def send(self, waiting: Sequence[Ready], last: Ready | None) -> Sent | None:
        """Send ``waiting`` and ``last`` in one pipeline; ``last``'s rows."""
        pg = self.conn.pgconn
        bound = [*waiting, last] if last is not None else waiting
        fresh: list[tuple[bytes, tuple[int, ...]]] = []  # statements prepared in this pipeline
        pg.enter_pipeline_mode()
        try:
            for key, dumped, formats in bound:
                name = self.names.get(key)
                if name is None:
                    self.made += 1
                    name = self.names[key] = b"_jlis_%d" % self.made
                    fresh.append(key)
                    pg.send_prepare(name, key[0], param_types=key[1])
                pg.send_query_prepared(name, dumped, param_formats=formats)
            pg.pipeline_sync()
            results = _results(pg)
        except BaseException:
            for key in fresh:
                self.names.pop(key, None)
            with suppress(psycopg.Error):  # a broken connection: psycopg finds out on its own
                pg.exit_pipeline_mode()
            raise
        pg.exit_pipeline_mode()
        for r in results:
            if r.status in _OK or r.status == pq.ExecStatus.PIPELINE_ABORTED:
                continue
            # What this pipeline prepared may not exist (aborted before its turn): prepared again.
            for key in fresh:
                self.names.pop(key, None)
            if r.error_field(pq.DiagnosticField.SQLSTATE) == b"26000":
                self.forget()  # a statement went from under us after all: prepare every one again
            raise error_from_result(r, encoding=self.conn.info.encoding)
        if last is None:
            return None
        res = results[-1]  # the last statement's own (a preparation's result comes before it)
        self.tx.set_pgresult(res)
        rows = self.tx.load_rows(0, res.ntuples, tuple) if res.ntuples else []
        count = res.command_tuples
        return Sent(rows, -1 if count is None else count)

    def bind(self, query: str, params: Any) -> Ready:
        """A statement's key (its text and parameter types), its dumped parameters and formats."""
        numbered = self.numbered.get(query)
        if numbered is None:
            numbered = self.numbered[query] = to_numbered(query, self.conn.info.encoding)
        sql, order = numbered
        if isinstance(order, tuple):
            values: Sequence[Any] = [params[n] for n in order]
        else:
            values = params if params is not None else ()
            if len(values) != order:
                raise ValueError(f"the query takes {order} parameter(s), {len(values)} given")
        tx = self.tx
        dumped = tx.dump_sequence(values, [PyFormat.AUTO] * len(values))
        return (sql, tuple(tx.types or ())), list(dumped), list(tx.formats or ())


def _results(pg: Any) -> list[Any]:
    """Every result up to the pipeline's sync, waiting on the socket without the GIL (and reading
    while it sends, so that neither side's buffer fills up waiting for the other)."""
    poller = select.poll()
    poller.register(pg.socket, select.POLLIN | select.POLLOUT)
    while pg.flush():
        if any(events & select.POLLIN for _, events in poller.poll()):
            pg.consume_input()
    poller.modify(pg.socket, select.POLLIN)
    results: list[Any] = []
    while True:
        pg.consume_input()
        while not pg.is_busy():
            r = pg.get_result()
            if r is None:  # the end of one statement's results
                continue
            if r.status == pq.ExecStatus.PIPELINE_SYNC:
                return results
            results.append(r)
        poller.poll()
