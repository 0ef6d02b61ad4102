from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from jlis.audit import AuditLog
from jlis.bcl.shelters import Shelters
from jlis.bcl.tables import ShelterStayRow
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.jpki.revocation import Revocations
from jlis.jpki.tables import AUTH, SIGN

from .conftest import AGENCY, CHIYODA, SHINJUKU, BclPki, BclWorld, staff


@contextmanager
def shelters(world: BclWorld, lg_code: str = CHIYODA) -> Iterator[Shelters]:
    with transaction(world.factory) as s:
        yield Shelters(s, world.clock, staff(lg_code))


def stays(world: BclWorld) -> int:
    with world.factory() as s:
        return int(s.scalar(select(func.count()).select_from(ShelterStayRow)) or 0)


def test_check_in_and_out_with_the_card(bcl_world: BclWorld, bcl_pki: BclPki) -> None:
    w = bcl_world
    person = w.person(CHIYODA)
    visitor = w.person(SHINJUKU, given="三郎", given_kana="サブロウ")  # from another municipality
    cert = bcl_pki.auth_certificate(person)
    visitor_cert = bcl_pki.auth_certificate(visitor, card_id="card-2")
    did = w.declare(CHIYODA)
    with shelters(w) as sh:
        gym = sh.open(
            CHIYODA, name="千代田小学校体育館", address="千代田区一番町1番", capacity=2, disaster_id=did
        )
        hall = sh.open(CHIYODA, name="区民会館", address="千代田区九段南1番", capacity=100)
    with shelters(w) as sh:
        stay = sh.check_in(gym.id, cert.serial.upper())  # the reader's spelling of the serial
        assert stay.resident_code == person.resident_code and stay.name == person.name.full
        sh.check_in(gym.id, visitor_cert.serial)
        assert [o.resident_code for o in sh.occupants(gym.id)] == [
            person.resident_code,
            visitor.resident_code,
        ]
        assert sh.of_municipality(CHIYODA)[0].present == 2
    with pytest.raises(RuleViolation) as err, shelters(w) as sh:
        sh.check_in(hall.id, cert.serial)  # one shelter at a time
    assert "他の避難所" in err.value.message
    w.clock.advance(hours=20)
    with shelters(w) as sh:
        out = sh.check_out(gym.id, cert.serial)
        assert out.checked_out_at == w.clock.now() and out.checked_in_at == stay.checked_in_at
        again = sh.check_in(hall.id, cert.serial)  # then another shelter
        assert again.shelter_id == hall.id
        with pytest.raises(RuleViolation):
            sh.check_out(gym.id, cert.serial)  # not at the gym any more
    with bcl_world.factory() as s:
        purposes = [
            e.details["purpose"] for e in AuditLog("access").entries(s) if e.details.get("system") == "bcl"
        ]
    assert purposes.count("避難所入所") == 3 and purposes.count("避難所退所") == 1
    assert purposes.count("避難者名簿") == 2


def test_a_full_or_closed_shelter_and_closing_with_people_inside(
    bcl_world: BclWorld, bcl_pki: BclPki
) -> None:
    w = bcl_world
    people = [w.person(CHIYODA, banchi=f"{i}番1号") for i in range(1, 4)]
    certs = [bcl_pki.auth_certificate(p, card_id=f"card-{i}") for i, p in enumerate(people)]
    with shelters(w) as sh:
        small = sh.open(CHIYODA, name="集会所", address="千代田区一番町2番", capacity=2)
        sh.check_in(small.id, certs[0].serial)
        sh.check_in(small.id, certs[1].serial)
    with pytest.raises(RuleViolation) as err, shelters(w) as sh:
        sh.check_in(small.id, certs[2].serial)
    assert err.value.field == "収容人数"
    with pytest.raises(RuleViolation), shelters(w) as sh:
        sh.close(small.id)
    with shelters(w) as sh:
        sh.check_out(small.id, certs[0].serial)
        sh.check_out(small.id, certs[1].serial)
        assert not sh.close(small.id).open
    with pytest.raises(RuleViolation), shelters(w) as sh:
        sh.check_in(small.id, certs[2].serial)
    assert stays(w) == 2


