"""The kiosk's side of the card step: the card signs the center's challenge after the 4-digit PIN.

This runs at the kiosk (the card never leaves it; only the card's answer goes to the center). A
failure of the card itself — a wrong PIN (counted on the card), a blocked PIN, an unreadable card —
is reported to the center, which logs it and gives the kiosk the refusal to show."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from jlis.card.chip.errors import CardError, PinBlocked, WrongPin
from jlis.card.chip.reader import CardReader
from jlis.errors import InvalidInput
from jlis.jpki.rp.login import Challenge, LoginResponse, respond
from jlis.kiosk.center.errors import CenterRefused
from jlis.kiosk.center.models import KioskChallenge

if TYPE_CHECKING:
    from jlis.kiosk.center.service import IssuanceCenter

_PIN = re.compile(r"^[0-9]{4}$")


def card_answer(
    center: IssuanceCenter, challenge: KioskChallenge, reader: CardReader, pin: str
) -> LoginResponse:
    """The card's answer to ``challenge`` (raises the center's :class:`CenterRefused` on a card
    failure). A PIN that is not 4 digits is refused before it reaches the card (no try is lost)."""
    if not isinstance(pin, str) or not _PIN.match(pin):
        raise InvalidInput("暗証番号", "must be the 4-digit PIN of the authentication certificate")
    try:
        return respond(reader, Challenge.from_text(challenge.text), pin)
    except (WrongPin, PinBlocked, CardError) as exc:
        raise center.card_refused(challenge, exc) from exc


__all__ = ["CenterRefused", "card_answer"]
