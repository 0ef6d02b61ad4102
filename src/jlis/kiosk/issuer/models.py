"""Domain values of the certificate server, and the pure parts of its data: request options, the
seal-image check, the 住民税 computation. No database, clock or randomness here."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import struct
import zlib
from dataclasses import dataclass, field

from jlis.errors import InvalidInput
from jlis.kiosk.content import CertificateKind

# --------------------------------------------------------------------------------------- options

RESIDENT_ITEMS = {
    "name": "氏名",
    "name_kana": "氏名の振り仮名",
    "birth_date": "生年月日",
    "sex": "性別",
    "address": "住所",
    "resident_since": "住民となった年月日",
    "address_since": "住所を定めた年月日",
    "head": "世帯主",
    "relationship": "続柄",
    "honseki": "本籍",
}
DEFAULT_RESIDENT_ITEMS = ("name", "birth_date", "sex", "address")
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,63}$")


@dataclass(frozen=True)
class IssueOptions:
    """What the resident chose at the kiosk.

    - ``household``: 住民票の写し of the whole household (世帯全員) instead of the requester only;
    - ``show_honseki`` / ``show_relationship``: print the 本籍 and the 続柄 (omitted by default);
    - ``show_my_number``: print the 個人番号 (refused unless the municipality allows it);
    - ``items``: the items a 住民票記載事項証明書 certifies (keys of :data:`RESIDENT_ITEMS`);
    - ``fiscal_year``: the 年度 of a 所得・課税証明書 (the newest available when None).
    """

    household: bool = False
    show_honseki: bool = False
    show_relationship: bool = False
    show_my_number: bool = False
    items: tuple[str, ...] = DEFAULT_RESIDENT_ITEMS
    fiscal_year: int | None = None

    def __post_init__(self) -> None:
        if not self.items:
            raise InvalidInput("証明事項", "must name at least one item")
        unknown = [i for i in self.items if i not in RESIDENT_ITEMS]
        if unknown:
            raise InvalidInput(
                "証明事項", f"unknown items {', '.join(unknown)}; one of {', '.join(RESIDENT_ITEMS)}"
            )
        if len(set(self.items)) != len(self.items):
            raise InvalidInput("証明事項", "must not repeat an item")
        if self.fiscal_year is not None and not 2000 <= self.fiscal_year <= 2100:
            raise InvalidInput("年度", "must be a year from 2000 to 2100")

    def check_for(self, kind: CertificateKind) -> None:
        """Options that do not apply to ``kind`` are refused rather than ignored."""
        resident_only = (
            ("世帯全員", self.household),
            ("本籍の記載", self.show_honseki),
            ("続柄の記載", self.show_relationship),
            ("個人番号の記載", self.show_my_number),
        )
        for name, chosen in resident_only:
            if chosen and kind is not CertificateKind.RESIDENT:
                raise InvalidInput(name, "applies to 住民票の写し only")
        if self.items != DEFAULT_RESIDENT_ITEMS and kind is not CertificateKind.RESIDENT_ITEMS:
            raise InvalidInput("証明事項", "applies to 住民票記載事項証明書 only")
        if self.fiscal_year is not None and kind is not CertificateKind.INCOME:
            raise InvalidInput("年度", "applies to 所得・課税証明書 only")


def check_request_id(value: str) -> str:
    if not isinstance(value, str) or not REQUEST_ID.match(value):
        raise InvalidInput("要求番号", "8-64 characters: letters, digits, '.', '_', ':' or '-'")
    return value


# --------------------------------------------------------------------------------------- 印鑑登録


class SealStatus(enum.StrEnum):
    ACTIVE = "active"
    ABOLISHED = "abolished"


class AbolishReason(enum.StrEnum):
    """印鑑登録の廃止 (values stable)."""

    REQUEST = "request"  # 本人の廃止申請
    LOST = "lost"  # 登録証の亡失
    MOVED_OUT = "moved_out"  # 転出
    DECEASED = "deceased"  # 死亡
    EX_OFFICIO = "ex_officio"  # 職権

    @property
    def label(self) -> str:
        return {
            "request": "廃止申請",
            "lost": "登録証亡失",
            "moved_out": "転出",
            "deceased": "死亡",
            "ex_officio": "職権消除",
        }[self.value]


SEAL_MIN_PX, SEAL_MAX_PX = 64, 1024  # the scanned impression; 8–25 mm at 300–1000 dpi
SEAL_MAX_BYTES = 256 * 1024
SEAL_MIN_AGE = 15  # 印鑑登録 is open from 15 (条例準則)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class SealImage:
    png: bytes
    width: int
    height: int
    sha256: str


def check_seal_image(data: bytes) -> SealImage:
    """A real PNG (signature, chunk CRCs, IHDR, IDAT, IEND), near-square, of a size a scanned seal
    impression has. The image is stored as given; nothing is decoded beyond the headers."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise InvalidInput("印影", "must be a PNG image")
    data = bytes(data)
    if len(data) > SEAL_MAX_BYTES:
        raise InvalidInput("印影", f"must be at most {SEAL_MAX_BYTES // 1024} KiB")
    if not data.startswith(_PNG_SIGNATURE):
        raise InvalidInput("印影", "must be a PNG image (signature)")
    pos, chunks, width, height = len(_PNG_SIGNATURE), [], 0, 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise InvalidInput("印影", "must be a complete PNG (truncated chunk)")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            raise InvalidInput("印影", "must be a complete PNG (truncated chunk)")
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(ctype + body) != crc:
            raise InvalidInput("印影", "must be an intact PNG (chunk CRC)")
        if ctype == b"IHDR":
            if length != 13:
                raise InvalidInput("印影", "must be a PNG with a valid header")
            width, height = struct.unpack(">II", body[:8])
        chunks.append(ctype)
        pos += 12 + length
        if ctype == b"IEND":
            break
    if not chunks or chunks[0] != b"IHDR" or b"IDAT" not in chunks or chunks[-1] != b"IEND":
        raise InvalidInput("印影", "must be a PNG with IHDR, IDAT and IEND")
    if not (SEAL_MIN_PX <= width <= SEAL_MAX_PX and SEAL_MIN_PX <= height <= SEAL_MAX_PX):
        raise InvalidInput("印影", f"must be {SEAL_MIN_PX}-{SEAL_MAX_PX} pixels on each side")
    if max(width, height) > 2 * min(width, height):
        raise InvalidInput("印影", "must not be more than twice as long as it is wide")
    return SealImage(data, width, height, hashlib.sha256(data).hexdigest())


