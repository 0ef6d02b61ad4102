"""附票連携システム: the 戸籍の附票 at the 本籍地, and 附票本人確認情報 at the prefecture and J-LIS.

The register of the municipality a person lives in sends every address change to the 本籍地
(``fuhyo.address``, 住基法 §19). The 本籍地's 附票 node (``honseki:<lg_code>``) keeps the 戸籍の附票:
one entry per person with the current state, and the list of addresses with their 住定日 (国外
included). It passes the 附票本人確認情報 (no 個人番号) on to the prefecture of the 本籍地
(``fuhyo-pref:<pp>``), which passes it to J-LIS (``fuhyo-national``), each keeping a copy and a
history under the same rules as the 本人確認情報 tiers (see copies.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from jlis.bulk import bulk_insert
from jlis.clock import Clock
from jlis.juki.copies import Entries, Tier, apply_records_many
from jlis.juki.models import (
    FUHYO_NATIONAL,
    FUHYO_PREF,
    FUHYO_RECORD_FIELDS,
    HONSEKI,
    REGISTRY,
    FuhyoRecord,
    fuhyo_pref_node,
    honseki_node,
    node_parts,
)
from jlis.juki.nodes import onward, parsed, payload_row, refuse_unless
from jlis.juki.tables import (
    fuhyo_addresses,
    fuhyo_history,
    fuhyo_national_history,
    fuhyo_national_records,
    fuhyo_pref_history,
    fuhyo_pref_records,
    fuhyo_records,
    utc,
)
from jlis.keyset import select_by_keys
from jlis.masters import Geography
from jlis.messaging import Message, publish_many
from jlis.registry import FuhyoNotice
from jlis.registry.events import TOPIC_FUHYO, TOPIC_FUHYO_IDENTITY
from jlis.registry.models import ChangeReason

HONSEKI_TIER = Tier("honseki", fuhyo_records, fuhyo_history, node_keyed=True)
FUHYO_PREF_TIER = Tier("fuhyo-pref", fuhyo_pref_records, fuhyo_pref_history, node_keyed=True)
FUHYO_NATIONAL_TIER = Tier("fuhyo-national", fuhyo_national_records, fuhyo_national_history, node_keyed=False)


def fuhyo_record_row(record: FuhyoRecord) -> dict[str, Any]:
    row = {f: getattr(record, f) for f in FUHYO_RECORD_FIELDS}
    row["reason"] = record.reason.value
    row["recorded_at"] = utc(record.recorded_at)
    return row


_FUHYO_KEYS = frozenset(FUHYO_RECORD_FIELDS)
_FUHYO_DATES = ("birth_date", "change_date")


def fuhyo_payload_row(payload: dict[str, Any]) -> dict[str, Any]:
    """``fuhyo_record_row(FuhyoRecord.from_payload(payload))``, faster."""
    row = payload_row(payload, _FUHYO_KEYS, _FUHYO_DATES)
    return fuhyo_record_row(FuhyoRecord.from_payload(payload)) if row is None else row


def fuhyo_entry_row(notice: FuhyoNotice) -> dict[str, Any]:
    # fuhyo_record_row(FuhyoRecord.from_notice(notice)) plus the 本籍地's own columns, read straight
    # off the notice (it carries every field of the record under the same names).
    row = {f: getattr(notice, f) for f in FUHYO_RECORD_FIELDS}
    row["reason"] = notice.reason.value
    row["recorded_at"] = utc(notice.recorded_at)
    row.update(
        honseki=notice.honseki, address_lg_code=notice.address_lg_code, address_since=notice.address_since
    )
    return row


def fuhyo_identity_payload(notice: FuhyoNotice, payload: dict[str, Any]) -> dict[str, Any]:
    """``FuhyoRecord.from_notice(notice).to_payload()``: the notice payload's own values of the
    record's fields (the same JSON values) when it has them all."""
    try:
        return {f: payload[f] for f in FUHYO_RECORD_FIELDS}
    except KeyError:
        return FuhyoRecord.from_notice(notice).to_payload()


_NOTICE_KEYS = frozenset(FUHYO_RECORD_FIELDS) | {"honseki", "address_lg_code", "address_since"}
_NOTICE_DATES = ("birth_date", "address_since", "change_date")


def notice_entry(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A notice payload's 附票 row (``fuhyo_entry_row`` of the notice: the notice has exactly its
    fields) and the 附票本人確認情報 payload it sends on, parsed without building the dataclass
    when the payload has every field (otherwise through it, which fills defaults or names what
    is wrong)."""
    row = payload_row(payload, _NOTICE_KEYS, _NOTICE_DATES)
    if row is None:
        notice = FuhyoNotice.from_payload(payload)
        return fuhyo_entry_row(notice), fuhyo_identity_payload(notice, payload)
    return row, {f: payload[f] for f in FUHYO_RECORD_FIELDS}


def address_line(node: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The 附票's address line of an entry row (see :func:`notice_entry`)."""
    return {
        "node": node,
        "resident_code": entry["resident_code"],
        "address": entry["address"],
        "address_lg_code": entry["address_lg_code"],
        "address_since": entry["address_since"],
        "reason": entry["reason"],
        "recorded_at": entry["recorded_at"],
    }


