"""A relay per part of the network (``jlis juki relay --part juki`` beside ``--part fuhyo``), with or
without planned rounds: each delivers only to its own nodes, a message for the other part waits for
that part's relay, and together they carry every change to every tier."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from jlis.juki import build_relay
from jlis.juki.tables import fuhyo_national_history, national_history
from jlis.messaging import Relay
from jlis.messaging.tables import OutboxRow
from jlis.registry import PersonName, Placement

from .factories import CHIYODA, SHINJUKU, TSURUMI, World


def _changes(world: World, relays: tuple[Relay, Relay]) -> int:
    """Three move-ins with a 本籍 (carried at once: a 転入通知 to the old municipality is not
    plannable), then a relocation, a name change and a relocation back: three changes left to carry."""
    people = [
        world.person(lg, banchi=f"{i + 1}番", honseki_lg=TSURUMI)
        for i, lg in enumerate((CHIYODA, SHINJUKU, TSURUMI))
    ]
    for relay in relays:
        relay.drain()
    today = world.clock.today()
    with world.register(CHIYODA) as reg:
        reg.record_relocation(people[0].id, Placement(world.town(CHIYODA, 1), "9番"), moved_on=today)
    with world.register(SHINJUKU) as reg:
        given, given_kana = people[1].name.given, people[1].name.given_kana
        reg.record_name_change(
            people[1].id, PersonName("佐藤", given, "サトウ", given_kana), changed_on=today, cause="婚姻"
        )
    with world.register(TSURUMI) as reg:
        reg.record_relocation(people[2].id, Placement(world.town(TSURUMI, 1), "8番"), moved_on=today)
    return 3


def _waiting(world: World) -> list[str]:
    with world.factory() as s:
        return list(s.execute(select(OutboxRow.destination)).scalars())


@pytest.mark.parametrize("plan_rounds", [False, True])
def test_a_relay_per_part_carries_the_whole_network(world: World, plan_rounds: bool) -> None:
    juki, fuhyo = (
        build_relay(world.factory, world.clock, world.geo, plan_rounds=plan_rounds, part=part)
        for part in ("juki", "fuhyo")
    )
    before = world.count(national_history) + 3, world.count(fuhyo_national_history) + 3  # the move-ins
    changes = _changes(world, (juki, fuhyo))
    juki.drain()
    assert world.count(national_history) == before[0] + changes
    assert world.count(fuhyo_national_history) == before[1]  # the 附票 part waits for its relay
    waiting = _waiting(world)
    assert waiting and all(d.startswith("honseki:") for d in waiting)
    fuhyo.drain()
    assert world.count(fuhyo_national_history) == before[1] + changes
    assert _waiting(world) == []
    assert juki.drain() == fuhyo.drain() == 0
    if plan_rounds and world.factory.kw["bind"].dialect.name == "sqlite":
        assert juki.stats.planned > 0 and fuhyo.stats.planned > 0


def test_an_unknown_part_is_refused(world: World) -> None:
    with pytest.raises(ValueError, match="part must be one of"):
        build_relay(world.factory, world.clock, world.geo, part="kiosk")
