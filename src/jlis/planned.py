"""Planned SQLite transactions: the reads and the Python work of a transaction on a snapshot, outside
the write lock, and only its writes under it.

SQLite lets one transaction write at a time, and a writer holds the lock for its whole duration,
Python included. A writer whose reads no one else can change in the meantime can instead run
twice: first on a snapshot (a plain ``BEGIN``, no write lock), with every write statement recorded
instead of executed (:func:`planning`), then, under the write lock, only those statements
(:func:`replay`). The relay is such a writer for its own tables (see jlis.messaging.relay): the
copies, histories and inboxes of the nodes are written by nobody else.

What cannot be deferred refuses the plan (:class:`PlanRefused`) and the caller runs the transaction
the ordinary way: a statement with ``RETURNING``, a read of ``lastrowid``, and a read of a table the
plan has already written (the snapshot would not show the planned write), unless the reader merges
what it wrote there itself (:func:`merge_reads`). The replay checks that
every statement touches as many rows as the plan was told; any difference raises
:class:`ReplayMismatch`, and the caller's transaction rolls back.

Every SQLite connection made by :func:`jlis.db.make_engine` is a :class:`PlanningConnection`; one
that is not planning runs its statements as usual.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_WRITE = re.compile(
    r'\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.I
)
_READ = re.compile(r"\s*(?:SELECT|WITH)\b", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)


class PlanRefused(Exception):
    """A statement of the plan cannot be deferred: run the transaction the ordinary way."""


class ReplayMismatch(Exception):
    """A replayed statement touched another number of rows than the plan was told."""


@dataclass
class Plan:
    """The write statements of a planned transaction, in order: (SQL, parameters, many, row count
    the plan was told)."""

    writes: list[tuple[str, Any, bool, int]] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    merged: set[str] = field(default_factory=set)  # see merge_reads

    def run(self, cursor: PlanningCursor, sql: str, params: Any, many: bool) -> None:
        written = _WRITE.match(sql)
        if written is None:
            if (
                self.tables
                and _READ.match(sql)
                and any(t in sql for t in self.tables if t not in self.merged)
            ):
                raise PlanRefused("a read of a table this plan has written")
            cursor.told = None
            if many:
                sqlite3.Cursor.executemany(cursor, sql, params)
            else:
                sqlite3.Cursor.execute(cursor, sql, params)
            return
        if _RETURNING.search(sql):
            raise PlanRefused("a write with RETURNING")
        # Copies: a caller may reuse its parameter list or dict for the next statement.
        rows = [_copy(p) for p in params] if many else _copy(params)
        told = len(rows) if many else 1
        self.writes.append((sql, rows, many, told))
        self.tables.add(written.group(1))
        cursor.told = told


def _copy(params: Any) -> Any:
    return params if isinstance(params, tuple) else type(params)(params)


class PlanningCursor(sqlite3.Cursor):
    told: int | None = None  # the row count a recorded write reports

    def execute(self, sql: str, parameters: Any = (), /) -> PlanningCursor:
        plan = self.connection.plan  # type: ignore[attr-defined]
        if plan is None:
            self.told = None
            sqlite3.Cursor.execute(self, sql, parameters)
        else:
            plan.run(self, sql, parameters, False)
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> PlanningCursor:
        plan = self.connection.plan  # type: ignore[attr-defined]
        if plan is None:
            self.told = None
            sqlite3.Cursor.executemany(self, sql, seq_of_parameters)
        else:
            plan.run(self, sql, seq_of_parameters, True)
        return self

    @property
    def rowcount(self) -> int:
        if self.told is not None:
            return self.told
        return int(sqlite3.Cursor.rowcount.__get__(self))

    @property
    def lastrowid(self) -> int | None:
        if self.told is not None:
            raise PlanRefused("a read of lastrowid")
        return sqlite3.Cursor.lastrowid.__get__(self)


class PlanningConnection(sqlite3.Connection):
    """A sqlite3 connection whose cursors record writes while :attr:`plan` is set."""

    plan: Plan | None = None

    def cursor(self, factory: Any = PlanningCursor) -> Any:
        return super().cursor(factory)


@contextmanager
def planning(raw: Any) -> Iterator[Plan]:
    """Record the writes made on the sqlite3 connection ``raw`` while the block runs."""
    if not isinstance(raw, PlanningConnection):
        raise PlanRefused("not a planning connection")
    plan = raw.plan = Plan()
    try:
        yield plan
    finally:
        raw.plan = None


def merge_reads(raw: Any, table: str) -> None:
    """The caller's reads of ``table`` merge what the transaction itself wrote there (it keeps its
    own record of that): in a plan, such a read does not refuse it, for the rest of the plan, so
    every reader of ``table`` in the plan must merge (in a relay round: jlis.juki.copies is the only
    reader of the copies it writes). Nothing outside a plan."""
    plan = getattr(raw, "plan", None)
    if plan is not None:
        plan.merged.add(table)


def replay(raw: Any, plan: Plan) -> None:
    """Run the plan's writes on ``raw``, in the caller's (writing) transaction."""
    cursor = raw.cursor()
    try:
        for sql, params, many, told in plan.writes:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
            if cursor.rowcount != told:
                raise ReplayMismatch(f"{cursor.rowcount} rows instead of {told}: {sql[:120]}")
    finally:
        cursor.close()
