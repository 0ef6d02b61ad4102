"""The middle servers' subscriber to the national change stream (node kind ``middle``): keeps the
住民票関係情報 replicas in step with each 異動 between two syncs.

For each 本人確認情報 record, at the middle server of the record's municipality (``lg-<lg_code>``):

- a 住民票コード変更 (``previous_resident_code``) keeps the person's 宛名番号 (and so their 符号 and
  replicas): :meth:`MiddleServer.record_code_change`;
- the replica's 氏名, 振り仮名, 生年月日, 性別, 住所 and 住民の状態 are taken from the record, the other
  items (世帯主, 続柄, 世帯員数, 住民となった年月日) kept from the current version until the next
  :func:`jlis.linkage.middle.sync.sync_juminhyo` (a person new to the municipality is numbered and
  gets a replica of the record's items at once);
- a 転入 (ordinary or 特例) also marks the person ``moved_out`` at every other municipality's middle
  server that still shows them as a resident. Modelling note: the old municipality learns of it
  here, from the national stream, rather than from the 転入通知 its own register receives.

A removed person unknown to the municipality's middle server is not numbered. Idempotent: a record
that changes nothing stores nothing (equal data is not a new version).

The lead wires it like the other subscribers: ``NationalNode(subscribers=[..., "middle"])`` and
``build_relay(..., subscribers=[..., DESTINATION], extra_handlers={NODE_KIND: MiddleStreamNode(clock)})``;
it runs in the relay's round transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.clock import Clock
from jlis.juki.errors import MessageRefused
from jlis.juki.models import NATIONAL
from jlis.linkage.middle.models import MUNICIPALITY_PREFIX, juminhyo_status, municipality_member
from jlis.linkage.middle.service import MiddleServer
from jlis.linkage.middle.tables import AddresseeRow
from jlis.messaging import Message
from jlis.registry import ChangeReason, IdentityRecord
from jlis.registry.events import TOPIC_IDENTITY

NODE_KIND = "middle"
DESTINATION = "middle"
ACTOR = "middle-stream"
CATEGORY = "juminhyo"
_MOVE_IN = frozenset({ChangeReason.MOVE_IN.value, ChangeReason.SPECIAL_MOVE_IN.value})
_HOUSEHOLD_ITEMS = ("householder_name", "household_size")


class MiddleStreamNode:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def __call__(self, session: Session, node: str, messages: list[Message]) -> None:
        self.apply_groups(session, [(node, messages)])

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]]) -> int:
        """Apply a relay round; returns the number of new replica versions."""
        records: list[IdentityRecord] = []
        for node, messages in groups:
            for m in messages:
                # Fails closed: anything but the national server's identity records is refused
                # (the relay parks it with the error) and nothing of the round is applied.
                if m.topic != TOPIC_IDENTITY:
                    raise MessageRefused(
                        node, m.source, m.topic, "the middle servers take identity records only"
                    )
                if m.source != NATIONAL:
                    raise MessageRefused(node, m.source, m.topic, "only the national server's change stream")
                records.append(IdentityRecord.from_payload(m.payload))
        servers: dict[str, MiddleServer] = {}

        def server(member_id: str) -> MiddleServer:
            if member_id not in servers:
                servers[member_id] = MiddleServer(session, self.clock, member_id, actor=ACTOR)
            return servers[member_id]

        written = 0
        run: list[IdentityRecord] = []  # plain records since the last code change or 転入
        for record in records:
            if not record.previous_resident_code and str(record.reason) not in _MOVE_IN:
                run.append(record)
                continue
            written += _apply_run(server, run)
            run = []
            here = server(municipality_member(record.lg_code))
            written += apply_record(here, record)
            if str(record.reason) in _MOVE_IN:
                for other in _known_elsewhere(session, record.resident_code, here.member_id):
                    written += _mark_moved_out(server(other), record.resident_code)
        return written + _apply_run(server, run)


def _apply_run(server: Callable[[str], MiddleServer], records: Sequence[IdentityRecord]) -> int:
    """Plain records (no code change, no 転入: each touches only its own municipality's middle
    server) per middle server, each server's in order, in a few statements per server."""
    by_member: dict[str, list[IdentityRecord]] = {}
    for record in records:
        by_member.setdefault(municipality_member(record.lg_code), []).append(record)
    return sum(apply_records(server(member), rs) for member, rs in by_member.items())


