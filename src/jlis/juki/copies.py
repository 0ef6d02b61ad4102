"""The one rule every tier follows when it applies records to its copy, in batches.

For each record, in message order:

- a history row is appended, always (the history is what the tier received);
- the current row is replaced only when the record's ``recorded_at`` is at least the stored one, so a
  late record (a 転出 from the old municipality arriving after the 転入 at the new one) goes into the
  history but never overwrites the newer current state;
- a record with ``previous_resident_code`` (住民票コード変更) marks the old code's row superseded by
  the new code, so a look-up by the old code finds nothing current.

A batch costs a fixed number of statements whatever its size, and so does a relay round of many
nodes' batches (:func:`apply_records_many`): one query for the stored rows (keys joined as one
parameter, see jlis.keyset), one bulk insert each for new rows and history (COPY on PostgreSQL),
one executemany each for updates, supersessions and the node counters (an upsert).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, bindparam, text, update
from sqlalchemy.orm import Session

from jlis import jsontext
from jlis.bulk import Prepared, bulk_insert, bulk_insert_values, bulk_update_values
from jlis.juki.tables import nodes, utc
from jlis.keyset import select_by_keys
from jlis.planned import merge_reads


@dataclass(frozen=True)
class Tier:
    """The current-copy and history tables of one tier. ``node_keyed``: rows carry the node (many
    nodes of this kind share the tables); the national tiers hold one node and no such column."""

    name: str
    current: Table
    history: Table
    node_keyed: bool

    @cached_property
    def record_columns(self) -> tuple[str, ...]:
        skip = {"node", "superseded_by", "applied_at"}
        return tuple(c.name for c in self.current.columns if c.name not in skip)

    @cached_property
    def indexed_columns(self) -> tuple[str, ...]:
        """The record's columns in the copy's secondary indexes (the national search keys). SQLite
        rewrites an index whenever its columns are in an UPDATE's SET list, even with the same
        values: a record that leaves them as they are is written without them."""
        names = {c.name for ix in self.current.indexes for c in ix.columns}
        return tuple(c for c in self.record_columns if c in names)

    @cached_property
    def indexed_values(self) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        """A record row's values of :attr:`indexed_columns`, as a tuple."""
        names = self.indexed_columns
        if len(names) > 1:
            return itemgetter(*names)
        return lambda row: tuple(row[c] for c in names)

    @cached_property
    def history_fields(self) -> tuple[str, ...]:
        """The record's columns in the history (the national copy's search keys are not there)."""
        skip = {"id", "node", "message_id", "applied_at"}
        return tuple(c.name for c in self.history.columns if c.name not in skip)

    @cached_property
    def history_columns(self) -> tuple[str, ...]:
        """A history row's columns, in the order :func:`apply_records_many` gives its values."""
        return (*self.history_fields, "message_id", "applied_at", *(("node",) if self.node_keyed else ()))

    @cached_property
    def key_columns(self) -> tuple[str, ...]:
        return ("node", "resident_code") if self.node_keyed else ("resident_code",)

    def _key(self, code_param: str) -> ColumnElement[bool]:
        cond = self.current.c.resident_code == bindparam(code_param)
        if self.node_keyed:
            return and_(self.current.c.node == bindparam("k_node"), cond)
        return cond

    @cached_property
    def supersede_stmt(self) -> Any:
        return update(self.current).where(self._key("k_code")).values(superseded_by=bindparam("v_new"))


@dataclass
class Applied:
    """What one batch did to a node's copy."""

    added: int = 0  # new current rows
    replaced: int = 0  # current rows replaced by a record at least as late
    late: int = 0  # records older than the stored one: history only
    superseded: list[tuple[str, str]] = field(default_factory=list)  # (old code, new code)


Entries = Sequence[tuple[str | None, dict[str, Any]]]


def apply_records(session: Session, tier: Tier, node: str, entries: Entries, now: dt.datetime) -> Applied:
    """Apply ``(message_id, record row)`` pairs, in order, to ``node``'s copy in ``tier``."""
    return apply_records_many(session, tier, [(node, entries)], now)[0]


