"""The provision table of 住基法 §30の9 (別表第一): which agency may receive which 本人確認情報 items
for which affair.

The table is data (``data/provision_table.toml``), checked when it is loaded, so a change of the law
is a change of that file and nothing else. Anything not listed is refused: ``allowed_items`` answers
``None`` for an unlisted (recipient, affair) pair.
"""

from __future__ import annotations

import enum
import functools
import importlib.resources
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jlis.errors import InvalidInput, JlisError
from jlis.masters.datafile import read_toml

RECIPIENT_FIELD = "提供先"
AFFAIR_FIELD = "事務"


class IdentityItem(enum.StrEnum):
    """The items of 本人確認情報 (住基法 §30の6). Values are stable: they appear in code, JSON and the
    table file."""

    NAME = "name"
    NAME_KANA = "name_kana"  # 氏名の振り仮名 (on the 住民票 since 2025-05-26)
    BIRTH_DATE = "birth_date"
    SEX = "sex"
    ADDRESS = "address"
    RESIDENT_CODE = "resident_code"
    MY_NUMBER = "my_number"
    CHANGE_INFO = "change_info"  # 異動事由 and 異動年月日

    @property
    def label(self) -> str:
        return _ITEM_LABELS[self]


_ITEM_LABELS = {
    IdentityItem.NAME: "氏名",
    IdentityItem.NAME_KANA: "氏名の振り仮名",
    IdentityItem.BIRTH_DATE: "生年月日",
    IdentityItem.SEX: "性別",
    IdentityItem.ADDRESS: "住所",
    IdentityItem.RESIDENT_CODE: "住民票コード",
    IdentityItem.MY_NUMBER: "個人番号",
    IdentityItem.CHANGE_INFO: "異動情報",
}


class LegalTableError(JlisError):
    """The legal table file is wrong. Raised at load time, so a bad table stops start-up instead of
    silently refusing (or allowing) provisions later."""

    http_status = 500
    kind = "legal_table_error"

    def __init__(self, entry: str, rule: str, path: str = "") -> None:
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{entry}: {rule}", entry=entry, rule=rule, path=path)
        self.entry = entry
        self.rule = rule
        self.path = path


@dataclass(frozen=True, slots=True)
class Agency:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ProvisionRule:
    recipient_id: str
    affair_id: str
    affair_name: str
    items: frozenset[IdentityItem]
    basis: str  # the provision of the 住基法 that allows it
    my_number_basis: str | None = None  # the 番号法 provision; required when items include my_number


