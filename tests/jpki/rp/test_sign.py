from __future__ import annotations

from pathlib import Path

import pytest

from jlis.card.chip.cardfile import export_card, load_card
from jlis.clock import FixedClock
from jlis.jpki.rp import cms
from jlis.jpki.rp.errors import PinBlocked, WrongPin
from jlis.jpki.rp.sign import open_card, sign_document, to_pem
from jlis.jpki.rp.trust import TrustStore
from jlis.jpki.rp.verify import verify_signature

from .conftest import SIGN_PASSWORD, Card, Pki, make_card


@pytest.mark.parametrize("card_name", ["rsa_card", "ec_card"])
def test_sign_on_the_card_then_verify(
    request: pytest.FixtureRequest, rp_clock: FixedClock, card_name: str
) -> None:
    card: Card = request.getfixturevalue(card_name)
    der = sign_document(card.reader, b"loan agreement", SIGN_PASSWORD, clock=rp_clock)
    view = cms.parse(der)
    assert view.signer_certificate == card.sign.cert
    assert view.hash_name == ("sha256" if card_name == "rsa_card" else "sha384")
    trust = TrustStore("sign", [card.sign.root.cert])
    result = verify_signature(der, content=b"loan agreement", trust=trust, revocation=None, clock=rp_clock)
    assert result.basic4.name == "山田　太郎"
    # PEM form verifies too
    verify_signature(to_pem(der), content=b"loan agreement", trust=trust, revocation=None, clock=rp_clock)


def test_attached_signature(rsa_card: Card, rp_clock: FixedClock) -> None:
    der = sign_document(rsa_card.reader, b"x", SIGN_PASSWORD, clock=rp_clock, detached=False)
    assert cms.parse(der).encapsulated == b"x"


def test_wrong_password_costs_a_try_and_signs_nothing(pki: Pki, rp_clock: FixedClock) -> None:
    card = make_card(pki)
    with pytest.raises(WrongPin) as err:
        sign_document(card.reader, b"x", "WRONG1", clock=rp_clock)
    assert err.value.tries_left == 4
    assert card.chip.pin_tries_left("sign") == 4
    sign_document(card.reader, b"x", SIGN_PASSWORD, clock=rp_clock)
    assert card.chip.pin_tries_left("sign") == 5  # a right password resets the counter
    for _ in range(5):
        with pytest.raises((WrongPin, PinBlocked)):
            sign_document(card.reader, b"x", "WRONG1", clock=rp_clock)
    with pytest.raises(PinBlocked):
        sign_document(card.reader, b"x", SIGN_PASSWORD, clock=rp_clock)  # stays blocked


def test_card_file_keeps_the_counter(pki: Pki, rp_clock: FixedClock, tmp_path: Path) -> None:
    card = make_card(pki)
    path = tmp_path / "card.jcard"
    export_card(card.chip, path, "passphrase-1")
    with pytest.raises(WrongPin):
        sign_document(open_card(path, "passphrase-1"), b"x", "WRONG1", clock=rp_clock)
    assert load_card(path, "passphrase-1").pin_tries_left("sign") == 4
    der = sign_document(open_card(path, "passphrase-1"), b"x", SIGN_PASSWORD, clock=rp_clock)
    assert cms.parse(der).signer_certificate == card.sign.cert
