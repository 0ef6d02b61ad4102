"""Domain types and pure rules of jlis.bcl: damage grades, disasters, applications, the backup
schedule. Nothing here touches the database, the clock or randomness; callers pass ``now``/``today``.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from jlis.errors import InvalidInput

MAX_NAME_LENGTH = 100
MAX_NOTE_LENGTH = 400


class DamageGrade(enum.StrEnum):
    """住家の被害の程度 (the six grades of a 罹災証明書, facts §11). Values are stored and in the API."""

    TOTAL = "total"  # 全壊
    LARGE_SCALE_HALF = "large_scale_half"  # 大規模半壊
    MEDIUM_SCALE_HALF = "medium_scale_half"  # 中規模半壊
    HALF = "half"  # 半壊
    SEMI_HALF = "semi_half"  # 準半壊
    PARTIAL = "partial"  # 準半壊に至らない (一部損壊)

    @property
    def label(self) -> str:
        return GRADE_LABELS[self]

    @classmethod
    def parse(cls, value: str, field: str = "被害の程度") -> DamageGrade:
        text = (value or "").strip()
        for grade in cls:
            if text in (grade.value, grade.label):
                return grade
        if text == "一部損壊":
            return cls.PARTIAL
        raise InvalidInput(field, f"must be one of {', '.join(g.value for g in cls)}")


GRADE_LABELS = {
    DamageGrade.TOTAL: "全壊",
    DamageGrade.LARGE_SCALE_HALF: "大規模半壊",
    DamageGrade.MEDIUM_SCALE_HALF: "中規模半壊",
    DamageGrade.HALF: "半壊",
    DamageGrade.SEMI_HALF: "準半壊",
    DamageGrade.PARTIAL: "準半壊に至らない(一部損壊)",
}

# 住家の損害割合 (%) from which each grade starts: the Cabinet Office's 災害に係る住家の被害認定基準
# 運用指針 [M]. A rule change is a change of this table only (ordered from the worst grade down).
GRADE_THRESHOLDS: tuple[tuple[int, DamageGrade], ...] = (
    (50, DamageGrade.TOTAL),
    (40, DamageGrade.LARGE_SCALE_HALF),
    (30, DamageGrade.MEDIUM_SCALE_HALF),
    (20, DamageGrade.HALF),
    (10, DamageGrade.SEMI_HALF),
    (0, DamageGrade.PARTIAL),
)


def grade_for_ratio(ratio_percent: float) -> DamageGrade:
    """The grade of a 住家 whose 損害割合 is ``ratio_percent`` (0–100)."""
    if not isinstance(ratio_percent, int | float) or isinstance(ratio_percent, bool):
        raise InvalidInput("損害割合", "must be a number")
    if not 0 <= ratio_percent <= 100:
        raise InvalidInput("損害割合", "must be between 0 and 100")
    for start, grade in GRADE_THRESHOLDS:
        if ratio_percent >= start:
            return grade
    raise AssertionError("GRADE_THRESHOLDS must end at 0")  # pragma: no cover


class SurveyRound(enum.IntEnum):
    """被害認定調査: the first (外観) survey, and the second (内部立入) one a resident may ask for."""

    FIRST = 1  # 第1次調査
    SECOND = 2  # 第2次調査 (再調査)

    @property
    def label(self) -> str:
        return "第1次調査" if self is SurveyRound.FIRST else "第2次調査"

    @classmethod
    def parse(cls, value: int | str, field: str = "調査区分") -> SurveyRound:
        try:
            return cls(int(value))
        except (TypeError, ValueError):
            raise InvalidInput(field, "must be 1 or 2") from None


class DisasterCause(enum.StrEnum):
    EARTHQUAKE = "earthquake"
    TSUNAMI = "tsunami"
    TYPHOON = "typhoon"
    HEAVY_RAIN = "heavy_rain"
    FLOOD = "flood"
    LANDSLIDE = "landslide"
    SNOW = "snow"
    VOLCANO = "volcano"
    FIRE = "fire"
    OTHER = "other"

    @property
    def label(self) -> str:
        return _CAUSE_LABELS[self]

    @classmethod
    def parse(cls, value: str, field: str = "災害の原因") -> DisasterCause:
        text = (value or "").strip()
        for cause in cls:
            if text in (cause.value, cause.label):
                return cause
        raise InvalidInput(field, f"must be one of {', '.join(c.value for c in cls)}")


_CAUSE_LABELS = {
    DisasterCause.EARTHQUAKE: "地震",
    DisasterCause.TSUNAMI: "津波",
    DisasterCause.TYPHOON: "台風",
    DisasterCause.HEAVY_RAIN: "豪雨",
    DisasterCause.FLOOD: "洪水",
    DisasterCause.LANDSLIDE: "土砂災害",
    DisasterCause.SNOW: "雪害",
    DisasterCause.VOLCANO: "噴火",
    DisasterCause.FIRE: "火災",
    DisasterCause.OTHER: "その他",
}


class ApplicationStatus(enum.StrEnum):
    RECEIVED = "received"  # 受付
    APPROVED = "approved"  # 交付決定 (the certificate can be issued at the kiosk and the counter)
    REJECTED = "rejected"  # 却下

    @property
    def label(self) -> str:
        return {"received": "受付", "approved": "交付決定", "rejected": "却下"}[self.value]


class Channel(enum.StrEnum):
    ONLINE = "online"  # マイナポータル (a resident authenticated by card)
    COUNTER = "counter"  # 窓口 (staff)


# ------------------------------------------------------------------------------------ disasters


@dataclass(frozen=True)
class AreaPart:
    """A part of a disaster's area: a whole municipality (``town_ids`` empty) or some of its 町字."""

    lg_code: str
    town_ids: tuple[str, ...] = ()

    def covers(self, lg_code: str, town_id: str) -> bool:
        return lg_code == self.lg_code and (not self.town_ids or town_id in self.town_ids)


