"""スマホ用電子証明書: provisioned with the card's signing password onto a phone key store, with the
phone policy OIDs; untouched by the hotline's hold, revoked with the card, replaced by a new phone."""

from __future__ import annotations

import pytest
from cryptography import x509

from jlis.card.chip import WrongPin
from jlis.card.chip.reader import CardReader
from jlis.card.documents import Document as D
from jlis.card.hotline import Caller, SuspensionReason
from jlis.card.lifecycle import VoidReason
from jlis.card.phone import phone_chip_id
from jlis.card.pins import PinSet
from jlis.errors import Forbidden, RuleViolation
from jlis.jpki.profile import POLICY_PHONE_AUTH, POLICY_PHONE_SIGN
from jlis.jpki.tables import GOOD, HOLD, PHONE, REVOKED

from .conftest import AUTH_PIN, CHIYODA, JUKI_PIN, SHINJUKU, SIGN_PASSWORD, TEXT_PIN, CardWorld, staff


def by_holder(w: CardWorld, card_id: str) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    with w.service() as svc:
        for c in svc.certificates(card_id):
            out.setdefault((c.holder, c.ca_kind), []).append(c.status)
    return out


def test_provision_phone_certificates(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    with pytest.raises(WrongPin), card_world.service() as svc:
        svc.phone.provision(card_id, sign_password="WRONG1")
    with card_world.service() as svc:
        assert CardReader(svc.chips.load(card_id).transmit).retries("sign") == 4  # the try was kept
    with card_world.service() as svc:
        result = svc.phone.provision(card_id, sign_password=SIGN_PASSWORD, device="Pixel 9")
        phone = svc.chips.load(result.chip_id)
        certs = {c.ca_kind: c for c in svc.certificates(card_id) if c.holder == PHONE}
        card_chip = svc.chips.load(card_id)
    assert result.chip_id == phone_chip_id(card_id) and result.replaced == 0
    assert CardReader(card_chip.transmit).retries("sign") == 5  # the right password reset it
    assert {k: c.status for k, c in certs.items()} == {"sign": GOOD, "auth": GOOD}
    sign = x509.load_der_x509_certificate(certs["sign"].der)
    auth = x509.load_der_x509_certificate(certs["auth"].der)
    assert [
        p.policy_identifier for p in sign.extensions.get_extension_for_class(x509.CertificatePolicies).value
    ] == [POLICY_PHONE_SIGN]
    assert [
        p.policy_identifier for p in auth.extensions.get_extension_for_class(x509.CertificatePolicies).value
    ] == [POLICY_PHONE_AUTH]
    assert sign.public_key() == phone.public_key("sign") and auth.public_key() == phone.public_key("auth")


def test_phone_survives_the_hold_and_ends_with_the_card(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    with card_world.service() as svc:
        svc.phone.provision(card_id, sign_password=SIGN_PASSWORD)
        svc.hotline.suspend(Caller(CHIYODA, "山田", "太郎", r.birth_date), SuspensionReason.LOST)
    statuses = by_holder(card_world, card_id)
    assert statuses[("card", "sign")] == [HOLD] and statuses[("phone", "sign")] == [GOOD]
    with card_world.service(staff()) as svc:
        svc.counter.return_card(card_id, VoidReason.RETURNED, documents=[D.PASSPORT])
    assert {s for v in by_holder(card_world, card_id).values() for s in v} == {REVOKED}


def test_a_new_phone_replaces_the_old_one(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    with card_world.service() as svc:
        svc.phone.provision(card_id, sign_password=SIGN_PASSWORD)
    with card_world.service() as svc:
        result = svc.phone.provision(card_id, sign_password=SIGN_PASSWORD)
    assert result.replaced == 2
    statuses = by_holder(card_world, card_id)
    assert sorted(statuses[("phone", "sign")]) == [GOOD, REVOKED]
    assert sorted(statuses[("phone", "auth")]) == [GOOD, REVOKED]


def test_provisioning_needs_a_signing_certificate_and_scope(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.card_waiting(r)
    card_world.deliver(card_id, pins=PinSet(None, AUTH_PIN, JUKI_PIN, TEXT_PIN))
    with pytest.raises(RuleViolation, match="signing certificate"), card_world.service() as svc:
        svc.phone.provision(card_id, sign_password=SIGN_PASSWORD)
    with pytest.raises(Forbidden), card_world.service(staff(SHINJUKU)) as svc:
        svc.phone.provision(card_id, sign_password=SIGN_PASSWORD)
