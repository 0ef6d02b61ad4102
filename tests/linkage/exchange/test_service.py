"""The hub's query path end to end on the real parts: table check, code translation, the provider's
answer, the three records, and every kind of refusal (recorded, nothing disclosed)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Sequence

import pytest
from sqlalchemy import select, text

from jlis.audit import AuditLog
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput
from jlis.linkage.exchange import records as store
from jlis.linkage.exchange.models import (
    HUB_KEEPER,
    DisclosurePolicy,
    Outcome,
    RefusalReason,
    Role,
)
from jlis.linkage.exchange.service import ExchangeHub, prune_requests, run_query
from jlis.linkage.exchange.tables import ExchangeRecordRow
from jlis.linkage.hub.codes import Hub
from jlis.linkage.hub.errors import UnknownCode
from jlis.linkage.hub.members import MemberService

from .conftest import CHIYODA, PENSION, SECRET, SHINJUKU, TAX, World

PENSION_TAX = dict(affair="pension_benefit", provider=CHIYODA, category="local_tax")


def _query(world: World, request, member: str = "nenkin"):  # type: ignore[no-untyped-def]
    with transaction(world.factory) as s:
        return world.hub(s).query(world.members[member], request)


def _all_records(world: World, keeper: str) -> list[store.ExchangeRecord]:
    with world.factory() as s:
        return store.records(s, keeper)


def test_a_lawful_query_is_answered_from_the_replica_and_recorded_three_times(world: World) -> None:
    person = world.people[0]
    world.replica(CHIYODA, person, "local_tax", TAX)
    request = world.request("nenkin", person, items=["tax_year", "total_income"], **PENSION_TAX)
    answer = _query(world, request)

    assert answer.outcome is Outcome.PROVIDED and answer.reason is None
    assert dict(answer.data) == {"tax_year": 2026, "total_income": 3_200_000}  # only what was asked
    (hub,) = _all_records(world, HUB_KEEPER)
    (req,) = _all_records(world, "nenkin")
    (prov,) = _all_records(world, CHIYODA)
    assert hub.exchange_no == req.exchange_no == prov.exchange_no == answer.exchange_no == hub.seq
    assert (hub.role, req.role, prov.role) == (Role.HUB, Role.REQUESTER, Role.PROVIDER)
    # Each keeper names the person its own way: its code, or the hub's link.
    assert req.person == world.code("nenkin", person)
    assert prov.person == world.code(CHIYODA, person)
    assert hub.person not in (req.person, prov.person, person) and hub.person
    for rec in (hub, req, prov):
        assert rec.requester_id == "nenkin" and rec.requester_name == "日本年金機構"
        assert rec.provider_id == CHIYODA and rec.provider_name == "千代田区"
        assert rec.affair == "pension_benefit" and "国民年金法" in rec.affair_name
        assert rec.items == ("tax_year", "total_income")
        assert rec.outcome is Outcome.PROVIDED
        assert rec.requested_at == world.clock.now() and rec.provided_at == world.clock.now()
        assert rec.non_disclosure is False and rec.disclosure is DisclosurePolicy.IMMEDIATE
    with world.factory() as s:
        for keeper in (HUB_KEEPER, "nenkin", CHIYODA):
            result = store.verify(s, keeper)
            assert result.ok and result.checked == 1, keeper


def test_no_record_outside_the_hub_carries_a_resident_code_or_another_members_code(world: World) -> None:
    person = world.people[0]
    world.replica(CHIYODA, person, "local_tax", TAX)
    _query(world, world.request("nenkin", person, items=["tax_year"], **PENSION_TAX))
    nenkin_code, chiyoda_code = world.code("nenkin", person), world.code(CHIYODA, person)
    with world.factory() as s:
        rows = s.execute(select(ExchangeRecordRow)).scalars().all()
    assert len(rows) == 3
    for row in rows:
        blob = " ".join(str(v) for v in row.__dict__.values())
        assert person not in blob  # no 住民票コード anywhere
        if row.keeper == "nenkin":
            assert chiyoda_code not in blob
        if row.keeper == CHIYODA:
            assert nenkin_code not in blob
        if row.keeper == HUB_KEEPER:
            assert nenkin_code not in blob and chiyoda_code not in blob


def test_a_municipality_asks_another_for_child_allowance(world: World) -> None:
    person = world.people[1]
    world.replica(CHIYODA, person, "child_allowance", {"eligible": True, "children": 2, "status": "paying"})
    request = world.request(
        SHINJUKU,
        person,
        affair="child_allowance",
        provider=CHIYODA,
        category="child_allowance",
        items=["eligible", "children"],
    )
    answer = _query(world, request, member=SHINJUKU)
    assert answer.outcome is Outcome.PROVIDED
    assert dict(answer.data) == {"eligible": True, "children": 2}


def test_an_agency_provides_to_a_municipality(world: World) -> None:
    person = world.people[2]
    world.replica("nenkin", person, "pension", PENSION)
    request = world.request(
        SHINJUKU, person, affair="ltc", provider="nenkin", category="pension", items=["receiving"]
    )
    answer = _query(world, request, member=SHINJUKU)
    assert answer.outcome is Outcome.PROVIDED and dict(answer.data) == {"receiving": True}


def test_no_replica_is_a_recorded_no_match(world: World) -> None:
    person = world.people[0]
    world.code(CHIYODA, person)  # linked at the provider, but nothing registered
    answer = _query(world, world.request("nenkin", person, items=["tax_year"], **PENSION_TAX))
    assert answer.outcome is Outcome.NO_MATCH and not answer.data
    answer.raise_if_refused()  # a no-match is an answer, not a refusal
    assert [r.outcome for r in _all_records(world, CHIYODA)] == [Outcome.NO_MATCH]
    assert [r.outcome for r in _all_records(world, HUB_KEEPER)] == [Outcome.NO_MATCH]


def _assert_refused(world: World, answer, reason: RefusalReason, *, provider_records: int = 0) -> None:  # type: ignore[no-untyped-def]
    assert answer.outcome is Outcome.REFUSED and answer.reason is reason
    assert not answer.data
    with pytest.raises(Forbidden) as info:
        answer.raise_if_refused()
    assert info.value.context["rule"] == reason.value
    hub = _all_records(world, HUB_KEEPER)[-1]
    req = _all_records(world, "nenkin")[-1]
    assert hub.outcome is req.outcome is Outcome.REFUSED
    assert hub.reason is req.reason is reason
    assert hub.exchange_no == req.exchange_no == answer.exchange_no
    assert len(_all_records(world, CHIYODA)) == provider_records  # the provider was not asked


def test_a_query_outside_the_table_is_refused_and_recorded(world: World) -> None:
    person = world.people[0]
    world.replica(CHIYODA, person, "child_allowance", {"eligible": True, "children": 1})
    request = world.request(
        "nenkin",
        person,
        affair="pension_benefit",
        provider=CHIYODA,
        category="child_allowance",
        items=["eligible"],
    )
    answer = _query(world, request)
    _assert_refused(world, answer, RefusalReason.NOT_IN_TABLE)
    # The request was authentic: the hub names the person, so the attempt is in their history.
    assert _all_records(world, HUB_KEEPER)[-1].person is not None


def test_items_outside_the_rule_are_refused(world: World) -> None:
    person = world.people[0]
    world.replica(CHIYODA, person, "local_tax", TAX)
    answer = _query(world, world.request("nenkin", person, items=["tax_year", "income_levy"], **PENSION_TAX))
    _assert_refused(world, answer, RefusalReason.ITEMS_NOT_ALLOWED)


def test_unknown_affair_and_category_are_refused(world: World) -> None:
    person = world.people[0]
    answer = _query(
        world,
        world.request(
            "nenkin",
            person,
            affair="fishing_licence",
            provider=CHIYODA,
            category="local_tax",
            items=["tax_year"],
        ),
    )
    _assert_refused(world, answer, RefusalReason.UNKNOWN_AFFAIR)
    assert _all_records(world, HUB_KEEPER)[-1].affair_name == "(表にない事務)"
    answer = _query(
        world,
        world.request(
            "nenkin", person, affair="pension_benefit", provider=CHIYODA, category="horoscope", items=["sign"]
        ),
    )
    _assert_refused(world, answer, RefusalReason.UNKNOWN_CATEGORY)


def test_another_members_code_is_refused_as_unknown(world: World) -> None:
    person = world.people[0]
    world.replica(CHIYODA, person, "local_tax", TAX)
    stolen = world.code("kyokai", person)  # member B's code, presented by member A
    answer = _query(world, world.request("nenkin", None, code=stolen, items=["tax_year"], **PENSION_TAX))
    _assert_refused(world, answer, RefusalReason.UNKNOWN_CODE)
    assert _all_records(world, HUB_KEEPER)[-1].person is None  # names nobody
    garbage = _query(
        world, world.request("nenkin", None, code="NOT-A-CODE", items=["tax_year"], **PENSION_TAX)
    )
    assert garbage.reason is RefusalReason.UNKNOWN_CODE


def test_a_tampered_request_is_refused(world: World) -> None:
    person = world.people[0]
    world.replica(CHIYODA, person, "local_tax", TAX)
    request = world.request("nenkin", person, items=["tax_year"], **PENSION_TAX)
    forged = dataclasses.replace(request, items=("tax_year", "total_income"))
    answer = _query(world, forged)
    _assert_refused(world, answer, RefusalReason.TAMPERED)
    assert _all_records(world, HUB_KEEPER)[-1].person is None
    # A request MACed with another member's key is tampered as well.
    other = world.request("nenkin", person, items=["tax_year"], key=world.keys["kyokai"], **PENSION_TAX)
    assert _query(world, other).reason is RefusalReason.TAMPERED
    # The forged request did not burn the id: the genuine one still goes through.
    assert _query(world, request).outcome is Outcome.PROVIDED


def test_a_replayed_request_is_refused(world: World) -> None:
    person = world.people[0]
    world.replica(CHIYODA, person, "local_tax", TAX)
    request = world.request("nenkin", person, items=["tax_year"], **PENSION_TAX)
    assert _query(world, request).outcome is Outcome.PROVIDED
    again = _query(world, request)
    _assert_refused(world, again, RefusalReason.REPLAYED, provider_records=1)
    assert len(_all_records(world, CHIYODA)) == 1  # the provider was asked once only


def test_a_stale_request_is_refused(world: World) -> None:
    person = world.people[0]
    old = world.clock.now() - dt.timedelta(minutes=6)
    answer = _query(world, world.request("nenkin", person, sent_at=old, items=["tax_year"], **PENSION_TAX))
    _assert_refused(world, answer, RefusalReason.STALE)


def test_a_rotated_key_takes_effect_at_once(world: World) -> None:
    person = world.people[0]
    world.replica(CHIYODA, person, "local_tax", TAX)
    with transaction(world.factory) as s:
        new_key = MemberService(s, world.clock, actor="op", key_dir=world.key_dir).rotate_key("nenkin")
    old = world.request("nenkin", person, items=["tax_year"], **PENSION_TAX)
    assert _query(world, old).reason is RefusalReason.TAMPERED
    fresh = world.request("nenkin", person, items=["tax_year"], key=new_key, **PENSION_TAX)
    assert _query(world, fresh).outcome is Outcome.PROVIDED


def test_provider_checks(world: World) -> None:
    person = world.people[0]
    unknown = _query(
        world,
        world.request(
            "nenkin",
            person,
            affair="pension_benefit",
            provider="lg-999999",
            category="local_tax",
            items=["tax_year"],
        ),
    )
    assert unknown.reason is RefusalReason.UNKNOWN_PROVIDER
    with transaction(world.factory) as s:
        MemberService(s, world.clock, actor="op", key_dir=world.key_dir).set_active(CHIYODA, False)
    inactive = _query(world, world.request("nenkin", person, items=["tax_year"], **PENSION_TAX))
    assert inactive.reason is RefusalReason.INACTIVE
    itself = _query(
        world,
        world.request(
            SHINJUKU, person, affair="nhi", provider=SHINJUKU, category="local_tax", items=["tax_year"]
        ),
        member=SHINJUKU,
    )
    assert itself.reason is RefusalReason.SELF_QUERY


def test_an_inactive_requester_is_forbidden_and_nothing_is_recorded(world: World) -> None:
    request = world.request("nenkin", world.people[0], items=["tax_year"], **PENSION_TAX)
    with transaction(world.factory) as s:
        member = MemberService(s, world.clock, actor="op", key_dir=world.key_dir).set_active("nenkin", False)
    with pytest.raises(Forbidden), transaction(world.factory) as s:
        world.hub(s).query(member, request)
    assert _all_records(world, HUB_KEEPER) == []


def test_a_malformed_request_is_invalid_input_and_changes_nothing(world: World) -> None:
    request = world.request("nenkin", world.people[0], items=["tax_year"], **PENSION_TAX)
    for bad, field in (
        (dataclasses.replace(request, items=()), "items"),
        (dataclasses.replace(request, items=("tax_year", "tax_year")), "items"),
        (dataclasses.replace(request, request_id="no spaces"), "request_id"),
        (dataclasses.replace(request, sent_at=dt.datetime(2026, 11, 26, 10, 0)), "sent_at"),
        (dataclasses.replace(request, mac="xyz"), "mac"),
        (dataclasses.replace(request, affair="Pension"), "affair"),
        (dataclasses.replace(request, disclosure=DisclosurePolicy.DEFERRED), "disclose_after"),
    ):
        with pytest.raises(InvalidInput) as info, transaction(world.factory) as s:
            world.hub(s).query(world.members["nenkin"], bad)
        assert info.value.field == field
    assert _all_records(world, HUB_KEEPER) == []
    with world.factory() as s:
        assert s.execute(text("SELECT count(*) FROM linkage_query_requests")).scalar() == 0


def test_withholding_is_allowed_only_where_the_table_says(world: World) -> None:
    person = world.people[0]
    world.replica(CHIYODA, person, "local_tax", TAX)
    deferred = world.request(
        SHINJUKU,
        person,
        affair="public_assistance",
        provider=CHIYODA,
        category="local_tax",
        items=["total_income"],
        disclosure=DisclosurePolicy.DEFERRED,
        disclose_after=dt.date(2027, 4, 1),
    )
    answer = _query(world, deferred, member=SHINJUKU)
    assert answer.outcome is Outcome.PROVIDED
    rec = _all_records(world, HUB_KEEPER)[-1]
    assert rec.non_disclosure and rec.disclosure is DisclosurePolicy.DEFERRED
    assert rec.disclose_after == dt.date(2027, 4, 1)
    never = world.request(
        "nenkin", person, items=["tax_year"], disclosure=DisclosurePolicy.NEVER, **PENSION_TAX
    )
    _assert_refused(world, _query(world, never), RefusalReason.DISCLOSURE_NOT_ALLOWED, provider_records=1)


def test_run_query_commits_the_refusal_then_raises(world: World) -> None:
    request = world.request("nenkin", world.people[0], items=["income_levy"], **PENSION_TAX)
    with pytest.raises(Forbidden):
        run_query(world.factory, world.hub, lambda s: world.members["nenkin"], request)
    assert [r.reason for r in _all_records(world, HUB_KEEPER)] == [RefusalReason.ITEMS_NOT_ALLOWED]


def test_a_batch_is_answered_in_order_with_consecutive_exchange_numbers(world: World) -> None:
    for person in world.people:
        world.replica(CHIYODA, person, "local_tax", TAX)
    requests = [world.request("nenkin", p, items=["tax_year"], **PENSION_TAX) for p in world.people]
    requests.append(requests[0])  # a replay inside the batch
    requests.append(world.request("nenkin", world.people[0], items=["income_levy"], **PENSION_TAX))
    with transaction(world.factory) as s:
        answers = world.hub(s).query_many(world.members["nenkin"], requests)
    assert [a.outcome for a in answers] == [Outcome.PROVIDED] * 4 + [Outcome.REFUSED] * 2
    assert [a.reason for a in answers[4:]] == [RefusalReason.REPLAYED, RefusalReason.ITEMS_NOT_ALLOWED]
    assert [a.exchange_no for a in answers] == list(range(1, 7))
    assert len(_all_records(world, CHIYODA)) == 4
    with world.factory() as s:
        assert all(store.verify(s, k).ok for k in (HUB_KEEPER, "nenkin", CHIYODA))
    bad = [dataclasses.replace(requests[0], items=())]
    with pytest.raises(InvalidInput) as info, transaction(world.factory) as s:
        world.hub(s).query_many(world.members["nenkin"], bad)
    assert info.value.field == "requests[0].items"


def test_members_read_only_their_own_records(world: World) -> None:
    person = world.people[0]
    world.replica(CHIYODA, person, "local_tax", TAX)
    _query(world, world.request("nenkin", person, items=["tax_year"], **PENSION_TAX))
    with world.factory() as s:
        hub = world.hub(s)
        assert [r.keeper for r in hub.records_of(world.members["nenkin"])] == ["nenkin"]
        assert [r.keeper for r in hub.records_of(world.members[CHIYODA])] == [CHIYODA]
        assert hub.records_of(world.members["kyokai"]) == []
        mine = hub.records_of(world.members["nenkin"], code=world.code("nenkin", person))
        assert len(mine) == 1
        reads = AuditLog("access").entries(s)
        assert [(e.actor, e.action, e.details["records"]) for e in reads][-1] == ("nenkin", "read_records", 1)
        assert len([e for e in reads if e.action == "read_records"]) == 4  # every read is on record


def test_old_request_ids_are_pruned(world: World) -> None:
    request = world.request("nenkin", world.people[0], items=["tax_year"], **PENSION_TAX)
    _query(world, request)
    with transaction(world.factory) as s:
        assert prune_requests(s, world.clock.now()) == 0
        assert prune_requests(s, world.clock.now() + dt.timedelta(minutes=11)) == 1


def test_exchange_hub_needs_a_way_to_the_request_keys(world: World) -> None:
    with world.factory() as s, pytest.raises(ValueError):
        ExchangeHub(s, world.clock, SECRET)


class _BatchHub:
    """A thin double of a hub offering the batch methods (BatchCodeHub), built on the real hub's
    per-person methods: it checks ExchangeHub's batch branch gives the per-query answers."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.calls: list[str] = []

    def person_link(self, member_id: str, code: str) -> str:
        raise AssertionError("the batch branch must not ask one code at a time")

    def translate(self, from_member: str, code: str, to_member: str) -> str:
        raise AssertionError("the batch branch must not translate one code at a time")

    def person_links(self, member_id: str, codes: Sequence[str]) -> dict[str, str]:
        self.calls.append("person_links")
        out = {}
        for c in codes:
            with contextlib.suppress(UnknownCode, InvalidInput):
                out[c] = self.hub.person_link(member_id, c)
        return out

    def codes_for_links(self, member_id: str, links: Sequence[str]) -> dict[str, str]:
        self.calls.append("codes_for_links")
        return {link: self.hub.code_for_link(member_id, link) for link in links}


