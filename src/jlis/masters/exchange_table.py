"""The legal exchange table of the information provision network (facts §5.3): which requester may ask
which provider, for which affair, for which items of which category of specific personal information.

The table is data (``data/exchange_table.toml``), checked when it is loaded against the replica
schemas of the middle servers (``jlis/linkage/middle/data/replica_schemas.toml``): an unknown category,
an unknown item or a provider that keeps no replica of the category stops the load. Anything not
listed is refused: :meth:`ExchangeTable.judge` answers with the rule that allows a request, or with
the reason it does not. Pure: no database, no clock.
"""

from __future__ import annotations

import enum
import functools
import importlib.resources
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jlis.errors import InvalidInput
from jlis.masters.datafile import read_toml
from jlis.masters.legal import LegalTableError

MUNICIPALITY = "municipality"  # requester or provider: any municipality (an lg-<LgCode> member)
RESIDENCE = "residence"  # provider: the municipality where the person lives
MEMBER_ID_RE = re.compile(r"^(lg-[0-9]{6}|[a-z][a-z0-9-]{1,62}[a-z0-9])$")
_ID = re.compile(r"[a-z][a-z0-9_]*")


class DisclosurePolicy(enum.StrEnum):
    """When the person may see an exchange record in the portal (facts §5.4). Values are stable."""

    IMMEDIATE = "immediate"  # at once
    DEFERRED = "deferred"  # from a date (disclose_after) on
    NEVER = "never"  # withheld (不開示: e.g. for an investigation)

    @property
    def label(self) -> str:
        return {"immediate": "即時開示", "deferred": "開示延期", "never": "不開示"}[self.value]


class Refusal(enum.StrEnum):
    """Why the table refuses a request. Values are stable (records, API, CLI)."""

    UNKNOWN_AFFAIR = "unknown_affair"
    UNKNOWN_CATEGORY = "unknown_category"
    NOT_IN_TABLE = "not_in_table"
    ITEMS_NOT_ALLOWED = "items_not_allowed"
    DISCLOSURE_NOT_ALLOWED = "disclosure_not_allowed"