def synthetic_impression(seed: bytes, resident_code: str, size: int = 160) -> bytes:
    """A made-up seal impression for demo data: a red ring with a few strokes inside, different per
    person and the same for the same seed and code; an RGB PNG written with the standard library."""
    digest = hashlib.sha256(seed + f"|seal|{resident_code}".encode()).digest()
    ring = 5 + digest[0] % 5
    strokes = [(digest[i] % 5, digest[i + 1] % 2) for i in range(1, 9, 2)]  # (slot, vertical?)
    c = (size - 1) / 2
    outer = c - 2
    lines = []
    for y in range(size):
        row = bytearray(b"\x00")  # filter: none
        for x in range(size):
            r2 = (x - c) ** 2 + (y - c) ** 2
            red = outer - ring <= r2**0.5 <= outer
            if not red and r2**0.5 < outer - ring - 8:
                for slot, vertical in strokes:
                    pos = int(size * (0.3 + 0.1 * slot))
                    along, across = (y, x) if vertical else (x, y)
                    if abs(across - pos) <= 3 and size * 0.25 <= along <= size * 0.75:
                        red = True
                        break
            row += b"\xc8\x1e\x1e" if red else b"\xff\xff\xff"
        lines.append(bytes(row))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(lines)))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class SealRegistration:
    lg_code: str
    registration_no: str  # 登録番号 (also the 印鑑登録証's number)
    resident_code: str
    registered_on: dt.date
    status: SealStatus
    impression: SealImage
    abolished_on: dt.date | None = None
    abolish_reason: AbolishReason | None = None


# --------------------------------------------------------------------------------------- 住民税

MUNICIPAL_RATE, PREFECTURAL_RATE = 6, 4  # 所得割, percent
MUNICIPAL_PER_CAPITA, PREFECTURAL_PER_CAPITA = 3_000, 1_000  # 均等割, yen
BASIC_DEDUCTION = 430_000  # 基礎控除 (住民税)
DEPENDENT_DEDUCTION = 330_000  # 扶養控除 (一般)
SOCIAL_INSURANCE_SHARE = 15  # percent of salary, the synthetic 社会保険料控除