def test_the_batch_branch_answers_like_the_per_query_one(world: World) -> None:
    for person in world.people[:3]:
        world.replica(CHIYODA, person, "local_tax", TAX)
    world.code(CHIYODA, world.people[3])  # linked, no replica: a no-match inside the batch answer
    stolen = world.code("kyokai", world.people[0])
    requests = [world.request("nenkin", p, items=["tax_year"], **PENSION_TAX) for p in world.people]
    requests.append(world.request("nenkin", None, code=stolen, items=["tax_year"], **PENSION_TAX))
    requests.append(world.request("nenkin", world.people[0], items=["income_levy"], **PENSION_TAX))
    with transaction(world.factory) as s:
        double = _BatchHub(Hub(s, SECRET, world.clock))
        hub = ExchangeHub(s, world.clock, SECRET, key_dir=world.key_dir, hub=double)
        answers = hub.query_many(world.members["nenkin"], requests)
    assert double.calls == ["person_links", "codes_for_links"]
    assert [a.outcome for a in answers] == [Outcome.PROVIDED] * 3 + [Outcome.NO_MATCH] + [Outcome.REFUSED] * 2
    assert [a.reason for a in answers[4:]] == [RefusalReason.UNKNOWN_CODE, RefusalReason.ITEMS_NOT_ALLOWED]
    assert all(dict(a.data) == {"tax_year": 2026} for a in answers[:3])
    hub_records = _all_records(world, HUB_KEEPER)
    assert hub_records[4].person is None and hub_records[5].person == hub_records[0].person
    assert [r.person for r in _all_records(world, CHIYODA)] == [world.code(CHIYODA, p) for p in world.people]


