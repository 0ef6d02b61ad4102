"""The register of linkage members: ids and kinds, request keys sealed at rest, principals, activation."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.auth import service as auth
from jlis.auth.models import Principal, PrincipalKind
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation, Unauthenticated
from jlis.linkage.hub.members import (
    STANDARD_AGENCIES,
    Member,
    MemberKind,
    MemberService,
    ensure_standard_members,
    member_of,
    municipality_member_id,
)
from jlis.linkage.hub.tables import MemberRow

PASSWORD = "correct horse battery"


def service(s: Session, clock: FixedClock, key_dir: Path) -> MemberService:
    return MemberService(s, clock, actor="op-test", key_dir=key_dir)


def test_register_returns_the_key_once_and_seals_it(
    factory: sessionmaker[Session], clock: FixedClock, key_dir: Path
) -> None:
    with transaction(factory) as s:
        member, key = service(s, clock, key_dir).register("nenkin", "日本年金機構", "agency")
    assert member == Member("nenkin", "日本年金機構", MemberKind.AGENCY, None, True)
    assert len(key) == 32
    with factory() as s:
        row = s.get(MemberRow, "nenkin")
        assert row is not None and key not in row.request_key  # sealed, not stored as is
        assert service(s, clock, key_dir).request_key("nenkin") == key
        # Another installation's storage key cannot open it (fails closed).
        other = key_dir.parent / "other-keys"
        other.mkdir()
        with pytest.raises(RuleViolation, match="request key unreadable"):
            service(s, clock, other).request_key("nenkin")
        [entry] = AuditLog("linkage.members").entries(s)
    assert entry.action == "register" and entry.subject == "nenkin" and entry.actor == "op-test"


def test_a_sealed_key_moved_to_another_member_does_not_open(
    factory: sessionmaker[Session], clock: FixedClock, key_dir: Path
) -> None:
    with transaction(factory) as s:
        svc = service(s, clock, key_dir)
        svc.register("nenkin", "日本年金機構", "agency")
        svc.register("jasso", "日本学生支援機構", "agency")
    with transaction(factory) as s:
        a, b = s.get(MemberRow, "nenkin"), s.get(MemberRow, "jasso")
        assert a is not None and b is not None
        b.request_key = a.request_key
    with factory() as s, pytest.raises(RuleViolation):
        service(s, clock, key_dir).request_key("jasso")


@pytest.mark.parametrize(
    ("member_id", "kind", "lg_code", "field"),
    [
        ("lg-131016", "agency", None, "member_id"),  # lg- ids are for municipalities
        ("chiyoda", "municipality", None, "member_id"),  # a municipality is lg-<code>
        ("lg-131017", "municipality", None, "lg_code"),  # check digit
        ("lg-131016", "municipality", "131041", "member_id"),  # id and code disagree
        ("nenkin", "agency", "131016", "lg_code"),  # only municipalities have a code
        ("Nenkin", "agency", None, "member_id"),
        ("x", "agency", None, "member_id"),
        ("nenkin", "ministry", None, "kind"),
    ],
)
def test_ids_and_kinds_are_checked(
    factory: sessionmaker[Session],
    clock: FixedClock,
    key_dir: Path,
    member_id: str,
    kind: str,
    lg_code: str | None,
    field: str,
) -> None:
    with factory() as s:
        with pytest.raises(InvalidInput) as exc:
            service(s, clock, key_dir).register(member_id, "名前", kind, lg_code=lg_code)
        assert exc.value.field == field
        assert s.execute(select(MemberRow)).first() is None


def test_a_municipality_takes_its_code_from_its_id(
    factory: sessionmaker[Session], clock: FixedClock, key_dir: Path
) -> None:
    with transaction(factory) as s:
        svc = service(s, clock, key_dir)
        m, _ = svc.register(municipality_member_id("131016"), "千代田区", MemberKind.MUNICIPALITY)
        assert m.lg_code == "131016" and m.id == "lg-131016"
        with pytest.raises(RuleViolation, match="already exists"):
            svc.register("lg-131016", "千代田区", "municipality")
        with pytest.raises(InvalidInput, match="name"):
            svc.register("jasso", "  ", "agency")
    with pytest.raises(InvalidInput):
        municipality_member_id("12")


def test_member_of_turns_a_principal_into_its_member(
    factory: sessionmaker[Session], clock: FixedClock, key_dir: Path
) -> None:
    with transaction(factory) as s:
        service(s, clock, key_dir).register(
            "lg-131016", "千代田区", "municipality", username="linkage-chiyoda", password=PASSWORD
        )
    with transaction(factory) as s:
        principal = auth.authenticate(s, "linkage-chiyoda", PASSWORD)
        assert principal.kind is PrincipalKind.LINKAGE_MEMBER
        assert member_of(s, principal).id == "lg-131016"
        assert service(s, clock, key_dir).username("lg-131016") == "linkage-chiyoda"
        stranger = Principal(
            id=principal.id + 99, username="x", kind=PrincipalKind.LINKAGE_MEMBER, display_name="x"
        )
        with pytest.raises(Forbidden, match="not a linkage member"):
            member_of(s, stranger)
        operator = Principal(
            id=principal.id, username="op", kind=PrincipalKind.JLIS_OPERATOR, display_name="op"
        )
        with pytest.raises(Forbidden):
            member_of(s, operator)
        service(s, clock, key_dir).set_active("lg-131016", False)
    with factory() as s, pytest.raises(Forbidden, match="not active"):
        member_of(s, principal)
    with transaction(factory) as s, pytest.raises(Unauthenticated):  # the principal is disabled too
        auth.authenticate(s, "linkage-chiyoda", PASSWORD)


def test_username_and_password_go_together(
    factory: sessionmaker[Session], clock: FixedClock, key_dir: Path
) -> None:
    with factory() as s, pytest.raises(InvalidInput, match="password"):
        service(s, clock, key_dir).register("nenkin", "日本年金機構", "agency", username="linkage-nenkin")


def test_set_active_list_get_and_rotate(
    factory: sessionmaker[Session], clock: FixedClock, key_dir: Path
) -> None:
    with transaction(factory) as s:
        svc = service(s, clock, key_dir)
        _, key = svc.register("nenkin", "日本年金機構", "agency")
        svc.register("myna-portal", "マイナポータル", "portal")
        clock.advance(minutes=1)
        off = svc.set_active("nenkin", False)
        assert not off.active and svc.set_active("nenkin", False) == off  # a repeat changes nothing
        assert [m.id for m in svc.list()] == ["nenkin", "myna-portal"]
        new_key = svc.rotate_key("nenkin")
        assert new_key != key and svc.request_key("nenkin") == new_key
        with pytest.raises(NotFound):
            svc.get("nobody")
    with factory() as s:
        actions = [e.action for e in AuditLog("linkage.members").entries(s, subject="nenkin")]
    assert actions == ["register", "deactivate", "rotate_key"]


def test_standard_members_are_made_once(
    factory: sessionmaker[Session], clock: FixedClock, key_dir: Path
) -> None:
    with transaction(factory) as s:
        first = ensure_standard_members(
            s, clock, key_dir=key_dir, lg_codes=["131016", "131041"], password=PASSWORD
        )
    with transaction(factory) as s:
        again = ensure_standard_members(s, clock, key_dir=key_dir, lg_codes=["131016", "131041"])
        assert len(service(s, clock, key_dir).list()) == len(STANDARD_AGENCIES) + 3
    assert first == again
    ids = [m.id for m in first]
    assert ids[: len(STANDARD_AGENCIES)] == [a for a, _ in STANDARD_AGENCIES]
    assert ids[-3:] == ["lg-131016", "lg-131041", "myna-portal"]
    chiyoda = next(m for m in first if m.id == "lg-131016")
    assert chiyoda.name == "千代田区" and chiyoda.kind is MemberKind.MUNICIPALITY
    with transaction(factory) as s:
        p = auth.authenticate(s, "linkage-nenkin", PASSWORD)
        assert member_of(s, p).id == "nenkin"