def salary_deduction(salary: int) -> int:
    """給与所得控除 (令和2年分以後の表, without the 4,000-yen bands of the 別表)."""
    if salary <= 1_625_000:
        return min(salary, 550_000)
    if salary <= 1_800_000:
        return salary * 40 // 100 - 100_000
    if salary <= 3_600_000:
        return salary * 30 // 100 + 80_000
    if salary <= 6_600_000:
        return salary * 20 // 100 + 440_000
    if salary <= 8_500_000:
        return salary * 10 // 100 + 1_100_000
    return 1_950_000


def non_taxable_limit(dependents: int) -> int:
    """合計所得金額 at or below which no 住民税 is due (1級地: 45万円, or 35万円 × 世帯人数 + 31万円)."""
    return 450_000 if dependents == 0 else 350_000 * (1 + dependents) + 310_000


@dataclass(frozen=True)
class TaxFigures:
    salary_income: int
    salary_deduction: int
    other_income: int
    total_income: int
    deductions: int
    dependents: int
    taxable_income: int
    municipal_tax: int
    prefectural_tax: int
    non_taxable: bool

    @property
    def total_tax(self) -> int:
        return self.municipal_tax + self.prefectural_tax


def assess(salary_income: int, other_income: int, dependents: int) -> TaxFigures:
    """個人住民税 of one person (simplified: 1級地 thresholds, 10% 所得割, 4,000-yen 均等割)."""
    for name, value in (
        ("給与収入", salary_income),
        ("その他の所得", other_income),
        ("扶養人数", dependents),
    ):
        if not isinstance(value, int) or value < 0:
            raise InvalidInput(name, "must be a non-negative integer")
    deduction = salary_deduction(salary_income)
    total = max(0, salary_income - deduction) + other_income
    deductions = (
        BASIC_DEDUCTION + DEPENDENT_DEDUCTION * dependents + salary_income * SOCIAL_INSURANCE_SHARE // 100
    )
    taxable = max(0, total - deductions) // 1000 * 1000
    if total <= non_taxable_limit(dependents):
        return TaxFigures(
            salary_income, deduction, other_income, total, deductions, dependents, 0, 0, 0, True
        )
    municipal = taxable * MUNICIPAL_RATE // 100 // 100 * 100 + MUNICIPAL_PER_CAPITA
    prefectural = taxable * PREFECTURAL_RATE // 100 // 100 * 100 + PREFECTURAL_PER_CAPITA
    return TaxFigures(
        salary_income,
        deduction,
        other_income,
        total,
        deductions,
        dependents,
        taxable,
        municipal,
        prefectural,
        False,
    )


@dataclass(frozen=True)
class TaxAssessment:
    lg_code: str
    fiscal_year: int
    resident_code: str
    address_on_jan1: str
    figures: TaxFigures
    assessed_on: dt.date


# --------------------------------------------------------------------------------------- 戸籍


@dataclass(frozen=True)
class KosekiEvent:
    """A 身分事項: e.g. (2010-04-01, 出生, 【出生地】東京都千代田区)."""

    date: dt.date
    label: str
    text: str


@dataclass(frozen=True)
class KosekiMember:
    position: int
    resident_code: str | None
    family_name: str
    given_name: str
    birth_date: dt.date
    sex: str
    father: str
    mother: str
    relationship: str
    events: tuple[KosekiEvent, ...]
    removed: bool = False
    removed_reason: str | None = None

    @property
    def name(self) -> str:
        return f"{self.family_name}\u3000{self.given_name}" if self.given_name else self.family_name


@dataclass(frozen=True)
class Koseki:
    id: int
    lg_code: str
    honseki: str
    head_name: str
    made_on: dt.date
    made_reason: str
    members: tuple[KosekiMember, ...] = field(default_factory=tuple)

    def member(self, resident_code: str) -> KosekiMember | None:
        return next((m for m in self.members if m.resident_code == resident_code), None)


@dataclass(frozen=True)
class HonsekiApplication:
    """本籍地利用登録申請 as the 本籍 municipality keeps it (state pending / approved / rejected)."""

    id: int
    lg_code: str
    resident_code: str
    head_family_name: str
    head_given_name: str
    kiosk_id: str | None
    applied_at: dt.datetime
    state: str
    decided_at: dt.datetime | None = None
    decided_by: str | None = None
    reason: str | None = None
