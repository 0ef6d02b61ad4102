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

A plan may be limited to some tables (``allowed``): any statement that names another refuses it,
so a caller whose reads are guarded only for those tables cannot be misled by the others. Checks
that must see the live database (:attr:`Plan.guards`: "nothing changed what the plan read") run
first at replay, under the write lock, and may raise :class:`ReplayMismatch`.

Every SQLite connection made by :func:`jlis.db.make_engine` is a :class:`PlanningConnection`; one
that is not planning runs its statements as usual.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_WRITE = re.compile(
    r'\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.I
)
_READ = re.compile(r"\s*(?:SELECT|WITH)\b", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
# The tables a statement names (with _WRITE's): after FROM, JOIN or INTO, and the rest of a comma list
# after FROM ("FROM a, b AS x"); an alias is any word but a keyword that can follow a table.
_FOLLOWS = (
    "JOIN|WHERE|ON|LEFT|RIGHT|INNER|OUTER|CROSS|FULL|ORDER|GROUP|LIMIT|"
    "SET|VALUES|UNION|INDEXED|DEFAULT|SELECT"
)
_ALIAS = rf"(?:\s+(?:AS\s+)?(?!(?:{_FOLLOWS})\b)\w+)?"
_TABLE = rf'"?\w+"?{_ALIAS}'
_NAMED = re.compile(rf"\b(?:FROM|JOIN|INTO)\s+({_TABLE}(?:\s*,\s*{_TABLE})*)", re.I)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What :meth:`Plan.run` needs to know of a statement."""

    written: str | None  # the table an INSERT, UPDATE or DELETE writes
    reads: bool
    returning: bool
    named: frozenset[str]  # every table it names


@functools.lru_cache(maxsize=2048)
def _shape(sql: str) -> _Shape:
    """A statement's shape, worked out once per SQL text (a plan runs the same few statements)."""
    written = _WRITE.match(sql)
    named = {part.split()[0].strip('"') for m in _NAMED.finditer(sql) for part in m.group(1).split(",")}
    if written is not None:
        named.add(written.group(1))
    return _Shape(
        written.group(1) if written else None,
        _READ.match(sql) is not None,
        _RETURNING.search(sql) is not None,
        frozenset(named),
    )


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
    allowed: frozenset[str] | None = None  # the only tables the plan may name (None: any)
    # Run first at replay, each once (keyed so that a caller can register a check once per plan):
    # each raises ReplayMismatch when what the plan read has changed since its snapshot.
    guards: dict[object, Callable[[Any], None]] = field(default_factory=dict)

    def run(self, cursor: PlanningCursor, sql: str, params: Any, many: bool) -> None:
        shape = _shape(sql)
        if self.allowed is not None and not shape.named <= self.allowed:
            name = min(shape.named - self.allowed)
            raise PlanRefused(f"a statement on {name}, which this plan may not touch")
        written = shape.written
        if written is None:
            if self.tables and shape.reads and any(t in sql for t in self.tables if t not in self.merged):
                raise PlanRefused("a read of a table this plan has written")
            cursor.told = None
            if many:
                sqlite3.Cursor.executemany(cursor, sql, params)
            else:
                sqlite3.Cursor.execute(cursor, sql, params)
            return
        if shape.returning:
            raise PlanRefused("a write with RETURNING")
        # Copies: a caller may reuse its parameter list or dict for the next statement.
        rows = [_copy(p) for p in params] if many else _copy(params)
        told = len(rows) if many else 1
        self.writes.append((sql, rows, many, told))
        self.tables.add(written)
        cursor.told = told

    def mark(self) -> int:
        """A point to :meth:`rewind` to: the writes recorded so far."""
        return len(self.writes)

    def rewind(self, mark: int) -> None:
        """Forget the writes recorded since ``mark`` (a part of the plan that is given up). The
        tables they named stay counted as written: that can only refuse a later read."""
        del self.writes[mark:]


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
def planning(raw: Any, allowed: frozenset[str] | None = None) -> Iterator[Plan]:
    """Record the writes made on the sqlite3 connection ``raw`` while the block runs (on the
    tables ``allowed`` only, when given)."""
    if not isinstance(raw, PlanningConnection):
        raise PlanRefused("not a planning connection")
    plan = raw.plan = Plan(allowed=allowed)
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


def current(raw: Any) -> Plan | None:
    """The plan being recorded on ``raw``, if any."""
    return getattr(raw, "plan", None)


def replay(raw: Any, plan: Plan) -> None:
    """Run the plan's guards, then its writes, on ``raw``, in the caller's (writing) transaction."""
    for guard in plan.guards.values():
        guard(raw)
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
