"""The copier's card reader, simulated.

A real kiosk has an IC card reader beside the screen: the resident sets the card on it, types the
4-digit PIN on the screen, and the card itself checks the PIN and signs the center's challenge. The
demo has no physical card, so a card is a **card file** (``jlis card export``, or the demo cards of
``<data dir>/cards/*.jcard``, passphrase ``jlis-demo``) opened with its passphrase:

- :func:`demo_cards` lists the demo card files; :meth:`CardSlot.demo` sets one on the reader;
- :meth:`CardSlot.upload` sets an uploaded card file: it is copied to a file of its own for the
  visit (in the kiosk's uploads directory under the data dir, so every worker process of the screen
  reads the same copy), a wrong PIN counts on that copy for the whole visit (the user keeps the
  original), and it is deleted when the card is taken back (:meth:`CardSlot.eject`, or
  :func:`discard` by whoever ends the visit);
- :class:`CardRef` names the card on the reader without its passphrase (what the visit stores);
  :meth:`CardSlot.reopen` sets it on the reader again in the next request;
- :meth:`CardSlot.answer` has the card sign the challenge after VERIFY of the PIN: a wrong PIN
  raises ``WrongPin`` (one try fewer, written back to the card file) or ``PinBlocked``. The PIN
  counters live on the card file, never in the visit.

Only the certificate and the signature leave the reader (:class:`LoginResponse`); the PIN never goes
to the center.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass
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


@dataclass(frozen=True)
class CardRef:
    """Which card is on the reader: a demo card by its id, or an uploaded copy by its file name in
    the uploads directory (never a path the browser made up)."""

    source: str  # DEMO or UPLOAD
    name: str
    label: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "name": self.name, "label": self.label}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> CardRef:
        return cls(str(data["source"]), str(data["name"]), str(data["label"]))


DEMO = "demo"
UPLOAD = "upload"
_UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}" + re.escape(CARD_SUFFIX) + "$")


def _uploaded(uploads_dir: Path, name: str) -> Path:
    if not _UPLOAD_NAME.match(name):
        raise InvalidInput("カード", "must be a card file set on this kiosk's reader")
    return uploads_dir / name


def discard(ref: CardRef | None, uploads_dir: Path) -> None:
    """The card is taken back without being opened (the visit ended): an uploaded copy is deleted."""
    if ref is not None and ref.source == UPLOAD:
        with contextlib.suppress(InvalidInput, FileNotFoundError):
            _uploaded(uploads_dir, ref.name).unlink()


class CardSlot:
    """A card set on the reader: a card file opened with its passphrase, until :meth:`eject`."""

    def __init__(self, ref: CardRef, path: Path, passphrase: str, *, uploads_dir: Path | None = None) -> None:
        self.ref = ref
        self.path = path
        self.label = ref.label
        self._uploads_dir = uploads_dir  # set for an uploaded copy, which eject deletes
        # The card file decrypted with its passphrase (InvalidInput when either is wrong): the card
        # is on the reader from now on; PIN counters are written back to the file.
        self._reader = open_card(path, passphrase)

    @classmethod
    def demo(cls, cards_dir: Path, card_id: str, passphrase: str) -> CardSlot:
        """One of the demo cards, by id (never a path the browser made up)."""
        for card in demo_cards(cards_dir):
            if card.card_id == card_id:
                ref = CardRef(DEMO, card.card_id, card.card_id)
                return cls(ref, card.path, _check_passphrase(passphrase))
        raise InvalidInput("カード", "must be one of the demo cards")

    @classmethod
    def upload(cls, data: bytes, passphrase: str, uploads_dir: Path) -> CardSlot:
        """An uploaded card file, copied to a file of its own in ``uploads_dir`` for the visit."""
        if not data:
            raise InvalidInput("カードファイル", "must be a jlis-card/1 file")
        if len(data) > MAX_CARD_FILE:
            raise InvalidInput("カードファイル", f"at most {MAX_CARD_FILE:,} bytes")
        passphrase = _check_passphrase(passphrase)
        uploads_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{secrets.token_hex(16)}{CARD_SUFFIX}"
        path = uploads_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        ref = CardRef(UPLOAD, name, "持ち込まれたカード")
        try:
            return cls(ref, path, passphrase, uploads_dir=uploads_dir)
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    @classmethod
    def reopen(cls, ref: CardRef, passphrase: str, cards_dir: Path, uploads_dir: Path) -> CardSlot:
        """The card a visit set on the reader, in a later request (maybe in another process)."""
        if ref.source == DEMO:
            return cls.demo(cards_dir, ref.name, passphrase)
        if ref.source == UPLOAD:
            path = _uploaded(uploads_dir, ref.name)
            if not path.exists():
                raise InvalidInput("カード", "must be a card file set on this kiosk's reader")
            return cls(ref, path, passphrase, uploads_dir=uploads_dir)
        raise InvalidInput("カード", "must be a demo card or an uploaded card file")

    def answer(self, challenge_text: str, pin: str) -> LoginResponse:
        """The card signs the center's challenge after the PIN (the PIN stays on the card)."""
        return respond(self._reader, Challenge.from_text(challenge_text), check_pin(pin))

    def eject(self) -> None:
        """The card is taken back: an uploaded copy is deleted."""
        if self._uploads_dir is not None:
            discard(self.ref, self._uploads_dir)
            self._uploads_dir = None