_A: Table = fuhyo_addresses
_REKEY = (
    update(_A)
    .where(_A.c.node == bindparam("k_node"), _A.c.resident_code == bindparam("k_old"))
    .values(resident_code=bindparam("v_new"))
)


class HonsekiNode:
    """The 戸籍の附票 system of the 本籍地 (``honseki:<lg_code>``)."""

    def __init__(self, clock: Clock, geography: Geography) -> None:
        self.clock = clock
        self.geo = geography

    def __call__(self, session: Session, node: str, messages: list[Message]) -> None:
        self.apply_groups(session, [(node, messages)])

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]]) -> None:
        now = self.clock.now()
        applied: list[tuple[str, Entries]] = []
        noticed: list[tuple[str, list[dict[str, Any]]]] = []
        out: list[Message] = []
        for node, messages in groups:
            _kind, lg = node_parts(node)
            entries: list[dict[str, Any]] = []
            rows: list[tuple[str | None, dict[str, Any]]] = []
            payloads: list[dict[str, Any]] = []
            for m in messages:
                refuse_unless(m.topic == TOPIC_FUHYO, node, m, "the 附票 takes address notices only")
                src_kind, src_lg = node_parts(m.source)
                refuse_unless(src_kind == REGISTRY, node, m, "only a municipal register")
                entry, payload = notice_entry(m.payload)
                refuse_unless(
                    entry["honseki_lg_code"] == lg, node, m, "the 本籍 must be in this municipality"
                )
                refuse_unless(
                    entry["address_lg_code"] in (src_lg, None),
                    node,
                    m,
                    "a register reports its own residents only",
                )
                entries.append(entry)
                rows.append((m.message_id, entry))
                payloads.append(payload)
            applied.append((node, rows))
            noticed.append((node, entries))
            destination = fuhyo_pref_node(self.geo.municipality(lg).pref_code)
            # The next hop parses what this one sends as the record's fields of the entry row.
            records = [{f: e[f] for f in FUHYO_RECORD_FIELDS} for e in entries]
            out.extend(
                onward(
                    node,
                    destination,
                    TOPIC_FUHYO_IDENTITY,
                    messages,
                    payloads=payloads,
                    parse=fuhyo_payload_row,
                    rows=records,
                )
            )
        apply_records_many(session, HONSEKI_TIER, applied, now)
        _record_addresses(session, noticed)
        publish_many(session, out, now=now)


_LINE = ("node", "resident_code", "address", "address_since")


def _record_addresses(session: Session, groups: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> None:
    """Add each address not yet on the person's 附票 (a repeat of the current address, as in a 転出
    notice or a name change, adds nothing). A 住民票コード変更 carries the list over to the new code.
    ``groups``: each node once, with its notices' entry rows (:func:`notice_entry`) in order.

    Only the lines a notice could repeat are read (same person, same address), not the person's
    whole list, which grows with every move."""
    # Codes whose list a 住民票コード変更 in this call carries over to another, per new code.
    carried: dict[tuple[str, str], set[str]] = {}
    rekeys: list[tuple[str, str]] = []
    for node, notices in groups:
        for n in notices:
            previous = n["previous_resident_code"]
            if previous and previous != n["resident_code"]:
                rekeys.append((node, previous))
                into = carried.setdefault((node, n["resident_code"]), set())
                into.add(previous)
                into.update(carried.get((node, previous), ()))
    same_address: list[tuple[str, str, str]] = []
    for node, notices in groups:
        for n in notices:
            same_address.append((node, n["resident_code"], n["address"]))
            for previous in carried.get((node, n["resident_code"]), ()):
                same_address.append((node, previous, n["address"]))
    known: dict[tuple[str, str], set[tuple[str, dt.date]]] = {}
    for node, code, address, since in select_by_keys(
        session, _A, ("node", "resident_code", "address"), same_address, _LINE
    ):
        known.setdefault((node, code), set()).add((address, since))
    # People with a list under a code they are leaving; those given a list in this call join them.
    listed = {(r[0], r[1]) for r in select_by_keys(session, _A, ("node", "resident_code"), rekeys, _LINE[:2])}
    new_rows: list[dict[str, Any]] = []
    for node, notices in groups:
        for n in notices:
            code, previous = n["resident_code"], n["previous_resident_code"]
            if previous and previous != code and (node, previous) in listed:
                # Rows written so far must exist before they are re-keyed: statements stay in order.
                bulk_insert(session, _A, new_rows)
                new_rows = []
                session.execute(_REKEY, {"k_node": node, "k_old": previous, "v_new": code})
                known.setdefault((node, code), set()).update(known.pop((node, previous), set()))
                listed.discard((node, previous))
                listed.add((node, code))
            seen = known.setdefault((node, code), set())
            line = (n["address"], n["address_since"])
            if line not in seen:
                seen.add(line)
                new_rows.append(address_line(node, n))
                if rekeys:
                    listed.add((node, code))
    bulk_insert(session, _A, new_rows)


class FuhyoPrefNode:
    """附票都道府県サーバ (``fuhyo-pref:<pp>``): the prefecture of the 本籍地."""

    def __init__(self, clock: Clock, geography: Geography) -> None:
        self.clock = clock
        self.geo = geography

    def __call__(self, session: Session, node: str, messages: list[Message]) -> None:
        self.apply_groups(session, [(node, messages)])

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]]) -> None:
        now = self.clock.now()
        applied: list[tuple[str, Entries]] = []
        out: list[Message] = []
        prefs: dict[str, str] = {}
        for node, messages in groups:
            _kind, pp = node_parts(node)
            rows: list[tuple[str | None, dict[str, Any]]] = []
            for m in messages:
                refuse_unless(m.topic == TOPIC_FUHYO_IDENTITY, node, m, "附票本人確認情報 only")
                src_kind, src_lg = node_parts(m.source)
                if src_kind == HONSEKI and src_lg not in prefs:
                    prefs[src_lg] = self.geo.municipality(src_lg).pref_code
                refuse_unless(
                    src_kind == HONSEKI and prefs[src_lg] == pp,
                    node,
                    m,
                    "only the 附票 of this prefecture's municipalities",
                )
                row = parsed(m, fuhyo_payload_row)
                refuse_unless(row["honseki_lg_code"] == src_lg, node, m, "a 本籍地 sends its own 附票 only")
                rows.append((m.message_id, row))
            applied.append((node, rows))
            parses = [r for _, r in rows]
            out.extend(
                onward(
                    node, FUHYO_NATIONAL, TOPIC_FUHYO_IDENTITY, messages, parse=fuhyo_payload_row, rows=parses
                )
            )
        apply_records_many(session, FUHYO_PREF_TIER, applied, now)
        publish_many(session, out, now=now)


