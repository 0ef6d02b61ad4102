"""住基ネット end to end: a change at a register reaches the CS, the prefecture and J-LIS; repeats are
ignored; order per resident holds; moves, 特例転入, death, name and code changes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import select

from jlis.juki import ProvisionService, build_relay
from jlis.juki.copies import Tier, apply_records
from jlis.juki.models import pref_node
from jlis.juki.network import handlers
from jlis.juki.nodes import NATIONAL_TIER, forward_id
from jlis.juki.tables import (
    cs_history,
    cs_identities,
    national_history,
    national_identities,
    nodes,
    pref_history,
    pref_identities,
)
from jlis.masters import Agency, IdentityItem, ProvisionRule, ProvisionTable
from jlis.messaging import publish
from jlis.messaging.tables import OutboxRow
from jlis.registry import ChangeReason, PersonName, Placement, Status
from jlis.registry.events import TOPIC_IDENTITY

from ..messaging.redelivery import publish_again, waiting
from .factories import CHIYODA, SHINJUKU, TSURUMI, World


def national(world: World, code: str) -> Any:
    return world.row(national_identities, resident_code=code)


def test_a_change_reaches_the_cs_the_prefecture_and_j_lis(world: World) -> None:
    view = world.person(CHIYODA)
    assert world.row(national_identities, resident_code=view.resident_code) is None  # not before the relay
    world.drain()
    cs = world.row(cs_identities, node=f"cs:{CHIYODA}", resident_code=view.resident_code)
    pref = world.row(pref_identities, node="pref:13", resident_code=view.resident_code)
    nat = national(world, view.resident_code)
    for copy in (cs, pref, nat):
        assert copy is not None
        assert copy.address == view.address.text and copy.reason == "move_in"
        assert copy.my_number == view.my_number and copy.family_kana == "ヤマダ"
    assert nat.kana_key == "ヤマダタロウ" and nat.name_key == "山田太郎"
    for history in (cs_history, pref_history, national_history):
        assert world.count(history, resident_code=view.resident_code) == 1
    with world.factory() as s:
        counters = {r.node: r for r in s.execute(select(nodes))}
    assert counters["national"].records == 1 and counters["national"].applied == 1
    assert counters["pref:13"].records == 1 and counters[f"cs:{CHIYODA}"].records == 1


def test_every_hop_is_on_record_in_the_history_of_the_node_that_applied_it(world: World) -> None:
    """The CS → 都道府県 → 全国 forwards are delivered in the round that makes them and never enter
    the outbox: each hop's message id (derived from the one before) is in its node's history."""
    view = world.person(CHIYODA)
    with world.factory() as s:
        [sent] = s.execute(
            select(OutboxRow.message_id).where(OutboxRow.destination == f"cs:{CHIYODA}")
        ).scalars()
    world.drain()
    expected = {
        cs_history: sent,
        pref_history: forward_id(sent, "pref:13"),
        national_history: forward_id(forward_id(sent, "pref:13"), "national"),
    }
    for history, message_id in expected.items():
        with world.factory() as s:
            applied = s.execute(
                select(history.c.message_id).where(history.c.resident_code == view.resident_code)
            ).scalars()
            assert list(applied) == [message_id]
    assert world.count(OutboxRow.__table__, destination="pref:13") == 0
    assert world.count(OutboxRow.__table__, destination="national") == 0


def test_every_tier_keeps_the_history_and_the_latest_copy(world: World) -> None:
    view = world.person(CHIYODA)
    world.clock.advance(minutes=1)
    with world.register(CHIYODA) as reg:
        [moved] = reg.record_relocation(
            view.id, Placement(world.town(CHIYODA, 1), "2番2号"), moved_on=world.clock.today()
        )
    world.clock.advance(minutes=1)
    with world.register(CHIYODA) as reg:
        reg.record_name_change(
            view.id,
            PersonName("佐藤", "太郎", "サトウ", "タロウ"),
            changed_on=world.clock.today(),
            cause="婚姻",
        )
    world.drain()  # three changes of one resident in one batch: applied in order
    for history in (cs_history, pref_history, national_history):
        assert world.count(history, resident_code=view.resident_code) == 3
    nat = national(world, view.resident_code)
    assert nat.address == moved.address.text and nat.family_name == "佐藤"
    assert nat.reason == "name_change" and nat.kana_key == "サトウタロウ"
    with world.factory() as s:
        reasons = (
            s.execute(
                select(national_history.c.reason)
                .where(national_history.c.resident_code == view.resident_code)
                .order_by(national_history.c.id)
            )
            .scalars()
            .all()
        )
    assert reasons == ["move_in", "relocation", "name_change"]


def test_a_message_delivered_twice_is_applied_once(world: World) -> None:
    view = world.person(CHIYODA)
    sent = waiting(world.factory)
    world.drain()
    # As if the relay died after applying, before its ack: the messages it read from the outbox
    # wait again (the forwards it followed in the round never entered it).
    publish_again(world.factory, sent)
    again = world.drain()
    assert again > 0 and world.relay.stats.duplicates >= again
    for history in (cs_history, pref_history, national_history):
        assert world.count(history, resident_code=view.resident_code) == 1
    assert world.count(OutboxRow.__table__) == 0
    with world.factory() as s:
        assert s.execute(select(nodes.c.applied).where(nodes.c.node == "national")).scalar_one() == 1


def test_a_late_record_goes_to_the_history_but_never_overwrites_a_newer_one(world: World) -> None:
    """A 転出 from Chiyoda arrives at J-LIS after the 転入 at Tsurumi: the 転入 stays current."""
    view = world.person(CHIYODA)
    world.drain()
    world.clock.advance(hours=1)
    with world.register(CHIYODA) as reg:
        out, cert = reg.record_move_out(
            view.id, planned_date=world.clock.today(), destination="横浜市鶴見区", destination_lg_code=TSURUMI
        )
    with world.factory() as s, s.begin():  # hold back Chiyoda's 転出: copy its record, take it out
        held = s.execute(select(OutboxRow).where(OutboxRow.destination == f"cs:{CHIYODA}")).scalar_one()
        late_payload, late_key = held.payload, held.key
        s.delete(held)
    world.clock.advance(hours=1)
    with world.register(TSURUMI) as reg:
        moved_in = reg.record_move_in(
            cert, Placement(world.town(TSURUMI), "3番3号"), moved_on=world.clock.today()
        )
    world.drain()
    assert national(world, view.resident_code).address == moved_in.address.text
    # Now the held-back 転出 arrives, late, by the same route.
    with world.factory() as s, s.begin():
        publish(
            s,
            source=f"registry:{CHIYODA}",
            destination=f"cs:{CHIYODA}",
            topic=TOPIC_IDENTITY,
            key=late_key,
            payload=json.loads(late_payload),
            now=world.clock.now(),
        )
    world.drain()
    nat = national(world, view.resident_code)
    assert nat.address == moved_in.address.text and nat.reason == "move_in"
    assert nat.lg_code == TSURUMI
    assert world.count(national_history, resident_code=view.resident_code) == 3  # 転入, 転入, 転出 (late)
    assert out.status is Status.MOVING_OUT


def test_order_rule_within_one_batch(world: World) -> None:
    """Unit check of the rule: in one batch, newer wins whatever the arrival order; history keeps all."""
    t0 = dt.datetime(2026, 11, 26, 1, 0, tzinfo=dt.UTC)
    base = {
        "resident_code": "12345678901",
        "my_number": "123456789012",
        "lg_code": CHIYODA,
        "family_name": "山田",
        "given_name": "花子",
        "family_kana": "ヤマダ",
        "given_kana": "ハナコ",
        "alias": None,
        "former_surname": None,
        "birth_date": dt.date(1990, 1, 1),
        "sex": "female",
        "status": "active",
        "reason": "relocation",
        "change_date": dt.date(2026, 11, 26),
        "previous_resident_code": None,
        "name_key": "山田花子",
        "kana_key": "ヤマダハナコ",
    }
    newer = base | {"address": "新", "recorded_at": t0 + dt.timedelta(minutes=5)}
    older = base | {"address": "旧", "recorded_at": t0}
    tier: Tier = NATIONAL_TIER
    with world.factory() as s, s.begin():
        applied = apply_records(s, tier, "national", [("m1", newer), ("m2", older)], t0)
    assert applied.added == 1 and applied.late == 1
    assert national(world, "12345678901").address == "新"
    assert world.count(national_history, resident_code="12345678901") == 2


def test_ordinary_move_with_paper_certificate_closes_the_old_record(world: World) -> None:
    view = world.person(CHIYODA)
    with world.register(CHIYODA) as reg:
        _, cert = reg.record_move_out(
            view.id, planned_date=world.clock.today(), destination="横浜市鶴見区", destination_lg_code=TSURUMI
        )
    world.drain()
    assert national(world, view.resident_code).reason == "move_out"
    world.clock.advance(hours=1)
    with world.register(TSURUMI) as reg:
        moved_in = reg.record_move_in(
            cert, Placement(world.town(TSURUMI), "3番3号"), moved_on=world.clock.today()
        )
    world.drain()  # the 転入通知 goes back to Chiyoda's CS, which hands it to the register
    with world.register(CHIYODA) as reg:
        old = reg.get(view.id)
    assert old.status is Status.REMOVED and old.last_reason is ChangeReason.MOVE_OUT_CONFIRMED
    assert old.move_destination == moved_in.address.text
    nat = national(world, view.resident_code)
    assert nat.lg_code == TSURUMI and nat.reason == "move_in"
    assert world.row(pref_identities, node="pref:14", resident_code=view.resident_code) is not None
    assert world.row(pref_identities, node="pref:13", resident_code=view.resident_code).reason == "move_out"


def test_special_move_in_over_the_network(world: World) -> None:
    view = world.person(SHINJUKU)
    with world.register(SHINJUKU) as reg:
        _, cert = reg.record_move_out(
            view.id,
            planned_date=world.clock.today(),
            destination="横浜市鶴見区",
            destination_lg_code=TSURUMI,
            special=True,
        )
    with world.register(TSURUMI) as reg:
        assert reg.received_certificates() == []  # not before the relay carried it
    world.drain()
    with world.register(TSURUMI) as reg:
        [received] = reg.received_certificates()
        assert received.certificate_no == cert.certificate_no and received.resident_code == view.resident_code
    world.clock.advance(hours=2)
    with world.register(TSURUMI) as reg:
        moved_in = reg.record_special_move_in(
            cert.certificate_no, Placement(world.town(TSURUMI), "5番5号"), moved_on=world.clock.today()
        )
    world.drain()
    with world.register(SHINJUKU) as reg:
        assert reg.get(view.id).status is Status.REMOVED
    nat = national(world, view.resident_code)
    assert nat.reason == "special_move_in" and nat.address == moved_in.address.text


def test_death_reaches_j_lis(world: World) -> None:
    view = world.person(CHIYODA)
    world.clock.advance(hours=1)
    with world.register(CHIYODA) as reg:
        reg.record_death(view.id, died_on=world.clock.today())
    world.drain()
    nat = national(world, view.resident_code)
    assert nat.status == "removed" and nat.reason == "death"


def test_code_change_supersedes_the_old_code(world: World) -> None:
    table = ProvisionTable(
        [Agency("pension", "日本年金機構")],
        [
            ProvisionRule(
                "pension",
                "benefit",
                "年金給付",
                frozenset(IdentityItem) - {IdentityItem.MY_NUMBER},
                "別表第一",
            )
        ],
    )
    view = world.person(CHIYODA)
    world.drain()
    with world.factory() as s, s.begin():
        ProvisionService(s, world.clock, table).query("pension", "benefit", resident_code=view.resident_code)
    world.clock.advance(hours=1)
    with world.register(CHIYODA) as reg:
        changed = reg.change_resident_code(view.id)
    world.drain()
    old, new = view.resident_code, changed.resident_code
    assert national(world, old).superseded_by == new
    assert national(world, new).previous_resident_code == old
    assert world.row(pref_identities, node="pref:13", resident_code=old).superseded_by == new
    with world.factory() as s, s.begin():
        svc = ProvisionService(s, world.clock, table)
        by_old = svc.query("pension", "benefit", resident_code=old)
        by_new = svc.query("pension", "benefit", resident_code=new)
        by_old_number = svc.query("pension", "benefit", my_number=view.my_number)
    assert by_old.outcome == "no_match" and by_old_number.outcome == "no_match"
    assert by_new.outcome == "provided" and by_new.records[0][IdentityItem.RESIDENT_CODE] == new
    with world.factory() as s, s.begin():
        svc = ProvisionService(s, world.clock, table)
        for code in (old, new):  # the disclosure follows the person under either code
            log = svc.disclose(code)
            assert [(e.resident_code, e.outcome.value) for e in log] == [
                (old, "provided"),
                (old, "no_match"),
                (new, "provided"),
            ]


def test_a_message_from_a_source_that_may_not_send_it_is_refused(world: World) -> None:
    view = world.person(CHIYODA)
    world.drain()
    with world.factory() as s:
        record = s.execute(
            select(cs_identities).where(cs_identities.c.resident_code == view.resident_code)
        ).first()
    assert record is not None
    forged = {
        k: (v.isoformat() if isinstance(v, dt.date) else v)
        for k, v in record._mapping.items()
        if k not in ("node", "superseded_by", "applied_at")
    } | {"address": "偽の住所"}
    with world.factory() as s, s.begin():
        # Shinjuku's register may not speak for Chiyoda's CS; a CS may not write to another prefecture.
        publish(
            s,
            source=f"registry:{SHINJUKU}",
            destination=f"cs:{CHIYODA}",
            topic=TOPIC_IDENTITY,
            key=view.resident_code,
            payload=forged,
            now=world.clock.now(),
        )
        publish(
            s,
            source=f"cs:{TSURUMI}",
            destination=pref_node("13"),
            topic=TOPIC_IDENTITY,
            key=view.resident_code,
            payload=forged,
            now=world.clock.now(),
        )
        publish(
            s,
            source="pref:13",
            destination="national",
            topic="unknown.topic",
            key=view.resident_code,
            payload=forged,
            now=world.clock.now(),
        )
    world.drain()
    assert world.relay.stats.failed == 3
    assert national(world, view.resident_code).address == view.address.text
    with world.factory() as s:
        stuck = s.execute(select(OutboxRow)).scalars().all()
    assert len(stuck) == 3 and all("MessageRefused" in (m.last_error or "") for m in stuck)


def test_repeated_drain_is_a_no_op(world: World) -> None:
    world.person(CHIYODA)
    assert world.drain() > 0
    assert world.drain() == 0


class _Subscriber:
    """A subscriber's handler as the JPKI and card packages write one: it takes whole groups."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, list[Any]]] = []

    def __call__(self, session: Any, node: str, messages: list[Any]) -> None:
        self.apply_groups(session, [(node, messages)])

    def apply_groups(self, session: Any, groups: list[tuple[str, list[Any]]]) -> None:
        self.groups.extend(groups)


def test_extra_handlers_receive_the_national_change_stream(world: World) -> None:
    grouped, plain = _Subscriber(), []
    relay = build_relay(
        world.factory,
        world.clock,
        world.geo,
        subscribers=["jpki", "card:all"],
        extra_handlers={"jpki": grouped, "card": lambda _s, node, ms: plain.extend((node, m) for m in ms)},
    )
    view = world.person(CHIYODA)
    relay.drain()
    assert [(node, [m.payload["resident_code"] for m in ms]) for node, ms in grouped.groups] == [
        ("jpki", [view.resident_code])
    ]
    (message,) = grouped.groups[0][1]
    assert message.source == "national" and message.topic == TOPIC_IDENTITY
    assert message.payload["reason"] == ChangeReason.MOVE_IN.value
    assert [(node, m.payload["resident_code"]) for node, m in plain] == [("card:all", view.resident_code)]
    assert relay.drain() == 0 and world.count(OutboxRow.__table__) == 0


def test_an_extra_handler_may_not_replace_a_network_node(world: World) -> None:
    with pytest.raises(ValueError, match="national"):
        handlers(world.clock, world.geo, extra_handlers={"national": lambda _s, _node, _ms: None})
