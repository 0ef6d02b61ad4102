"""J-LIS's look-up of an authentication certificate's holder: scope, status and audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.auth import passwords
from jlis.auth.models import Principal, PrincipalKind
from jlis.clock import FixedClock
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.jpki.holders import CertificateRef, HolderLookup, resident_principal
from jlis.jpki.tables import AUTH, CertificateRow

from ..card.conftest import make_deps, staff
from ..linkage.portal.conftest import CHIYODA, SHINJUKU, SIGN_PASSWORD, PortalWorld
from ..web.support import FAST_HASHER, make_container

OPERATOR = Principal(id=0, username="jlis-op", kind=PrincipalKind.JLIS_OPERATOR, display_name="J-LIS")


@pytest.fixture
def world(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PortalWorld]:
    previous = passwords.use_hasher(FAST_HASHER)
    try:
        container = make_container(factory, clock, tmp_path)
        yield PortalWorld(
            container, make_deps(container, tmp_path / "keys", clock, monkeypatch), tmp_path / "keys"
        )
    finally:
        passwords.use_hasher(previous)


def _ref(w: PortalWorld, card_id: str) -> CertificateRef:
    with w.factory() as s:
        row = s.query(CertificateRow).filter_by(card_id=card_id, ca_kind=AUTH).one()
    return CertificateRef.parse("g1", row.serial)


def test_certificate_refs_are_parsed_strictly() -> None:
    assert CertificateRef.parse("g2", "0x00AbC").label == "g2:abc"
    assert CertificateRef.parse(3, "10").generation == 3
    for generation, serial in (("g0", "1"), ("x1", "1"), ("g1", "xyz"), ("g1", "1" * 41)):
        with pytest.raises(InvalidInput):
            CertificateRef.parse(generation, serial)


def test_each_kind_of_principal_sees_only_its_scope(world: PortalWorld) -> None:
    a, b = world.holder(), world.holder(SHINJUKU)
    ref_a, ref_b = _ref(world, a.card_id), _ref(world, b.card_id)
    with world.factory() as s, s.begin():
        found = HolderLookup(s, world.clock, resident_principal(ref_a)).holder(ref_a, purpose="テスト")
        assert (found.resident_code, found.lg_code) == (a.resident.resident_code, CHIYODA)
        with pytest.raises(Forbidden):
            HolderLookup(s, world.clock, resident_principal(ref_a)).holder(ref_b, purpose="テスト")
        with pytest.raises(Forbidden):
            HolderLookup(s, world.clock, staff(CHIYODA)).holder(ref_b, purpose="テスト")
        assert HolderLookup(s, world.clock, staff(SHINJUKU)).holder(ref_b, purpose="x").card_id == b.card_id
        assert HolderLookup(s, world.clock, OPERATOR).identity(ref_b).lg_code == SHINJUKU
        verifier = Principal(id=9, username="v", kind=PrincipalKind.VERIFIER, display_name="v")
        with pytest.raises(Forbidden):
            HolderLookup(s, world.clock, verifier)
    with world.factory() as s:
        entries = [e for e in AuditLog("access").entries(s) if e.details.get("system") == "jpki"]
    assert [(e.actor, e.subject) for e in entries] == [
        (f"jpki-auth:{ref_a.label}", a.resident.resident_code),
        ("staff-131041", b.resident.resident_code),
        ("jlis-op", b.resident.resident_code),
    ]


def test_unknown_and_held_certificates_are_refused(world: PortalWorld) -> None:
    from jlis.card.hotline import Caller, SuspensionReason

    holder = world.holder()
    ref = _ref(world, holder.card_id)
    with world.factory() as s, pytest.raises(NotFound):
        HolderLookup(s, world.clock, OPERATOR).holder(CertificateRef.parse("g1", "abc"), purpose="x")
    with world.factory() as s, pytest.raises(NotFound):
        HolderLookup(s, world.clock, OPERATOR).holder(CertificateRef(2, ref.serial), purpose="x")
    r = holder.resident
    with world.service() as svc:
        svc.hotline.suspend(
            Caller(r.lg_code, r.name.family, r.name.given, r.birth_date, holder.card_id),
            SuspensionReason.LOST,
        )
    with world.factory() as s, pytest.raises(RuleViolation):
        HolderLookup(s, world.clock, OPERATOR).holder(ref, purpose="x")


def test_a_signing_certificate_is_matched_to_the_same_person(world: PortalWorld) -> None:
    a, b = world.holder(), world.holder()
    ref_a = _ref(world, a.card_id)
    sign_a = a.reader.read_certificate("sign", pin=SIGN_PASSWORD)
    sign_b = b.reader.read_certificate("sign", pin=SIGN_PASSWORD)
    auth_a = a.reader.read_certificate("auth")
    with world.factory() as s:
        lookup = HolderLookup(s, world.clock, resident_principal(ref_a))
        serial = format(x509.load_der_x509_certificate(sign_a).serial_number, "x")
        assert lookup.signing_certificate(ref_a, sign_a) == serial
        with pytest.raises(RuleViolation):
            lookup.signing_certificate(ref_a, sign_b)
        with pytest.raises(RuleViolation):  # an authentication certificate is not a signing one
            lookup.signing_certificate(ref_a, auth_a)
        with pytest.raises(InvalidInput):
            lookup.signing_certificate(ref_a, b"not der")
