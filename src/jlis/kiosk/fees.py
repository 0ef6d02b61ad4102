"""Fees of コンビニ交付 per municipality and certificate type, as data (``data/fees.toml``).

A fee change is a data change: the file is checked when it is loaded (unknown types, negative or
non-integer amounts, malformed 地方公共団体コード are refused with the entry named), and the kiosk
asks :meth:`FeeTable.fee` for a municipality's fee of a type times the number of copies.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jlis.codes import LgCode
from jlis.errors import InvalidInput
from jlis.kiosk.content import CertificateKind
from jlis.masters.datafile import read_toml

MAX_FEE = 10_000  # yen per copy; a larger figure is a typo
MAX_COPIES = 10  # copies of one certificate in one request


class FeeTableError(InvalidInput):
    """The fee file breaks a rule: ``field`` names the entry, ``rule`` the rule."""


@dataclass(frozen=True)
class FeeTable:
    default: Mapping[CertificateKind, int]
    overrides: Mapping[str, Mapping[CertificateKind, int]]

    def fee(self, lg_code: str, kind: CertificateKind | str, copies: int = 1) -> int:
        """The fee in yen for ``copies`` copies of ``kind`` at ``lg_code``."""
        kind = _kind(kind, "証明書の種類")
        if not isinstance(copies, int) or isinstance(copies, bool) or not 1 <= copies <= MAX_COPIES:
            raise InvalidInput("部数", f"must be an integer from 1 to {MAX_COPIES}")
        code = str(LgCode.parse(lg_code))
        per_copy = self.overrides.get(code, {}).get(kind, self.default.get(kind))
        if per_copy is None:
            raise InvalidInput("証明書の種類", f"has no fee at {code}")
        return per_copy * copies

    def schedule(self, lg_code: str) -> dict[CertificateKind, int]:
        """Every type's fee per copy at ``lg_code`` (the kiosk's price list)."""
        code = str(LgCode.parse(lg_code))
        merged = dict(self.default)
        merged.update(self.overrides.get(code, {}))
        return merged


def default_fee_path() -> Path:
    return Path(str(importlib.resources.files("jlis.kiosk") / "data" / "fees.toml"))


def load_fees(path: Path | None = None) -> FeeTable:
    """Load and check a fee file; without ``path`` the packaged one (read once per process)."""
    if path is None:
        return _default()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _default() -> FeeTable:
    return _load(default_fee_path())


def _load(path: Path) -> FeeTable:
    doc = read_toml(path, lambda rule: FeeTableError(str(path), rule))
    return parse_fees(doc)


def parse_fees(doc: Mapping[str, Any]) -> FeeTable:
    for key in doc:
        if key not in ("meta", "default", "municipality"):
            raise FeeTableError("file", f"unknown top-level key {key!r}")
    if not isinstance(doc.get("default"), Mapping) or not doc["default"]:
        raise FeeTableError("default", "must be a non-empty table of fees")
    default = _amounts(doc["default"], "default")
    overrides: dict[str, dict[CertificateKind, int]] = {}
    municipalities = doc.get("municipality", {})
    if not isinstance(municipalities, Mapping):
        raise FeeTableError("municipality", "must be a table of municipalities")
    for code, table in municipalities.items():
        entry = f"municipality.{code}"
        try:
            parsed = str(LgCode.parse(str(code)))
        except InvalidInput as exc:
            raise FeeTableError(entry, f"must be a valid 地方公共団体コード ({exc.rule})") from exc
        if not isinstance(table, Mapping):
            raise FeeTableError(entry, "must be a table of fees")
        overrides[parsed] = _amounts(table, entry)
    return FeeTable(default, overrides)


def _amounts(table: Mapping[str, Any], entry: str) -> dict[CertificateKind, int]:
    out: dict[CertificateKind, int] = {}
    for key, value in table.items():
        kind = _kind(key, f"{entry}.{key}", error=FeeTableError)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_FEE:
            raise FeeTableError(f"{entry}.{key}", f"must be an integer from 0 to {MAX_FEE} (yen)")
        out[kind] = value
    return out


def _kind(value: object, field: str, error: type[InvalidInput] = InvalidInput) -> CertificateKind:
    try:
        return CertificateKind(str(value))
    except ValueError:
        choices = ", ".join(k.value for k in CertificateKind)
        raise error(field, f"must be a certificate type ({choices})") from None
