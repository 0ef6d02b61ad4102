"""The national change stream keeps the 住民票関係情報 replicas in step: a 転居, a move to another
municipality (new replica there, ``moved_out`` here), a death, and refusals of foreign messages."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.juki.errors import MessageRefused
from jlis.juki.network import build_relay
from jlis.linkage.middle.service import MiddleServer
from jlis.linkage.middle.stream import DESTINATION, NODE_KIND, MiddleStreamNode, apply_record, apply_records
from jlis.linkage.middle.sync import sync_juminhyo
from jlis.linkage.middle.tables import AddresseeRow, ReplicaRow
from jlis.messaging import Message
from jlis.registry import ChangeReason, IdentityRecord, Placement
from jlis.registry.events import TOPIC_IDENTITY
from jlis.registry.service import identity_record

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


def _records(world: World, codes: list[str]) -> dict[str, IdentityRecord]:
    """Each person's 本人確認情報 as the register would send it."""
    with world.registry() as reg:
        now = world.clock.now()
        return {
            c: identity_record(reg.find_by_code(c), ChangeReason.RELOCATION, now.date(), now, None)
            for c in codes
        }


def _moved(record: IdentityRecord, address: str, *, died: bool = False) -> IdentityRecord:
    if died:
        return dataclasses.replace(record, address=address, status="removed", reason=ChangeReason.DEATH)
    return dataclasses.replace(record, address=address)


def _state(s: Session, member_id: str) -> dict[str, list[tuple[str, int, dict[str, object]]]]:
    """Each person known to the middle server: their 宛名番号 and every replica version."""
    a, r = AddresseeRow.__table__.c, ReplicaRow.__table__.c
    lids = dict(s.execute(select(a.resident_code, a.local_id).where(a.member_id == member_id)).all())
    versions = s.execute(
        select(r.local_id, r.version, r.data).where(r.member_id == member_id).order_by(r.local_id, r.version)
    ).all()
    return {
        code: [(lid, v, dict(d)) for l2, v, d in versions if l2 == lid] for code, lid in sorted(lids.items())
    }


def test_a_run_of_records_in_bulk_does_what_one_by_one_does(synced: World) -> None:
    """apply_records (the stream's bulk path) against apply_record one record at a time: at a
    middle server that knows everyone (household items kept, dropped on removal, an unchanged record
    stores nothing) and at one that knows no one (a removal of someone unknown numbers nobody; the
    first other record does)."""
    p, q, r = synced.residents()[:3]
    of = _records(synced, [p, q, r])
    records = [
        _moved(of[p], "東京都千代田区一番町1番"),
        _moved(of[q], "東京都千代田区一番町2番", died=True),
        _moved(of[p], "東京都千代田区一番町1番"),  # nothing new
        _moved(of[r], "東京都千代田区一番町3番", died=True),
        _moved(of[r], "東京都千代田区一番町3番"),
        _moved(of[p], "東京都千代田区一番町4番"),
    ]
    outcomes = []
    for bulk in (False, True):
        with synced.factory() as s:
            state = []
            for member in (LG, f"lg-{SHINJUKU}"):
                middle = MiddleServer(s, synced.clock, member, actor="middle-stream")
                if bulk:
                    written = apply_records(middle, records)
                else:
                    written = sum(apply_record(middle, record) for record in records)
                state.append((written, _state(s, member)))
            s.rollback()
        outcomes.append(state)
    assert outcomes[0] == outcomes[1]
    (known_written, known), (new_written, new) = outcomes[1]
    assert known_written == 5 and [v for _, v, _ in known[p]] == [1, 2, 3]
    assert "household_size" in known[p][-1][2] and "household_size" not in known[q][-1][2]
    assert new_written == 3 and set(new) == {p, r}  # q, removed and unknown, is not numbered
