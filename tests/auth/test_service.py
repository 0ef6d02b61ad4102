"""Principals, passwords, web sessions and API tokens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth import passwords
from jlis.auth import service as auth
from jlis.auth.models import Principal, PrincipalKind
from jlis.auth.tables import ApiTokenRow, PrincipalRow, WebSessionRow
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation, Unauthenticated
from jlis.masters import load_geography, load_provision_table

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_hasher() -> Iterator[None]:
    previous = passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    passwords.use_hasher(previous)


def staff(
    factory: sessionmaker[Session], clock: FixedClock, username: str = "staff-a", lg: str = "131016"
) -> Principal:
    with transaction(factory) as s:
        return auth.create_principal(
            s,
            username=username,
            password=PASSWORD,
            kind="municipal_staff",
            display_name="窓口 太郎",
            now=clock.now(),
            lg_code=lg,
        )


def test_passwords_are_stored_as_argon2id_only(factory: sessionmaker[Session], clock: FixedClock) -> None:
    staff(factory, clock)
    with factory() as s:
        row = s.execute(select(PrincipalRow)).scalar_one()
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash


def test_authenticate_accepts_the_password_and_refuses_everything_else(
    factory: sessionmaker[Session], clock: FixedClock
) -> None:
    p = staff(factory, clock)
    with transaction(factory) as s:
        assert auth.authenticate(s, "staff-a", PASSWORD) == p
    for username, password in (
        ("staff-a", "wrong password"),
        ("nobody", PASSWORD),
        ("", ""),
        ("staff-a", "x" * 5000),
    ):
        with pytest.raises(Unauthenticated) as err, transaction(factory) as s:
            auth.authenticate(s, username, password)
        # One answer for every failure: the message does not tell an unknown user from a wrong password.
        assert err.value.message == "username or password is wrong"


def test_unknown_user_still_costs_a_hash(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = passwords.verify_password
    monkeypatch.setattr(passwords, "verify_password", lambda h, p: calls.append(h) or real(h, p))
    with pytest.raises(Unauthenticated), transaction(factory) as s:
        auth.authenticate(s, "nobody", PASSWORD)
    assert len(calls) == 1 and calls[0].startswith("$argon2id$")


def test_disabled_user_cannot_sign_in_and_loses_sessions(
    factory: sessionmaker[Session], clock: FixedClock
) -> None:
    p = staff(factory, clock)
    with transaction(factory) as s:
        session_token = auth.open_session(s, p, now=clock.now()).token
        api_token = auth.issue_token(s, p, now=clock.now()).token
        auth.set_disabled(s, "staff-a", True)
    with transaction(factory) as s:
        assert auth.principal_for_session(s, session_token, now=clock.now()) is None
        assert auth.principal_for_token(s, api_token, now=clock.now()) is None
        with pytest.raises(Unauthenticated):
            auth.authenticate(s, "staff-a", PASSWORD)


def test_session_tokens_are_hashed_at_rest_and_expire(
    factory: sessionmaker[Session], clock: FixedClock
) -> None:
    p = staff(factory, clock)
    with transaction(factory) as s:
        issued = auth.open_session(s, p, now=clock.now())
    with factory() as s:
        stored = s.execute(select(WebSessionRow.token_hash)).scalar_one()
    assert stored == auth.token_hash(issued.token) and issued.token not in stored
    with transaction(factory) as s:
        assert auth.principal_for_session(s, issued.token, now=clock.now()) == p
        assert auth.principal_for_session(s, issued.token + "x", now=clock.now()) is None
        assert auth.principal_for_session(s, None, now=clock.now()) is None
    clock.advance(hours=8, seconds=1)
    with transaction(factory) as s:
        assert auth.principal_for_session(s, issued.token, now=clock.now()) is None


def test_close_session_ends_it(factory: sessionmaker[Session], clock: FixedClock) -> None:
    p = staff(factory, clock)
    with transaction(factory) as s:
        token = auth.open_session(s, p, now=clock.now()).token
        auth.close_session(s, token)
        assert auth.principal_for_session(s, token, now=clock.now()) is None


def test_api_tokens_expire_and_can_be_revoked(factory: sessionmaker[Session], clock: FixedClock) -> None:
    p = staff(factory, clock)
    with transaction(factory) as s:
        first = auth.issue_token(s, p, now=clock.now())
        second = auth.issue_token(s, p, now=clock.now())
    assert first.token.startswith(auth.API_TOKEN_PREFIX) and first.token != second.token
    assert first.expires_at == clock.now() + auth.TOKEN_TTL
    with transaction(factory) as s:
        assert auth.principal_for_token(s, first.token, now=clock.now()) == p
        auth.revoke_token(s, first.token)
        assert auth.principal_for_token(s, first.token, now=clock.now()) is None
        assert auth.principal_for_token(s, second.token, now=clock.now()) == p
    clock.advance(hours=1)
    with transaction(factory) as s:
        assert auth.principal_for_token(s, second.token, now=clock.now()) is None
        # Issuing the next token sweeps the expired ones.
        auth.issue_token(s, p, now=clock.now())
    with factory() as s:
        assert len(s.execute(select(ApiTokenRow)).all()) == 1


def test_new_password_ends_sessions_and_works(factory: sessionmaker[Session], clock: FixedClock) -> None:
    p = staff(factory, clock)
    with transaction(factory) as s:
        token = auth.open_session(s, p, now=clock.now()).token
        auth.set_password(s, "staff-a", "another good password")
    with transaction(factory) as s:
        assert auth.principal_for_session(s, token, now=clock.now()) is None
        assert auth.authenticate(s, "staff-a", "another good password") == p
    with pytest.raises(NotFound), transaction(factory) as s:
        auth.set_password(s, "nobody", "another good password")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"username": "Staff A"}, "username"),
        ({"username": "ab"}, "username"),
        ({"password": "short"}, "password"),
        ({"display_name": "  "}, "display_name"),
        ({"kind": "mayor"}, "kind"),
        ({"lg_code": None}, "lg_code"),
        ({"lg_code": "131017"}, "lg_code"),
        ({"agency_id": "nenkin"}, "agency_id"),
    ],
)
def test_create_principal_refuses_bad_input(
    factory: sessionmaker[Session], clock: FixedClock, kwargs: dict[str, object], field: str
) -> None:
    geo = load_geography()
    args: dict[str, object] = {
        "username": "staff-a",
        "password": PASSWORD,
        "kind": "municipal_staff",
        "display_name": "窓口",
        "lg_code": "131016",
        **kwargs,
    }
    with pytest.raises(InvalidInput) as err, transaction(factory) as s:
        auth.create_principal(
            s, now=clock.now(), known_lg_code=lambda c: geo.municipality(c).hosts_register, **args
        )  # type: ignore[arg-type]
    assert err.value.field in (field, "地方公共団体コード")
    with factory() as s:
        assert s.execute(select(PrincipalRow)).first() is None


def test_scope_fields_must_fit_the_kind(factory: sessionmaker[Session], clock: FixedClock) -> None:
    table = load_provision_table()
    known = {a.id for a in table.agencies()}
    with transaction(factory) as s:
        with pytest.raises(InvalidInput, match="agency"):
            auth.create_principal(
                s,
                username="agency-x",
                password=PASSWORD,
                kind="agency",
                display_name="x",
                now=clock.now(),
                agency_id="no-such-agency",
                known_agency=known.__contains__,
            )
        with pytest.raises(InvalidInput, match="lg_code"):
            auth.create_principal(
                s,
                username="ops",
                password=PASSWORD,
                kind="jlis_operator",
                display_name="x",
                now=clock.now(),
                lg_code="131016",
            )
        op = auth.create_principal(
            s, username="ops", password=PASSWORD, kind="jlis_operator", display_name="x", now=clock.now()
        )
    assert op.lg_code is None and op.agency_id is None


def test_database_holds_the_scope_rule_too(factory: sessionmaker[Session], clock: FixedClock) -> None:
    with pytest.raises(IntegrityError), transaction(factory) as s:
        s.add(
            PrincipalRow(
                username="x-staff",
                kind="municipal_staff",
                lg_code=None,
                agency_id=None,
                password_hash="x",
                display_name="x",
                disabled=False,
                created_at=clock.now(),
            )
        )
        s.flush()


def test_usernames_are_unique(factory: sessionmaker[Session], clock: FixedClock) -> None:
    staff(factory, clock)
    with pytest.raises(RuleViolation) as err:
        staff(factory, clock)
    assert err.value.field == "username"


def test_principal_scope_checks_fail_closed() -> None:
    a = Principal(1, "staff-a", PrincipalKind.MUNICIPAL_STAFF, "A", lg_code="131016")
    op = Principal(2, "op", PrincipalKind.JLIS_OPERATOR, "op")
    agency = Principal(3, "agency-nenkin", PrincipalKind.AGENCY, "年金", agency_id="nenkin")
    a.require_staff_of("131016")
    with pytest.raises(Forbidden):
        a.require_staff_of("131041")
    for p in (op, agency):
        with pytest.raises(Forbidden):
            p.require_staff_of("131016")
    op.require_operator()
    for p in (a, agency):
        with pytest.raises(Forbidden):
            p.require_operator()
    assert agency.require_agency() == "nenkin"
    for p in (a, op, Principal(4, "broken", PrincipalKind.AGENCY, "x")):
        with pytest.raises(Forbidden):
            p.require_agency()


def test_ensure_demo_users_is_idempotent(factory: sessionmaker[Session], clock: FixedClock) -> None:
    geo, table = load_geography(), load_provision_table()
    users = auth.ensure_demo_users(factory, geo, table, ["131016", "141011"], now=clock.now())
    names = [u[0] for u in users]
    assert names[:3] == ["staff-131016", "staff-141011", "jlis-operator"]
    assert "agency-nenkin" in names and len(names) == 3 + len(table.agencies())
    assert all(pw == auth.DEMO_PASSWORD for _, pw, _ in users)
    again = auth.ensure_demo_users(factory, geo, table, ["131016", "141011"], now=clock.now())
    assert again == users
    with transaction(factory) as s:
        p = auth.authenticate(s, "staff-141011", auth.DEMO_PASSWORD)
        assert p.kind is PrincipalKind.MUNICIPAL_STAFF and p.lg_code == "141011"
        assert auth.authenticate(s, "agency-nenkin", auth.DEMO_PASSWORD).agency_id == "nenkin"


def test_needs_rehash_upgrades_a_weaker_hash(factory: sessionmaker[Session], clock: FixedClock) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=512, parallelism=1)
    passwords.use_hasher(weak)
    staff(factory, clock)
    passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    with transaction(factory) as s:
        auth.authenticate(s, "staff-a", PASSWORD)
    with factory() as s:
        assert "m=1024" in s.execute(select(PrincipalRow.password_hash)).scalar_one()


def test_expiry_is_compared_in_utc(factory: sessionmaker[Session], clock: FixedClock) -> None:
    p = staff(factory, clock)
    with transaction(factory) as s:
        issued = auth.open_session(s, p, now=clock.now(), ttl=dt.timedelta(minutes=5))
    just_before = clock.now() + dt.timedelta(minutes=4, seconds=59)
    with transaction(factory) as s:
        assert auth.principal_for_session(s, issued.token, now=just_before.astimezone(dt.UTC)) == p
        assert auth.principal_for_session(s, issued.token, now=clock.now() + dt.timedelta(minutes=5)) is None
