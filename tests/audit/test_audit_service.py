"""AuditLog on a real database (SQLite and PostgreSQL through the ``factory`` fixture)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import GENESIS, AuditLog, canonical_bytes, entry_hash, list_chains
from jlis.audit.service import hashed_fields, hold_appends, write_held_appends
from jlis.audit.tables import AuditChainHead, AuditEntryRow
from jlis.clock import JST
from jlis.db import transaction
from jlis.errors import InvalidInput, RuleViolation

T0 = dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST)
RESIDENT = "12345678903"
OTHER = "24727059608"


def provide(
    log: AuditLog, s: Session, at: dt.datetime = T0, subject: str | None = RESIDENT, **details: Any
) -> Any:
    return log.append(
        s,
        at=at,
        actor="agency:年金機構",
        action="provide",
        subject=subject,
        details={"affair": "年金", "items": ["氏名", "住所"], **details},
    )


def fill(factory: sessionmaker[Session], log: AuditLog, n: int, start: dt.datetime = T0) -> None:
    with transaction(factory) as s:
        for i in range(n):
            provide(
                log, s, at=start + dt.timedelta(minutes=i), subject=RESIDENT if i % 2 == 0 else OTHER, i=i
            )


def verify(factory: sessionmaker[Session], log: AuditLog) -> Any:
    with transaction(factory) as s:
        return log.verify(s)


def test_appends_link_into_a_chain(factory: sessionmaker[Session]) -> None:
    log = AuditLog("juki.provision")
    with transaction(factory) as s:
        first = provide(log, s, i=0)
        second = provide(log, s, at=T0 + dt.timedelta(seconds=1), i=1)
        many = log.append_many(
            s,
            [
                {"at": T0, "actor": "x", "action": "refuse", "details": {"why": "別表にない"}},
                {"at": T0, "actor": "x", "action": "read", "subject": OTHER, "details": {}},
            ],
        )
        assert log.append_many(s, []) == []
    assert [e.seq for e in (first, second, *many)] == [1, 2, 3, 4]
    assert first.prev_hash == GENESIS
    assert second.prev_hash == first.hash and many[0].prev_hash == second.hash
    assert many[1].prev_hash == many[0].hash
    assert first.at == T0 and first.at.utcoffset() == dt.timedelta(hours=9)
    assert first.details == {"affair": "年金", "items": ["氏名", "住所"], "i": 0}
    expected = entry_hash(
        GENESIS,
        hashed_fields(
            "juki.provision", 1, T0.astimezone(dt.UTC), first.actor, "provide", RESIDENT, first.details
        ),
    )
    assert first.hash == expected

    with factory() as s:
        stored = log.entries(s)
        head = s.get(AuditChainHead, "juki.provision")
    assert stored == [first, second, *many]  # what append returns is exactly what a reader gets
    assert head is not None and (head.last_seq, head.last_hash) == (4, many[1].hash)
    assert (head.anchor_seq, head.anchor_hash) == (0, GENESIS)
    assert verify(factory, log).ok and verify(factory, log).checked == 4


def test_append_never_commits(factory: sessionmaker[Session]) -> None:
    log = AuditLog("access")
    with factory() as s:
        provide(log, s)
        s.rollback()
    with factory() as s:
        assert log.entries(s) == []
        assert s.get(AuditChainHead, "access") is None


def test_bad_input_is_named_and_writes_nothing(factory: sessionmaker[Session]) -> None:
    log = AuditLog("access")
    with pytest.raises(InvalidInput) as err:
        AuditLog("")
    assert err.value.field == "chain"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"at": T0.replace(tzinfo=None)}, "at"),
        ({"actor": ""}, "actor"),
        ({"action": "x" * 65}, "action"),
        ({"subject": ""}, "subject"),
        ({"details": {"x": object()}}, "details"),
        ({"details": {"x": float("inf")}}, "details"),
    ]
    for change, field in cases:
        good = {"at": T0, "actor": "a", "action": "read", "subject": None, "details": {}}
        with transaction(factory) as s, pytest.raises(InvalidInput) as err:
            log.append(s, **{**good, **change})
        assert err.value.field == field
    with transaction(factory) as s, pytest.raises(InvalidInput) as err:
        # The first entry is fine, the second is not: the whole batch is refused before any write.
        log.append_many(
            s, [{"at": T0, "actor": "a", "action": "read", "details": {}}, {"at": T0, "actor": "a"}]
        )
    assert err.value.field == "entries[1].action"
    with factory() as s:
        assert log.entries(s) == []


def test_entries_for_disclosure(factory: sessionmaker[Session]) -> None:
    log = AuditLog("juki.provision")
    fill(factory, log, 6)
    with factory() as s:
        mine = log.entries(s, subject=RESIDENT)
        assert [e.seq for e in mine] == [1, 3, 5] and {e.subject for e in mine} == {RESIDENT}
        window = log.entries(s, since=T0 + dt.timedelta(minutes=1), until=T0 + dt.timedelta(minutes=4))
        assert [e.seq for e in window] == [2, 3, 4]  # [since, until)
        # A window given in another offset means the same instants.
        utc_window = log.entries(s, since=(T0 + dt.timedelta(minutes=1)).astimezone(dt.UTC))
        assert [e.seq for e in utc_window] == [2, 3, 4, 5, 6]
        assert [e.seq for e in log.entries(s, limit=2)] == [1, 2]
        assert [e.seq for e in log.entries(s, limit=2, newest_first=True)] == [6, 5]
        assert [e.seq for e in log.entries(s, subject=RESIDENT, limit=1, newest_first=True)] == [5]
        assert all(e.at.tzinfo is not None for e in mine)
        assert mine[0].at == T0


def test_modified_entry_is_found(factory: sessionmaker[Session], tamper: Any) -> None:
    log = AuditLog("juki.provision")
    fill(factory, log, 5)
    with transaction(factory) as s:
        tamper(
            s,
            "UPDATE audit_entries SET details = :d WHERE chain = 'juki.provision' AND seq = 3",
            {"d": '{"affair":"年金","i":2,"items":["氏名"]}'},
        )
    result = verify(factory, log)
    assert not result.ok
    assert result.first_bad_seq == 3 and "modified" in (result.reason or "")
    assert result.checked == 2


def test_modified_and_rehashed_entry_is_found_at_the_next_link(
    factory: sessionmaker[Session], tamper: Any
) -> None:
    log = AuditLog("juki.provision")
    fill(factory, log, 5)
    with factory() as s:
        victim = log.entries(s)[2]
    fields = hashed_fields(
        log.chain, 3, victim.at.astimezone(dt.UTC), "someone-else", "provide", RESIDENT, {}
    )
    with transaction(factory) as s:
        tamper(
            s,
            "UPDATE audit_entries SET actor = 'someone-else', details = '{}', hash = :h "
            "WHERE chain = 'juki.provision' AND seq = 3",
            {"h": entry_hash(victim.prev_hash, fields)},
        )
    result = verify(factory, log)
    assert result.first_bad_seq == 4 and "prev_hash" in (result.reason or "")


def test_deleted_entries_are_found(factory: sessionmaker[Session], tamper: Any) -> None:
    log = AuditLog("juki.provision")
    fill(factory, log, 5)
    with transaction(factory) as s:
        tamper(s, "DELETE FROM audit_entries WHERE chain = 'juki.provision' AND seq = 2", None)
    result = verify(factory, log)
    assert result.first_bad_seq == 2 and "missing" in (result.reason or "")

    tail = AuditLog("access")
    fill(factory, tail, 4)
    with transaction(factory) as s:
        tamper(s, "DELETE FROM audit_entries WHERE chain = 'access' AND seq >= 3", None)
    result = verify(factory, tail)
    assert result.first_bad_seq == 3 and "end" in (result.reason or "")


def test_inserted_and_reordered_entries_are_found(factory: sessionmaker[Session], tamper: Any) -> None:
    log = AuditLog("juki.provision")
    fill(factory, log, 4)
    with transaction(factory) as s:
        tamper(
            s,
            "INSERT INTO audit_entries (chain, seq, at, actor, action, subject, details, prev_hash, hash) "
            "SELECT chain, 5, at, actor, action, subject, details, hash, hash FROM audit_entries "
            "WHERE chain = 'juki.provision' AND seq = 4",
            None,
        )
    result = verify(factory, log)
    assert result.first_bad_seq == 5 and "beyond" in (result.reason or "")

    swapped = AuditLog("access")
    fill(factory, swapped, 4)
    with transaction(factory) as s:
        tamper(s, "UPDATE audit_entries SET seq = -2 WHERE chain = 'access' AND seq = 2", None)
        tamper(s, "UPDATE audit_entries SET seq = 2 WHERE chain = 'access' AND seq = 3", None)
        tamper(s, "UPDATE audit_entries SET seq = 3 WHERE chain = 'access' AND seq = -2", None)
    result = verify(factory, swapped)
    assert result.first_bad_seq == 2 and not result.ok


def test_missing_head_is_found(factory: sessionmaker[Session]) -> None:
    log = AuditLog("access")
    fill(factory, log, 2)
    with transaction(factory) as s:
        s.execute(text("DELETE FROM audit_chain_heads WHERE chain = 'access'"))
    result = verify(factory, log)
    assert result.first_bad_seq == 1 and "head" in (result.reason or "")
    with factory() as s:
        assert list_chains(s) == ["access"]


def test_truncating_tail_and_head_together_is_not_detected(
    factory: sessionmaker[Session], tamper: Any
) -> None:
    """The documented limit: whoever rewrites the head too is caught only by an external anchor."""
    log = AuditLog("access")
    fill(factory, log, 4)
    with factory() as s:
        kept = log.entries(s)[1]
    with transaction(factory) as s:
        tamper(s, "DELETE FROM audit_entries WHERE chain = 'access' AND seq > 2", None)
        s.execute(
            text("UPDATE audit_chain_heads SET last_seq = 2, last_hash = :h WHERE chain = 'access'"),
            {"h": kept.hash},
        )
    assert verify(factory, log).ok


def test_chains_are_independent(factory: sessionmaker[Session], tamper: Any) -> None:
    provision, access = AuditLog("juki.provision"), AuditLog("access")
    fill(factory, provision, 3)
    fill(factory, access, 2)
    with transaction(factory) as s:
        provide(provision, s)
    with factory() as s:
        assert [e.seq for e in provision.entries(s)] == [1, 2, 3, 4]
        assert [e.seq for e in access.entries(s)] == [1, 2]
        assert list_chains(s) == ["access", "juki.provision"]
    with transaction(factory) as s:
        tamper(s, "UPDATE audit_entries SET actor = 'x' WHERE chain = 'access' AND seq = 1", None)
    assert verify(factory, access).first_bad_seq == 1
    assert verify(factory, provision).ok
    assert verify(factory, AuditLog("never.used")).ok


def test_purge_removes_only_expired_entries_and_keeps_the_chain_verifiable(
    factory: sessionmaker[Session],
) -> None:
    log = AuditLog("juki.provision")
    now = dt.datetime(2033, 6, 1, 9, 0, tzinfo=JST)
    cutoff = dt.datetime(2026, 6, 1, 9, 0, tzinfo=JST)
    ats = [
        cutoff - dt.timedelta(days=400),
        cutoff - dt.timedelta(days=1),
        cutoff - dt.timedelta(microseconds=1),
        cutoff,  # exactly 7 years old: kept
        cutoff + dt.timedelta(days=1),
        now,
    ]
    with transaction(factory) as s:
        for i, at in enumerate(ats):
            provide(log, s, at=at, i=i)
        provide(AuditLog("access"), s, at=ats[0])
    with transaction(factory) as s:
        assert log.purge_expired(s, now=now) == 3
    with factory() as s:
        remaining = log.entries(s)
        head = s.get(AuditChainHead, log.chain)
    assert [e.seq for e in remaining] == [4, 5, 6]
    assert head is not None and head.anchor_seq == 3 and head.anchor_hash == remaining[0].prev_hash
    assert verify(factory, log).ok and verify(factory, log).checked == 3
    with factory() as s:  # another chain's entries are not touched
        assert len(AuditLog("access").entries(s)) == 1

    with transaction(factory) as s:
        assert log.purge_expired(s, now=now) == 0
        provide(log, s, at=now)
    assert verify(factory, log).ok
    # A shorter retention (some prefectures keep 5 years) and, later on, everything.
    with transaction(factory) as s:
        assert log.purge_expired(s, now=now, retention_years=5) == 2
        assert log.purge_expired(s, now=now + dt.timedelta(days=3000), retention_years=5) == 2
    with factory() as s:
        assert log.entries(s) == []
    result = verify(factory, log)
    assert result.ok and result.checked == 0
    with transaction(factory) as s:
        nxt = provide(log, s, at=now)
    assert nxt.seq == 8 and verify(factory, log).ok


def test_purge_keeps_an_expired_entry_behind_a_younger_one(factory: sessionmaker[Session]) -> None:
    """The chain must stay contiguous: retention is a minimum, never cut short."""
    log = AuditLog("access")
    old, young = T0, T0 + dt.timedelta(days=3000)
    with transaction(factory) as s:
        for at in (old, young, old):
            provide(log, s, at=at)
    with transaction(factory) as s:
        assert log.purge_expired(s, now=T0.replace(year=2034)) == 1
    with factory() as s:
        assert [e.seq for e in log.entries(s)] == [2, 3]


def test_purge_refuses_a_tampered_prefix(factory: sessionmaker[Session], tamper: Any) -> None:
    log = AuditLog("access")
    fill(factory, log, 3)
    with transaction(factory) as s:
        tamper(s, "UPDATE audit_entries SET actor = 'x' WHERE chain = 'access' AND seq = 2", None)
    with transaction(factory) as s, pytest.raises(RuleViolation, match="entry seq 2"):
        log.purge_expired(s, now=T0.replace(year=2040))
    with factory() as s:
        assert len(log.entries(s)) == 3
    with transaction(factory) as s, pytest.raises(InvalidInput):
        log.purge_expired(s, now=T0, retention_years=0)


def test_leap_day_retention(factory: sessionmaker[Session]) -> None:
    log = AuditLog("access")
    with transaction(factory) as s:
        provide(log, s, at=dt.datetime(2021, 2, 28, 11, 59, tzinfo=JST))
        provide(log, s, at=dt.datetime(2021, 2, 28, 12, 0, tzinfo=JST))
    with transaction(factory) as s:
        # Seven years before 29 February 2028 is 28 February 2021 (not 1 March): the earlier day keeps more.
        assert log.purge_expired(s, now=dt.datetime(2028, 2, 29, 12, 0, tzinfo=JST)) == 1


def test_verify_streams_in_chunks(factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    from jlis.audit import service

    monkeypatch.setattr(service, "VERIFY_CHUNK", 7)
    log = AuditLog("access")
    with transaction(factory) as s:
        log.append_many(
            s, [{"at": T0, "actor": "a", "action": "read", "details": {"i": i}} for i in range(30)]
        )
    result = verify(factory, log)
    assert result.ok and result.checked == 30
    with transaction(factory) as s:
        assert log.purge_expired(s, now=T0.replace(year=2040)) == 30
    assert verify(factory, log).ok


def test_concurrent_appends_stay_one_chain(factory: sessionmaker[Session]) -> None:
    """Six writers at once, each starting with no head: one gapless chain (PostgreSQL's row lock;
    on SQLite, the write lock taken before the head is read)."""
    log = AuditLog("access")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(40):
                with transaction(factory) as s:
                    provide(log, s, worker=n, i=i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with factory() as s:
        seqs = list(s.execute(select(AuditEntryRow.seq).where(AuditEntryRow.chain == "access")).scalars())
    assert sorted(seqs) == list(range(1, 241))
    assert verify(factory, log).ok


def test_verify_concurrent_with_a_purge_is_not_a_false_alarm(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog("access")
    fill(factory, log, 5)
    fill(factory, log, 2, start=T0.replace(year=2033))
    head = AuditLog._head
    calls = 0

    def head_then_purge(self: AuditLog, session: Session) -> Any:
        nonlocal calls
        row = head(self, session)
        calls += 1
        if calls == 1:  # a purge commits between verify's reads
            with transaction(factory) as other:
                assert log.purge_expired(other, now=T0.replace(year=2034)) == 5
        return row

    monkeypatch.setattr(AuditLog, "_head", head_then_purge)
    with factory() as s:
        result = log.verify(s)
        snapshot = s.get_bind().dialect.name == "sqlite"  # a read-only SQLite transaction is a snapshot
    # Either the walk saw the chain before the purge (a snapshot) or after it: never a false alarm.
    assert result.ok and result.checked == (7 if snapshot else 2)


def test_the_documented_worked_example() -> None:
    """docs/audit.md shows this record and hash; the stored format must not drift silently."""
    fields = hashed_fields(
        "juki.provision",
        1,
        dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST).astimezone(dt.UTC),
        "agency:nenkin",
        "provide",
        "12345678903",
        {"affair": "年金", "items": ["氏名", "住所"]},
    )
    assert canonical_bytes(fields).decode() == (
        '{"action":"provide","actor":"agency:nenkin","at":"2026-11-26T01:00:00.000000+00:00",'
        '"chain":"juki.provision","details":{"affair":"年金","items":["氏名","住所"]},"seq":1,'
        '"subject":"12345678903"}'
    )
    assert entry_hash(GENESIS, fields) == "b15de08cc6efb5896aa8dd7eb2e3f6ff46f7a3fc1247ef0e6d86bd8757c812b6"


def test_held_appends_wait_for_the_end_of_the_group_and_chain_in_order(
    factory: sessionmaker[Session],
) -> None:
    """A counter group holds its audited reads (hold_appends) and writes them at its end: until then
    the chain's head is untouched (so not locked); then each chain gets its entries in order."""
    access, other = AuditLog("access"), AuditLog("juki.provision")
    with transaction(factory) as s:
        provide(access, s, i=0)  # an ordinary append before the group
    with transaction(factory) as s:
        hold_appends(s)
        for i in (1, 2):
            access.append_later(s, at=T0, actor="staff", action="read", subject=RESIDENT, details={"i": i})
        other.append_later(s, at=T0, actor="staff", action="read", subject=OTHER, details={"i": 9})
        with pytest.raises(InvalidInput, match="details"):
            access.append_later(s, at=T0, actor="staff", action="read", subject=RESIDENT, details=[])  # type: ignore[arg-type]
        head = s.execute(select(AuditChainHead.last_seq).where(AuditChainHead.chain == "access")).scalar_one()
        assert head == 1 and other.entries(s) == []  # nothing written, the head not touched
        write_held_appends(s)
    with factory() as s:
        assert [(e.seq, e.details.get("i")) for e in access.entries(s)] == [(1, 0), (2, 1), (3, 2)]
        assert [(e.seq, e.subject) for e in other.entries(s)] == [(1, OTHER)]
    assert verify(factory, access).ok and verify(factory, other).ok
    with transaction(factory) as s:  # without a hold, append_later appends at once
        access.append_later(s, at=T0, actor="staff", action="read", subject=RESIDENT, details={"i": 3})
        assert [e.seq for e in access.entries(s)][-1] == 4
