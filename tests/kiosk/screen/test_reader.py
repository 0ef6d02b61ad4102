"""The copier's card reader (simulated with card files): which cards it offers, a card set with its
passphrase, the PIN checked by the card and counted in its file, an uploaded copy deleted on eject."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy.orm import Session, sessionmaker

from jlis.card.chip.cardfile import export_card
from jlis.card.chip.errors import WrongPin
from jlis.clock import FixedClock
from jlis.errors import InvalidInput
from jlis.jpki.rp.login import make_challenge
from jlis.jpki.rp.trust import load_certificate
from jlis.kiosk.screen.reader import DEMO, UPLOAD, CardRef, CardSlot, check_pin, demo_cards, discard

from ...card.conftest import AUTH_PIN, CardWorld, make_deps
from ...web.support import make_container

PASS = "reader-test-pass"


@pytest.fixture
def card_file(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """One delivered card, exported as ``<tmp>/cards/<card id>.jcard``."""
    container = make_container(factory, clock, tmp_path)
    world = CardWorld(container, make_deps(container, tmp_path / "keys", clock, monkeypatch))
    card_id = world.active_card(world.person())
    with world.service() as svc:
        chip = svc.chips.load(card_id)
    path = tmp_path / "cards" / f"{card_id}.jcard"
    path.parent.mkdir()
    export_card(chip, path, PASS)
    yield path


def test_the_reader_offers_the_demo_card_files(tmp_path: Path) -> None:
    assert demo_cards(tmp_path / "none") == []
    (tmp_path / "C-0001.jcard").write_text("{}")
    (tmp_path / "bad name!.jcard").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "dir.jcard").mkdir()
    assert [c.card_id for c in demo_cards(tmp_path)] == ["C-0001"]


def test_a_demo_card_signs_the_challenge_after_the_pin(card_file: Path, clock: FixedClock) -> None:
    slot = CardSlot.demo(card_file.parent, card_file.stem, PASS)
    challenge = make_challenge("https://center.test/kiosks/K-1", clock=clock)
    answer = slot.answer(challenge.to_text(), AUTH_PIN)
    public_key = load_certificate(answer.certificate_der).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(answer.signature, challenge.to_bytes(), padding.PKCS1v15(), hashes.SHA256())


def test_a_wrong_pin_is_counted_in_the_card_file(card_file: Path, clock: FixedClock) -> None:
    challenge = make_challenge("https://center.test/kiosks/K-1", clock=clock).to_text()
    slot = CardSlot.demo(card_file.parent, card_file.stem, PASS)
    with pytest.raises(WrongPin) as info:
        slot.answer(challenge, "9999")
    assert info.value.tries_left == 2
    again = CardSlot.demo(card_file.parent, card_file.stem, PASS)  # set on the reader anew
    with pytest.raises(WrongPin) as info:
        again.answer(challenge, "0000")
    assert info.value.tries_left == 1
    again.answer(challenge, AUTH_PIN)  # the right PIN resets the counter


def test_a_pin_that_is_not_four_digits_never_reaches_the_card(card_file: Path, clock: FixedClock) -> None:
    for pin in ("123", "12345", "12a4", "", None):
        with pytest.raises(InvalidInput) as info:
            check_pin(pin)
        assert info.value.field == "暗証番号"
    slot = CardSlot.demo(card_file.parent, card_file.stem, PASS)
    with pytest.raises(InvalidInput):
        slot.answer(make_challenge("https://center.test/k", clock=clock).to_text(), "123")
    slot.answer(make_challenge("https://center.test/k", clock=clock).to_text(), AUTH_PIN)  # no try lost


def test_unknown_cards_and_wrong_passphrases_are_refused(card_file: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        CardSlot.demo(card_file.parent, "../cards/" + card_file.stem, PASS)
    assert info.value.field == "カード"
    with pytest.raises(InvalidInput) as info:
        CardSlot.demo(card_file.parent, card_file.stem, "wrong passphrase")
    assert info.value.field == "passphrase"
    with pytest.raises(InvalidInput) as info:
        CardSlot.demo(card_file.parent, card_file.stem, "")
    assert info.value.field == "パスフレーズ"


def test_an_uploaded_card_is_a_copy_deleted_on_eject(
    card_file: Path, clock: FixedClock, tmp_path: Path
) -> None:
    original = card_file.read_bytes()
    uploads = tmp_path / "uploads"
    slot = CardSlot.upload(original, PASS, uploads)
    assert slot.path != card_file and slot.path.exists() and slot.path.parent == uploads
    assert slot.ref.source == UPLOAD and slot.ref.name == slot.path.name
    with pytest.raises(WrongPin):
        slot.answer(make_challenge("https://center.test/k", clock=clock).to_text(), "9999")
    assert slot.path.read_bytes() != original  # the counter is kept on the copy for the visit
    assert card_file.read_bytes() == original  # the user's own file is untouched
    # Set on the reader again (the next request, maybe another process): the same copy, its counter.
    again = CardSlot.reopen(slot.ref, PASS, card_file.parent, uploads)
    with pytest.raises(WrongPin) as info:
        again.answer(make_challenge("https://center.test/k", clock=clock).to_text(), "9999")
    assert info.value.tries_left == 1
    slot.eject()
    assert not slot.path.exists() and list(uploads.iterdir()) == []
    slot.eject()  # twice is harmless
    with pytest.raises(InvalidInput):
        CardSlot.reopen(slot.ref, PASS, card_file.parent, uploads)
    discard(slot.ref, uploads)  # an ended visit's card, already gone: harmless


def test_a_card_ref_names_no_path_of_the_browsers(card_file: Path, tmp_path: Path) -> None:
    demo = CardSlot.reopen(CardRef(DEMO, card_file.stem, "x"), PASS, card_file.parent, tmp_path)
    assert demo.path == card_file
    for ref in (
        CardRef(UPLOAD, "../" + card_file.name, "x"),
        CardRef(UPLOAD, str(card_file), "x"),
        CardRef(DEMO, "../cards/" + card_file.stem, "x"),
        CardRef("file", str(card_file), "x"),
    ):
        with pytest.raises(InvalidInput):
            CardSlot.reopen(ref, PASS, card_file.parent, card_file.parent)
    assert CardRef.from_json(demo.ref.to_json()) == demo.ref
    for data, field in (
        (b"", "カードファイル"),
        (b"not a card", "card_file"),
        (b"x" * 2_000_000, "カードファイル"),
    ):
        with pytest.raises(InvalidInput) as info:
            CardSlot.upload(data, PASS, tmp_path / "uploads")
        assert info.value.field == field
