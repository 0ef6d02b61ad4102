"""A planned relay round (SQLite, ``build_relay(plan_rounds=True)``) that applies a tier in more than
one wave: messages left waiting for a prefecture server by an earlier round, then, in the same
round, the forwards its CSs make. The later wave reads a snapshot that lacks the earlier wave's
writes, so it takes them from the copies' own record of what the round wrote (copies._written):
the round is still planned, and its outcome is the ordinary one."""

from __future__ import annotations

from jlis.juki import build_relay
from jlis.juki.tables import fuhyo_pref_history, fuhyo_pref_records, pref_history, pref_identities
from jlis.registry import Placement

from .factories import CHIYODA, TSURUMI, World


def test_a_tier_applied_in_two_waves_of_a_planned_round(world: World) -> None:
    relay = build_relay(world.factory, world.clock, world.geo, plan_rounds=True)
    person = world.person(CHIYODA, honseki_lg=TSURUMI)  # to its CS and its 本籍地
    # A round that does not follow: the forwards to the prefecture servers wait, undelivered.
    waiting = len(relay.pending(1000))
    assert relay.run_once(1000, follow=False) == waiting
    world.clock.advance(hours=1)
    with world.register(CHIYODA) as reg:
        today = world.clock.today()
        (moved,) = reg.record_relocation(person.id, Placement(world.town(CHIYODA, 1), "9番"), moved_on=today)
    before = relay.stats.planned, relay.stats.unplanned
    # Wave 0: the waiting records, new at the prefecture servers; wave 1: the relocation, an update
    # of the rows wave 0 inserted.
    waiting = len(relay.pending(1000))
    assert waiting >= 4 and relay.run_once(1000) == waiting
    planned = world.factory.kw["bind"].dialect.name == "sqlite"
    assert (relay.stats.planned, relay.stats.unplanned) == (before[0] + planned, before[1])
    assert relay.stats.failed == 0
    node = "pref:13"
    assert world.count(pref_identities, node=node, resident_code=person.resident_code) == 1
    row = world.row(pref_identities, node=node, resident_code=person.resident_code)
    assert row.address == moved.address.text
    assert world.count(pref_history, node=node, resident_code=person.resident_code) == 2
    fuhyo = world.row(fuhyo_pref_records, node="fuhyo-pref:14", resident_code=person.resident_code)
    assert fuhyo is not None and fuhyo.address == moved.address.text
    assert world.count(fuhyo_pref_history, node="fuhyo-pref:14", resident_code=person.resident_code) == 2
    assert relay.run_once(1000) == 0  # nothing left: the national tiers were reached in the round
