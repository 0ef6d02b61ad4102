"""The national change stream keeps the 住民票関係情報 replicas in step: a 転居, a move to another
municipality (new replica there, ``moved_out`` here), a death, and refusals of foreign messages."""

from __future__ import annotations

import datetime as dt

import pytest

from jlis.juki.errors import MessageRefused
from jlis.juki.network import build_relay
from jlis.linkage.middle.stream import DESTINATION, NODE_KIND, MiddleStreamNode
from jlis.linkage.middle.sync import sync_juminhyo
from jlis.messaging import Message
from jlis.registry import Placement
from jlis.registry.events import TOPIC_IDENTITY

from .conftest import CHIYODA, LG, SHINJUKU, World


def drain(world: World) -> None:
    build_relay(
        world.factory,
        world.clock,
        world.geo,
        subscribers=[DESTINATION],
        extra_handlers={NODE_KIND: MiddleStreamNode(world.clock)},
    ).drain()


def juminhyo(world: World, member_id: str, resident_code: str) -> dict[str, object] | None:
    with world.middle(member_id) as m:
        lid = m.find_local_id(resident_code)
        if lid is None or m.current_version(lid, "juminhyo") == 0:
            return None
        replica = m.replica(lid, "juminhyo")
        return {**replica.data, "_version": replica.version}


@pytest.fixture
def synced(populated: World) -> World:
    with populated.registry() as reg:
        sync_juminhyo(reg.s, populated.clock, reg)
    populated.clock.advance(days=1)
    return populated


def test_a_relocation_updates_the_address_and_keeps_the_household(synced: World) -> None:
    person = synced.residents()[0]
    before = juminhyo(synced, LG, person)
    assert before is not None and before["_version"] == 1
    town = synced.geo.towns(CHIYODA)[3].town_id
    with synced.registry() as reg:
        view = reg.find_by_code(person)
        placement = Placement(town, "9番9号", household_id=view.household_id, relationship=view.relationship)
        (moved,) = reg.record_relocation(view.id, placement, moved_on=synced.clock.today())
    drain(synced)
    after = juminhyo(synced, LG, person)
    assert after is not None and after["_version"] == 2
    assert after["address"] == moved.address.text != before["address"]
    assert after["household_size"] == before["household_size"] and after["status"] == "resident"
    drain(synced)  # nothing new: no new version
    assert juminhyo(synced, LG, person)["_version"] == 2  # type: ignore[index]


def test_a_move_to_another_municipality(synced: World) -> None:
    person = synced.residents()[1]
    with synced.registry() as reg:
        view = reg.find_by_code(person)
        _, certificate = reg.record_move_out(
            view.id,
            planned_date=synced.clock.today(),
            destination="東京都新宿区西新宿2丁目8番1号",
            destination_lg_code=SHINJUKU,
        )
    drain(synced)
    assert juminhyo(synced, LG, person)["status"] == "resident"  # type: ignore[index]  # 転出予定: still listed
    synced.clock.advance(days=1)
    with synced.registry(SHINJUKU) as reg:
        arrived = reg.record_move_in(
            certificate,
            Placement(synced.geo.towns(SHINJUKU)[0].town_id, "1番1号"),
            moved_on=synced.clock.today(),
        )
    drain(synced)
    there = juminhyo(synced, f"lg-{SHINJUKU}", person)
    assert there is not None and there["status"] == "resident" and there["address"] == arrived.address.text
    assert there["name"] == view.name.full and there["birth_date"] == view.birth_date.isoformat()
    here = juminhyo(synced, LG, person)
    assert here is not None and here["status"] == "moved_out" and "household_size" not in here


def test_a_death(synced: World) -> None:
    person = synced.residents()[2]
    with synced.registry() as reg:
        reg.record_death(reg.find_by_code(person).id, died_on=synced.clock.today() - dt.timedelta(days=1))
    drain(synced)
    after = juminhyo(synced, LG, person)
    assert after is not None and after["status"] == "deceased" and after["_version"] == 2


def test_only_the_national_stream_is_taken(synced: World) -> None:
    message = Message(
        message_id="m-1",
        source="pref:13",
        destination=DESTINATION,
        topic=TOPIC_IDENTITY,
        key="x",
        payload={},
    )
    with synced.middle() as m, pytest.raises(MessageRefused):
        MiddleStreamNode(synced.clock)(m.s, "middle", [message])