def apply_records_many(
    session: Session, tier: Tier, groups: Sequence[tuple[str, Entries]], now: dt.datetime
) -> list[Applied]:
    """:func:`apply_records` for several nodes of one tier at once (each node once), with the same
    fixed number of statements as for one: what a relay round of many small batches needs."""
    now = utc(now)
    cur = tier.current
    keyed = tier.node_keyed
    history_fields = tier.history_fields
    keys: list[Any] = []
    for node, entries in groups:
        for _mid, row in entries:
            keys.append((node, row["resident_code"]) if keyed else row["resident_code"])
            previous = row.get("previous_resident_code")
            if previous:
                keys.append((node, previous) if keyed else previous)
    # (node, code) -> stored recorded_at and indexed values; the node is "" in a tier without a
    # node column.
    indexed = tier.indexed_columns
    stored: dict[tuple[str, str], dt.datetime] = {}
    stored_index: dict[tuple[str, str], tuple[Any, ...]] = {}
    written = _written(session, tier)
    if written:
        merge_reads(session.connection().connection.driver_connection, cur.name)
    by, width = tier.key_columns, len(tier.key_columns)
    for r in select_by_keys(session, cur, by, keys, (*by, "recorded_at", *indexed)):
        key = (r[0], r[1]) if keyed else ("", r[0])
        stored[key], stored_index[key] = r[width], r[width + 1 :]
    for key, (at, values) in written.items():  # the snapshot of a planned round lacks them
        stored[key], stored_index[key] = at, values

    results: list[Applied] = []
    inserts: dict[tuple[str, str], dict[str, Any]] = {}
    updates: dict[tuple[str, str], dict[str, Any]] = {}
    supersede: list[dict[str, Any]] = []
    history: list[tuple[Any, ...]] = []  # values in tier.history_columns order
    touches: list[dict[str, Any]] = []
    of_history = itemgetter(*history_fields)
    for node, entries in groups:
        result = Applied()
        k = node if keyed else ""
        extra = {"node": node} if keyed else {}
        tail = (now, node) if keyed else (now,)  # a history row's values after the message id
        added = 0
        superseding: dict[str, str] = {}
        for message_id, row in entries:
            code = row["resident_code"]
            at = row["recorded_at"]
            history.append((*of_history(row), message_id, *tail))
            previous = row.get("previous_resident_code")
            if previous and previous != code:
                superseding[previous] = code
            key = (k, code)
            known = stored.get(key)
            if known is not None and at < known:
                result.late += 1
                continue
            stored[key] = at
            if key in inserts:
                inserts[key] = {**inserts[key], **row}
            elif known is None:
                inserts[key] = {**row, **extra, "superseded_by": None, "applied_at": now}
                added += 1
                result.added += 1
            else:
                if key not in updates:
                    result.replaced += 1
                updates[key] = row
        for old, new in superseding.items():
            if (k, old) in inserts:
                inserts[(k, old)]["superseded_by"] = new
                result.superseded.append((old, new))
            elif (k, old) in stored:
                result.superseded.append((old, new))
                supersede.append({"k_code": old, "k_node": node, "v_new": new})
        touches.append({"node": node, "records": added, "applied": len(entries), "now": now})
        results.append(result)

    of_indexed = tier.indexed_values
    for rows in (inserts, updates):
        for key, row in rows.items():
            written[key] = (row["recorded_at"], of_indexed(row))
    if inserts:
        bulk_insert(session, cur, list(inserts.values()))
    if updates:
        _update_rows(session, tier, updates, stored_index, now)
    if supersede:
        session.execute(tier.supersede_stmt, supersede)
    bulk_insert_values(session, tier.history, tier.history_columns, history)
    touch_nodes(session, touches)
    return results


# Session.info: (transaction, {tier name: {(node, code): (recorded_at, indexed values)}}).
_WRITTEN = "jlis.juki.copies.written"


Written = dict[tuple[str, str], tuple[dt.datetime, tuple[Any, ...]]]


