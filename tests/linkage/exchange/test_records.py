"""The 情報提供等記録 store: hash chains per keeper, append-only triggers, tamper detection, retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import JST
from jlis.db import transaction
from jlis.errors import RuleViolation
from jlis.linkage.exchange import records as store
from jlis.linkage.exchange.models import HUB_KEEPER, DisclosurePolicy, Outcome, RefusalReason
from jlis.linkage.exchange.records import ExchangeDraft

T0 = dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST)


def draft(
    i: int, *, requester: str = "nenkin", provider: str = "lg-131016", asked: bool = True
) -> ExchangeDraft:
    return ExchangeDraft(
        request_id=f"r{i}",
        requester_id=requester,
        requester_name="日本年金機構",
        provider_id=provider,
        provider_name="千代田区",
        affair="pension_benefit",
        affair_name="年金給付",
        category="local_tax",
        items=("tax_year", "total_income"),
        outcome=Outcome.PROVIDED if asked else Outcome.REFUSED,
        reason=None if asked else RefusalReason.NOT_IN_TABLE,
        requested_at=T0,
        provided_at=T0 if asked else None,
        disclosure=DisclosurePolicy.IMMEDIATE,
        disclose_after=None,
        requester_person=f"REQ{i}",
        hub_person=f"link{i}",
        provider_person=f"PROV{i}" if asked else None,
        provider_asked=asked,
    )


def _append(factory: sessionmaker[Session], drafts: list[ExchangeDraft], at: dt.datetime = T0) -> list[int]:
    with transaction(factory) as s:
        return store.append_exchanges(s, drafts, at)


@contextmanager
def behind_the_triggers(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that edits the table as someone with the database's keys would: triggers off."""
    with transaction(factory) as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SET LOCAL session_replication_role = replica"))
            yield s
        else:
            s.execute(text("DROP TRIGGER linkage_records_no_update"))
            s.execute(text("DROP TRIGGER linkage_records_no_delete"))
            yield s


def test_each_exchange_lands_in_three_chains_with_the_hub_number(factory: sessionmaker[Session]) -> None:
    numbers = _append(factory, [draft(1), draft(2, asked=False), draft(3, requester="jasso")])
    assert numbers == [1, 2, 3]
    with factory() as s:
        assert [r.exchange_no for r in store.records(s, HUB_KEEPER)] == [1, 2, 3]
        assert [(r.seq, r.exchange_no) for r in store.records(s, "nenkin")] == [(1, 1), (2, 2)]
        assert [(r.seq, r.exchange_no) for r in store.records(s, "lg-131016")] == [(1, 1), (2, 3)]
        assert [(r.seq, r.exchange_no) for r in store.records(s, "jasso")] == [(1, 3)]
        assert store.keepers(s) == ["hub", "jasso", "lg-131016", "nenkin"]
        for keeper in store.keepers(s):
            assert store.verify(s, keeper).ok
        hub = store.records(s, HUB_KEEPER)
        assert hub[1].prev_hash == hub[0].hash
        assert store.summary(s, HUB_KEEPER) == {"provided": 2, "refused": 1}
    assert _append(factory, [draft(4)]) == [4]  # a later transaction continues the chain


@pytest.mark.parametrize(
    "statement",
    ["UPDATE linkage_exchange_records SET outcome = 'refused'", "DELETE FROM linkage_exchange_records"],
)
def test_the_triggers_refuse_update_and_delete(factory: sessionmaker[Session], statement: str) -> None:
    _append(factory, [draft(1)])
    with pytest.raises(DBAPIError), transaction(factory) as s:
        s.execute(text(statement))
    with factory() as s:
        assert len(store.records(s, HUB_KEEPER)) == 1