class FuhyoNationalNode:
    """附票全国サーバ (``fuhyo-national``) at J-LIS: used above all to find people who moved abroad."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def __call__(self, session: Session, node: str, messages: list[Message]) -> None:
        self.apply_groups(session, [(node, messages)])

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]]) -> None:
        now = self.clock.now()
        applied: list[tuple[str, Entries]] = []
        for node, messages in groups:
            rows: list[tuple[str | None, dict[str, Any]]] = []
            for m in messages:
                refuse_unless(m.topic == TOPIC_FUHYO_IDENTITY, node, m, "附票本人確認情報 only")
                src_kind, src_pp = node_parts(m.source)
                refuse_unless(src_kind == FUHYO_PREF, node, m, "only the 附票都道府県サーバ")
                row = parsed(m, fuhyo_payload_row)
                refuse_unless(
                    row["honseki_lg_code"][:2] == src_pp, node, m, "a prefecture sends its own 本籍地's"
                )
                rows.append((m.message_id, row))
            applied.append((node, rows))
        apply_records_many(session, FUHYO_NATIONAL_TIER, applied, now)


# ----------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class FuhyoAddressLine:
    address: str
    address_since: dt.date  # 住定日
    reason: str


@dataclass(frozen=True)
class Fuhyo:
    """The 戸籍の附票 of one person as the 本籍地 keeps it."""

    resident_code: str
    honseki: str
    family_name: str
    given_name: str
    birth_date: dt.date
    sex: str
    address: str  # current, 国外 after a 国外転出
    reason: str
    change_date: dt.date
    addresses: tuple[FuhyoAddressLine, ...]  # oldest first


def read_fuhyo(session: Session, honseki_lg_code: str, resident_code: str) -> Fuhyo | None:
    """The 附票 of ``resident_code`` at its 本籍地, or None. For the 本籍地's own staff and tests; a
    caller that shows it to a person writes its own access record."""
    node = honseki_node(honseki_lg_code)
    t = fuhyo_records
    row = session.execute(
        select(t).where(t.c.node == node, t.c.resident_code == resident_code, t.c.superseded_by.is_(None))
    ).first()
    if row is None:
        return None
    lines = session.execute(
        select(_A.c.address, _A.c.address_since, _A.c.reason)
        .where(_A.c.node == node, _A.c.resident_code == resident_code)
        .order_by(_A.c.address_since, _A.c.id)
    ).all()
    return Fuhyo(
        resident_code=row.resident_code,
        honseki=row.honseki,
        family_name=row.family_name,
        given_name=row.given_name,
        birth_date=row.birth_date,
        sex=row.sex,
        address=row.address,
        reason=row.reason,
        change_date=row.change_date,
        addresses=tuple(FuhyoAddressLine(a.address, a.address_since, a.reason) for a in lines),
    )


def read_fuhyo_national(session: Session, resident_code: str) -> FuhyoRecord | None:
    """The 附票本人確認情報 J-LIS holds for a (current) 住民票コード."""
    t = fuhyo_national_records
    row = session.execute(
        select(*(t.c[f] for f in FUHYO_RECORD_FIELDS)).where(
            t.c.resident_code == resident_code, t.c.superseded_by.is_(None)
        )
    ).first()
    if row is None:
        return None
    values = dict(row._mapping)
    values["reason"] = ChangeReason(values["reason"])
    return FuhyoRecord(**values)