class _PerQueryHub:
    """A hub with only the per-query methods (the CodeHub protocol), on the real hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def person_link(self, member_id: str, code: str) -> str:
        return self.hub.person_link(member_id, code)

    def translate(self, from_member: str, code: str, to_member: str) -> str:
        return self.hub.translate(from_member, code, to_member)


def test_a_hub_without_batch_methods_is_asked_one_query_at_a_time(world: World) -> None:
    world.replica(CHIYODA, world.people[0], "local_tax", TAX)
    stolen = world.code("kyokai", world.people[0])
    requests = [
        world.request("nenkin", world.people[0], items=["tax_year"], **PENSION_TAX),
        world.request("nenkin", None, code=stolen, items=["tax_year"], **PENSION_TAX),
        world.request("nenkin", None, code="not-a-code", items=["tax_year"], **PENSION_TAX),
        world.request("nenkin", world.people[0], items=["income_levy"], **PENSION_TAX),
    ]
    with transaction(world.factory) as s:
        hub = ExchangeHub(
            s, world.clock, SECRET, key_dir=world.key_dir, hub=_PerQueryHub(Hub(s, SECRET, world.clock))
        )
        answers = hub.query_many(world.members["nenkin"], requests)
    assert [a.outcome for a in answers] == [Outcome.PROVIDED] + [Outcome.REFUSED] * 3
    assert [a.reason for a in answers[1:]] == [
        RefusalReason.UNKNOWN_CODE,
        RefusalReason.UNKNOWN_CODE,
        RefusalReason.ITEMS_NOT_ALLOWED,
    ]
    people = [r.person for r in _all_records(world, HUB_KEEPER)]
    assert people[1] is None and people[2] is None and people[3] == people[0] is not None
