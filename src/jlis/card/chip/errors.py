"""Errors a card reader (or the counter, talking to a chip directly) reports to its caller."""

from __future__ import annotations

from jlis.errors import JlisError


class CardError(JlisError):
    """The card answered a status word the caller did not expect."""

    http_status = 502
    kind = "card_error"

    def __init__(self, sw: int, action: str) -> None:
        super().__init__(f"{action}: card answered {sw:04X}", sw=f"{sw:04X}", action=action)
        self.sw = sw
        self.action = action


class WrongPin(JlisError):
    """A wrong PIN: the counter went down by one and ``tries_left`` remain."""

    http_status = 403
    kind = "wrong_pin"

    def __init__(self, pin: str, tries_left: int) -> None:
        super().__init__(f"wrong {pin} PIN: {tries_left} tries left", pin=pin, tries_left=tries_left)
        self.pin = pin
        self.tries_left = tries_left


class PinBlocked(JlisError):
    """The PIN is blocked (no tries left); only a reset at the counter unblocks it."""

    http_status = 403
    kind = "pin_blocked"

    def __init__(self, pin: str) -> None:
        super().__init__(f"{pin} PIN is blocked: reset it at the municipal counter", pin=pin)
        self.pin = pin


class CardVoided(JlisError):
    """The card has been voided (廃止): its applications no longer answer."""

    http_status = 409
    kind = "card_voided"

    def __init__(self, card_id: str) -> None:
        super().__init__(f"card {card_id} has been voided", card_id=card_id)
        self.card_id = card_id
