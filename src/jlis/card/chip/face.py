"""What the counter writes on a card at delivery: the card face (券面) and its encodings in the text
(券面事項入力補助AP) and visual (券面事項確認AP) applications (facts §2.3, §2.4).

Layout choices where the facts stop ([M]/[L], easy to change here):
- text EF 0001: ``D0 0C <12 ASCII digits>`` followed by ``FF`` padding to 17 bytes;
- text EF 0002: ``FF20`` wrapping 33 header, 34 name, 35 address, 36 birth ``YYYYMMDD``, 37 sex (one
  ASCII digit, ISO 5218), and our extensions 38 furigana, 39 旧氏, 40 通称 (only when present);
- text EF 0003: ``FF30`` wrapping 49 = SHA-256 of the My Number element (``D0 0C …``), 50 = SHA-256
  of the attribute element (``FF20 …``), 51 = the issuer's signature over the encoded 49 and 50
  elements (RSA PKCS#1 v1.5 or ECDSA, SHA-256). The issuer key is the card-issuing system's key
  (``store.card_issuer_key``); without one, element 51 is empty (an unsigned test card);
- visual EF 0002: ``FF20`` wrapping 33 header, 34 birth, 35 sex, 36 the issuer's public key (DER
  SubjectPublicKeyInfo), 37 name image, 38 address image, 39 photo, 40 signature (over the encoded
  elements 33–39, 41, 42 in that order), 41 expiry ``YYYYMMDD``, 42 security code.
  The images are placeholders: small deterministic grayscale PNGs derived from the text (and a
  placeholder photo when none is given), not renderings of the text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import struct
import zlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from jlis.card.chip import tlv
from jlis.card.chip.files import MY_NUMBER_EF_LENGTH
from jlis.codes.models import MyNumber
from jlis.errors import InvalidInput

IssuerKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
IssuerPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

HEADER = b"JLIS-1"
SEXES = (1, 2, 9)  # ISO 5218: male, female, not applicable (0, not known, is never printed)

T_MY_NUMBER = tlv.private_tag(16)
T_FACE = tlv.private_tag(32, constructed=True)
T_SIGNATURE_BLOCK = tlv.private_tag(48, constructed=True)
_T = {n: tlv.private_tag(n) for n in range(33, 52)}


@dataclass(frozen=True)
class CardFace:
    """The card face as printed, plus the chip-only items the counter writes.

    ``sex`` is the ISO 5218 code (1, 2 or 9); ``security_code`` the 4 digits printed on the front
    (part of 照合番号B); ``resident_code`` (住民票コード), when given, goes to the 住基AP."""

    my_number: str
    name: str
    address: str
    birth_date: dt.date
    sex: int
    expires_on: dt.date
    security_code: str
    name_kana: str | None = None
    former_surname: str | None = None
    alias: str | None = None
    resident_code: str | None = None
    photo: bytes | None = None

    def __post_init__(self) -> None:
        MyNumber(self.my_number)  # raises InvalidInput naming 個人番号
        for field in ("name", "address"):
            value = getattr(self, field)
            if not value or not value.strip():
                raise InvalidInput(field, "must not be empty")
            if len(value.encode("utf-8")) > 1000:
                raise InvalidInput(field, "at most 1000 bytes of UTF-8")
        if self.sex not in SEXES:
            raise InvalidInput("sex", "ISO 5218 code 1, 2 or 9")
        if not re.fullmatch(r"[0-9]{4}", self.security_code):
            raise InvalidInput("security_code", "4 digits")
        if self.expires_on <= self.birth_date:
            raise InvalidInput("expires_on", "after the birth date")
        if self.birth_date.year < 1868:
            raise InvalidInput("birth_date", "on or after 1868 (明治)")
        if self.resident_code is not None and not re.fullmatch(r"[0-9]{11}", self.resident_code):
            raise InvalidInput("resident_code", "11 digits")
        if self.photo is not None and len(self.photo) > 20000:
            raise InvalidInput("photo", "at most 20000 bytes")


# Japanese eras by start date, newest first (for 照合番号B).
_ERAS = (
    (dt.date(2019, 5, 1), 2018),  # 令和
    (dt.date(1989, 1, 8), 1988),  # 平成
    (dt.date(1926, 12, 25), 1925),  # 昭和
    (dt.date(1912, 7, 30), 1911),  # 大正
    (dt.date(1868, 1, 25), 1867),  # 明治 (as the calendar counts it from 1868)
)


def era_yymmdd(day: dt.date) -> str:
    """The date as a Japanese-era ``YYMMDD`` (令和2年2月24日 → ``020224``)."""
    for start, offset in _ERAS:
        if day >= start:
            return f"{day.year - offset:02d}{day.month:02d}{day.day:02d}"
    raise ValueError("dates before 明治 are not supported")


def verification_number_b(face: CardFace) -> str:
    """照合番号B: birth date as Japanese-era YYMMDD + the card's expiry year + the security code
    (facts §2.4; the era form is what two open-source readers use [M])."""
    return f"{era_yymmdd(face.birth_date)}{face.expires_on.year:04d}{face.security_code}"


# -- encodings --------------------------------------------------------------------------------


def my_number_ef(my_number: str) -> bytes:
    element = tlv.encode(T_MY_NUMBER, my_number.encode("ascii"))
    return element + b"\xff" * (MY_NUMBER_EF_LENGTH - len(element))


def text_attributes_ef(face: CardFace, address: str | None = None) -> bytes:
    items = [
        (33, HEADER),
        (34, face.name.encode("utf-8")),
        (35, (address if address is not None else face.address).encode("utf-8")),
        (36, face.birth_date.strftime("%Y%m%d").encode("ascii")),
        (37, str(face.sex).encode("ascii")),
    ]
    for number, extra in ((38, face.name_kana), (39, face.former_surname), (40, face.alias)):
        if extra:
            items.append((number, extra.encode("utf-8")))
    return tlv.encode(T_FACE, b"".join(tlv.encode(_T[n], v) for n, v in items))


def _sign(key: IssuerKey | None, data: bytes) -> bytes:
    if key is None:
        return b""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_issuer_signature(public_key: IssuerPublicKey, signature: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def text_signature_ef(my_number_data: bytes, attributes: bytes, key: IssuerKey | None) -> bytes:
    """EF 0003 over the contents of EF 0001 and EF 0002 (padding stripped)."""
    mn_element = _first_element(my_number_data)
    digests = tlv.encode(_T[49], hashlib.sha256(mn_element).digest()) + tlv.encode(
        _T[50], hashlib.sha256(_first_element(attributes)).digest()
    )
    return tlv.encode(T_SIGNATURE_BLOCK, digests + tlv.encode(_T[51], _sign(key, digests)))


def check_text_signature(
    my_number_data: bytes, attributes: bytes, block: bytes, key: IssuerPublicKey
) -> bool:
    """Whether EF 0003 matches EF 0001 and EF 0002 and is signed by ``key``."""
    try:
        outer = tlv.parse(block)[T_SIGNATURE_BLOCK]
        inner = tlv.parse(outer)
        digests = tlv.encode(_T[49], inner[_T[49]]) + tlv.encode(_T[50], inner[_T[50]])
    except (KeyError, ValueError):
        return False
    if inner[_T[49]] != hashlib.sha256(_first_element(my_number_data)).digest():
        return False
    if inner[_T[50]] != hashlib.sha256(_first_element(attributes)).digest():
        return False
    return verify_issuer_signature(key, inner.get(_T[51], b""), digests)


def _first_element(data: bytes) -> bytes:
    for tag, value in tlv.iter_tlv(data):
        return tlv.encode(tag, value)
    raise ValueError("empty EF")


def visual_face_ef(face: CardFace, key: IssuerKey | None) -> bytes:
    public = (
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if key is not None
        else b""
    )
    signed = [
        (33, HEADER),
        (34, face.birth_date.strftime("%Y%m%d").encode("ascii")),
        (35, str(face.sex).encode("ascii")),
        (36, public),
        (37, placeholder_png("name:" + face.name)),
        (38, placeholder_png("address:" + face.address)),
        (39, face.photo if face.photo is not None else placeholder_png("photo:" + face.my_number, 32, 40)),
        (41, face.expires_on.strftime("%Y%m%d").encode("ascii")),
        (42, face.security_code.encode("ascii")),
    ]
    body = b"".join(tlv.encode(_T[n], v) for n, v in signed)
    signature = tlv.encode(_T[40], _sign(key, body))
    return tlv.encode(T_FACE, body + signature)


def placeholder_png(text: str, width: int = 64, height: int = 16) -> bytes:
    """A small grayscale PNG whose pixels come from SHA-256 of ``text``: deterministic, valid,
    different for different text. A stand-in for the real card-face images."""
    seed = hashlib.sha256(text.encode("utf-8")).digest()
    stream = hashlib.shake_256(seed).digest(width * height)
    raw = b"".join(b"\x00" + stream[y * width : (y + 1) * width] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# -- decoding (for readers) ---------------------------------------------------------------------


@dataclass(frozen=True)
class TextAttributes:
    """The four attributes (基本4情報) as the text application holds them."""

    name: str
    address: str
    birth_date: dt.date
    sex: int
    name_kana: str | None = None
    former_surname: str | None = None
    alias: str | None = None


def parse_my_number(data: bytes) -> str:
    value = tlv.parse(data).get(T_MY_NUMBER)
    if value is None or not re.fullmatch(rb"[0-9]{12}", value):
        raise ValueError("EF 0001 does not hold a My Number")
    return value.decode("ascii")


def parse_text_attributes(data: bytes) -> TextAttributes:
    inner = tlv.parse(tlv.parse(data)[T_FACE])

    def text(n: int) -> str | None:
        value = inner.get(_T[n])
        return value.decode("utf-8") if value is not None else None

    birth = inner[_T[36]].decode("ascii")
    return TextAttributes(
        name=text(34) or "",
        address=text(35) or "",
        birth_date=dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8])),
        sex=int(inner[_T[37]].decode("ascii")),
        name_kana=text(38),
        former_surname=text(39),
        alias=text(40),
    )


@dataclass(frozen=True)
class VisualFace:
    birth_date: dt.date
    sex: int
    expires_on: dt.date
    security_code: str
    name_image: bytes
    address_image: bytes
    photo: bytes
    issuer_public_key: bytes  # DER SubjectPublicKeyInfo, empty on an unsigned test card
    signature: bytes
    signed_data: bytes  # the encoded elements the signature covers


def parse_visual_face(data: bytes) -> VisualFace:
    elements = list(tlv.iter_tlv(tlv.parse(data)[T_FACE]))
    inner = dict(elements)
    signed = b"".join(tlv.encode(t, v) for t, v in elements if t != _T[40])

    def day(n: int) -> dt.date:
        s = inner[_T[n]].decode("ascii")
        return dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))

    return VisualFace(
        birth_date=day(34),
        sex=int(inner[_T[35]].decode("ascii")),
        expires_on=day(41),
        security_code=inner[_T[42]].decode("ascii"),
        name_image=inner[_T[37]],
        address_image=inner[_T[38]],
        photo=inner[_T[39]],
        issuer_public_key=inner[_T[36]],
        signature=inner[_T[40]],
        signed_data=signed,
    )


def replace_address(attributes: bytes, new_address: str) -> bytes:
    """EF 0002 with element 35 (address) replaced, every other element kept in order."""
    elements = list(tlv.iter_tlv(tlv.parse(attributes)[T_FACE]))
    body = b"".join(
        tlv.encode(tag, new_address.encode("utf-8") if tag == _T[35] else value) for tag, value in elements
    )
    return tlv.encode(T_FACE, body)
