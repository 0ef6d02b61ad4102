"""The relay's round-wide batching: many nodes per handler call, the fast paths beside the plain ones."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from jlis.juki import fuhyo as fuhyo_module
from jlis.juki import nodes as nodes_module
from jlis.juki.copies import apply_records, apply_records_many, touch_nodes
from jlis.juki.fuhyo import (
    fuhyo_entry_row,
    fuhyo_identity_payload,
    fuhyo_payload_row,
    fuhyo_record_row,
    notice_entry,
)
from jlis.juki.models import FuhyoRecord
from jlis.juki.nodes import (
    CS_TIER,
    NATIONAL_TIER,
    forward_id,
    identity_payload_row,
    identity_row,
    national_payload_row,
    national_row,
    onward,
    parsed,
)
from jlis.juki.tables import (
    cs_history,
    cs_identities,
    fuhyo_national_records,
    fuhyo_pref_records,
    national_identities,
    nodes,
    pref_identities,
)
from jlis.messaging import Message, Relay, publish
from jlis.messaging.tables import InboxRow, OutboxRow
from jlis.registry import ChangeReason, FuhyoNotice, IdentityRecord

from ..messaging.redelivery import publish_again, waiting
from .factories import CHIYODA, SHINJUKU, TSURUMI, World

T0 = dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.UTC)


def identity(code: str, lg: str, address: str, at: dt.datetime, **extra: Any) -> IdentityRecord:
    values: dict[str, Any] = {
        "resident_code": code,
        "my_number": "123456789018",
        "lg_code": lg,
        "family_name": "山田",
        "given_name": "花子",
        "family_kana": "ヤマダ",
        "given_kana": "ハナコ",
        "alias": None,
        "former_surname": None,
        "birth_date": dt.date(1990, 1, 1),
        "sex": "female",
        "address": address,
        "status": "active",
        "reason": ChangeReason.RELOCATION,
        "change_date": dt.date(2026, 11, 26),
        "recorded_at": at,
    }
    return IdentityRecord(**(values | extra))


def test_forward_id_is_fixed_per_hop_and_sorts_with_the_applied_id() -> None:
    mid = "0190f5a2-7b3c-7d4e-8f00-123456789abc"
    ids = {dest: forward_id(mid, dest) for dest in ("pref:13", "national", "fuhyo-pref:01")}
    assert len(set(ids.values())) == 3
    for dest, fid in ids.items():
        assert fid == forward_id(mid, dest)
        parsed = uuid.UUID(fid)
        assert (parsed.version, parsed.variant) == (8, uuid.RFC_4122)
        assert fid[:13] == mid[:13]  # the applied id's 48-bit time prefix
    assert forward_id(mid[:-1] + "d", "national") != ids["national"]
    assert uuid.UUID(forward_id("x", "national")).version == 8  # any id text can be forwarded


def test_payload_rows_equal_the_dataclass_route() -> None:
    jst = dt.timezone(dt.timedelta(hours=9))
    rec = identity(
        "12345678901", CHIYODA, "東京都千代田区1", dt.datetime(2026, 11, 26, 9, 0, 1, 5, tzinfo=jst)
    )
    payload = rec.to_payload()
    assert identity_payload_row(payload) == identity_row(rec)
    assert national_payload_row(payload) == national_row(rec)
    # A payload without the optional field goes the dataclass way (which fills the default).
    short = {k: v for k, v in payload.items() if k != "previous_resident_code"}
    assert identity_payload_row(short) == identity_row(rec)
    with pytest.raises(ValueError, match="'引越し' is not a valid ChangeReason"):
        identity_payload_row(payload | {"reason": "引越し"})
    fuhyo = FuhyoRecord(
        "12345678901", CHIYODA, "山田", "花子", dt.date(1990, 1, 1), "female", "国外",
        ChangeReason.RELOCATION, dt.date(2026, 11, 26), T0, "10987654321",
    )  # fmt: skip
    assert fuhyo_payload_row(fuhyo.to_payload()) == fuhyo_record_row(fuhyo)
    notice = FuhyoNotice(
        "12345678901", CHIYODA, "東京都千代田区1", "山田", "花子", dt.date(1990, 1, 1), "female", "国外",
        None, dt.date(2026, 11, 1), ChangeReason.RELOCATION, dt.date(2026, 11, 26), T0,
    )  # fmt: skip
    record = FuhyoRecord.from_notice(notice)
    assert fuhyo_identity_payload(notice, notice.to_payload()) == record.to_payload()
    assert notice_entry(notice.to_payload()) == (fuhyo_entry_row(notice), record.to_payload())
    without_default = {k: v for k, v in notice.to_payload().items() if k != "previous_resident_code"}
    assert notice_entry(without_default) == (
        fuhyo_entry_row(notice),
        record.to_payload(),
    )  # the dataclass way
    with pytest.raises(ValueError, match="'引越し' is not a valid ChangeReason"):
        notice_entry(notice.to_payload() | {"reason": "引越し"})
    assert fuhyo_entry_row(notice) == fuhyo_record_row(record) | {
        "honseki": notice.honseki, "address_lg_code": None, "address_since": notice.address_since
    }  # fmt: skip


def test_a_forward_carries_its_parsed_row_to_a_hop_that_parses_the_same_way() -> None:
    payload = identity("12345678901", CHIYODA, "東京都千代田区1", T0).to_payload()
    m = Message("0190f5a2-7b3c-7d4e-8f00-123456789abc", "registry:131016", "cs:131016", "t", "k", payload)
    row = identity_payload_row(payload)
    (passed,) = onward("cs:131016", "pref:13", "t", [m], parse=identity_payload_row, rows=[row])
    assert passed.payload is payload and parsed(passed, identity_payload_row) is row
    assert parsed(passed, national_payload_row) == national_payload_row(payload)  # another parse: its own
    assert parsed(m, identity_payload_row) == row and parsed(m, identity_payload_row) is not row
    fresh = {"v": "新しい"}
    (made,) = onward("cs:131016", "pref:13", "t", [m], payloads=[fresh])
    assert made.raw == '{"v":"新しい"}' and made.parsed is None  # encoded once, here


def test_a_record_is_parsed_once_on_its_way_through_the_tiers(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[frozenset[str]] = []
    real = nodes_module.payload_row

    def counted(payload: dict[str, Any], fields: frozenset[str], dates: Any) -> dict[str, Any] | None:
        parses.append(fields)
        return real(payload, fields, dates)

    monkeypatch.setattr(nodes_module, "payload_row", counted)
    monkeypatch.setattr(fuhyo_module, "payload_row", counted)
    view = world.person(CHIYODA, honseki_lg=SHINJUKU)
    world.drain()  # the identity record, the 附票 notice and the 転入通知 to Hachioji's CS
    assert world.relay.stats.followed == 4  # CS → pref → national, 本籍地 → pref → national
    # Once each: the identity record at the CS; the 附票 notice at the 本籍地, whose record fields
    # travel on parsed.
    identity_fields, notice_fields = (frozenset(nodes_module.IDENTITY_FIELDS), fuhyo_module._NOTICE_KEYS)
    assert sorted(parses, key=len) == sorted([identity_fields, notice_fields], key=len)
    with world.factory() as s:
        cs, pref, nat = (
            s.execute(select(t).where(t.c.resident_code == view.resident_code)).one()._mapping
            for t in (cs_identities, pref_identities, national_identities)
        )
        fuhyo_pref, fuhyo_nat = (
            s.execute(select(t).where(t.c.resident_code == view.resident_code)).one()._mapping
            for t in (fuhyo_pref_records, fuhyo_national_records)
        )
    record = {c: cs[c] for c in CS_TIER.record_columns}
    assert {c: pref[c] for c in CS_TIER.record_columns} == record
    assert {c: nat[c] for c in CS_TIER.record_columns} == record and nat["kana_key"] == "ヤマダタロウ"
    assert fuhyo_pref["address"] == fuhyo_nat["address"] == view.address.text


def _state(s: Session) -> tuple[Any, ...]:
    cur = sorted(tuple(r) for r in s.execute(select(cs_identities)))
    hist = sorted((r.node, r.resident_code, r.address, r.message_id) for r in s.execute(select(cs_history)))
    counters = sorted((r.node, r.records, r.applied) for r in s.execute(select(nodes)))
    return cur, hist, counters


def test_many_nodes_in_one_call_equal_one_call_per_node(world: World) -> None:
    a, b = f"cs:{CHIYODA}", f"cs:{SHINJUKU}"

    def batches() -> list[tuple[str, list[tuple[str | None, dict[str, Any]]]]]:
        def row(code: str, lg: str, address: str, minutes: int, **extra: Any) -> dict[str, Any]:
            return identity_row(identity(code, lg, address, T0 + dt.timedelta(minutes=minutes), **extra))

        return [
            (a, [("m1", row("11111111111", CHIYODA, "一", 1)), ("m2", row("11111111111", CHIYODA, "二", 0))]),
            (
                b,
                [
                    ("m3", row("11111111111", SHINJUKU, "三", 0)),
                    ("m4", row("22222222222", SHINJUKU, "四", 0)),
                ],
            ),
            ("cs:000000", []),
        ]

    with world.factory() as s, s.begin():
        many = apply_records_many(s, CS_TIER, batches(), T0)
        batched = _state(s)
        s.rollback()
    with world.factory() as s, s.begin():
        one = [apply_records(s, CS_TIER, node, entries, T0) for node, entries in batches()]
        single = _state(s)
    assert many == one
    assert batched == single
    assert [(x.added, x.replaced, x.late) for x in many] == [(1, 0, 1), (2, 0, 0), (0, 0, 0)]


def test_supersession_across_nodes_in_one_call(world: World) -> None:
    a, b = f"cs:{CHIYODA}", f"cs:{TSURUMI}"
    with world.factory() as s, s.begin():
        old_a = identity_row(identity("11111111111", CHIYODA, "一", T0))
        old_b = identity_row(identity("22222222222", TSURUMI, "二", T0))
        apply_records_many(s, CS_TIER, [(a, [("m1", old_a)]), (b, [("m2", old_b)])], T0)
    with world.factory() as s, s.begin():
        later = T0 + dt.timedelta(minutes=1)
        new_a = identity_row(
            identity("33333333333", CHIYODA, "一", later, previous_resident_code="11111111111")
        )
        new_b = identity_row(
            identity("44444444444", TSURUMI, "二", later, previous_resident_code="22222222222")
        )
        applied = apply_records_many(s, CS_TIER, [(a, [("m3", new_a)]), (b, [("m4", new_b)])], later)
    assert [x.superseded for x in applied] == [
        [("11111111111", "33333333333")],
        [("22222222222", "44444444444")],
    ]
    with world.factory() as s:
        links = dict(s.execute(select(cs_identities.c.resident_code, cs_identities.c.superseded_by)).all())
    assert links == {"11111111111": "33333333333", "22222222222": "44444444444", "33333333333": None,
                     "44444444444": None}  # fmt: skip


def test_node_counters_start_and_add_up(world: World) -> None:
    """touch_nodes: a node seen first gets its row, a known one adds to it (one statement for a
    round's nodes at one time on PostgreSQL; nodes at different times go one by one)."""
    later = T0 + dt.timedelta(minutes=5)
    a, b = f"cs:{CHIYODA}", "pref:13"
    with world.factory() as s, s.begin():
        touch_nodes(s, [{"node": a, "records": 2, "applied": 3, "now": T0}])
    with world.factory() as s, s.begin():
        touch_nodes(
            s,
            [
                {"node": a, "records": 1, "applied": 4, "now": later},
                {"node": b, "records": 0, "applied": 1, "now": later},
            ],
        )
    with world.factory() as s, s.begin():
        touch_nodes(
            s,
            [
                {"node": b, "records": 5, "applied": 5, "now": T0},
                {"node": "national", "records": 1, "applied": 1, "now": later},
            ],
        )
    with world.factory() as s, s.begin():  # the initial load's: the last applied time kept
        touch_nodes(
            s,
            [
                {"node": a, "records": 10, "applied": 0, "now": None},
                {"node": "fresh", "records": 2, "applied": 0, "now": None},
            ],
        )
    with world.factory() as s:
        got = {r.node: (r.records, r.applied, r.last_applied_at) for r in s.execute(select(nodes))}
    assert got == {a: (13, 7, later), b: (5, 6, T0), "national": (1, 1, later), "fresh": (2, 0, None)}


class PlainHandler:
    """A handler without ``apply_groups``: called node by node; refuses the key ``bad``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, session: Session, node: str, messages: list[Message]) -> None:
        if any(m.key == "bad" for m in messages):
            raise ValueError("refused")
        self.calls.append((node, [m.key for m in messages]))


class GroupedHandler(PlainHandler):
    def __init__(self) -> None:
        super().__init__()
        self.rounds: list[list[str]] = []

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]]) -> None:
        self.rounds.append([node for node, _ in groups])
        for node, messages in groups:
            self(session, node, messages)


def test_relay_calls_plain_and_grouped_handlers_and_isolates_a_refusal(world: World) -> None:
    plain, grouped = PlainHandler(), GroupedHandler()
    relay = Relay(world.factory, world.clock, {"p": plain, "g": grouped})
    with world.factory() as s, s.begin():
        for dest, key in [("g:1", "k1"), ("p:1", "k2"), ("g:2", "k3"), ("g:1", "k4"), ("p:2", "k5")]:
            publish(
                s, source="t", destination=dest, topic="t", key=key, payload={"k": key}, now=world.clock.now()
            )
    delivered = waiting(world.factory)
    assert relay.run_once() == 5
    assert grouped.rounds == [["g:1", "g:2"]]
    assert grouped.calls == [("g:1", ["k1", "k4"]), ("g:2", ["k3"])]
    assert plain.calls == [("p:1", ["k2"]), ("p:2", ["k5"])]
    with world.factory() as s:
        assert s.query(InboxRow).count() == 5

    # A refused message fails its round; the fallback applies the rest node by node.
    with world.factory() as s, s.begin():
        for dest, key in [("g:1", "k6"), ("g:2", "bad"), ("g:2", "k7"), ("g:2", "bad"), ("p:1", "k8")]:
            publish(s, source="t", destination=dest, topic="t", key=key, payload={}, now=world.clock.now())
    delivered += waiting(world.factory, OutboxRow.key != "bad")
    assert relay.run_once() == 3  # k6, k7 and k8; both "bad" wait (the second behind the first)
    assert relay.stats.failed == 1
    with world.factory() as s:
        assert s.execute(select(OutboxRow.key)).scalars().all() == ["bad", "bad"]
    # A repeat delivery (crash before the ack) is skipped by the inbox, for both kinds of handler.
    publish_again(world.factory, delivered)
    before = (list(plain.calls), list(grouped.calls))
    assert relay.run_once() == 8
    assert (plain.calls, grouped.calls) == before
    assert relay.stats.duplicates >= 8


def test_national_update_rewrites_the_search_keys_only_when_they_change(world: World) -> None:
    """SQLite rewrites an index whenever its columns are in the SET list: a record that keeps the
    name, kana, birth date and 個人番号 is written without them; one that changes them, with them."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            statements.append(statement)

    first = national_row(identity("11111111111", CHIYODA, "一", T0))
    moved = national_row(identity("11111111111", CHIYODA, "二", T0 + dt.timedelta(hours=1)))
    later = T0 + dt.timedelta(hours=2)
    sato = {"family_name": "佐藤", "family_kana": "サトウ"}
    renamed = national_row(identity("11111111111", CHIYODA, "二", later, **sato))
    with world.factory() as s, s.begin():
        apply_records(s, NATIONAL_TIER, "national", [("m1", first)], T0)
        event.listen(s.connection().engine, "before_cursor_execute", seen)
        try:
            apply_records(s, NATIONAL_TIER, "national", [("m2", moved)], T0)
            kept = list(statements)
            statements.clear()
            apply_records(s, NATIONAL_TIER, "national", [("m3", renamed)], T0)
        finally:
            event.remove(s.connection().engine, "before_cursor_execute", seen)
        n = national_identities.c
        row = s.execute(select(n.address, n.name_key, n.kana_key)).one()
    assert len(kept) == 1 and "address" in kept[0]
    assert not any(c in kept[0] for c in ("name_key", "kana_key", "my_number", "birth_date"))
    assert len(statements) == 1 and all(c in statements[0] for c in ("name_key", "kana_key"))
    assert tuple(row) == ("二", renamed["name_key"], renamed["kana_key"])
