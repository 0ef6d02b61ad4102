from __future__ import annotations

import datetime as dt

import pytest

from jlis.bcl.identity import card_holder
from jlis.errors import NotFound, RuleViolation
from jlis.jpki.tables import AUTH, PHONE

from .conftest import CHIYODA, BclPki, BclWorld


def test_the_holder_of_a_valid_card_certificate(bcl_world: BclWorld, bcl_pki: BclPki) -> None:
    person = bcl_world.person(CHIYODA)
    cert = bcl_pki.auth_certificate(person, card_id="card-77")
    with bcl_world.factory() as s:
        holder = card_holder(s, f"0x{cert.serial.upper()}", bcl_world.clock.now())
    assert (holder.resident_code, holder.lg_code, holder.card_id) == (
        person.resident_code,
        CHIYODA,
        "card-77",
    )
    assert holder.serial == cert.serial and holder.actor == f"resident:{cert.serial}"


def test_a_smartphone_certificate_only_where_allowed(bcl_world: BclWorld, bcl_pki: BclPki) -> None:
    phone = bcl_pki.pki.issue(AUTH, card_id="card-1", holder_kind=PHONE, key_index=2)
    now = bcl_world.clock.now()
    with bcl_world.factory() as s:
        with pytest.raises(RuleViolation) as err:
            card_holder(s, phone.serial, now)
        assert err.value.rule == "must be the certificate of a card"
        assert card_holder(s, phone.serial, now, allow_phone=True).card_id == "card-1"


def test_not_yet_valid_and_unknown(bcl_world: BclWorld, bcl_pki: BclPki) -> None:
    cert = bcl_pki.auth_certificate(bcl_world.person(CHIYODA))
    with bcl_world.factory() as s:
        with pytest.raises(RuleViolation):
            card_holder(s, cert.serial, bcl_world.clock.now() - dt.timedelta(days=1))
        with pytest.raises(NotFound):
            card_holder(s, "1", bcl_world.clock.now())
