"""The four PINs set at the counter (facts §2.6): formats only. The chip keeps the PINs and their
retry counters; this module refuses a badly formed PIN before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass

from jlis.errors import InvalidInput

SIGN_MIN, SIGN_MAX = 6, 16
_SIGN = re.compile(r"[A-Z0-9]+")
_FOUR = re.compile(r"[0-9]{4}")

SIGN_FIELD = "署名用電子証明書の暗証番号"
AUTH_FIELD = "利用者証明用電子証明書の暗証番号"
JUKI_FIELD = "住民基本台帳用の暗証番号"
TEXT_FIELD = "券面事項入力補助用の暗証番号"

# The chip's names for the four PINs (jlis.card.chip), and the field each is reported under.
PIN_FIELDS = {"sign": SIGN_FIELD, "auth": AUTH_FIELD, "juki": JUKI_FIELD, "text": TEXT_FIELD}


def check_sign_password(value: str, field: str = SIGN_FIELD) -> str:
    """6–16 characters of A–Z and 0–9 with at least one of each (the official guidance)."""
    value = value or ""
    if not SIGN_MIN <= len(value) <= SIGN_MAX:
        raise InvalidInput(field, f"must be {SIGN_MIN} to {SIGN_MAX} characters")
    if not _SIGN.fullmatch(value):
        raise InvalidInput(field, "only upper-case letters A-Z and digits 0-9")
    if value.isdigit() or value.isalpha():
        raise InvalidInput(field, "must mix letters and digits")
    return value


def check_four_digits(value: str, field: str) -> str:
    value = value or ""
    if not _FOUR.fullmatch(value):
        raise InvalidInput(field, "must be 4 digits")
    return value


def check_pin(which: str, value: str) -> str:
    """One PIN by its chip name (``sign``, ``auth``, ``juki``, ``text``)."""
    if which not in PIN_FIELDS:
        raise InvalidInput("暗証番号の種類", f"must be one of {', '.join(PIN_FIELDS)}")
    if which == "sign":
        return check_sign_password(value)
    return check_four_digits(value, PIN_FIELDS[which])


@dataclass(frozen=True)
class PinSet:
    """The PINs the holder (or, under 15, the legal representative) types at delivery.
    ``sign_password`` is None when no signing certificate is issued (under 15, or declined)."""

    sign_password: str | None
    auth_pin: str
    juki_pin: str
    text_pin: str

    @classmethod
    def checked(cls, sign_password: str | None, auth_pin: str, juki_pin: str, text_pin: str) -> PinSet:
        return cls(
            check_sign_password(sign_password) if sign_password else None,
            check_four_digits(auth_pin, AUTH_FIELD),
            check_four_digits(juki_pin, JUKI_FIELD),
            check_four_digits(text_pin, TEXT_FIELD),
        )
