"""Registered verifiers, their tokens and roles, and the status-query log."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.auth import passwords
from jlis.auth import service as auth
from jlis.auth.models import PrincipalKind
from jlis.auth.tables import PrincipalRow
from jlis.clock import FixedClock
from jlis.db import make_engine, make_session_factory, transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation, Unauthenticated
from jlis.jpki.tables import AUTH, SIGN, StatusQueryRow, VerifierRow
from jlis.jpki.verifiers import (
    DEFAULT_PURPOSE,
    QueryRecord,
    StatusQueryLog,
    VerifierAuth,
    VerifierRegistry,
    check_purpose,
    recent_queries,
    verifier_of,
)

from ..web.support import FAST_HASHER

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_hashes() -> Any:
    previous = passwords.use_hasher(FAST_HASHER)
    yield
    passwords.use_hasher(previous)


def register(
    factory: sessionmaker[Session], clock: FixedClock, verifier_id: str = "bank-a", **kwargs: Any
) -> Any:
    values: dict[str, Any] = {
        "verifier_id": verifier_id,
        "name": "A銀行",
        "signature_verifier": True,
        "user_verifier": False,
        "basis": "主務大臣認定事業者",
        "agreement_no": "JPKI-2026-001",
        "agreement_date": dt.date(2026, 4, 1),
        "username": f"{verifier_id}-api",
        "password": PASSWORD,
    }
    values.update(kwargs)
    with transaction(factory) as s:
        return VerifierRegistry(s, clock, actor="jlis-operator").register(**values)


def token_for(factory: sessionmaker[Session], clock: FixedClock, username: str) -> str:
    with transaction(factory) as s:
        principal = auth.authenticate(s, username, PASSWORD)
        return auth.issue_token(s, principal, now=clock.now()).token


# ----------------------------------------------------------------------------------- registry


def test_registration_makes_a_verifier_principal_and_an_audit_record(
    factory: sessionmaker[Session], clock: FixedClock
) -> None:
    v = register(factory, clock)
    assert (v.id, v.signature_verifier, v.user_verifier, v.active, v.username) == (
        "bank-a",
        True,
        False,
        True,
        "bank-a-api",
    )
    with factory() as s:
        principal = auth.find_principal(s, "bank-a-api")
        assert principal is not None and principal.kind is PrincipalKind.VERIFIER
        assert verifier_of(s, principal).id == "bank-a"
        (entry,) = AuditLog("jpki.verifiers").entries(s)
    assert (entry.action, entry.subject, entry.actor) == ("register", "bank-a", "jlis-operator")
    assert entry.details["agreement_no"] == "JPKI-2026-001"
    with factory() as s:
        assert [x.id for x in VerifierRegistry(s, clock, actor="x").list()] == ["bank-a"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"verifier_id": "A"}, "verifier_id"),
        ({"verifier_id": "bad id"}, "verifier_id"),
        ({"name": " "}, "name"),
        ({"signature_verifier": False}, "roles"),
        ({"agreement_date": dt.date(2027, 1, 1)}, "agreement_date"),
        ({"agreement_no": "x" * 65}, "agreement_no"),
        ({"password": "short"}, "password"),
    ],
)
def test_bad_registrations_change_nothing(
    factory: sessionmaker[Session], clock: FixedClock, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        register(factory, clock, **changes)
    assert err.value.field == field
    with factory() as s:
        assert s.execute(select(func.count()).select_from(VerifierRow)).scalar() == 0
        assert s.execute(select(func.count()).select_from(PrincipalRow)).scalar() == 0


def test_ids_and_usernames_are_unique(factory: sessionmaker[Session], clock: FixedClock) -> None:
    register(factory, clock)
    with pytest.raises(RuleViolation) as err:
        register(factory, clock, username="other-api")
    assert err.value.field == "verifier_id"
    with pytest.raises(RuleViolation) as err:
        register(factory, clock, verifier_id="bank-b", username="bank-a-api")
    assert err.value.field == "username"
    with factory() as s:
        assert s.execute(select(func.count()).select_from(VerifierRow)).scalar() == 1


def test_roles_are_kept_apart(factory: sessionmaker[Session], clock: FixedClock) -> None:
    signer = register(factory, clock, "sig-only")
    user = register(factory, clock, "auth-only", signature_verifier=False, user_verifier=True)
    both = register(factory, clock, "both", user_verifier=True)
    signer.require_role(SIGN)
    user.require_role(AUTH)
    both.require_role(SIGN)
    both.require_role(AUTH)
    with pytest.raises(Forbidden, match="利用者証明検証者"):
        signer.require_role(AUTH)
    with pytest.raises(Forbidden, match="署名検証者"):
        user.require_role(SIGN)
    assert both.roles == ["署名検証者", "利用者証明検証者"]


def test_deactivation_disables_the_principal_and_ends_its_tokens(
    factory: sessionmaker[Session], clock: FixedClock
) -> None:
    register(factory, clock)
    token = token_for(factory, clock, "bank-a-api")
    with transaction(factory) as s:
        v = VerifierRegistry(s, clock, actor="op").set_active("bank-a", False)
    assert not v.active
    with pytest.raises(Forbidden, match="not active"):
        v.require_role(SIGN)
    with factory() as s:
        assert auth.principal_for_token(s, token, now=clock.now()) is None
    with pytest.raises(Unauthenticated), factory() as s:
        auth.authenticate(s, "bank-a-api", PASSWORD)
    with transaction(factory) as s:
        assert VerifierRegistry(s, clock, actor="op").set_active("bank-a", True).active
    with factory() as s:
        principal = auth.authenticate(s, "bank-a-api", PASSWORD)
        assert verifier_of(s, principal).active
        actions = [e.action for e in AuditLog("jpki.verifiers").entries(s)]
    assert actions == ["register", "deactivate", "activate"]
    with transaction(factory) as s, pytest.raises(NotFound):
        VerifierRegistry(s, clock, actor="op").set_active("nobody", False)


def test_only_registered_verifier_principals_act_as_verifiers(
    factory: sessionmaker[Session], clock: FixedClock
) -> None:
    with transaction(factory) as s:
        op = auth.create_principal(
            s,
            username="op1",
            password=PASSWORD,
            kind=PrincipalKind.JLIS_OPERATOR,
            display_name="op",
            now=clock.now(),
        )
        stray = auth.create_principal(
            s,
            username="stray",
            password=PASSWORD,
            kind=PrincipalKind.VERIFIER,
            display_name="x",
            now=clock.now(),
        )
    with factory() as s:
        with pytest.raises(Forbidden):
            verifier_of(s, op)
        with pytest.raises(Forbidden, match="not a registered verifier"):
            verifier_of(s, stray)


# ----------------------------------------------------------------------------------- tokens


def test_token_checks(factory: sessionmaker[Session], clock: FixedClock) -> None:
    register(factory, clock)
    token = token_for(factory, clock, "bank-a-api")
    checker = VerifierAuth(factory, clock, ttl=60)
    for header in (None, "", "Basic abc", "Bearer ", "Bearer " + "x" * 201):
        result = checker.check(header)
        assert result.verifier is None and isinstance(result.refusal, Unauthenticated)
    assert isinstance(checker.check("Bearer jlis_at_nope").refusal, Unauthenticated)
    assert checker.cached(f"Bearer {token}") is None
    ok = checker.check(f"Bearer {token}")
    assert ok.verifier is not None and ok.verifier.id == "bank-a" and ok.refusal is None
    assert checker.cached(f"Bearer {token}") == ok
    assert checker.cached(f"bearer {token}") == ok  # the scheme is case-insensitive


def test_a_token_of_another_kind_is_forbidden(factory: sessionmaker[Session], clock: FixedClock) -> None:
    with transaction(factory) as s:
        op = auth.create_principal(
            s,
            username="op1",
            password=PASSWORD,
            kind=PrincipalKind.JLIS_OPERATOR,
            display_name="op",
            now=clock.now(),
        )
        token = auth.issue_token(s, op, now=clock.now()).token
    result = VerifierAuth(factory, clock).check(f"Bearer {token}")
    assert result.verifier is None and isinstance(result.refusal, Forbidden)


def test_the_cache_forgets_after_its_ttl(factory: sessionmaker[Session], clock: FixedClock) -> None:
    register(factory, clock)
    token = token_for(factory, clock, "bank-a-api")
    checker = VerifierAuth(factory, clock, ttl=0.0)
    checker.check(f"Bearer {token}")
    assert checker.cached(f"Bearer {token}") is None


# ----------------------------------------------------------------------------------- query log


def _record(clock: FixedClock, n: int = 0, **kw: Any) -> QueryRecord:
    values: dict[str, Any] = {
        "at": clock.now(),
        "verifier_id": "bank-a",
        "purpose": "口座開設",
        "channel": "ocsp",
        "ca_kind": SIGN,
        "serial": format(n + 1, "x"),
        "result": "good",
    }
    values.update(kw)
    return QueryRecord(**values)


def test_records_are_committed_before_the_caller_is_released(
    factory: sessionmaker[Session], clock: FixedClock
) -> None:
    log = StatusQueryLog(factory)
    try:
        futures = [log.record(_record(clock, i)) for i in range(50)]
        for f in futures:
            f.result(10)
        with factory() as s:
            assert s.execute(select(func.count()).select_from(StatusQueryRow)).scalar() == 50
        asyncio.run(log.record_async(_record(clock, 99, channel="crl", serial=None, result="crl:g1")))
        with factory() as s:
            rows = recent_queries(s, channel="crl")
        assert [(r.channel, r.result, r.purpose) for r in rows] == [("crl", "crl:g1", "口座開設")]
        assert log.written == 51
    finally:
        log.close()


def test_a_log_that_cannot_be_written_fails_its_callers(tmp_path: Path, clock: FixedClock) -> None:
    empty = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'no-tables.sqlite3'}"))
    log = StatusQueryLog(empty)
    try:
        with pytest.raises(Exception, match="jpki_status_queries"):
            log.record(_record(clock)).result(10)

        async def ask() -> None:
            await log.record_async(_record(clock))

        with pytest.raises(Exception, match="jpki_status_queries"):
            asyncio.run(ask())
        assert log.failed == 2
    finally:
        log.close()


def test_recent_queries_filter(factory: sessionmaker[Session], clock: FixedClock) -> None:
    log = StatusQueryLog(factory)
    for f in [
        log.record(_record(clock, 1)),
        log.record(_record(clock, 2, verifier_id="bank-b")),
        log.record(_record(clock, 3, channel="basic4", result="refused:consent")),
    ]:
        f.result(10)
    log.close()
    with factory() as s:
        assert [r.serial for r in recent_queries(s)] == ["4", "3", "2"]
        assert [r.serial for r in recent_queries(s, verifier_id="bank-b")] == ["3"]
        assert [r.result for r in recent_queries(s, channel="basic4")] == ["refused:consent"]
        with pytest.raises(InvalidInput):
            recent_queries(s, limit=0)
        with pytest.raises(InvalidInput):
            recent_queries(s, channel="smtp")


def test_purposes() -> None:
    assert check_purpose(None) == DEFAULT_PURPOSE
    assert check_purpose("  ") == DEFAULT_PURPOSE
    assert check_purpose(" 口座開設 ") == "口座開設"
    with pytest.raises(InvalidInput):
        check_purpose("x" * 121)
    with pytest.raises(InvalidInput):
        check_purpose("a\nb")


def test_queued_records_are_written_in_batches(factory: sessionmaker[Session], clock: FixedClock) -> None:
    log = StatusQueryLog(factory, interval=0.05)
    try:
        for i in range(120):
            log.enqueue(_record(clock, i))
        log.flush()
        with factory() as s:
            assert s.execute(select(func.count()).select_from(StatusQueryRow)).scalar() == 120
        assert log.batches <= 3  # one commit for many answers
    finally:
        log.close()


def test_queued_records_survive_a_failing_database(tmp_path: Path, clock: FixedClock) -> None:
    from jlis.db import Base, import_all_tables
    from jlis.jpki.verifiers import LogUnavailable

    engine = make_engine(f"sqlite:///{tmp_path / 'late.sqlite3'}")
    log = StatusQueryLog(make_session_factory(engine), interval=0.01)
    try:
        log.enqueue(_record(clock, 1))
        deadline = time.monotonic() + 5
        while not log.failed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.failed == 1
        with pytest.raises(LogUnavailable):  # fails closed: no more answers until it is written
            log.enqueue(_record(clock, 2))
        import_all_tables()
        Base.metadata.create_all(engine)  # the database is back
        deadline = time.monotonic() + 5
        while log.written < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.written == 1
        log.enqueue(_record(clock, 3))
        log.flush()
        with make_session_factory(engine)() as s:
            assert sorted(r.serial for r in recent_queries(s)) == ["2", "4"]  # serial = n + 1
    finally:
        log.close()
        engine.dispose()


def test_a_closed_log_takes_nothing(factory: sessionmaker[Session], clock: FixedClock) -> None:
    from jlis.jpki.verifiers import LogUnavailable

    log = StatusQueryLog(factory)
    log.enqueue(_record(clock, 1))
    log.close()
    with factory() as s:
        assert len(recent_queries(s)) == 1
    with pytest.raises(LogUnavailable):
        log.enqueue(_record(clock, 2))
