"""The BCL's read-only window on a municipality's register (既存住基).

``jlis.registry`` offers per-person reads (``RegistryService.get``/``search``/``household_members``)
but no bulk read of a whole municipality, which backups and the victim register need. This module
is that bulk read, and the only place in jlis.bcl that touches the register's tables:

- it only ever SELECTs from ``reg_households``, ``reg_residents``, ``reg_history`` and
  ``reg_move_out_certificates`` (the tables of ``jlis.registry.tables``), filtered by ``lg_code``;
- every read writes an ``access`` audit entry (``system: bcl``) in the caller's transaction: a
  backup writes one entry for the whole export (purpose ``backup``, with the row counts; the export
  itself reads on a :func:`snapshot_reader` just before), the victim register one entry per person
  listed (purpose ``被災者台帳``), a shelter check-in one for the person;
- the one write, :func:`restore_rows`, is the restore of a backup, and goes to the database the
  operator names (a replacement of a lost register), never as part of an ordinary action.

Rows travel as plain dicts of column values, in a canonical JSON form (dates ISO, datetimes ISO in
UTC) so that two copies of a register can be compared by a hash.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Date, Table, delete, func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.bulk import Bound, bump_sequence
from jlis.db import READ_ONLY, UtcDateTime
from jlis.errors import RuleViolation
from jlis.registry.store import register_written
from jlis.registry.tables import HistoryRow, HouseholdRow, MoveOutCertificateRow, ResidentRow

ACCESS_LOG = AuditLog("access")

HOUSEHOLDS = cast(Table, HouseholdRow.__table__)
RESIDENTS = cast(Table, ResidentRow.__table__)
HISTORY = cast(Table, HistoryRow.__table__)
CERTIFICATES = cast(Table, MoveOutCertificateRow.__table__)
# In insertion order (households before the residents that point to them, history after).
TABLES: tuple[Table, ...] = (HOUSEHOLDS, RESIDENTS, HISTORY, CERTIFICATES)
EXPORT_CHUNK = 5000
HISTORY_CHUNK = 1000  # residents whose history one statement reads (bound parameters)


def _from_json_value(table: Table, column: str, value: Any) -> Any:
    if value is None:
        return None
    col_type = table.c[column].type
    if isinstance(col_type, UtcDateTime):
        return dt.datetime.fromisoformat(value)
    if isinstance(col_type, Date):
        return dt.date.fromisoformat(value)
    return value


def _select(table: Table, lg_code: str) -> Any:
    if table is HISTORY:
        owners = select(RESIDENTS.c.id).where(RESIDENTS.c.lg_code == lg_code)
        return select(HISTORY).where(HISTORY.c.resident_id.in_(owners)).order_by(HISTORY.c.id)
    return select(table).where(table.c.lg_code == lg_code).order_by(table.c.id)


def _utc_text(value: dt.datetime) -> str:
    if value.tzinfo is None:  # SQLite gives back the naive UTC value UtcDateTime stored
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _converters(table: Table) -> list[Callable[[Any], Any] | None]:
    """Per column: how a value becomes its canonical JSON form (None: as it is)."""
    out: list[Callable[[Any], Any] | None] = []
    for column in table.columns:
        if isinstance(column.type, UtcDateTime):
            out.append(_utc_text)
        elif isinstance(column.type, Date):
            out.append(dt.date.isoformat)
        else:
            out.append(None)
    return out


def iter_rows(session: Connection | Session, lg_code: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table name, row as canonical JSON values) of the municipality's register, table by table in
    :data:`TABLES` order, by id within a table (history by resident and version); keyset pages keep
    memory flat at any size. Not audited by itself: callers audit (see :func:`audit_export`)."""
    for table in TABLES:
        names = [c.name for c in table.columns]
        plan = list(zip(names, _converters(table), strict=True))
        for rows in _pages(session, table, lg_code):
            for row in rows:
                yield (
                    table.name,
                    {n: (v if f is None or v is None else f(v)) for (n, f), v in zip(plan, row, strict=True)},
                )


