"""The municipal resident register (既存住基): domain types and pure validation.

Nothing here touches the database, the clock or randomness: callers pass ``today`` in.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from dataclasses import dataclass

from jlis.errors import InvalidInput

MAX_NAME_LENGTH = 50  # characters per name part; longer is refused at the boundary
MAX_BANCHI_LENGTH = 60


class Sex(enum.StrEnum):
    MALE = "male"  # 男
    FEMALE = "female"  # 女

    @property
    def label(self) -> str:
        return "男" if self is Sex.MALE else "女"


class Status(enum.StrEnum):
    ACTIVE = "active"  # 記載
    MOVING_OUT = "moving_out"  # 転出届済 (転出予定): still listed until the 転入通知 closes it
    REMOVED = "removed"  # 消除: kept for ever with its history

    @property
    def label(self) -> str:
        return {"active": "記載", "moving_out": "転出予定", "removed": "消除"}[self.value]


class ChangeReason(enum.StrEnum):
    """異動事由. The values travel in messages and stay stable."""

    BIRTH = "birth"  # 出生
    MOVE_IN = "move_in"  # 転入
    SPECIAL_MOVE_IN = "special_move_in"  # 転入 (転入届の特例)
    MOVE_OUT = "move_out"  # 転出
    MOVE_ABROAD = "move_abroad"  # 国外転出
    MOVE_OUT_CONFIRMED = "move_out_confirmed"  # 転入通知受理による消除
    RELOCATION = "relocation"  # 転居
    DEATH = "death"  # 死亡
    NAME_CHANGE = "name_change"  # 氏名変更
    CORRECTION = "correction"  # 職権修正
    CODE_CHANGE = "code_change"  # 住民票コード変更
    HEAD_CHANGE = "head_change"  # 世帯主変更 (the new head's 続柄; not 本人確認情報)
    INITIAL = "initial"  # 初期登録 (seeded population)

    @property
    def label(self) -> str:
        return REASON_LABELS[self]


REASON_LABELS = {
    ChangeReason.BIRTH: "出生",
    ChangeReason.MOVE_IN: "転入",
    ChangeReason.SPECIAL_MOVE_IN: "転入(特例)",
    ChangeReason.MOVE_OUT: "転出",
    ChangeReason.MOVE_ABROAD: "国外転出",
    ChangeReason.MOVE_OUT_CONFIRMED: "転出確定(転入通知)",
    ChangeReason.RELOCATION: "転居",
    ChangeReason.DEATH: "死亡",
    ChangeReason.NAME_CHANGE: "氏名変更",
    ChangeReason.CORRECTION: "職権修正",
    ChangeReason.CODE_CHANGE: "住民票コード変更",
    ChangeReason.HEAD_CHANGE: "世帯主変更",
    ChangeReason.INITIAL: "初期登録",
}

# Reasons whose record changes the 本人確認情報 sent to the prefecture (住基法 §30の6).
NOTIFIED_REASONS = frozenset(ChangeReason) - {ChangeReason.MOVE_OUT_CONFIRMED, ChangeReason.HEAD_CHANGE}

ABROAD = "国外"

_KATAKANA = re.compile(r"^[\u30A1-\u30FA\u30FC\u30FD\u30FE\u3000 ・]+$")


def normalise_text(value: str) -> str:
    """NFKC folds half-width katakana and full-width ASCII; surrounding blanks go."""
    return unicodedata.normalize("NFKC", value).strip()


def check_name(field: str, value: str, *, required: bool = True) -> str:
    value = normalise_text(value or "")
    if not value:
        if required:
            raise InvalidInput(field, "must not be empty", f"{field} must not be empty")
        return ""
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput(
            field, f"at most {MAX_NAME_LENGTH} characters", f"{field} is longer than {MAX_NAME_LENGTH}"
        )
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise InvalidInput(field, "no control characters")
    return value


MAX_ADDRESS_LENGTH = 200


def check_text(field: str, value: str | None, *, max_length: int, required: bool = False) -> str | None:
    """Free text such as an address or a 本籍: trimmed, bounded, no control characters."""
    value = normalise_text(value or "")
    if not value:
        if required:
            raise InvalidInput(field, "must not be empty", f"{field} must not be empty")
        return None
    if len(value) > max_length:
        raise InvalidInput(field, f"at most {max_length} characters", f"{field} is longer than {max_length}")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise InvalidInput(field, "no control characters")
    return value


def check_kana(field: str, value: str, *, required: bool = True) -> str:
    """振り仮名 on the 住民票 is katakana (the 2025 rule); hiragana input is refused, not converted,
    so a clerk's slip is seen rather than silently fixed."""
    value = check_name(field, value, required=required)
    if value and not _KATAKANA.match(value):
        raise InvalidInput(field, "must be katakana", f"{field} must be katakana: {value!r}")
    return value


