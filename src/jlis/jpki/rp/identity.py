"""The 基本4情報 a signing certificate carries in its SubjectAltName otherNames (facts §3.3).

Decoded only from a certificate that has been verified (see :mod:`jlis.jpki.rp.verify`); the
authentication certificate carries none of them (facts §3.2) and yields an error here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum

from asn1crypto import core
from cryptography import x509

from jlis.jpki.rp.errors import MalformedMessage

OID_NAME = "1.2.392.200149.8.5.5.1"  # 氏名
OID_NAME_MAP = "1.2.392.200149.8.5.5.2"  # 氏名代替文字の使用位置情報
OID_SEX = "1.2.392.200149.8.5.5.3"  # 性別: 1 male, 2 female, 3 unknown (not ISO 5218)
OID_BIRTH = "1.2.392.200149.8.5.5.4"  # 生年月日: era code + western YYYYMMDD
OID_ADDRESS = "1.2.392.200149.8.5.5.5"  # 住所 (facts §3.3: .5 is the address, .6 its map)
OID_ADDRESS_MAP = "1.2.392.200149.8.5.5.6"  # 住所代替文字の使用位置情報

SEX_BY_CODE = {"1": "male", "2": "female", "3": "unknown"}


class Era(IntEnum):
    """The era code in front of the birth date (facts §3.3)."""

    UNKNOWN = 0
    MEIJI = 1  # 明治
    TAISHO = 2  # 大正
    SHOWA = 3  # 昭和
    HEISEI = 4  # 平成
    REIWA = 5  # 令和


ERA_KANJI = {Era.MEIJI: "明治", Era.TAISHO: "大正", Era.SHOWA: "昭和", Era.HEISEI: "平成", Era.REIWA: "令和"}


@dataclass(frozen=True)
class Basic4:
    """基本4情報 as the certificate states them, with the substitution maps (facts §3.3, §8).

    ``name_substitution``/``address_substitution`` hold one ``0``/``1`` per character: ``1`` where a
    character outside JIS X 0208 was replaced, so the verifier knows the text is not verbatim."""

    name: str
    name_substitution: str
    sex: str  # "male", "female", "unknown"
    sex_code: str  # as in the certificate: "1", "2", "3"
    birth_date: dt.date | None  # None when the date is partly unknown (不詳)
    birth_era: Era
    birth_raw: str  # EYYYYMMDD as in the certificate
    address: str
    address_substitution: str

    @property
    def name_substituted(self) -> bool:
        return "1" in self.name_substitution

    @property
    def address_substituted(self) -> bool:
        return "1" in self.address_substitution

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "name_substitution": self.name_substitution,
            "sex": self.sex,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "birth_era": self.birth_era.name.lower(),
            "birth_raw": self.birth_raw,
            "address": self.address,
            "address_substitution": self.address_substitution,
        }


def decode_birth(raw: str) -> tuple[Era, dt.date | None]:
    """``EYYYYMMDD`` → (era, date). The era code is kept; the year is western (facts §3.3)."""
    if len(raw) != 9 or not raw.isdigit():
        raise MalformedMessage("certificate.subjectAltName.birthDate", "must be EYYYYMMDD (9 digits)")
    era_code = int(raw[0])
    if era_code not in Era._value2member_map_:
        raise MalformedMessage("certificate.subjectAltName.birthDate", "era code must be 0–5")
    try:
        born: dt.date | None = dt.date(int(raw[1:5]), int(raw[5:7]), int(raw[7:9]))
    except ValueError:
        born = None  # 不詳 parts are written as zeros
    return Era(era_code), born


def other_names(certificate: x509.Certificate) -> dict[str, str]:
    """The SAN otherName values by OID, each an [0] EXPLICIT UTF8String (facts §3.3)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return {}
    out: dict[str, str] = {}
    for other in san.get_values_for_type(x509.OtherName):
        value = other.value
        try:
            parsed = core.Asn1Value.load(value)
            if parsed.tag == 0 and parsed.class_ == 2:  # [0] EXPLICIT wrapper kept by some encoders
                parsed = core.Asn1Value.load(parsed.contents)
            out[other.type_id.dotted_string] = core.UTF8String.load(parsed.dump()).native
        except (ValueError, TypeError) as exc:
            raise MalformedMessage(
                f"certificate.subjectAltName.{other.type_id.dotted_string}", f"must be a UTF8String ({exc})"
            ) from None
    return out


def basic4_from_certificate(certificate: x509.Certificate) -> Basic4:
    values = other_names(certificate)
    missing = [oid for oid in (OID_NAME, OID_SEX, OID_BIRTH, OID_ADDRESS) if oid not in values]
    if missing:
        raise MalformedMessage(
            "certificate.subjectAltName",
            f"must carry the 基本4情報 otherNames (missing {', '.join(missing)}): "
            "only a signing certificate has them",
        )
    name, address = values[OID_NAME], values[OID_ADDRESS]
    name_map = values.get(OID_NAME_MAP, "0" * len(name))
    address_map = values.get(OID_ADDRESS_MAP, "0" * len(address))
    for field, text, mapping in (("name", name, name_map), ("address", address, address_map)):
        if len(mapping) != len(text) or set(mapping) - {"0", "1"}:
            raise MalformedMessage(
                f"certificate.subjectAltName.{field}Substitution", "must hold one 0/1 per character"
            )
    sex_code = values[OID_SEX]
    if sex_code not in SEX_BY_CODE:
        raise MalformedMessage("certificate.subjectAltName.sex", "must be 1, 2 or 3")
    era, born = decode_birth(values[OID_BIRTH])
    return Basic4(
        name=name,
        name_substitution=name_map,
        sex=SEX_BY_CODE[sex_code],
        sex_code=sex_code,
        birth_date=born,
        birth_era=era,
        birth_raw=values[OID_BIRTH],
        address=address,
        address_substitution=address_map,
    )
