"""The linkage's subscriber to the national change stream: a 住民票コード変更 keeps the person's codes,
end to end through a register, the network and the relay."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.juki import build_relay
from jlis.juki.errors import MessageRefused
from jlis.linkage.hub.codes import CodeGeneration, acquire_code, acquire_codes_bulk
from jlis.linkage.hub.members import MemberService
from jlis.linkage.hub.stream import DESTINATION, NODE_KIND, LinkageStreamNode
from jlis.masters import Geography, load_geography
from jlis.messaging import Message
from jlis.registry.events import TOPIC_IDENTITY

from ...juki.factories import CHIYODA, World
from .conftest import SECRET, identity, resident_codes


@pytest.fixture(scope="module")
def geo() -> Geography:
    return load_geography()


def world_with_linkage(factory: sessionmaker[Session], clock: FixedClock, geo: Geography) -> World:
    world = World(factory, clock, geo)
    world.relay = build_relay(
        factory,
        clock,
        geo,
        subscribers=[DESTINATION],
        extra_handlers={NODE_KIND: LinkageStreamNode(SECRET, clock)},
    )
    return world


def test_a_code_change_through_the_network_keeps_every_code(
    factory: sessionmaker[Session], clock: FixedClock, geo: Geography, tmp_path: object
) -> None:
    world = world_with_linkage(factory, clock, geo)
    view = world.person(CHIYODA)
    world.drain()
    with transaction(factory) as s:
        members = MemberService(s, clock, actor="op-test", key_dir=tmp_path)  # type: ignore[arg-type]
        chiyoda, _ = members.register(f"lg-{CHIYODA}", "千代田区", "municipality")
        nenkin, _ = members.register("nenkin", "日本年金機構", "agency")
        before = acquire_code(s, clock, SECRET, chiyoda, view.resident_code)
    clock.advance(days=1)
    with world.register(CHIYODA) as reg:
        changed = reg.change_resident_code(view.id)
    assert changed.resident_code != view.resident_code
    world.drain()
    with transaction(factory) as s:
        gen = CodeGeneration(s, SECRET, clock)
        assert gen.stored_value(changed.resident_code) == gen.stored_value(view.resident_code)
        assert acquire_code(s, clock, SECRET, chiyoda, changed.resident_code) == before
        # Another member asking with either code gets one code for the one person.
        by_new = acquire_code(s, clock, SECRET, nenkin, changed.resident_code)
        assert acquire_code(s, clock, SECRET, nenkin, view.resident_code) == by_new


def test_without_the_stream_the_national_chain_still_links_the_codes(
    factory: sessionmaker[Session], clock: FixedClock, geo: Geography, tmp_path: object
) -> None:
    """The change reached the national copy but no stream message was applied here (a subscriber
    wired later): J-LIS follows the national copy's chain itself."""
    world = World(factory, clock, geo)  # a relay without the linkage subscriber
    view = world.person(CHIYODA)
    world.drain()
    with transaction(factory) as s:
        members = MemberService(s, clock, actor="op-test", key_dir=tmp_path)  # type: ignore[arg-type]
        chiyoda, _ = members.register(f"lg-{CHIYODA}", "千代田区", "municipality")
        before = acquire_code(s, clock, SECRET, chiyoda, view.resident_code)
    with world.register(CHIYODA) as reg:
        changed = reg.change_resident_code(view.id)
    world.drain()
    report = acquire_codes_bulk(factory, clock, SECRET, chiyoda, [changed.resident_code])
    assert report.issued == 1 and not report.unknown
    with transaction(factory) as s:
        assert acquire_code(s, clock, SECRET, chiyoda, changed.resident_code) == before


def _message(payload: dict[str, object], source: str = "national", topic: str = TOPIC_IDENTITY) -> Message:
    return Message(
        message_id="m-1", source=source, destination=DESTINATION, topic=topic, key="k", payload=payload
    )


def test_the_node_takes_the_national_stream_only_and_ignores_other_changes(
    factory: sessionmaker[Session], clock: FixedClock
) -> None:
    old, new, other = resident_codes(3, seed=41)
    node = LinkageStreamNode(SECRET, clock)
    at = clock.now()
    move = identity(other, at).to_payload() | {"reason": "relocation"}
    change = identity(new, at).to_payload() | {"reason": "code_change", "previous_resident_code": old}
    with transaction(factory) as s:
        assert node.apply_groups(s, [("linkage", [_message(move)])]) == 0
        assert node.apply_groups(s, [("linkage", [_message(change), _message(change)])]) == 2
        gen = CodeGeneration(s, SECRET, clock)
        assert gen.stored_value(new) == gen.stored_value(old) == gen.derive(old)
        assert gen.stored_value(other) is None
    with factory() as s:
        with pytest.raises(MessageRefused, match="national server"):
            node(s, "linkage", [_message(change, source="pref:13")])
        with pytest.raises(MessageRefused, match="identity records only"):
            node(s, "linkage", [_message(change, topic="fuhyo")])
    assert identity(old, at - dt.timedelta(days=1)).resident_code == old


def test_two_code_changes_keep_the_first_codes_value(
    factory: sessionmaker[Session], clock: FixedClock, geo: Geography, tmp_path: object
) -> None:
    world = world_with_linkage(factory, clock, geo)
    view = world.person(CHIYODA)
    world.drain()
    with transaction(factory) as s:
        members = MemberService(s, clock, actor="op-test", key_dir=tmp_path)  # type: ignore[arg-type]
        nenkin, _ = members.register("nenkin", "日本年金機構", "agency")
    codes = [view.resident_code]
    for _ in range(2):
        clock.advance(days=1)
        with world.register(CHIYODA) as reg:
            codes.append(reg.change_resident_code(view.id).resident_code)
        world.drain()
    with transaction(factory) as s:
        # Nobody asked before the changes: the first code's value, for all three.
        first = CodeGeneration(s, SECRET, clock).derive(codes[0])
        assert {CodeGeneration(s, SECRET, clock).value_for(c) for c in codes} == {first}
        assert len({acquire_code(s, clock, SECRET, nenkin, c) for c in codes}) == 1