def check_past_date(
    field: str, value: dt.date, today: dt.date, *, earliest: dt.date | None = None
) -> dt.date:
    if value > today:
        raise InvalidInput(field, "must not be in the future", f"{field} {value} is in the future")
    if earliest and value < earliest:
        raise InvalidInput(field, f"must not be before {earliest}")
    return value


def parse_date(field: str, value: str | dt.date) -> dt.date:
    """ISO dates only; 2月30日 and friends are refused with the field named."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(normalise_text(value))
    except (TypeError, ValueError):
        raise InvalidInput(
            field, "must be a real date (YYYY-MM-DD)", f"{field} is not a real date: {value!r}"
        ) from None


def check_banchi(value: str) -> str:
    value = normalise_text(value or "")
    if not value:
        raise InvalidInput("番地", "must not be empty")
    if len(value) > MAX_BANCHI_LENGTH:
        raise InvalidInput("番地", f"at most {MAX_BANCHI_LENGTH} characters")
    return value


@dataclass(frozen=True)
class PersonName:
    family: str
    given: str
    family_kana: str
    given_kana: str

    @classmethod
    def checked(cls, family: str, given: str, family_kana: str, given_kana: str) -> PersonName:
        return cls(
            check_name("氏", family),
            check_name("名", given, required=False),  # some foreign residents have one name only
            check_kana("氏の振り仮名", family_kana),
            check_kana("名の振り仮名", given_kana, required=False),
        )

    @property
    def full(self) -> str:
        return f"{self.family}\u3000{self.given}" if self.given else self.family

    @property
    def full_kana(self) -> str:
        return f"{self.family_kana}\u3000{self.given_kana}" if self.given_kana else self.family_kana


@dataclass(frozen=True)
class Address:
    """住所 = a town (町字) of the master + 番地; ``text`` is the full printed form."""

    lg_code: str
    town_id: str
    banchi: str
    text: str
    postal_code: str = ""


@dataclass(frozen=True)
class ResidentView:
    """A 住民票 as shown to staff and put into messages (a snapshot after a change)."""

    id: int
    lg_code: str
    resident_code: str
    my_number: str
    name: PersonName
    former_surname: str | None
    former_surname_kana: str | None
    alias: str | None
    nationality: str
    birth_date: dt.date
    sex: Sex
    household_id: int
    household_no: str
    is_head: bool
    relationship: str
    address: Address
    honseki: str | None
    honseki_lg_code: str | None
    resident_since: dt.date
    address_since: dt.date
    notified_on: dt.date
    previous_address: str | None
    status: Status
    last_reason: ChangeReason
    last_change_date: dt.date
    version: int
    removed_on: dt.date | None
    move_destination: str | None

    @property
    def is_foreign(self) -> bool:
        return self.nationality != "JP"


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    reason: ChangeReason
    change_date: dt.date
    notified_on: dt.date
    recorded_at: dt.datetime
    staff: str
    summary: str
    snapshot: dict[str, object]
