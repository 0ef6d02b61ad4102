"""初期移行: loading a seeded population into every tier's copy directly.

When Juki-net went live, every tier started from a full copy rather than from one change message
per resident; the seeder does the same. These functions write the current copies straight away,
with the fastest bulk path of the database (COPY on PostgreSQL, executemany elsewhere), inside the
caller's transaction.

Contract:

- records are 本人確認情報 as :class:`~jlis.registry.IdentityRecord` or its payload form (a dict
  with the same keys; dates and times as objects or ISO strings; ``recorded_at`` aware);
- the copies must not hold these residents yet (a repeat fails on the primary key and the caller's
  transaction rolls back: nothing is half loaded);
- no message is sent, no inbox row is written and no history row is made: the history of each
  copy starts with the first change after the load. ``applied_at`` is the record's ``recorded_at``;
  the node counters (``records``) are moved, the count of applied messages is not.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from jlis.bulk import bulk_insert
from jlis.juki.copies import touch_nodes
from jlis.juki.fuhyo import address_line, fuhyo_entry_row, fuhyo_record_row
from jlis.juki.models import (
    FUHYO_NATIONAL,
    NATIONAL,
    FuhyoRecord,
    cs_node,
    fuhyo_pref_node,
    honseki_node,
    pref_node,
)
from jlis.juki.nodes import identity_row, national_row
from jlis.juki.tables import (
    cs_identities,
    fuhyo_addresses,
    fuhyo_national_records,
    fuhyo_pref_records,
    fuhyo_records,
    national_identities,
    pref_identities,
    utc,
)
from jlis.registry import FuhyoNotice, IdentityRecord

CHUNK = 10_000  # rows per bulk statement: bounds memory, large enough to amortise each call

IdentityLike = IdentityRecord | Mapping[str, Any]
NoticeLike = FuhyoNotice | Mapping[str, Any]


def bulk_load_cs(session: Session, records: Iterable[IdentityLike]) -> int:
    """Each record into the CS copy of its municipality (``cs:<lg_code>``)."""
    return _load(session, cs_identities, records, lambda r: cs_node(r.lg_code), identity_row)


def bulk_load_pref(session: Session, records: Iterable[IdentityLike]) -> int:
    """Each record into the copy of its municipality's prefecture server (``pref:<pp>``)."""
    return _load(session, pref_identities, records, lambda r: pref_node(r.lg_code[:2]), identity_row)


def bulk_load_national(session: Session, records: Iterable[IdentityLike]) -> int:
    """Into the 機構保存本人確認情報, with the search keys of the provision server."""
    return _load(session, national_identities, records, lambda r: None, national_row)


def bulk_load_tiers(session: Session, records: Iterable[IdentityLike]) -> int:
    """All three copies of 本人確認情報 (CS, prefecture, J-LIS) from one pass over the records."""
    items = [as_identity(r) for r in records]
    bulk_load_cs(session, items)
    bulk_load_pref(session, items)
    return bulk_load_national(session, items)


def bulk_load_fuhyo(session: Session, notices: Iterable[NoticeLike]) -> int:
    """The 戸籍の附票 at each 本籍地 (with its one address line) and the 附票本人確認情報 at the
    prefecture of the 本籍地 and at J-LIS."""
    items = [as_notice(n) for n in notices]
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        entries, lines, prefs, national = [], [], [], []
        per_node: Counter[str] = Counter()
        for n in chunk:
            node, pref = honseki_node(n.honseki_lg_code), fuhyo_pref_node(n.honseki_lg_code[:2])
            record = fuhyo_record_row(FuhyoRecord.from_notice(n))
            entry = fuhyo_entry_row(n)
            entries.append(_current(entry, node))
            lines.append(address_line(node, entry))
            prefs.append(_current(record, pref))
            national.append(_current(record, None))
            per_node.update((node, pref, FUHYO_NATIONAL))
        bulk_insert(session, fuhyo_records, entries)
        bulk_insert(session, fuhyo_addresses, lines)
        bulk_insert(session, fuhyo_pref_records, prefs)
        bulk_insert(session, fuhyo_national_records, national)
        _count(session, per_node)
    return len(items)


def initial_load(
    session: Session, identities: Sequence[IdentityLike], notices: Sequence[NoticeLike] = ()
) -> None:
    """The seeder's entry point: every tier of both networks, in the caller's transaction."""
    bulk_load_tiers(session, identities)
    bulk_load_fuhyo(session, notices)


# --------------------------------------------------------------------------------------- helpers


def as_identity(r: IdentityLike) -> IdentityRecord:
    if isinstance(r, IdentityRecord):
        return r
    return IdentityRecord.from_payload(_iso(r, ("birth_date", "change_date", "recorded_at")))


def as_notice(n: NoticeLike) -> FuhyoNotice:
    if isinstance(n, FuhyoNotice):
        return n
    return FuhyoNotice.from_payload(_iso(n, ("birth_date", "address_since", "change_date", "recorded_at")))


def _iso(values: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    out = dict(values)
    for k in keys:
        if isinstance(out.get(k), dt.date):
            out[k] = out[k].isoformat()
    return out


def _current(row: dict[str, Any], node: str | None) -> dict[str, Any]:
    # COPY on PostgreSQL bypasses the column types: times go in already in UTC.
    out = row | {
        "recorded_at": utc(row["recorded_at"]),
        "superseded_by": None,
        "applied_at": utc(row["recorded_at"]),
    }
    if node is not None:
        out["node"] = node
    return out


def _load(
    session: Session,
    table: Table,
    records: Iterable[IdentityLike],
    node_of: Callable[[IdentityRecord], str | None],
    row_of: Callable[[IdentityRecord], dict[str, Any]],
) -> int:
    items = [as_identity(r) for r in records]
    for start in range(0, len(items), CHUNK):
        rows, per_node = [], Counter[str]()
        for r in items[start : start + CHUNK]:
            node = node_of(r)
            rows.append(_current(row_of(r), node))
            per_node[node or NATIONAL] += 1
        bulk_insert(session, table, rows)
        _count(session, per_node)
    return len(items)


def _count(session: Session, per_node: Counter[str]) -> None:
    """The nodes' counters: records added, nothing applied, the last applied time kept."""
    counts = [{"node": node, "records": n, "applied": 0, "now": None} for node, n in sorted(per_node.items())]
    touch_nodes(session, counts)
