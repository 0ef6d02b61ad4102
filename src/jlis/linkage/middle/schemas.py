"""Replica (副本) schemas: the categories of specific personal information a middle server keeps and the
items of each, as data (``data/replica_schemas.toml``), checked when loaded.

A schema is pure: ``ReplicaSchema.validate`` turns a registration from a business system into the
JSON-ready values stored as a replica (dates as ISO strings), or raises ``InvalidInput`` naming the
item and the rule. ``ReplicaSchema.check_items`` is what a query's item list is checked with.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import importlib.resources
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jlis.errors import InvalidInput, JlisError
from jlis.masters.datafile import read_toml

CATEGORY_FIELD = "category"
ITEMS_FIELD = "items"
MUNICIPALITY_HOLDER = "municipality"  # in ``holders``: every municipality keeps this category


class ItemType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DATE = "date"
    BOOLEAN = "boolean"
    CODE = "code"  # one of ``choices``


@dataclass(frozen=True, slots=True)
class ItemSpec:
    label: str
    type: ItemType
    required: bool = False
    choices: tuple[str, ...] = ()
    choice_labels: tuple[str, ...] = ()  # Japanese labels of ``choices``, same order (or empty)
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None

    def display(self, value: object) -> str:
        """The value as shown to a person (Japanese labels for codes and booleans)."""
        if value is None:
            return ""
        if self.type is ItemType.CODE and self.choice_labels and value in self.choices:
            return self.choice_labels[self.choices.index(str(value))]
        if self.type is ItemType.BOOLEAN:
            return "あり" if value else "なし"
        if self.type is ItemType.INTEGER and isinstance(value, int):
            return f"{value:,}"
        return str(value)

    def normalise(self, name: str, value: object) -> object:
        """The JSON-ready stored form of ``value``; ``InvalidInput(name, rule)`` when it breaks the spec."""
        field_ = f"{ITEMS_FIELD}.{name}"
        if self.type is ItemType.STRING:
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(field_, "must be a non-empty string")
            text = value.strip()
            if self.max_length is not None and len(text) > self.max_length:
                raise InvalidInput(field_, f"must be at most {self.max_length} characters")
            return text
        if self.type is ItemType.INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(field_, "must be an integer")
            if self.minimum is not None and value < self.minimum:
                raise InvalidInput(field_, f"must be at least {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise InvalidInput(field_, f"must be at most {self.maximum}")
            return value
        if self.type is ItemType.DATE:
            if isinstance(value, dt.datetime):
                raise InvalidInput(field_, "must be a date (YYYY-MM-DD), not a date and time")
            if isinstance(value, dt.date):
                return value.isoformat()
            if isinstance(value, str):
                try:
                    return dt.date.fromisoformat(value).isoformat()
                except ValueError:
                    pass
            raise InvalidInput(field_, "must be a date (YYYY-MM-DD)")
        if self.type is ItemType.BOOLEAN:
            if not isinstance(value, bool):
                raise InvalidInput(field_, "must be true or false")
            return value
        # CODE
        if not isinstance(value, str) or value not in self.choices:
            raise InvalidInput(field_, f"must be one of {', '.join(self.choices)}")
        return value


@dataclass(frozen=True, slots=True)
class ReplicaSchema:
    id: str
    label: str
    holders: tuple[str, ...]  # "municipality" and/or member ids
    items: Mapping[str, ItemSpec] = field(default_factory=dict)

    def kept_by(self, member_id: str, *, municipality: bool) -> bool:
        """Whether a member keeps replicas of this category (a municipality, or a listed member id)."""
        return member_id in self.holders or (municipality and MUNICIPALITY_HOLDER in self.holders)

    def check_items(self, items: Iterable[str]) -> tuple[str, ...]:
        """The requested item names, in order, without repeats; refuses an empty list or an unknown item."""
        if isinstance(items, str):
            raise InvalidInput(ITEMS_FIELD, "must be a list of item names")
        out: list[str] = []
        for name in items:
            if not isinstance(name, str) or name not in self.items:
                raise InvalidInput(ITEMS_FIELD, f"unknown item {name!r} for category {self.id!r}")
            if name in out:
                raise InvalidInput(ITEMS_FIELD, f"duplicate item {name!r}")
            out.append(name)
        if not out:
            raise InvalidInput(ITEMS_FIELD, "must name at least one item")
        return tuple(out)

    def validate(self, data: Mapping[str, object]) -> dict[str, object]:
        """Check a whole registration: every key a known item, every required item present, every value
        of its type. Items given as ``None`` are left out (absent). Returns the stored form."""
        if not isinstance(data, Mapping):
            raise InvalidInput(ITEMS_FIELD, "must be a mapping of item name to value")
        for name in data:
            if name not in self.items:
                raise InvalidInput(f"{ITEMS_FIELD}.{name}", f"unknown item for category {self.id!r}")
        out: dict[str, object] = {}
        for name, spec in self.items.items():
            value = data.get(name)
            if value is None:
                if spec.required:
                    raise InvalidInput(f"{ITEMS_FIELD}.{name}", "is required")
                continue
            out[name] = spec.normalise(name, value)
        return out


class ReplicaSchemaError(JlisError):
    """The schema file is wrong. Raised at load time, so a bad file stops start-up."""

    http_status = 500
    kind = "replica_schema_error"

    def __init__(self, entry: str, rule: str, path: str = "") -> None:
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{entry}: {rule}", entry=entry, rule=rule, path=path)
        self.entry = entry
        self.rule = rule
        self.path = path


def replica_schema(category: str, schemas: Mapping[str, ReplicaSchema] | None = None) -> ReplicaSchema:
    """The schema of ``category``; ``InvalidInput('category', ...)`` for an unknown one."""
    table = load_replica_schemas() if schemas is None else schemas
    try:
        return table[category]
    except (KeyError, TypeError):
        raise InvalidInput(CATEGORY_FIELD, f"unknown category {category!r}") from None


# ---------------------------------------------------------------------------------------------
# Loading and validation of the file
# ---------------------------------------------------------------------------------------------

_ID = re.compile(r"[a-z][a-z0-9_]*")
_HOLDER = re.compile(r"[a-z][a-z0-9-]*")
_TOP_KEYS = {"meta", "category"}
_CATEGORY_KEYS = {"label", "holders", "items"}
_ITEM_KEYS = {"label", "type", "required", "choices", "labels", "minimum", "maximum", "max_length"}


def default_schemas_path() -> Path:
    return Path(str(importlib.resources.files("jlis.linkage.middle") / "data" / "replica_schemas.toml"))


def load_replica_schemas(path: Path | None = None) -> dict[str, ReplicaSchema]:
    """Category id → schema, checked; without ``path`` the packaged file (read once per process)."""
    if path is None:
        return dict(_default_schemas())
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _default_schemas() -> dict[str, ReplicaSchema]:
    return _load(default_schemas_path())


def _load(path: Path) -> dict[str, ReplicaSchema]:
    where = str(path)
    doc = read_toml(path, lambda rule: ReplicaSchemaError("file", rule, where))
    return parse_replica_schemas(doc, source=where)


def parse_replica_schemas(doc: Mapping[str, Any], *, source: str = "") -> dict[str, ReplicaSchema]:
    """Check a parsed TOML document and build the schemas; each rule names the entry it rejects."""
    for key in doc:
        if key not in _TOP_KEYS:
            raise ReplicaSchemaError("file", f"unknown top-level key {key!r}", source)
    meta = doc.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ReplicaSchemaError("meta", "must be a table of strings", source)
    categories = doc.get("category", {})
    if not isinstance(categories, dict) or not categories:
        raise ReplicaSchemaError("file", "must define at least one [category.<id>]", source)
    out: dict[str, ReplicaSchema] = {}
    for cat_id, raw in categories.items():
        entry = f"category.{cat_id}"
        if not _ID.fullmatch(cat_id):
            raise ReplicaSchemaError(entry, "category id must be snake_case ascii", source)
        if not isinstance(raw, dict):
            raise ReplicaSchemaError(entry, "must be a table", source)
        for key in raw:
            if key not in _CATEGORY_KEYS:
                raise ReplicaSchemaError(entry, f"unknown field {key!r}", source)
        label = _text(raw.get("label"), "label", entry, source)
        holders = raw.get("holders")
        if (
            not isinstance(holders, list)
            or not holders
            or not all(isinstance(h, str) and _HOLDER.fullmatch(h) for h in holders)
        ):
            raise ReplicaSchemaError(entry, "field 'holders' must be a non-empty list of member ids", source)
        if len(set(holders)) != len(holders):
            raise ReplicaSchemaError(entry, "duplicate holder", source)
        items_raw = raw.get("items")
        if not isinstance(items_raw, dict) or not items_raw:
            raise ReplicaSchemaError(
                entry, "must define at least one item ([category.<id>.items.<name>])", source
            )
        items = {name: _item(name, spec, f"{entry}.items.{name}", source) for name, spec in items_raw.items()}
        if not any(spec.required for spec in items.values()):
            raise ReplicaSchemaError(entry, "at least one item must be required", source)
        out[cat_id] = ReplicaSchema(cat_id, label, tuple(holders), items)
    return out


def _text(value: Any, key: str, entry: str, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ReplicaSchemaError(entry, f"field {key!r} must be a non-empty string", source)
    return value.strip()


def _int_or_none(raw: Mapping[str, Any], key: str, entry: str, source: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReplicaSchemaError(entry, f"field {key!r} must be an integer", source)
    return value


def _item(name: str, raw: Any, entry: str, source: str) -> ItemSpec:
    if not _ID.fullmatch(name):
        raise ReplicaSchemaError(entry, "item name must be snake_case ascii", source)
    if not isinstance(raw, dict):
        raise ReplicaSchemaError(entry, "must be a table", source)
    for key in raw:
        if key not in _ITEM_KEYS:
            raise ReplicaSchemaError(entry, f"unknown field {key!r}", source)
    label = _text(raw.get("label"), "label", entry, source)
    try:
        type_ = ItemType(str(raw.get("type")))
    except ValueError:
        known = ", ".join(t.value for t in ItemType)
        raise ReplicaSchemaError(entry, f"field 'type' must be one of {known}", source) from None
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise ReplicaSchemaError(entry, "field 'required' must be true or false", source)
    choices = raw.get("choices")
    labels = raw.get("labels")
    if type_ is ItemType.CODE:
        if (
            not isinstance(choices, list)
            or not choices
            or not all(isinstance(c, str) and re.fullmatch(r"[a-z0-9_]+", c) for c in choices)
        ):
            raise ReplicaSchemaError(entry, "a code item needs 'choices', a list of ascii codes", source)
        if len(set(choices)) != len(choices):
            raise ReplicaSchemaError(entry, "duplicate choice", source)
        if labels is not None and (
            not isinstance(labels, list)
            or len(labels) != len(choices)
            or not all(isinstance(v, str) and v for v in labels)
        ):
            raise ReplicaSchemaError(entry, "'labels' must give one label per choice", source)
    elif choices is not None or labels is not None:
        raise ReplicaSchemaError(entry, "'choices' and 'labels' are for code items only", source)
    minimum = _int_or_none(raw, "minimum", entry, source)
    maximum = _int_or_none(raw, "maximum", entry, source)
    if (minimum is not None or maximum is not None) and type_ is not ItemType.INTEGER:
        raise ReplicaSchemaError(entry, "'minimum' and 'maximum' are for integer items only", source)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ReplicaSchemaError(entry, "'minimum' must not exceed 'maximum'", source)
    max_length = _int_or_none(raw, "max_length", entry, source)
    if max_length is not None and (type_ is not ItemType.STRING or max_length < 1):
        raise ReplicaSchemaError(entry, "'max_length' is a positive limit for string items only", source)
    return ItemSpec(
        label=label,
        type=type_,
        required=required,
        choices=tuple(choices or ()),
        choice_labels=tuple(labels or ()),
        minimum=minimum,
        maximum=maximum,
        max_length=max_length,
    )
