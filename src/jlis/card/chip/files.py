"""The applications, EFs, PINs and access rules of the My Number card chip (facts §2.1–2.4, §2.6).

This is the card's layout as data: the chip (``chip.py``) enforces whatever these tables say, so a
fact that turns out different on a real card ([M] and [L] in the facts) is a one-line change here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# Application identifiers (facts §2.1).
JPKI_AID = bytes.fromhex("D392F000260100000001")  # 公的個人認証AP
TEXT_AID = bytes.fromhex("D3921000310001010408")  # 券面事項入力補助AP
VISUAL_AID = bytes.fromhex("D3921000310001010402")  # 券面事項確認AP
JUKI_AID = bytes.fromhex("D3921000310001010401")  # 住基AP [M]
CARD_ID_AID = bytes.fromhex("D3921000310001010100")  # common / card-ID DF [M]

# JPKI AP (facts §2.2).
JPKI_TOKEN = 0x0006
JPKI_SIGN_CERT = 0x0001
JPKI_SIGN_CA_CERT = 0x0002
JPKI_AUTH_CERT = 0x000A
JPKI_AUTH_CA_CERT = 0x000B
JPKI_AUTH_KEY = 0x0017
JPKI_AUTH_PIN = 0x0018
JPKI_SIGN_KEY = 0x001A
JPKI_SIGN_PIN = 0x001B
# What EF 0006 holds on a My Number card (the old 住基カード says JPKIAPICCTOKEN), space padded.
TOKEN_TEXT = b"JPKIAPICCTOKEN2"
TOKEN_LENGTH = 32

# 券面事項入力補助AP (facts §2.3).
TEXT_MY_NUMBER = 0x0001
TEXT_ATTRIBUTES = 0x0002
TEXT_SIGNATURE = 0x0003
TEXT_PIN = 0x0011
TEXT_PIN_A = 0x0014  # 照合番号A: the My Number
TEXT_PIN_B = 0x0015  # 照合番号B: 14 digits
# The My Number EF is read as 17 bytes: the 14-byte TLV followed by FF padding.
MY_NUMBER_EF_LENGTH = 17

# 券面事項確認AP (facts §2.4) [M].
VISUAL_FACE = 0x0002
VISUAL_PIN_B = 0x0012
VISUAL_PIN_A = 0x0013

# 住基AP [M]: PIN 001C; EF 0001 holds the 住民票コード when the counter wrote one (our choice, [L]).
JUKI_RESIDENT_CODE = 0x0001
JUKI_PIN = 0x001C

# Common card-ID DF [M].
CARD_ID = 0x0001


class PinKind(StrEnum):
    """Every secret the chip verifies: the four PINs a holder sets (facts §2.6) and the verification
    numbers derived from the card face (照合番号A = My Number, 照合番号B = 14 digits)."""

    AUTH = "auth"  # 利用者証明用電子証明書 PIN
    SIGN = "sign"  # 署名用電子証明書 password
    JUKI = "juki"  # 住民基本台帳用 PIN
    TEXT = "text"  # 券面事項入力補助用 PIN
    TEXT_A = "text_a"
    TEXT_B = "text_b"
    VISUAL_A = "visual_a"
    VISUAL_B = "visual_b"


HOLDER_PINS = (PinKind.AUTH, PinKind.SIGN, PinKind.JUKI, PinKind.TEXT)
FACE_PINS = (PinKind.TEXT_A, PinKind.TEXT_B, PinKind.VISUAL_A, PinKind.VISUAL_B)


@dataclass(frozen=True)
class PinSpec:
    kind: PinKind
    aid: bytes
    fid: int
    max_tries: int
    pattern: re.Pattern[str]
    rule: str  # the format rule, as an error names it
    holder_set: bool  # set and changed by the holder (CHANGE REFERENCE DATA); else fixed by the face


_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_SIGN_PASSWORD = re.compile(r"[A-Z0-9]{6,16}")
_TWELVE_DIGITS = re.compile(r"[0-9]{12}")
_FOURTEEN_DIGITS = re.compile(r"[0-9]{14}")
_FOUR_DIGIT_RULE = "4 digits"
_SIGN_RULE = "6 to 16 characters A-Z and 0-9"
# Tries of the verification numbers: not documented; one vendor note says 10 for 照合番号B [L].
FACE_PIN_TRIES = 10

PINS: dict[PinKind, PinSpec] = {
    PinKind.AUTH: PinSpec(PinKind.AUTH, JPKI_AID, JPKI_AUTH_PIN, 3, _FOUR_DIGITS, _FOUR_DIGIT_RULE, True),
    PinKind.SIGN: PinSpec(PinKind.SIGN, JPKI_AID, JPKI_SIGN_PIN, 5, _SIGN_PASSWORD, _SIGN_RULE, True),
    PinKind.JUKI: PinSpec(PinKind.JUKI, JUKI_AID, JUKI_PIN, 3, _FOUR_DIGITS, _FOUR_DIGIT_RULE, True),
    PinKind.TEXT: PinSpec(PinKind.TEXT, TEXT_AID, TEXT_PIN, 3, _FOUR_DIGITS, _FOUR_DIGIT_RULE, True),
    PinKind.TEXT_A: PinSpec(
        PinKind.TEXT_A, TEXT_AID, TEXT_PIN_A, FACE_PIN_TRIES, _TWELVE_DIGITS, "12 digits", False
    ),
    PinKind.TEXT_B: PinSpec(
        PinKind.TEXT_B, TEXT_AID, TEXT_PIN_B, FACE_PIN_TRIES, _FOURTEEN_DIGITS, "14 digits", False
    ),
    PinKind.VISUAL_A: PinSpec(
        PinKind.VISUAL_A, VISUAL_AID, VISUAL_PIN_A, FACE_PIN_TRIES, _TWELVE_DIGITS, "12 digits", False
    ),
    PinKind.VISUAL_B: PinSpec(
        PinKind.VISUAL_B, VISUAL_AID, VISUAL_PIN_B, FACE_PIN_TRIES, _FOURTEEN_DIGITS, "14 digits", False
    ),
}


def pin_format_ok(kind: PinKind, value: str) -> bool:
    return PINS[kind].pattern.fullmatch(value) is not None


class EfKind(StrEnum):
    DATA = "data"  # READ BINARY, subject to ``read``
    KEY = "key"  # a private key: usable by COMPUTE DIGITAL SIGNATURE, never readable
    PIN = "pin"  # reference data: VERIFY / CHANGE REFERENCE DATA, never readable


@dataclass(frozen=True)
class EfSpec:
    fid: int
    kind: EfKind
    # Any one of these verified in the current DF grants READ BINARY (empty: free to read). For a
    # key EF: the PIN COMPUTE DIGITAL SIGNATURE needs. For a PIN EF: the PIN itself.
    access: frozenset[PinKind] = frozenset()


@dataclass(frozen=True)
class Application:
    name: str
    aid: bytes
    efs: dict[int, EfSpec]

    def ef(self, fid: int) -> EfSpec | None:
        return self.efs.get(fid)


def _data(fid: int, *pins: PinKind) -> EfSpec:
    return EfSpec(fid, EfKind.DATA, frozenset(pins))


def _pin(kind: PinKind) -> EfSpec:
    return EfSpec(PINS[kind].fid, EfKind.PIN, frozenset({kind}))


_TEXT_READ = (PinKind.TEXT, PinKind.TEXT_A, PinKind.TEXT_B)
_VISUAL_READ = (PinKind.VISUAL_A, PinKind.VISUAL_B)

APPLICATIONS: dict[bytes, Application] = {
    app.aid: app
    for app in (
        Application(
            "jpki",
            JPKI_AID,
            {
                e.fid: e
                for e in (
                    _data(JPKI_TOKEN),
                    _data(JPKI_AUTH_CERT),
                    _data(JPKI_AUTH_CA_CERT),
                    _data(JPKI_SIGN_CERT, PinKind.SIGN),  # reading the signing certificate needs the password
                    _data(JPKI_SIGN_CA_CERT),
                    EfSpec(JPKI_AUTH_KEY, EfKind.KEY, frozenset({PinKind.AUTH})),
                    EfSpec(JPKI_SIGN_KEY, EfKind.KEY, frozenset({PinKind.SIGN})),
                    _pin(PinKind.AUTH),
                    _pin(PinKind.SIGN),
                )
            },
        ),
        Application(
            "text",
            TEXT_AID,
            {
                e.fid: e
                for e in (
                    _data(TEXT_MY_NUMBER, *_TEXT_READ),
                    _data(TEXT_ATTRIBUTES, *_TEXT_READ),
                    _data(TEXT_SIGNATURE, *_TEXT_READ),
                    _pin(PinKind.TEXT),
                    _pin(PinKind.TEXT_A),
                    _pin(PinKind.TEXT_B),
                )
            },
        ),
        Application(
            "visual",
            VISUAL_AID,
            {
                e.fid: e
                for e in (_data(VISUAL_FACE, *_VISUAL_READ), _pin(PinKind.VISUAL_A), _pin(PinKind.VISUAL_B))
            },
        ),
        Application(
            "juki",
            JUKI_AID,
            {e.fid: e for e in (_data(JUKI_RESIDENT_CODE, PinKind.JUKI), _pin(PinKind.JUKI))},
        ),
        Application("card_id", CARD_ID_AID, {e.fid: e for e in (_data(CARD_ID),)}),
    )
}

# Key slots: the JPKI key EF of each, and the PIN that unlocks it.
KEY_EFS = {"auth": JPKI_AUTH_KEY, "sign": JPKI_SIGN_KEY}
SLOT_BY_KEY_EF = {fid: slot for slot, fid in KEY_EFS.items()}