class ProvisionTable:
    def __init__(
        self,
        agencies: Iterable[Agency],
        rules: Iterable[ProvisionRule],
        *,
        source: str = "",
        meta: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.meta = dict(meta or {})  # free text from the file's [meta]: title, as_of
        self._agencies = {a.id: a for a in agencies}
        self._rules = tuple(rules)
        self._by_pair = {(r.recipient_id, r.affair_id): r for r in self._rules}

    def agencies(self) -> tuple[Agency, ...]:
        return tuple(self._agencies.values())

    def agency(self, id: str) -> Agency:
        try:
            return self._agencies[id]
        except KeyError:
            raise InvalidInput(RECIPIENT_FIELD, "unknown agency") from None

    def rules(self) -> tuple[ProvisionRule, ...]:
        return self._rules

    def rules_for(self, recipient_id: str) -> tuple[ProvisionRule, ...]:
        self.agency(recipient_id)
        return tuple(r for r in self._rules if r.recipient_id == recipient_id)

    def rule(self, recipient_id: str, affair_id: str) -> ProvisionRule | None:
        return self._by_pair.get((recipient_id, affair_id))

    def allowed_items(self, recipient_id: str, affair_id: str) -> frozenset[IdentityItem] | None:
        """The items the pair may receive, or None when the pair is not listed (refuse it)."""
        rule = self._by_pair.get((recipient_id, affair_id))
        return None if rule is None else rule.items

    def permits(self, recipient_id: str, affair_id: str, items: Iterable[IdentityItem]) -> bool:
        """True only if the pair is listed and every requested item is allowed to it."""
        allowed = self.allowed_items(recipient_id, affair_id)
        return allowed is not None and set(items) <= allowed


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------

_ID = re.compile(r"[a-z][a-z0-9_]*")
_TOP_KEYS = {"meta", "agency", "rule"}
_AGENCY_KEYS = {"id": True, "name": True}  # key -> required
_RULE_KEYS = {
    "recipient_id": True,
    "affair_id": True,
    "affair_name": True,
    "items": True,
    "basis": True,
    "my_number_basis": False,
}


def default_table_path() -> Path:
    return Path(str(importlib.resources.files("jlis.masters") / "data" / "provision_table.toml"))


def load_provision_table(path: Path | None = None) -> ProvisionTable:
    """Load and check a provision table; without ``path``, the packaged one (read once per process)."""
    if path is None:
        return _default_table()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _default_table() -> ProvisionTable:
    return _load(default_table_path())


def _load(path: Path) -> ProvisionTable:
    where = str(path)
    doc = read_toml(path, lambda rule: LegalTableError("file", rule, where))
    return parse_provision_table(doc, source=where)


def parse_provision_table(doc: Mapping[str, Any], *, source: str = "") -> ProvisionTable:
    """Check a parsed TOML document and build the table. Every rule names the entry it rejects."""
    for key in doc:
        if key not in _TOP_KEYS:
            raise LegalTableError("file", f"unknown top-level key {key!r}", source)
    meta = doc.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise LegalTableError("meta", "must be a table of strings", source)

    agencies: dict[str, Agency] = {}
    for i, raw in enumerate(_array_of_tables(doc, "agency", source)):
        entry = f"agency[{i}]"
        values = _fields(raw, _AGENCY_KEYS, entry, source)
        entry = f"agency[{i}] {values['id']!r}"
        _check_id(values["id"], "id", entry, source)
        if values["id"] in agencies:
            raise LegalTableError(entry, "duplicate agency id", source)
        agencies[values["id"]] = Agency(values["id"], values["name"])
    if not agencies:
        raise LegalTableError("file", "must list at least one [[agency]]", source)

    rules: dict[tuple[str, str], ProvisionRule] = {}
    for i, raw in enumerate(_array_of_tables(doc, "rule", source)):
        entry = f"rule[{i}]"
        values = _fields(raw, _RULE_KEYS, entry, source)
        recipient, affair = values["recipient_id"], values["affair_id"]
        entry = f"rule[{i}] {recipient}/{affair}"
        _check_id(affair, "affair_id", entry, source)
        if recipient not in agencies:
            raise LegalTableError(entry, f"unknown recipient {recipient!r} (not an [[agency]] id)", source)
        if (recipient, affair) in rules:
            raise LegalTableError(entry, "duplicate (recipient_id, affair_id)", source)
        items = _items(values["items"], entry, source)
        my_number_basis = values.get("my_number_basis")
        # 個人番号 may go only where the 番号法 allows its use: make the table say where.
        if IdentityItem.MY_NUMBER in items and not my_number_basis:
            raise LegalTableError(entry, "item 'my_number' needs a my_number_basis (番号法)", source)
        if my_number_basis and IdentityItem.MY_NUMBER not in items:
            raise LegalTableError(entry, "my_number_basis given but 'my_number' is not an item", source)
        rules[(recipient, affair)] = ProvisionRule(
            recipient, affair, values["affair_name"], items, values["basis"], my_number_basis
        )
    if not rules:
        raise LegalTableError("file", "must list at least one [[rule]]", source)
    return ProvisionTable(agencies.values(), rules.values(), source=source, meta=meta)


def _array_of_tables(doc: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise LegalTableError("file", f"{key!r} must be an array of tables ([[{key}]])", source)
    return value


def _fields(raw: Mapping[str, Any], spec: Mapping[str, bool], entry: str, source: str) -> dict[str, Any]:
    for key in raw:
        if key not in spec:
            raise LegalTableError(entry, f"unknown field {key!r}", source)
    out: dict[str, Any] = {}
    for key, required in spec.items():
        if key not in raw:
            if required:
                raise LegalTableError(entry, f"missing field {key!r}", source)
            continue
        value = raw[key]
        if key == "items":
            out[key] = value
            continue
        if not isinstance(value, str) or not value.strip():
            raise LegalTableError(entry, f"field {key!r} must be a non-empty string", source)
        out[key] = value.strip()
    return out


def _check_id(value: str, key: str, entry: str, source: str) -> None:
    if not _ID.fullmatch(value):
        raise LegalTableError(entry, f"field {key!r} must be snake_case ascii", source)


def _items(value: Any, entry: str, source: str) -> frozenset[IdentityItem]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LegalTableError(entry, "field 'items' must be a list of item names", source)
    if not value:
        raise LegalTableError(entry, "items must not be empty", source)
    known = {i.value for i in IdentityItem}
    items: set[IdentityItem] = set()
    for name in value:
        if name not in known:
            raise LegalTableError(entry, f"unknown item {name!r} (known: {', '.join(sorted(known))})", source)
        if IdentityItem(name) in items:
            raise LegalTableError(entry, f"duplicate item {name!r}", source)
        items.add(IdentityItem(name))
    return frozenset(items)
