"""The portal's やりとり履歴 (history_for): the hub's records about one person, under each record's
disclosure policy, and nobody else's."""

from __future__ import annotations

import datetime as dt

import pytest

from jlis.audit import AuditLog
from jlis.clock import JST
from jlis.db import transaction
from jlis.errors import Forbidden
from jlis.linkage.exchange.models import DisclosurePolicy, Outcome
from jlis.linkage.hub.errors import UnknownCode

from .conftest import CHIYODA, PENSION, SHINJUKU, TAX, World


def _ask(world: World, requester: str, person: str, **kwargs: object) -> None:
    request = world.request(requester, person, **kwargs)  # type: ignore[arg-type]
    with transaction(world.factory) as s:
        world.hub(s).query(world.members[requester], request)


def _history(world: World, person: str, at: dt.datetime | None = None):  # type: ignore[no-untyped-def]
    code = world.code("myna-portal", person)
    with transaction(world.factory) as s:
        return world.hub(s).history_for(world.members["myna-portal"], code, at or world.clock.now())


def test_history_shows_the_exchanges_about_the_person_under_their_policies(world: World) -> None:
    alice, bob = world.people[0], world.people[1]
    for p in (alice, bob):
        world.replica(CHIYODA, p, "local_tax", TAX)
    world.replica("nenkin", alice, "pension", PENSION)
    _ask(
        world,
        "nenkin",
        alice,
        affair="pension_benefit",
        provider=CHIYODA,
        category="local_tax",
        items=["tax_year", "total_income"],
    )
    world.clock.advance(minutes=1)
    _ask(
        world,
        SHINJUKU,
        alice,
        affair="public_assistance",
        provider="nenkin",
        category="pension",
        items=["receiving"],
        disclosure=DisclosurePolicy.DEFERRED,
        disclose_after=dt.date(2027, 1, 1),
    )
    world.clock.advance(minutes=1)
    _ask(
        world,
        SHINJUKU,
        alice,
        affair="public_assistance",
        provider=CHIYODA,
        category="local_tax",
        items=["total_income"],
        disclosure=DisclosurePolicy.NEVER,
    )
    world.clock.advance(minutes=1)
    _ask(
        world, "jasso", bob, affair="scholarship", provider=CHIYODA, category="local_tax", items=["tax_year"]
    )
    world.clock.advance(minutes=1)
    _ask(
        world,
        "jasso",
        alice,
        affair="scholarship",
        provider=CHIYODA,
        category="local_tax",
        items=["my_number"],
    )  # refused: outside the table

    now = _history(world, alice)
    assert [(v.requester_id, v.affair, v.outcome) for v in now] == [
        ("jasso", "scholarship", Outcome.REFUSED),
        ("nenkin", "pension_benefit", Outcome.PROVIDED),
    ]
    first = now[1]
    assert first.requester_name == "日本年金機構" and first.provider_name == "千代田区"
    assert first.category_label == "地方税関係情報"
    assert first.item_labels == ("課税年度", "合計所得金額")
    assert first.requested_at == world.clock.now() - dt.timedelta(minutes=4)

    later = _history(world, alice, dt.datetime(2027, 1, 1, 0, 0, tzinfo=JST))
    assert [v.affair for v in later] == ["scholarship", "public_assistance", "pension_benefit"]
    assert later[1].provider_id == "nenkin"  # the deferred one; the never-disclosed one stays hidden

    assert [v.requester_id for v in _history(world, bob)] == ["jasso"]
    with world.factory() as s:  # each disclosure is itself on record
        disclosed = [e for e in AuditLog("access").entries(s) if e.action == "disclose"]
    assert [(e.actor, e.details["records"]) for e in disclosed] == [
        ("myna-portal", 2),
        ("myna-portal", 3),
        ("myna-portal", 1),
    ]


def test_only_the_portal_may_ask_and_only_with_its_own_code(world: World) -> None:
    person = world.people[0]
    with transaction(world.factory) as s:
        hub = world.hub(s)
        with pytest.raises(Forbidden):
            hub.history_for(world.members["nenkin"], world.code("nenkin", person), world.clock.now())
        with pytest.raises(UnknownCode):  # another member's code names nobody to the portal
            hub.history_for(world.members["myna-portal"], world.code("nenkin", person), world.clock.now())


def test_a_person_without_exchanges_has_an_empty_history(world: World) -> None:
    assert _history(world, world.people[3]) == []
