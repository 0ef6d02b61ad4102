"""Group commit of single queries: concurrent callers share a transaction, each gets its own answer
after the commit, and one bad query fails only its own caller."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput
from jlis.linkage.exchange import records as store
from jlis.linkage.exchange.batcher import QueryBatcher
from jlis.linkage.exchange.models import HUB_KEEPER, Outcome, QueryAnswer, RefusalReason
from jlis.linkage.exchange.service import known_request

from .conftest import CHIYODA, TAX, World

PENSION_TAX = dict(affair="pension_benefit", provider=CHIYODA, category="local_tax")


def _concurrently(batcher: QueryBatcher, jobs: list) -> list[object]:  # type: ignore[type-arg]
    results: list[object] = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def call(i: int) -> None:
        member, request = jobs[i]
        barrier.wait()
        try:
            results[i] = batcher.submit(member, request)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_queries_are_committed_in_groups(world: World) -> None:
    for p in world.people:
        world.replica(CHIYODA, p, "local_tax", TAX)
    nenkin = world.members["nenkin"]
    jobs = [
        (nenkin, world.request("nenkin", world.people[i % 4], items=["tax_year"], **PENSION_TAX))
        for i in range(12)
    ]
    jobs.append((nenkin, jobs[0][1]))  # a replay within the same group
    batcher = QueryBatcher(world.factory, world.hub, max_wait=0.5).start()
    try:
        results = _concurrently(batcher, jobs)
    finally:
        batcher.stop()
    answers = [r for r in results if isinstance(r, QueryAnswer)]
    assert len(answers) == 13
    assert sorted(a.outcome.value for a in answers).count("provided") == 12
    assert [a.reason for a in answers if a.outcome is Outcome.REFUSED] == [RefusalReason.REPLAYED]
    assert batcher.queries == 13 and batcher.groups < 13  # shared transactions
    assert sorted(a.exchange_no for a in answers) == list(range(1, 14))
    with world.factory() as s:
        assert store.verify(s, HUB_KEEPER).checked == 13


def test_one_bad_query_fails_only_its_caller(world: World) -> None:
    world.replica(CHIYODA, world.people[0], "local_tax", TAX)
    nenkin = world.members["nenkin"]
    gone = dataclasses.replace(world.members["jasso"], active=False)
    jobs = [
        (nenkin, world.request("nenkin", world.people[0], items=["tax_year"], **PENSION_TAX))
        for _ in range(3)
    ]
    jobs.append(
        (
            gone,
            world.request(
                "jasso",
                world.people[0],
                affair="scholarship",
                provider=CHIYODA,
                category="local_tax",
                items=["tax_year"],
            ),
        )
    )
    batcher = QueryBatcher(world.factory, world.hub, max_wait=0.5).start()
    try:
        results = _concurrently(batcher, jobs)
    finally:
        batcher.stop()
    assert [type(r).__name__ for r in results] == ["QueryAnswer"] * 3 + ["Forbidden"]
    assert isinstance(results[3], Forbidden)


def test_without_the_thread_a_query_runs_alone_and_bad_input_is_raised_at_once(world: World) -> None:
    world.replica(CHIYODA, world.people[0], "local_tax", TAX)
    batcher = QueryBatcher(world.factory, world.hub)
    request = world.request("nenkin", world.people[0], items=["tax_year"], **PENSION_TAX)
    assert batcher.submit(world.members["nenkin"], request).outcome is Outcome.PROVIDED
    with pytest.raises(InvalidInput):
        batcher.submit(world.members["nenkin"], dataclasses.replace(request, items=()))
    with pytest.raises(ValueError):
        QueryBatcher(world.factory, world.hub, max_batch=0)
    batcher.stop()  # never started: nothing to do


def test_the_batcher_prunes_the_replay_ledger(world: World) -> None:
    world.replica(CHIYODA, world.people[0], "local_tax", TAX)
    nenkin = world.members["nenkin"]
    old = world.request("nenkin", world.people[0], items=["tax_year"], **PENSION_TAX)
    batcher = QueryBatcher(world.factory, world.hub, prune_every=0).start()
    try:
        batcher.submit(nenkin, old)
        with world.factory() as s:
            assert known_request(s, "nenkin", old.request_id)
        world.clock.advance(minutes=11)
        batcher.submit(nenkin, world.request("nenkin", world.people[0], items=["tax_year"], **PENSION_TAX))
    finally:
        batcher.stop()
    with world.factory() as s:
        assert not known_request(s, "nenkin", old.request_id)  # pruned: too old to be replayed
    with transaction(world.factory) as s:  # and a replay of it is refused as stale all the same
        assert world.hub(s).query(nenkin, old).reason is RefusalReason.STALE
