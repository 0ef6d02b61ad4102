"""Each municipality's kiosk policy as data (``data/policy.toml``): which certificates it offers,
its hours (per type), the year-end closure, the minimum age, whether a 住民票 may carry the 個人番号,
and the longest name and address its layout holds. Checked at load; pure values afterwards."""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jlis.codes import LgCode
from jlis.errors import InvalidInput
from jlis.kiosk.content import CertificateKind
from jlis.masters.datafile import read_toml


class PolicyError(InvalidInput):
    """The policy file breaks a rule: ``field`` names the entry."""


@dataclass(frozen=True)
class Hours:
    open: dt.time
    close: dt.time
    weekdays_only: bool = False


@dataclass(frozen=True)
class IssuerPolicy:
    offered: frozenset[CertificateKind]
    min_age: int
    my_number_allowed: bool
    max_name_length: int
    max_address_length: int
    closed: tuple[tuple[int, int], tuple[int, int]]  # (month, day) from, to; wraps over New Year
    income_from: tuple[int, int]  # (month, day) the new 年度's assessment is certified from
    hours: Mapping[str, Hours]  # "all" and per CertificateKind value

    def hours_for(self, kind: CertificateKind) -> Hours:
        return self.hours.get(kind.value, self.hours["all"])


@dataclass(frozen=True)
class PolicyBook:
    default: IssuerPolicy
    overrides: Mapping[str, IssuerPolicy]

    def for_municipality(self, lg_code: str) -> IssuerPolicy:
        return self.overrides.get(str(LgCode.parse(lg_code)), self.default)


def default_policy_path() -> Path:
    return Path(str(importlib.resources.files("jlis.kiosk.issuer") / "data" / "policy.toml"))


def load_policies(path: Path | None = None) -> PolicyBook:
    if path is None:
        return _default()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _default() -> PolicyBook:
    return _load(default_policy_path())


def _load(path: Path) -> PolicyBook:
    doc = read_toml(path, lambda rule: PolicyError(str(path), rule))
    return parse_policies(doc)


_KEYS = {
    "offered",
    "min_age",
    "my_number_allowed",
    "max_name_length",
    "max_address_length",
    "closed",
    "income_from",
    "hours",
}


def parse_policies(doc: Mapping[str, Any]) -> PolicyBook:
    for key in doc:
        if key not in ("default", "municipality"):
            raise PolicyError("file", f"unknown top-level key {key!r}")
    raw_default = doc.get("default")
    if not isinstance(raw_default, Mapping):
        raise PolicyError("default", "must be a table")
    missing = _KEYS - set(raw_default)
    if missing:
        raise PolicyError("default", f"must set {', '.join(sorted(missing))}")
    if "all" not in raw_default["hours"]:
        raise PolicyError("default.hours", "must set hours.all")
    default = _apply(None, raw_default, "default")
    overrides: dict[str, IssuerPolicy] = {}
    municipalities = doc.get("municipality", {})
    if not isinstance(municipalities, Mapping):
        raise PolicyError("municipality", "must be a table of municipalities")
    for code, raw in municipalities.items():
        entry = f"municipality.{code}"
        try:
            parsed = str(LgCode.parse(str(code)))
        except InvalidInput as exc:
            raise PolicyError(entry, f"must be a valid 地方公共団体コード ({exc.rule})") from exc
        if not isinstance(raw, Mapping):
            raise PolicyError(entry, "must be a table")
        overrides[parsed] = _apply(default, raw, entry)
    return PolicyBook(default, overrides)


def _apply(base: IssuerPolicy | None, raw: Mapping[str, Any], entry: str) -> IssuerPolicy:
    for key in raw:
        if key not in _KEYS:
            raise PolicyError(f"{entry}.{key}", "is not a policy key")
    values: dict[str, Any] = {}
    if "offered" in raw:
        if not isinstance(raw["offered"], list):
            raise PolicyError(f"{entry}.offered", "must be a list of certificate types")
        values["offered"] = frozenset(_kind(k, f"{entry}.offered") for k in raw["offered"])
    for key, low, high in (
        ("min_age", 0, 20),
        ("max_name_length", 4, 100),
        ("max_address_length", 10, 200),
    ):
        if key in raw:
            value = raw[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise PolicyError(f"{entry}.{key}", f"must be an integer from {low} to {high}")
            values[key] = value
    if "my_number_allowed" in raw:
        if not isinstance(raw["my_number_allowed"], bool):
            raise PolicyError(f"{entry}.my_number_allowed", "must be true or false")
        values["my_number_allowed"] = raw["my_number_allowed"]
    if "closed" in raw:
        span = raw["closed"]
        if not isinstance(span, list) or len(span) != 2:
            raise PolicyError(f"{entry}.closed", 'must be ["MM-DD", "MM-DD"]')
        values["closed"] = (_month_day(span[0], f"{entry}.closed"), _month_day(span[1], f"{entry}.closed"))
    if "income_from" in raw:
        values["income_from"] = _month_day(raw["income_from"], f"{entry}.income_from")
    if "hours" in raw:
        if not isinstance(raw["hours"], Mapping):
            raise PolicyError(f"{entry}.hours", "must be a table")
        hours = dict(base.hours) if base else {}
        for name, spec in raw["hours"].items():
            where = f"{entry}.hours.{name}"
            if name != "all":
                _kind(name, where)
            hours[name] = _hours(spec, where)
        values["hours"] = hours
    if base is None:
        return IssuerPolicy(**values)
    return replace(base, **values)


def _kind(value: object, field: str) -> CertificateKind:
    try:
        return CertificateKind(str(value))
    except ValueError:
        raise PolicyError(field, f"unknown certificate type {value!r}") from None


def _month_day(value: object, field: str) -> tuple[int, int]:
    try:
        month, day = (int(p) for p in str(value).split("-"))
        dt.date(2000, month, day)  # a leap year: 02-29 is a real month-day
    except ValueError:
        raise PolicyError(field, f"must be a month-day MM-DD, not {value!r}") from None
    return month, day


def _hours(spec: object, field: str) -> Hours:
    if not isinstance(spec, Mapping) or set(spec) - {"open", "close", "weekdays_only"}:
        raise PolicyError(field, "must be a table of open, close and weekdays_only")
    try:
        opens = dt.time.fromisoformat(str(spec["open"]))
        closes = dt.time.fromisoformat(str(spec["close"]))
    except (KeyError, ValueError):
        raise PolicyError(field, "open and close must be times HH:MM") from None
    if opens >= closes:
        raise PolicyError(field, "must open before it closes")
    weekdays = spec.get("weekdays_only", False)
    if not isinstance(weekdays, bool):
        raise PolicyError(f"{field}.weekdays_only", "must be true or false")
    return Hours(opens, closes, weekdays)
