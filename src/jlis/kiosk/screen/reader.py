"""The copier's card reader, simulated.

A real kiosk has an IC card reader beside the screen: the resident sets the card on it, types the
4-digit PIN on the screen, and the card itself checks the PIN and signs the center's challenge. The
demo has no physical card, so a card is a **card file** (``jlis card export``, or the demo cards of
``<data dir>/cards/*.jcard``, passphrase ``jlis-demo``) opened with its passphrase:

- :func:`demo_cards` lists the demo card files; :meth:`CardSlot.demo` sets one on the reader;
- :meth:`CardSlot.upload` sets an uploaded card file: it is kept in a private temporary directory
  for the visit, so a wrong PIN counts on that copy for the whole visit (the user keeps the
  original), and is deleted when the card is taken back (:meth:`CardSlot.eject`);
- :meth:`CardSlot.answer` has the card sign the challenge after VERIFY of the PIN: a wrong PIN
  raises ``WrongPin`` (one try fewer, written back to the card file) or ``PinBlocked``.

Only the certificate and the signature leave the reader (:class:`LoginResponse`); the PIN never goes
to the center.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from jlis.card.chip.cardfile import CARD_SUFFIX, card_files
from jlis.errors import InvalidInput
from jlis.jpki.rp.login import Challenge, LoginResponse, respond
from jlis.jpki.rp.sign import open_card

MAX_CARD_FILE = 900_000  # under the app's body limit; a card file is a few kilobytes
MAX_PASSPHRASE = 200
_PIN = re.compile(r"^[0-9]{4}$")


demo_cards = card_files  # the demo's exported cards, listed by id


def check_pin(pin: object) -> str:
    if not isinstance(pin, str) or not _PIN.match(pin):
        raise InvalidInput("暗証番号", "must be the 4-digit PIN of the authentication certificate")
    return pin


def _check_passphrase(passphrase: object) -> str:
    if not isinstance(passphrase, str) or not passphrase:
        raise InvalidInput("パスフレーズ", "must not be empty")
    if len(passphrase) > MAX_PASSPHRASE:
        raise InvalidInput("パスフレーズ", f"at most {MAX_PASSPHRASE} characters")
    return passphrase


class CardSlot:
    """A card set on the reader: a card file and its passphrase, until :meth:`eject`."""

    def __init__(self, path: Path, passphrase: str, label: str, *, owned_dir: Path | None = None) -> None:
        self.path = path
        self.label = label
        self._owned_dir = owned_dir
        # The card file decrypted with its passphrase (InvalidInput when either is wrong): the card
        # is on the reader from now on; PIN counters are written back to the file.
        self._reader = open_card(path, passphrase)

    @classmethod
    def demo(cls, cards_dir: Path, card_id: str, passphrase: str) -> CardSlot:
        """One of the demo cards, by id (never a path the browser made up)."""
        for card in demo_cards(cards_dir):
            if card.card_id == card_id:
                return cls(card.path, _check_passphrase(passphrase), card.card_id)
        raise InvalidInput("カード", "must be one of the demo cards")

    @classmethod
    def upload(cls, data: bytes, passphrase: str) -> CardSlot:
        """An uploaded card file, copied to a private directory for the visit."""
        if not data:
            raise InvalidInput("カードファイル", "must be a jlis-card/1 file")
        if len(data) > MAX_CARD_FILE:
            raise InvalidInput("カードファイル", f"at most {MAX_CARD_FILE:,} bytes")
        passphrase = _check_passphrase(passphrase)
        tmp = Path(tempfile.mkdtemp(prefix="jlis-kiosk-card-"))
        path = tmp / f"card{CARD_SUFFIX}"
        path.write_bytes(data)
        try:
            return cls(path, passphrase, "持ち込まれたカード", owned_dir=tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def answer(self, challenge_text: str, pin: str) -> LoginResponse:
        """The card signs the center's challenge after the PIN (the PIN stays on the card)."""
        return respond(self._reader, Challenge.from_text(challenge_text), check_pin(pin))

    def eject(self) -> None:
        """The card is taken back: an uploaded copy is deleted with its directory."""
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None
