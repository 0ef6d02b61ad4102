"""印鑑登録 on the database: registration through the register's check of the person, one active
registration per person, abolition, scope, and audited reads."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from jlis.audit.tables import AuditEntryRow
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.kiosk.issuer.models import AbolishReason, SealStatus, check_seal_image, synthetic_impression
from jlis.kiosk.issuer.seals import SealRegister, seed_seals
from jlis.kiosk.issuer.tables import SealRegistrationRow

from .conftest import CENTER, CHIYODA, SHINJUKU, IssuerWorld, png, staff


def seals(world: IssuerWorld, s: object, principal: object = None, lg: str = CHIYODA) -> SealRegister:
    return SealRegister(s, world.clock, lg, principal or staff(lg), world.container.registry)  # type: ignore[arg-type]


def test_register_get_and_abolish(world: IssuerWorld) -> None:
    p = world.person()
    image = png(150, 150)
    with transaction(world.factory) as s:
        reg = seals(world, s).register(p.resident_code, image)
    assert reg.status is SealStatus.ACTIVE
    assert reg.registered_on == world.clock.today()
    assert reg.impression.png == image and (reg.impression.width, reg.impression.height) == (150, 150)
    assert reg.registration_no.isdigit() and len(reg.registration_no) == 8
    with transaction(world.factory) as s:
        again = seals(world, s, CENTER).get(reg.registration_no)
        assert again == reg
        assert seals(world, s, CENTER).active_for(p.resident_code) == reg
    with transaction(world.factory) as s:
        gone = seals(world, s).abolish(reg.registration_no, "lost")
    assert gone.status is SealStatus.ABOLISHED and gone.abolish_reason is AbolishReason.LOST
    with transaction(world.factory) as s:
        assert seals(world, s, CENTER).active_for(p.resident_code) is None
        with pytest.raises(RuleViolation):
            seals(world, s).abolish(reg.registration_no, "request")
    # a new registration after the abolition
    with transaction(world.factory) as s:
        second = seals(world, s).register(p.resident_code, png())
    assert second.registration_no != reg.registration_no


def test_one_active_registration_per_person(world: IssuerWorld) -> None:
    p = world.person()
    world.register_seal(p)
    with transaction(world.factory) as s, pytest.raises(RuleViolation) as info:
        seals(world, s).register(p.resident_code, png())
    assert info.value.field == "印鑑登録"


def test_refusals_change_nothing(world: IssuerWorld) -> None:
    p = world.person()
    child = world.person(given="一郎", given_kana="イチロウ", birth=dt.date(2012, 1, 1), banchi="2番2号")
    cases = [
        (lambda s: seals(world, s).register(child.resident_code, png()), RuleViolation),  # under 15
        (lambda s: seals(world, s).register(p.resident_code, b"not a png"), InvalidInput),
        (lambda s: seals(world, s, staff(SHINJUKU), SHINJUKU).register(p.resident_code, png()), NotFound),
        (lambda s: seals(world, s, CENTER).register(p.resident_code, png()), Forbidden),
        (lambda s: seals(world, s, staff(SHINJUKU)).register(p.resident_code, png()), Forbidden),
        (lambda s: seals(world, s).abolish("00000001", "stolen"), InvalidInput),
        (lambda s: seals(world, s).get("99999999"), NotFound),
    ]
    for action, error in cases:
        with pytest.raises(error), transaction(world.factory) as s:
            action(s)
    assert world.count(SealRegistrationRow) == 0


def test_removed_person_cannot_register(world: IssuerWorld) -> None:
    p = world.person()
    with transaction(world.factory) as s:
        world.container.registry(s, CHIYODA, "staff").record_death(p.id, died_on=world.clock.today())
    with transaction(world.factory) as s, pytest.raises(RuleViolation) as info:
        seals(world, s).register(p.resident_code, png())
    assert info.value.field == "住民票"


def test_reads_are_audited(world: IssuerWorld) -> None:
    p = world.person()
    number = world.register_seal(p)
    with transaction(world.factory) as s:
        seals(world, s, CENTER).get(number)
    with world.factory() as s:
        entries = (
            s.execute(
                select(AuditEntryRow).where(
                    AuditEntryRow.actor == "kiosk-center", AuditEntryRow.subject == p.resident_code
                )
            )
            .scalars()
            .all()
        )
    assert len(entries) == 1 and "印鑑登録照会" in entries[0].details


def test_sweep_abolishes_the_registrations_of_removed_people(world: IssuerWorld) -> None:
    staying = world.person()
    dying = world.person(given="次郎", given_kana="ジロウ", banchi="2番2号")
    leaving = world.person(given="三郎", given_kana="サブロウ", banchi="3番3号")
    numbers = {p.resident_code: world.register_seal(p) for p in (staying, dying, leaving)}
    with transaction(world.factory) as s:
        reg = world.container.registry(s, CHIYODA, "staff")
        reg.record_death(dying.id, died_on=world.clock.today())
        reg.record_move_out(
            leaving.id,
            planned_date=world.clock.today(),
            destination="アメリカ合衆国",
            destination_lg_code=None,
        )
    with transaction(world.factory) as s:
        done = seals(world, s).sweep()
    assert {(d.registration_no, d.abolish_reason) for d in done} == {
        (numbers[dying.resident_code], AbolishReason.DECEASED),
        (numbers[leaving.resident_code], AbolishReason.MOVED_OUT),
    }
    with transaction(world.factory) as s:
        assert seals(world, s, CENTER).active_for(staying.resident_code) is not None
        assert seals(world, s).sweep() == []
        with pytest.raises(Forbidden):
            seals(world, s, CENTER).sweep()


def test_seed_seals_is_deterministic_and_skips_who_cannot_register(world: IssuerWorld) -> None:
    adults = [
        world.person(given=f"太郎{i:02d}", given_kana="タロウ", banchi=f"{i + 1}番1号") for i in range(12)
    ]
    world.person(given="一郎", given_kana="イチロウ", birth=dt.date(2015, 1, 1), banchi="99番1号")  # 11
    with transaction(world.factory) as s:
        assert (
            seed_seals(s, world.clock, CHIYODA, staff(), world.container.registry, seed=b"s", share=1.0) == 12
        )
    with transaction(world.factory) as s:  # idempotent
        assert (
            seed_seals(s, world.clock, CHIYODA, staff(), world.container.registry, seed=b"s", share=1.0) == 0
        )
    with transaction(world.factory) as s:
        reg = seals(world, s, CENTER).active_for(adults[0].resident_code)
    assert reg is not None and reg.impression.png == synthetic_impression(b"s", adults[0].resident_code)
    image = check_seal_image(synthetic_impression(b"s", adults[1].resident_code))
    assert image.png != reg.impression.png and (image.width, image.height) == (160, 160)
    with pytest.raises(InvalidInput), transaction(world.factory) as s:
        seed_seals(s, world.clock, CHIYODA, staff(), world.container.registry, seed=b"s", share=1.5)
