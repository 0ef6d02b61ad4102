"""ISO 7816-4 command and response APDUs as the My Number card uses them (facts §2.5).

Short APDUs only: the card never needs extended lengths (a certificate is read in chunks of at most
256 bytes), so an extended-length command is refused with 6700 like a card that does not support it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class SW(IntEnum):
    """The status words the virtual chip answers with (ISO 7816-4 §5.6)."""

    OK = 0x9000
    WRONG_LENGTH = 0x6700
    INCOMPATIBLE_FILE = 0x6981  # e.g. VERIFY while the current EF is not a PIN
    SECURITY_NOT_SATISFIED = 0x6982
    AUTH_BLOCKED = 0x6983
    CONDITIONS_NOT_SATISFIED = 0x6985
    NO_CURRENT_EF = 0x6986
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    INCORRECT_P1P2 = 0x6A86
    OFFSET_BEYOND_EF = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00


def retries_sw(tries_left: int) -> int:
    """``63 Cx``: a wrong PIN (or a retry query) with ``x`` tries left."""
    return 0x63C0 | (tries_left & 0x0F)


def is_retries_sw(sw: int) -> bool:
    return sw & 0xFFF0 == 0x63C0


class ApduError(Exception):
    """A command the card refuses before looking at its meaning (malformed lengths)."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"SW {sw:04X}")
        self.sw = sw


# Instruction bytes.
INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_VERIFY = 0x20
INS_CHANGE_REFERENCE_DATA = 0x24
INS_COMPUTE_DIGITAL_SIGNATURE = 0x2A

CLA_ISO = 0x00
CLA_PROPRIETARY = 0x80


@dataclass(frozen=True)
class Command:
    """A parsed command APDU. ``le`` is the expected length (``00`` already read as 256), or None
    when the command carries no Le."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    @classmethod
    def parse(cls, apdu: bytes) -> Command:
        """Parse the four short cases of ISO 7816-3 §12.1; anything else is ``ApduError(6700)``."""
        apdu = bytes(apdu)
        if len(apdu) < 4:
            raise ApduError(SW.WRONG_LENGTH)
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        body = apdu[4:]
        if not body:  # case 1
            return cls(cla, ins, p1, p2)
        if len(body) == 1:  # case 2: Le only
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        lc = body[0]
        if lc == 0:  # extended length: not supported by this card
            raise ApduError(SW.WRONG_LENGTH)
        if len(body) == 1 + lc:  # case 3
            return cls(cla, ins, p1, p2, data=body[1:])
        if len(body) == 2 + lc:  # case 4
            return cls(cla, ins, p1, p2, data=body[1 : 1 + lc], le=body[-1] or 256)
        raise ApduError(SW.WRONG_LENGTH)

    def to_bytes(self) -> bytes:
        if len(self.data) > 255:
            raise ValueError("short APDUs carry at most 255 bytes of data")
        if self.le is not None and not 1 <= self.le <= 256:
            raise ValueError("Le must be 1..256")
        out = bytes([self.cla, self.ins, self.p1, self.p2])
        if self.data:
            out += bytes([len(self.data)]) + self.data
        if self.le is not None:
            out += bytes([self.le & 0xFF])
        return out


@dataclass(frozen=True)
class Response:
    data: bytes
    sw: int

    @classmethod
    def parse(cls, raw: bytes) -> Response:
        if len(raw) < 2:
            raise ValueError("a response APDU has at least the two status bytes")
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK


# Builders for the commands of facts §2.5, used by the reader and by tests.


def select_df(aid: bytes) -> bytes:
    """``00 A4 04 0C Lc <AID>``: select an application by AID, no FCI returned."""
    return Command(CLA_ISO, INS_SELECT, 0x04, 0x0C, aid).to_bytes()


def select_ef(fid: int) -> bytes:
    """``00 A4 02 0C 02 <FID>``: select an EF under the current DF."""
    return Command(CLA_ISO, INS_SELECT, 0x02, 0x0C, fid.to_bytes(2, "big")).to_bytes()


def read_binary(offset: int, length: int) -> bytes:
    """``00 B0 <offset> <Le>`` (offset up to 0x7FFF; Le 1..256, 256 sent as ``00``)."""
    if not 0 <= offset <= 0x7FFF:
        raise ValueError("READ BINARY offsets are 15 bits")
    return Command(CLA_ISO, INS_READ_BINARY, offset >> 8, offset & 0xFF, le=length).to_bytes()


def verify(pin: bytes | None) -> bytes:
    """``00 20 00 80 Lc <PIN>``; with ``None`` the retry query ``00 20 00 80``."""
    return Command(CLA_ISO, INS_VERIFY, 0x00, 0x80, pin or b"").to_bytes()


def change_reference_data(new_pin: bytes) -> bytes:
    """``00 24 01 80 Lc <new PIN>`` (P1 = 01: only the new value; the old one was verified)."""
    return Command(CLA_ISO, INS_CHANGE_REFERENCE_DATA, 0x01, 0x80, new_pin).to_bytes()


def compute_digital_signature(digest_info: bytes) -> bytes:
    """``80 2A 00 80 Lc <DigestInfo> 00`` (the card's proprietary signature command)."""
    return Command(CLA_PROPRIETARY, INS_COMPUTE_DIGITAL_SIGNATURE, 0x00, 0x80, digest_info, le=256).to_bytes()