def _written(session: Session, tier: Tier) -> Written:
    """The current rows this transaction has written to ``tier``'s copy so far. A relay round applies
    a tier once per wave, and a planned round (jlis.planned) reads a snapshot that does not show
    the earlier waves' writes: they are taken from here instead (see merge_reads)."""
    session.connection()  # begins the transaction, if it has not begun, before it is looked at
    txn = session.get_transaction()
    held: tuple[Any, dict[str, Written]] | None = session.info.get(_WRITTEN)
    if held is None or held[0] is not txn:
        held = session.info[_WRITTEN] = (txn, {})
    return held[1].setdefault(tier.name, {})


def _update_rows(
    session: Session,
    tier: Tier,
    updates: dict[tuple[str, str], dict[str, Any]],
    stored_index: dict[tuple[str, str], tuple[Any, ...]],
    now: dt.datetime,
) -> None:
    """Replace current rows: those whose indexed values stay as stored without those columns (see
    :attr:`Tier.indexed_columns`), the others with every column."""
    keyed = tier.node_keyed
    indexed = tier.indexed_columns
    sets = tuple(c for c in tier.record_columns if c != "resident_code")
    keep = tuple(c for c in sets if c not in indexed)
    # Values in the order of the columns below: those set, then applied_at, then the key.
    same: list[tuple[Any, ...]] = []
    changed: list[tuple[Any, ...]] = []
    of_kept, of_all, of_indexed = itemgetter(*keep), itemgetter(*sets), tier.indexed_values
    for (k, code), row in updates.items():
        tail = (now, k, code) if keyed else (now, code)
        if indexed and of_indexed(row) == stored_index.get((k, code)):
            same.append((*of_kept(row), *tail))
        else:
            changed.append((*of_all(row), *tail))
    key = tier.key_columns
    for columns, rows in ((keep, same), (sets, changed)):
        if rows:
            bulk_update_values(session, tier.current, key, (*columns, "applied_at", *key), rows)


# Counters of many nodes in one statement: a node seen for the first time gets its row.
_ON_CONFLICT = (
    "ON CONFLICT (node) DO UPDATE SET records = juki_nodes.records + excluded.records, "
    "applied = juki_nodes.applied + excluded.applied, "
    "last_applied_at = COALESCE(excluded.last_applied_at, juki_nodes.last_applied_at)"
)
_NOW = bindparam("now", type_=nodes.c.last_applied_at.type)
_UPSERT = text(
    f"INSERT INTO juki_nodes (node, records, applied, last_applied_at) "
    f"VALUES (:node, :records, :applied, :now) {_ON_CONFLICT}"
).bindparams(_NOW)
# PostgreSQL: the nodes and their counts as JSON arrays, one statement and no reply awaited
# (written behind, jlis.writebehind), where an executemany ran psycopg's pipeline, ~20 µs of
# Python a row, and waited for the server.
_UPSERT_MANY = Prepared(
    text(
        "INSERT INTO juki_nodes (node, records, applied, last_applied_at) "
        "SELECT v.node, CAST(v.records AS integer), CAST(v.applied AS integer), "
        "CAST(:now AS timestamp with time zone) "
        "FROM ROWS FROM (json_array_elements_text(CAST(:nodes AS json)), "
        "json_array_elements_text(CAST(:records AS json)), json_array_elements_text(CAST(:applied AS json))) "
        f"AS v(node, records, applied) {_ON_CONFLICT}"
    ).bindparams(_NOW)
)


def touch_nodes(session: Session, counts: Sequence[dict[str, Any]]) -> None:
    """Move the counters of several nodes, each once: dicts of ``node``, ``records`` (added),
    ``applied`` and ``now`` (the last applied time; None keeps it, as the initial load does)."""
    if not counts:
        return
    now = counts[0]["now"]
    if session.get_bind().dialect.name == "postgresql" and all(c["now"] == now for c in counts):
        columns = {"nodes": "node", "records": "records", "applied": "applied"}
        params = {p: jsontext.dumps([c[k] for c in counts]) for p, k in columns.items()}
        _UPSERT_MANY.defer(session, params | {"now": now})
    else:
        session.execute(_UPSERT, list(counts))