def _pages(session: Connection | Session, table: Table, lg_code: str) -> Iterator[Sequence[Any]]:
    if table is HISTORY:
        # By the residents' ids, a page of them at a time, through the (resident_id, version) index:
        # a plan that stays linear even before the planner has statistics (a join or IN-subquery
        # over the whole history was quadratic on a freshly loaded PostgreSQL).
        ids = (
            session.execute(
                select(RESIDENTS.c.id).where(RESIDENTS.c.lg_code == lg_code).order_by(RESIDENTS.c.id)
            )
            .scalars()
            .all()
        )
        for start in range(0, len(ids), HISTORY_CHUNK):
            chunk = ids[start : start + HISTORY_CHUNK]
            yield session.execute(
                select(HISTORY)
                .where(HISTORY.c.resident_id.in_(chunk))
                .order_by(HISTORY.c.resident_id, HISTORY.c.version)
            ).all()
        return
    last = 0
    while True:
        stmt = _select(table, lg_code).where(table.c.id > last).limit(EXPORT_CHUNK)
        rows = session.execute(stmt).all()
        yield rows
        if len(rows) < EXPORT_CHUNK:
            return
        last = rows[-1].id


def canonical_line(table: str, row: Mapping[str, Any]) -> bytes:
    return json.dumps(
        {"t": table, "r": row}, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    ).encode()


@dataclass(frozen=True)
class Counts:
    households: int = 0
    residents: int = 0
    history: int = 0
    certificates: int = 0

    @classmethod
    def of(cls, by_table: Mapping[str, int]) -> Counts:
        return cls(
            by_table.get(HOUSEHOLDS.name, 0),
            by_table.get(RESIDENTS.name, 0),
            by_table.get(HISTORY.name, 0),
            by_table.get(CERTIFICATES.name, 0),
        )

    @property
    def total(self) -> int:
        return self.households + self.residents + self.history + self.certificates


@dataclass(frozen=True)
class Export:
    """A municipality's register: its canonical lines gzip-compressed (each line ends in a newline),
    their SHA-256 and counts. Compressed as they are read, so a large register is held in memory
    only in its compressed form."""

    lg_code: str
    compressed: bytes
    sha256: str
    counts: Counts

    @property
    def lines(self) -> tuple[bytes, ...]:
        return tuple(gzip.decompress(self.compressed).splitlines())


def line_table(line: bytes) -> str:
    """The table of a canonical line without decoding it: keys are sorted, so ``"t"`` comes last
    (a ``"t":"`` inside a value is escaped, so the last one is the key)."""
    return line[line.rindex(b'"t":"') + 5 : -2].decode()


def digest_lines(lines: Iterable[bytes]) -> tuple[str, dict[str, int]]:
    h = hashlib.sha256()
    counts: dict[str, int] = {}
    for line in lines:
        h.update(line)
        h.update(b"\n")
        table = line_table(line)
        counts[table] = counts.get(table, 0) + 1
    return h.hexdigest(), counts


@contextmanager
def snapshot_reader(session: Session) -> Iterator[Connection]:
    """A connection of its own, on the session's database, reading the register as of one instant
    without holding up anyone: PostgreSQL REPEATABLE READ READ ONLY (its default READ COMMITTED
    gives each statement its own snapshot, so a change committed between two pages would land in
    half of a backup); SQLite a plain BEGIN, which in WAL mode reads one snapshot and takes no
    write lock. The session's own transaction (the audit entry, the catalogue row) stays short and
    READ COMMITTED, so it never fails on a concurrently moved audit head."""
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    assert isinstance(engine, Engine)
    if engine.dialect.name == "postgresql":
        options: dict[str, Any] = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    else:
        options = dict(READ_ONLY)
    with engine.connect().execution_options(**options) as conn, conn.begin():
        yield conn


def export_register(reader: Connection | Session, lg_code: str) -> Export:
    """The whole register of ``lg_code`` as canonical lines, from ``reader`` (a
    :func:`snapshot_reader`). Not audited by itself: see :func:`audit_export`."""
    digest = hashlib.sha256()
    by_table: dict[str, int] = {}
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip format
    parts = []
    for table, row in iter_rows(reader, lg_code):
        line = canonical_line(table, row) + b"\n"
        digest.update(line)
        by_table[table] = by_table.get(table, 0) + 1
        parts.append(packer.compress(line))
    parts.append(packer.flush())
    return Export(lg_code, b"".join(parts), digest.hexdigest(), Counts.of(by_table))