def test_verify_finds_an_edit_a_removal_and_a_cut_tail(factory: sessionmaker[Session]) -> None:
    _append(factory, [draft(i) for i in range(1, 6)])
    with behind_the_triggers(factory) as s:
        s.execute(
            text(
                "UPDATE linkage_exchange_records SET items = '[\"tax_year\"]' "
                "WHERE keeper = 'nenkin' AND seq = 2"
            )
        )
        s.execute(text("DELETE FROM linkage_exchange_records WHERE keeper = 'lg-131016' AND seq = 3"))
        s.execute(text("DELETE FROM linkage_exchange_records WHERE keeper = 'hub' AND seq = 5"))
    with factory() as s:
        edited = store.verify(s, "nenkin")
        assert not edited.ok and edited.first_bad_seq == 2 and "modified" in (edited.reason or "")
        removed = store.verify(s, "lg-131016")
        assert not removed.ok and removed.first_bad_seq == 3
        cut = store.verify(s, HUB_KEEPER)
        assert not cut.ok and cut.first_bad_seq == 5 and "missing" in (cut.reason or "")


def test_a_record_moved_to_another_keeper_breaks_its_hash(factory: sessionmaker[Session]) -> None:
    _append(factory, [draft(1), draft(2, requester="jasso")])
    with behind_the_triggers(factory) as s:
        s.execute(
            text(
                "UPDATE linkage_exchange_records SET person = 'someone-else' "
                "WHERE keeper = 'jasso' AND seq = 1"
            )
        )
    with factory() as s:
        assert not store.verify(s, "jasso").ok
        assert store.verify(s, "nenkin").ok


def test_purge_refuses_records_younger_than_seven_years(factory: sessionmaker[Session]) -> None:
    old = T0.replace(year=2018)
    _append(factory, [draft(1), draft(2)], at=old)
    _append(factory, [draft(3)], at=T0)
    with transaction(factory) as s:
        with pytest.raises(RuleViolation) as info:
            store.purge(s, HUB_KEEPER, before=T0.replace(year=2020), now=T0)
        assert info.value.field == "before"
    with transaction(factory) as s:
        assert store.purge(s, HUB_KEEPER, before=T0.replace(year=2019), now=T0) == 2
        assert store.purge(s, HUB_KEEPER, before=T0.replace(year=2019), now=T0) == 0
    with factory() as s:
        assert [r.seq for r in store.records(s, HUB_KEEPER)] == [3]
        assert store.verify(s, HUB_KEEPER).ok  # the anchor carries the chain on
        assert len(store.records(s, "nenkin")) == 3  # every keeper purges its own chain
    assert _append(factory, [draft(4)]) == [4]
    with factory() as s:
        assert store.verify(s, HUB_KEEPER).ok


def test_purge_refuses_to_destroy_evidence(factory: sessionmaker[Session]) -> None:
    _append(factory, [draft(1), draft(2)], at=T0.replace(year=2018))
    with behind_the_triggers(factory) as s:
        s.execute(text("UPDATE linkage_exchange_records SET affair = 'x' WHERE keeper = 'hub' AND seq = 1"))
    with pytest.raises(RuleViolation), transaction(factory) as s:
        store.purge(s, HUB_KEEPER, before=T0.replace(year=2019), now=T0)


def test_the_retention_cutoff_is_seven_years_in_japans_calendar() -> None:
    leap = dt.datetime(2028, 2, 29, 12, 0, tzinfo=JST)
    assert store.retention_cutoff(leap) == dt.datetime(2021, 2, 28, 12, 0, tzinfo=JST)
    assert store.retention_cutoff(T0).year == 2019


def test_concurrent_batches_keep_every_chain_whole(factory: sessionmaker[Session]) -> None:
    """Writers that share the hub's chain and some members' chains, at once: the heads are locked
    in keeper order, so none deadlocks and no seq is taken twice."""
    import threading

    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(8):
                requester = ("nenkin", "jasso", "kyokai")[(w + i) % 3]
                provider = ("lg-131016", "lg-131041")[i % 2]
                _append(
                    factory,
                    [draft(w * 100 + i * 3 + j, requester=requester, provider=provider) for j in range(3)],
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with factory() as s:
        hub = store.records(s, HUB_KEEPER)
        assert [r.seq for r in hub] == list(range(1, 97))
        assert sorted(r.exchange_no for r in hub) == list(range(1, 97))
        for keeper in store.keepers(s):
            assert store.verify(s, keeper).ok, keeper
        total = sum(len(store.records(s, k)) for k in ("nenkin", "jasso", "kyokai"))
        assert total == 96
