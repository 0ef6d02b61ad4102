"""The one rule every tier follows when it applies records to its copy, in batches.

For each record, in message order:

- a history row is appended, always (the history is what the tier received);
- the current row is replaced only when the record's ``recorded_at`` is at least the stored one, so a
  late record (a 転出 from the old municipality arriving after the 転入 at the new one) goes into the
  history but never overwrites the newer current state;
- a record with ``previous_resident_code`` (住民票コード変更) marks the old code's row superseded by
  the new code, so a look-up by the old code finds nothing current.

A batch costs a fixed number of statements whatever its size: one ``IN`` query for the stored rows,
then one executemany each for inserts, updates, supersessions, history and the node counters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, bindparam, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from jlis.juki.tables import nodes, utc

IN_CHUNK = 500  # bound parameters per IN (...): far below every backend's limit


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

    def _key(self, code_param: str) -> ColumnElement[bool]:
        cond = self.current.c.resident_code == bindparam(code_param)
        if self.node_keyed:
            return and_(self.current.c.node == bindparam("k_node"), cond)
        return cond

    @cached_property
    def update_stmt(self) -> Any:
        # Bind names differ from column names: SQLAlchemy reserves those for the SET clause.
        values: dict[str, Any] = {c: bindparam(f"v_{c}") for c in self.record_columns if c != "resident_code"}
        values["applied_at"] = bindparam("v_applied_at")
        return update(self.current).where(self._key("k_code")).values(values)

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


def apply_records(
    session: Session,
    tier: Tier,
    node: str,
    entries: Sequence[tuple[str | None, dict[str, Any]]],
    now: dt.datetime,
) -> Applied:
    """Apply ``(message_id, record row)`` pairs, in order, to ``node``'s copy in ``tier``."""
    now = utc(now)
    cur = tier.current
    codes: set[str] = set()
    for _mid, row in entries:
        codes.add(row["resident_code"])
        if row.get("previous_resident_code"):
            codes.add(row["previous_resident_code"])
    stored: dict[str, dt.datetime] = {}
    code_list = sorted(codes)
    for start in range(0, len(code_list), IN_CHUNK):
        stmt = select(cur.c.resident_code, cur.c.recorded_at).where(
            cur.c.resident_code.in_(code_list[start : start + IN_CHUNK])
        )
        if tier.node_keyed:
            stmt = stmt.where(cur.c.node == node)
        stored.update((r.resident_code, r.recorded_at) for r in session.execute(stmt))

    result = Applied()
    inserts: dict[str, dict[str, Any]] = {}
    updates: dict[str, dict[str, Any]] = {}
    supersede: dict[str, str] = {}
    history: list[dict[str, Any]] = []
    keyed = {"node": node} if tier.node_keyed else {}
    for message_id, row in entries:
        code = row["resident_code"]
        history.append({**row, **keyed, "message_id": message_id, "applied_at": now})
        previous = row.get("previous_resident_code")
        if previous and previous != code:
            supersede[previous] = code
        known = stored.get(code)
        if known is not None and row["recorded_at"] < known:
            result.late += 1
            continue
        stored[code] = row["recorded_at"]
        if code in inserts:
            inserts[code] = {**inserts[code], **row}
        elif known is None:
            inserts[code] = {**row, **keyed, "superseded_by": None, "applied_at": now}
        else:
            updates[code] = row
    for old, new in supersede.items():
        if old in inserts:
            inserts[old]["superseded_by"] = new
            result.superseded.append((old, new))
        elif old in stored:
            result.superseded.append((old, new))

    if inserts:
        session.execute(insert(cur), list(inserts.values()))
    if updates:
        params = [
            {"k_code": code, "k_node": node, "v_applied_at": now}
            | {f"v_{c}": row[c] for c in tier.record_columns if c != "resident_code"}
            for code, row in updates.items()
        ]
        session.execute(tier.update_stmt, params)
    pending = [(old, new) for old, new in result.superseded if old not in inserts]
    if pending:
        session.execute(tier.supersede_stmt, [{"k_code": o, "k_node": node, "v_new": n} for o, n in pending])
    session.execute(insert(tier.history), history)
    result.added, result.replaced = len(inserts), len(updates)
    touch_node(session, node, added=len(inserts), applied=len(entries), now=now)
    return result


_COUNT = update(nodes).where(nodes.c.node == bindparam("k_node"))
_TOUCH = _COUNT.values(
    records=nodes.c.records + bindparam("v_added"),
    applied=nodes.c.applied + bindparam("v_applied"),
    last_applied_at=bindparam("v_now"),
)
_TOUCH_KEEP_TIME = _COUNT.values(
    records=nodes.c.records + bindparam("v_added"), applied=nodes.c.applied + bindparam("v_applied")
)


def touch_node(session: Session, node: str, *, added: int, applied: int, now: dt.datetime | None) -> None:
    """Move a node's counters; ``now`` None keeps the last applied time (initial load)."""
    params: dict[str, Any] = {"k_node": node, "v_added": added, "v_applied": applied}
    if now is None:
        result = session.execute(_TOUCH_KEEP_TIME, params)
    else:
        result = session.execute(_TOUCH, params | {"v_now": now})
    if isinstance(result, CursorResult) and result.rowcount == 0:
        session.execute(insert(nodes).values(node=node, records=added, applied=applied, last_applied_at=now))