class CategorySchema(Protocol):
    """What the table needs of a replica schema (jlis.linkage.middle.schemas.ReplicaSchema)."""

    @property
    def label(self) -> str: ...
    @property
    def holders(self) -> tuple[str, ...]: ...
    @property
    def items(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ExchangeMember:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Affair:
    id: str
    name: str
    basis: str


@dataclass(frozen=True, slots=True)
class ExchangeRule:
    requester: str  # a member id or MUNICIPALITY
    affair: str
    provider: str  # a member id, MUNICIPALITY or RESIDENCE
    category: str
    items: tuple[str, ...]  # in the order of the file
    disclosure: frozenset[DisclosurePolicy] = frozenset({DisclosurePolicy.IMMEDIATE})

    def admits_requester(self, member_id: str, *, municipality: bool) -> bool:
        return self.requester == member_id or (self.requester == MUNICIPALITY and municipality)

    def admits_provider(self, member_id: str, *, municipality: bool) -> bool:
        if self.provider in (MUNICIPALITY, RESIDENCE):
            return municipality
        return self.provider == member_id


@dataclass(frozen=True, slots=True)
class Judgement:
    """The table's answer: the rule that allows the request, or the reason and a readable rule."""

    rule: ExchangeRule | None
    refusal: Refusal | None = None
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.rule is not None


class ExchangeTable:
    def __init__(
        self,
        members: Iterable[ExchangeMember],
        affairs: Iterable[Affair],
        rules: Iterable[ExchangeRule],
        categories: Mapping[str, str],
        *,
        source: str = "",
        meta: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.meta = dict(meta or {})
        self._members = {m.id: m for m in members}
        self._affairs = {a.id: a for a in affairs}
        self._rules = tuple(rules)
        self._categories = dict(categories)  # category id -> label
        by_key: dict[tuple[str, str], list[ExchangeRule]] = {}
        for rule in self._rules:
            by_key.setdefault((rule.affair, rule.category), []).append(rule)
        # An exact requester id before the MUNICIPALITY keyword, and an exact provider before a keyword.
        self._by_key = {
            key: tuple(sorted(rs, key=lambda r: (r.requester == MUNICIPALITY, r.provider in _KEYWORDS)))
            for key, rs in by_key.items()
        }

    def members(self) -> tuple[ExchangeMember, ...]:
        return tuple(self._members.values())

    def member_name(self, member_id: str) -> str | None:
        m = self._members.get(member_id)
        return m.name if m else None

    def affairs(self) -> tuple[Affair, ...]:
        return tuple(self._affairs.values())

    def affair(self, affair_id: str) -> Affair:
        try:
            return self._affairs[affair_id]
        except (KeyError, TypeError):
            raise InvalidInput("affair", f"unknown affair {affair_id!r}") from None

    def category_label(self, category: str) -> str | None:
        return self._categories.get(category)

    def rules(self) -> tuple[ExchangeRule, ...]:
        return self._rules

    def rules_for(self, member_id: str, *, municipality: bool) -> tuple[ExchangeRule, ...]:
        """The rules under which ``member_id`` may ask (what a member's staff may choose from)."""
        return tuple(r for r in self._rules if r.admits_requester(member_id, municipality=municipality))

    def judge(
        self,
        *,
        requester: str,
        requester_municipal: bool,
        affair: str,
        provider: str,
        provider_municipal: bool,
        category: str,
        items: Iterable[str],
        disclosure: DisclosurePolicy = DisclosurePolicy.IMMEDIATE,
    ) -> Judgement:
        """Deny by default: the rule admitting (requester, affair, provider, category) whose items
        include every requested item and whose disclosure policies include ``disclosure``."""
        if affair not in self._affairs:
            return Judgement(None, Refusal.UNKNOWN_AFFAIR, f"affair {affair!r} is not in the table")
        if category not in self._categories:
            return Judgement(None, Refusal.UNKNOWN_CATEGORY, f"category {category!r} is not a category")
        wanted = list(items)
        candidates = [
            r
            for r in self._by_key.get((affair, category), ())
            if r.admits_requester(requester, municipality=requester_municipal)
            and r.admits_provider(provider, municipality=provider_municipal)
        ]
        if not candidates:
            return Judgement(
                None,
                Refusal.NOT_IN_TABLE,
                f"({requester}, {affair}, {provider}, {category}) is not in the exchange table",
            )
        outside: list[str] = []
        for rule in candidates:
            allowed = set(rule.items)
            outside = [i for i in wanted if i not in allowed]
            if outside:
                continue
            if disclosure not in rule.disclosure:
                return Judgement(
                    None,
                    Refusal.DISCLOSURE_NOT_ALLOWED,
                    f"disclosure {disclosure.value!r} is not allowed for affair {affair!r}",
                )
            return Judgement(rule)
        return Judgement(
            None,
            Refusal.ITEMS_NOT_ALLOWED,
            f"items {', '.join(outside)} are not allowed for ({requester}, {affair}, {category})",
        )


_KEYWORDS = (MUNICIPALITY, RESIDENCE)


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------

_TOP_KEYS = {"meta", "member", "affair", "rule"}
_MEMBER_KEYS = {"id", "name"}
_AFFAIR_KEYS = {"id", "name", "basis"}
_RULE_KEYS = {"requester", "affair", "provider", "category", "items", "disclosure"}


def default_table_path() -> Path:
    return Path(str(importlib.resources.files("jlis.masters") / "data" / "exchange_table.toml"))


def load_exchange_table(
    path: Path | None = None, *, schemas: Mapping[str, CategorySchema] | None = None
) -> ExchangeTable:
    """Load and check the exchange table against the replica schemas (default: the packaged files;
    the packaged table with the packaged schemas is read once per process)."""
    if path is None and schemas is None:
        return _default_table()
    return _load(Path(path) if path is not None else default_table_path(), _schemas(schemas))


def _schemas(schemas: Mapping[str, CategorySchema] | None) -> Mapping[str, CategorySchema]:
    if schemas is not None:
        return schemas
    from jlis.linkage.middle.schemas import load_replica_schemas

    return load_replica_schemas()


@functools.lru_cache(maxsize=1)
def _default_table() -> ExchangeTable:
    return _load(default_table_path(), _schemas(None))


def _load(path: Path, schemas: Mapping[str, CategorySchema]) -> ExchangeTable:
    where = str(path)
    doc = read_toml(path, lambda rule: LegalTableError("file", rule, where))
    return parse_exchange_table(doc, schemas, source=where)


def parse_exchange_table(
    doc: Mapping[str, Any], schemas: Mapping[str, CategorySchema], *, source: str = ""
) -> ExchangeTable:
    """Check a parsed TOML document against the schemas and build the table. Every rule names the
    entry it rejects."""
    for key in doc:
        if key not in _TOP_KEYS:
            raise LegalTableError("file", f"unknown top-level key {key!r}", source)
    meta = doc.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise LegalTableError("meta", "must be a table of strings", source)

    members: dict[str, ExchangeMember] = {}
    for i, raw in enumerate(_array(doc, "member", source)):
        values = _strings(raw, _MEMBER_KEYS, f"member[{i}]", source)
        entry = f"member[{i}] {values['id']!r}"
        if not MEMBER_ID_RE.match(values["id"]) or values["id"] in _KEYWORDS:
            raise LegalTableError(entry, "field 'id' must be a member id (lower-case ascii, '-')", source)
        if values["id"].startswith("lg-"):
            raise LegalTableError(entry, "municipalities are named by the keyword 'municipality'", source)
        if values["id"] in members:
            raise LegalTableError(entry, "duplicate member id", source)
        members[values["id"]] = ExchangeMember(values["id"], values["name"])

    affairs: dict[str, Affair] = {}
    for i, raw in enumerate(_array(doc, "affair", source)):
        values = _strings(raw, _AFFAIR_KEYS, f"affair[{i}]", source)
        entry = f"affair[{i}] {values['id']!r}"
        if not _ID.fullmatch(values["id"]):
            raise LegalTableError(entry, "field 'id' must be snake_case ascii", source)
        if values["id"] in affairs:
            raise LegalTableError(entry, "duplicate affair id", source)
        affairs[values["id"]] = Affair(values["id"], values["name"], values["basis"])
    if not affairs:
        raise LegalTableError("file", "must list at least one [[affair]]", source)

    rules: dict[tuple[str, str, str, str], ExchangeRule] = {}
    for i, raw in enumerate(_array(doc, "rule", source)):
        rule = _rule(i, raw, members, affairs, schemas, source)
        rule_key = (rule.requester, rule.affair, rule.provider, rule.category)
        if rule_key in rules:
            raise LegalTableError(
                f"rule[{i}] {'/'.join(rule_key)}", "duplicate (requester, affair, provider, category)", source
            )
        rules[rule_key] = rule
    if not rules:
        raise LegalTableError("file", "must list at least one [[rule]]", source)
    categories = {cat: schemas[cat].label for cat in schemas}
    return ExchangeTable(
        members.values(), affairs.values(), rules.values(), categories, source=source, meta=meta
    )


def _rule(
    i: int,
    raw: Mapping[str, Any],
    members: Mapping[str, ExchangeMember],
    affairs: Mapping[str, Affair],
    schemas: Mapping[str, CategorySchema],
    source: str,
) -> ExchangeRule:
    entry = f"rule[{i}]"
    for key in raw:
        if key not in _RULE_KEYS:
            raise LegalTableError(entry, f"unknown field {key!r}", source)
    for key in ("requester", "affair", "provider", "category", "items"):
        if key not in raw:
            raise LegalTableError(entry, f"missing field {key!r}", source)
    for key in ("requester", "affair", "provider", "category"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise LegalTableError(entry, f"field {key!r} must be a non-empty string", source)
    requester, affair, provider, category = (
        raw[k].strip() for k in ("requester", "affair", "provider", "category")
    )
    entry = f"rule[{i}] {requester}/{affair}/{provider}/{category}"
    if requester != MUNICIPALITY and requester not in members:
        raise LegalTableError(entry, f"unknown requester {requester!r} (not a [[member]] id)", source)
    if provider not in _KEYWORDS and provider not in members:
        raise LegalTableError(entry, f"unknown provider {provider!r} (not a [[member]] id)", source)
    if provider == requester and provider != MUNICIPALITY:
        raise LegalTableError(entry, "a member does not query itself through the network", source)
    if affair not in affairs:
        raise LegalTableError(entry, f"unknown affair {affair!r} (not an [[affair]] id)", source)
    schema = schemas.get(category)
    if schema is None:
        raise LegalTableError(entry, f"unknown category {category!r} (not in the replica schemas)", source)
    municipal_provider = provider in _KEYWORDS
    if not (provider in schema.holders or (municipal_provider and MUNICIPALITY in schema.holders)):
        raise LegalTableError(entry, f"provider {provider!r} keeps no replica of {category!r}", source)
    items = raw["items"]
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise LegalTableError(entry, "field 'items' must be a non-empty list of item names", source)
    seen: set[str] = set()
    for name in items:
        if name not in schema.items:
            raise LegalTableError(entry, f"unknown item {name!r} of category {category!r}", source)
        if name in seen:
            raise LegalTableError(entry, f"duplicate item {name!r}", source)
        seen.add(name)
    disclosure_raw = raw.get("disclosure", [DisclosurePolicy.IMMEDIATE.value])
    known = {p.value for p in DisclosurePolicy}
    if (
        not isinstance(disclosure_raw, list)
        or not disclosure_raw
        or not all(isinstance(v, str) and v in known for v in disclosure_raw)
    ):
        raise LegalTableError(
            entry, f"field 'disclosure' must be a non-empty list of {', '.join(sorted(known))}", source
        )
    disclosure = frozenset(DisclosurePolicy(v) for v in disclosure_raw)
    if DisclosurePolicy.IMMEDIATE not in disclosure:
        raise LegalTableError(entry, "field 'disclosure' must include 'immediate'", source)
    return ExchangeRule(requester, affair, provider, category, tuple(items), disclosure)


def _array(doc: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise LegalTableError("file", f"{key!r} must be an array of tables ([[{key}]])", source)
    return value


def _strings(raw: Mapping[str, Any], keys: set[str], entry: str, source: str) -> dict[str, str]:
    for key in raw:
        if key not in keys:
            raise LegalTableError(entry, f"unknown field {key!r}", source)
    out: dict[str, str] = {}
    for key in sorted(keys):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise LegalTableError(entry, f"field {key!r} must be a non-empty string", source)
        out[key] = value.strip()
    return out