def check_area(parts: Iterable[AreaPart]) -> tuple[AreaPart, ...]:
    """At least one municipality, each at most once, 町字 without repeats and of that municipality."""
    out: list[AreaPart] = []
    seen: set[str] = set()
    for i, part in enumerate(parts):
        if part.lg_code in seen:
            raise InvalidInput(f"area[{i}].lg_code", "each municipality at most once")
        seen.add(part.lg_code)
        if len(set(part.town_ids)) != len(part.town_ids):
            raise InvalidInput(f"area[{i}].town_ids", "each town at most once")
        for town in part.town_ids:
            if not town.startswith(part.lg_code):
                raise InvalidInput(f"area[{i}].town_ids", "must be towns of that municipality")
        out.append(AreaPart(part.lg_code, tuple(sorted(part.town_ids))))
    if not out:
        raise InvalidInput("area", "must name at least one municipality")
    return tuple(out)


def check_text(field: str, value: str | None, *, max_length: int, required: bool = True) -> str:
    value = unicodedata.normalize("NFKC", value or "").strip()
    if not value:
        if required:
            raise InvalidInput(field, "must not be empty")
        return ""
    if len(value) > max_length:
        raise InvalidInput(field, f"at most {max_length} characters")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise InvalidInput(field, "no control characters")
    return value


def check_occurred_on(value: dt.date, today: dt.date) -> dt.date:
    if value > today:
        raise InvalidInput("発生日", "must not be in the future")
    if value < today - dt.timedelta(days=365 * 5):
        raise InvalidInput("発生日", "must be within the last five years")
    return value


def was_resident_on(*, status: str, address_since: dt.date, removed_on: dt.date | None, day: dt.date) -> bool:
    """Did a register row describe where the person lived on ``day``? Moved in at that address on or
    before the day, and not removed before it (a person who died in the disaster or moved away
    afterwards is still a victim of it)."""
    if address_since > day:
        return False
    return status != "removed" or (removed_on is not None and removed_on >= day)


# ------------------------------------------------------------------------------------ identifiers

_DISASTER_ID = re.compile(r"^D\d{8}-\d{2}$")


def disaster_id(occurred_on: dt.date, number: int) -> str:
    """``D20261120-01``: the date it happened and the number of that day's declaration."""
    if not 1 <= number <= 99:
        raise InvalidInput("災害番号", "at most 99 disasters a day")
    return f"D{occurred_on:%Y%m%d}-{number:02d}"


def parse_disaster_id(value: str, field: str = "災害ID") -> str:
    text = (value or "").strip()
    if not _DISASTER_ID.match(text):
        raise InvalidInput(field, "must look like D20261120-01")
    return text


def application_id(disaster: str, number: int) -> str:
    """受付番号 of a 罹災証明書 application: the disaster and a running number."""
    return f"{disaster}-{number:06d}"


def normalise_serial(value: str, field: str = "証明書シリアル番号") -> str:
    """A certificate serial as jlis.jpki stores it: lower-case hex, no leading zeros (``0x`` and
    blanks and colons tolerated on input)."""
    text = (value or "").strip().lower().replace(":", "").replace(" ", "")
    text = text.removeprefix("0x")
    if not text or len(text) > 40 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidInput(field, "must be hexadecimal, at most 40 digits")
    return text.lstrip("0") or "0"


def jdate(value: dt.date) -> str:
    """2026-11-20 → 2026年11月20日 (the form printed on certificates)."""
    return f"{value.year}年{value.month}月{value.day}日"


# ------------------------------------------------------------------------------------ schedule


@dataclass(frozen=True)
class Schedule:
    """A municipality's backup schedule: every ``interval`` from ``next_due``, keeping ``keep`` backups."""

    lg_code: str
    interval: dt.timedelta
    next_due: dt.datetime
    keep: int

    def due(self, now: dt.datetime) -> bool:
        return now >= self.next_due

    def after_run(self, now: dt.datetime) -> dt.datetime:
        """The next due time after a run at ``now``: the next slot on the grid, never in the past, so
        a scheduler that was down for a day takes one backup, not a day's worth."""
        due = self.next_due
        if now < due:
            return due
        missed = (now - due) // self.interval
        return due + (missed + 1) * self.interval


MIN_INTERVAL = dt.timedelta(minutes=5)
MAX_KEEP = 1000


def check_schedule(interval: dt.timedelta, keep: int) -> None:
    if interval < MIN_INTERVAL:
        raise InvalidInput("interval", f"must be at least {int(MIN_INTERVAL.total_seconds() // 60)} minutes")
    if not 1 <= keep <= MAX_KEEP:
        raise InvalidInput("keep", f"must be between 1 and {MAX_KEEP}")