def audit_export(
    session: Session,
    export: Export,
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    purpose: str,
    details: Mapping[str, Any],
) -> None:
    """One audit entry for a bulk read of a register: the purpose and the counts."""
    counts = export.counts
    ACCESS_LOG.append(
        session,
        at=at,
        actor=actor,
        action=action,
        subject=None,
        details={
            "system": "bcl",
            "lg_code": export.lg_code,
            "purpose": purpose,
            "households": counts.households,
            "residents": counts.residents,
            "history": counts.history,
            "certificates": counts.certificates,
            **details,
        },
    )


def register_digest(reader: Connection | Session, lg_code: str) -> tuple[str, Counts]:
    """The hash and counts of the live register of ``lg_code`` in the canonical form of a backup:
    equal to a backup's content hash exactly when the register holds the very same rows. It reads
    personal data only to hash it; callers audit the comparison."""
    sha, by_table = digest_lines(canonical_line(t, r) for t, r in iter_rows(reader, lg_code))
    return sha, Counts.of(by_table)


# ------------------------------------------------------------------------------------ restore


def _parse_lines(lines: Sequence[bytes]) -> dict[str, list[dict[str, Any]]]:
    by_table: dict[str, list[dict[str, Any]]] = {t.name: [] for t in TABLES}
    for line in lines:
        item = json.loads(line)
        table = next(t for t in TABLES if t.name == item["t"])
        by_table[table.name].append({k: _from_json_value(table, k, v) for k, v in item["r"].items()})
    return by_table


def existing_counts(session: Session, lg_code: str) -> Counts:
    counts = {}
    for table in TABLES:
        stmt = _select(table, lg_code).with_only_columns(func.count()).order_by(None)
        counts[table.name] = int(session.execute(stmt).scalar_one())
    return Counts.of(counts)


def restore_rows(session: Session, lg_code: str, lines: Sequence[bytes], *, replace: bool) -> Counts:
    """Write the rows of a backup into the register tables of the session's database, keeping their
    ids. Refuses (and changes nothing) when the municipality already has rows there and ``replace``
    is False, or when another municipality's rows hold one of the ids. With ``replace``, the
    municipality's current rows are deleted first, in the same transaction."""
    rows = _parse_lines(lines)
    for table_name, items in rows.items():
        for item in items:
            if table_name != HISTORY.name and item["lg_code"] != lg_code:
                raise RuleViolation("lg_code", "every row of the backup must be of its municipality")
    present = existing_counts(session, lg_code)
    if present.total and not replace:
        raise RuleViolation(
            "地方公共団体コード",
            "the target already holds this municipality's register (restore with replace)",
            f"{lg_code} already has {present.residents} residents in the target database",
        )
    for table in (HOUSEHOLDS, RESIDENTS, HISTORY, CERTIFICATES):
        ids = [r["id"] for r in rows[table.name]]
        if not ids:
            continue
        clash = 0
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            stmt = select(func.count()).select_from(table).where(table.c.id.in_(chunk))
            if table is HISTORY:
                owners = select(RESIDENTS.c.id).where(RESIDENTS.c.lg_code == lg_code)
                stmt = stmt.where(HISTORY.c.resident_id.not_in(owners))
            else:
                stmt = stmt.where(table.c.lg_code != lg_code)
            clash += int(session.execute(stmt).scalar_one())
        if clash:
            raise RuleViolation(
                "id", f"{clash} rows of {table.name} in the target belong to another municipality"
            )
    if present.total:
        owners = select(RESIDENTS.c.id).where(RESIDENTS.c.lg_code == lg_code)
        session.execute(delete(HISTORY).where(HISTORY.c.resident_id.in_(owners)))
        session.execute(delete(CERTIFICATES).where(CERTIFICATES.c.lg_code == lg_code))
        session.execute(delete(RESIDENTS).where(RESIDENTS.c.lg_code == lg_code))
        session.execute(delete(HOUSEHOLDS).where(HOUSEHOLDS.c.lg_code == lg_code))
    for table in TABLES:
        items = rows[table.name]
        for start in range(0, len(items), EXPORT_CHUNK):
            session.execute(insert(table), items[start : start + EXPORT_CHUNK])
    # A counter group planned meanwhile must not replay.
    register_written(session, Bound.current(session), lg_code)
    if session.get_bind().dialect.name == "postgresql":
        # Rows came with their ids: move each id sequence past them, or the next insert would clash.
        for table in TABLES:
            bump_sequence(session, table)
    return Counts.of({name: len(items) for name, items in rows.items()})