def test_only_a_valid_card_checks_in(bcl_world: BclWorld, bcl_pki: BclPki) -> None:
    w = bcl_world
    person = w.person(CHIYODA)
    auth = bcl_pki.auth_certificate(person)
    sign = bcl_pki.pki.issue(SIGN, card_id="card-1")
    with shelters(w) as sh:
        gym = sh.open(CHIYODA, name="体育館", address="千代田区一番町1番", capacity=10)
    with pytest.raises(NotFound), shelters(w) as sh:
        sh.check_in(gym.id, sign.serial)  # a signing certificate is not looked up
    with pytest.raises(NotFound), shelters(w) as sh:
        sh.check_in(gym.id, "abcdef0123")
    with pytest.raises(InvalidInput), shelters(w) as sh:
        sh.check_in(gym.id, "not-hex")
    with transaction(w.factory) as s:
        rev = Revocations(s, w.clock)
        rev.hold(rev.certificate(AUTH, auth.serial), "hotline")
    with pytest.raises(RuleViolation) as err, shelters(w) as sh:
        sh.check_in(gym.id, auth.serial)
    assert err.value.rule == "must not be revoked or on hold"
    fresh = bcl_pki.auth_certificate(person, card_id="card-new")
    w.clock.advance(days=365 * 6)  # beyond the certificate's validity
    with pytest.raises(RuleViolation) as err, shelters(w) as sh:
        sh.check_in(gym.id, fresh.serial)
    assert err.value.rule == "must be within its validity"
    assert stays(w) == 0


def test_shelters_are_run_by_their_own_municipality(bcl_world: BclWorld) -> None:
    w = bcl_world
    did = w.declare(CHIYODA)
    with pytest.raises(Forbidden), transaction(w.factory) as s:
        Shelters(s, w.clock, staff(SHINJUKU)).open(CHIYODA, name="x", address="y", capacity=1)
    with pytest.raises(Forbidden), transaction(w.factory) as s:
        Shelters(s, w.clock, AGENCY).open(CHIYODA, name="x", address="y", capacity=1)
    with pytest.raises(RuleViolation), shelters(w, SHINJUKU) as sh:
        sh.open(SHINJUKU, name="x", address="y", capacity=1, disaster_id=did)  # Shinjuku not in the area
    for bad in ({"capacity": 0}, {"name": ""}, {"address": "\x00"}):
        with pytest.raises(InvalidInput), shelters(w) as sh:
            sh.open(CHIYODA, **{"name": "体育館", "address": "千代田区", "capacity": 5, **bad})  # type: ignore[arg-type]
    with shelters(w) as sh:
        gym = sh.open(CHIYODA, name="体育館", address="千代田区", capacity=5)
    with pytest.raises(Forbidden), shelters(w, SHINJUKU) as sh:
        sh.occupants(gym.id)
    with pytest.raises(NotFound), shelters(w) as sh:
        sh.occupants(gym.id + 100)
    assert gym.open and gym.present == 0 and gym.disaster_id is None


def test_the_database_itself_keeps_a_person_in_one_shelter(bcl_world: BclWorld) -> None:
    """The rule holds below the service too (two shelters scanning one card at the same moment)."""
    with shelters(bcl_world) as sh:
        a = sh.open(CHIYODA, name="A", address="千代田区", capacity=5)
        b = sh.open(CHIYODA, name="B", address="千代田区", capacity=5)
    now = bcl_world.clock.now()

    def stay(shelter_id: int, out: bool = False) -> ShelterStayRow:
        return ShelterStayRow(
            shelter_id=shelter_id, resident_code="12345678903", home_lg_code=CHIYODA, certificate_serial="1",
            checked_in_at=now, checked_in_by="t", checked_out_at=now if out else None,
        )  # fmt: skip

    with transaction(bcl_world.factory) as s:
        s.add_all([stay(a.id, out=True), stay(b.id, out=True), stay(a.id)])  # past stays do not count
    with pytest.raises(IntegrityError), transaction(bcl_world.factory) as s:
        s.add(stay(b.id))
    assert stays(bcl_world) == 3