def apply_records(middle: MiddleServer, records: Sequence[IdentityRecord]) -> int:
    """:func:`apply_record` for each record in order, none of them a code change, with one look-up
    of the people, one of their replicas and one insert of the new versions. Returns the number of
    new versions."""
    if not records:
        return 0
    known = middle.find_local_ids([r.resident_code for r in records])
    # People new here are numbered in the order of their first record that is not a removal (a
    # removal of someone unknown numbers nobody), as one by one.
    new = [r.resident_code for r in records if r.resident_code not in known and r.status != "removed"]
    numbered = middle.local_ids_for(new) if new else {}
    current = dict(middle.current_replicas(list(known.values()), CATEGORY))
    schema = middle.schema(CATEGORY)
    versions: list[tuple[str, str, int, Mapping[str, object]]] = []
    for record in records:
        removed = record.status == "removed"
        lid = known.get(record.resident_code)
        if lid is None:
            if removed:
                continue
            lid = known[record.resident_code] = numbered[record.resident_code]
        version, stored = current.get(lid, (0, None))
        values = schema.validate(_replica_data(record, stored))
        if stored is not None and dict(stored) == values:
            continue
        current[lid] = (version + 1, values)
        versions.append((lid, CATEGORY, version + 1, values))
    middle.store_replica_versions(versions)
    return len(versions)


def _replica_data(record: IdentityRecord, stored: Mapping[str, object] | None) -> dict[str, object]:
    """The replica's items after ``record``: its own, and the household's kept from ``stored``
    until the next sync (dropped for a removal)."""
    data: dict[str, object] = dict(stored) if stored is not None else {}
    data.update(
        name=record.name,
        name_kana=record.name_kana or None,
        birth_date=record.birth_date,
        sex=record.sex,
        address=record.address,
        status=juminhyo_status(record.status, str(record.reason)),
    )
    if record.status == "removed":
        for item in _HOUSEHOLD_ITEMS:
            data.pop(item, None)
    return data


def apply_record(middle: MiddleServer, record: IdentityRecord) -> int:
    """One record at its municipality's middle server; 1 when a new version was stored."""
    if record.previous_resident_code:
        middle.record_code_change(record.previous_resident_code, record.resident_code)
    removed = record.status == "removed"
    lid = middle.find_local_id(record.resident_code)
    if lid is None:
        if removed:
            return 0
        lid = middle.local_id_for(record.resident_code)
    current = middle._current(lid, CATEGORY)
    data = _replica_data(record, current.data if current is not None else None)
    return int(middle.register_replica_changed(lid, CATEGORY, data)[1])


def _known_elsewhere(session: Session, resident_code: str, except_member: str) -> list[str]:
    """The other municipalities whose middle servers know the person."""
    rows = session.execute(
        select(AddresseeRow.member_id).where(
            AddresseeRow.resident_code == resident_code,
            AddresseeRow.member_id != except_member,
            AddresseeRow.member_id.startswith(MUNICIPALITY_PREFIX),
        )
    ).scalars()
    return sorted(set(rows))


def _mark_moved_out(middle: MiddleServer, resident_code: str) -> int:
    lid = middle.find_local_id(resident_code)
    if lid is None:
        return 0
    current = middle._current(lid, CATEGORY)
    if current is None or current.data.get("status") != "resident":
        return 0
    data = {k: v for k, v in dict(current.data).items() if k not in _HOUSEHOLD_ITEMS}
    data["status"] = "moved_out"
    return int(middle.register_replica_changed(lid, CATEGORY, data)[1])


__all__ = ["DESTINATION", "NODE_KIND", "MiddleStreamNode", "apply_record", "apply_records"]
