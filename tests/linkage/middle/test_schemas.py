"""The replica schemas: the packaged file, validation of registrations and of query items, and the
loader's refusals of a bad file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jlis.errors import InvalidInput
from jlis.linkage.middle.schemas import (
    ItemSpec,
    ItemType,
    ReplicaSchemaError,
    load_replica_schemas,
    parse_replica_schemas,
    replica_schema,
)


def minimal(**item: Any) -> dict[str, Any]:
    spec = {"label": "項目", "type": "string", "required": True} | item
    return {"category": {"cat": {"label": "分類", "holders": ["municipality"], "items": {"x": spec}}}}


def test_the_packaged_file_has_the_issue_categories() -> None:
    schemas = load_replica_schemas()
    expected = {
        "juminhyo": "住民票関係情報",
        "local_tax": "地方税関係情報",
        "child_allowance": "児童手当関係情報",
        "nhi": "国民健康保険関係情報",
        "ltc": "介護保険関係情報",
        "pension": "年金給付関係情報",
    }
    for cat, label in expected.items():
        assert schemas[cat].label == label
    assert schemas["pension"].kept_by("nenkin", municipality=False)
    assert not schemas["pension"].kept_by("lg-131016", municipality=True)
    assert schemas["local_tax"].kept_by("lg-131016", municipality=True)
    assert not schemas["local_tax"].kept_by("nenkin", municipality=False)
    # every category has a required item, and every code item its labels
    for schema in schemas.values():
        assert any(spec.required for spec in schema.items.values())
        for spec in schema.items.values():
            if spec.type is ItemType.CODE:
                assert len(spec.choice_labels) == len(spec.choices) > 0


def test_load_returns_a_copy_callers_cannot_spoil() -> None:
    first = load_replica_schemas()
    first.pop("juminhyo")
    assert "juminhyo" in load_replica_schemas()


def test_validate_normalises_a_good_registration() -> None:
    schema = replica_schema("juminhyo")
    stored = schema.validate(
        {
            "name": " 山田\u3000太郎 ",
            "birth_date": dt.date(1980, 4, 1),
            "sex": "male",
            "address": "東京都千代田区千代田1番1号",
            "status": "resident",
            "household_size": 3,
            "name_kana": None,
        }
    )
    assert stored == {
        "name": "山田\u3000太郎",
        "birth_date": "1980-04-01",
        "sex": "male",
        "address": "東京都千代田区千代田1番1号",
        "household_size": 3,
        "status": "resident",
    }
    assert "name_kana" not in stored  # None means absent


@pytest.mark.parametrize(
    ("data", "field", "rule"),
    [
        ({"eligible": True}, "items.children", "is required"),
        (
            {"eligible": True, "children": 1, "bonus": 5},
            "items.bonus",
            "unknown item for category 'child_allowance'",
        ),
        ({"eligible": "yes", "children": 1}, "items.eligible", "must be true or false"),
        ({"eligible": True, "children": True}, "items.children", "must be an integer"),
        ({"eligible": True, "children": -1}, "items.children", "must be at least 0"),
        ({"eligible": True, "children": 1.5}, "items.children", "must be an integer"),
        (
            {"eligible": True, "children": 1, "certified_on": "2026-02-30"},
            "items.certified_on",
            "must be a date (YYYY-MM-DD)",
        ),
        (
            {"eligible": True, "children": 1, "certified_on": dt.datetime(2026, 1, 1, 9, 0)},
            "items.certified_on",
            "must be a date (YYYY-MM-DD), not a date and time",
        ),
        (
            {"eligible": True, "children": 1, "status": "PAYING"},
            "items.status",
            "must be one of paying, suspended, ended",
        ),
    ],
)
def test_validate_names_the_item_and_the_rule(data: dict[str, object], field: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as err:
        replica_schema("child_allowance").validate(data)
    assert (err.value.field, err.value.rule) == (field, rule)


def test_string_limits_and_bounds() -> None:
    nhi = replica_schema("nhi")
    with pytest.raises(InvalidInput, match="at most 8 characters"):
        nhi.validate({"insured": True, "insurer_number": "123456789"})
    with pytest.raises(InvalidInput, match="non-empty string"):
        nhi.validate({"insured": True, "insurer_number": "  "})
    ltc = replica_schema("ltc")
    with pytest.raises(InvalidInput, match="at most 13"):
        ltc.validate({"insured_number": "0000000001", "care_level": "none", "premium_stage": 14})
    with pytest.raises(InvalidInput) as err:
        replica_schema("juminhyo").validate(["name"])  # type: ignore[arg-type]
    assert err.value.field == "items"


def test_check_items() -> None:
    schema = replica_schema("local_tax")
    assert schema.check_items(["tax_year", "total_income"]) == ("tax_year", "total_income")
    for bad, rule in (
        (["tax_year", "my_number"], "unknown item 'my_number' for category 'local_tax'"),
        (["tax_year", "tax_year"], "duplicate item 'tax_year'"),
        ([], "must name at least one item"),
        ("tax_year", "must be a list of item names"),
    ):
        with pytest.raises(InvalidInput) as err:
            schema.check_items(bad)
        assert (err.value.field, err.value.rule) == ("items", rule)


def test_unknown_category() -> None:
    with pytest.raises(InvalidInput) as err:
        replica_schema("passport")
    assert (err.value.field, err.value.rule) == ("category", "unknown category 'passport'")


def test_display() -> None:
    ltc = replica_schema("ltc")
    assert ltc.items["care_level"].display("care3") == "要介護3"
    assert ltc.items["premium_stage"].display(5) == "5"
    assert replica_schema("local_tax").items["total_income"].display(3_500_000) == "3,500,000"
    assert replica_schema("local_tax").items["tax_exempt"].display(True) == "あり"
    assert ltc.items["certified_to"].display(None) == ""


@pytest.mark.parametrize(
    ("doc", "entry", "rule"),
    [
        ({"meta": {}, "rules": []}, "file", "unknown top-level key 'rules'"),
        ({"meta": {}}, "file", "must define at least one [category.<id>]"),
        ({"category": {"Cat": {}}}, "category.Cat", "category id must be snake_case ascii"),
        (
            minimal(type="text"),
            "category.cat.items.x",
            "field 'type' must be one of string, integer, date, boolean, code",
        ),
        (minimal(type="code"), "category.cat.items.x", "a code item needs 'choices', a list of ascii codes"),
        (minimal(type="code", choices=["a", "a"]), "category.cat.items.x", "duplicate choice"),
        (
            minimal(type="code", choices=["a", "b"], labels=["甲"]),
            "category.cat.items.x",
            "'labels' must give one label per choice",
        ),
        (minimal(choices=["a"]), "category.cat.items.x", "'choices' and 'labels' are for code items only"),
        (
            minimal(type="integer", minimum=5, maximum=1),
            "category.cat.items.x",
            "'minimum' must not exceed 'maximum'",
        ),
        (minimal(minimum=1), "category.cat.items.x", "'minimum' and 'maximum' are for integer items only"),
        (
            minimal(max_length=0),
            "category.cat.items.x",
            "'max_length' is a positive limit for string items only",
        ),
        (minimal(required="yes"), "category.cat.items.x", "field 'required' must be true or false"),
        (minimal(required=False), "category.cat", "at least one item must be required"),
        (minimal(colour="red"), "category.cat.items.x", "unknown field 'colour'"),
        (minimal(label=""), "category.cat.items.x", "field 'label' must be a non-empty string"),
    ],
)
def test_a_bad_file_is_refused_with_the_entry_and_rule(doc: dict[str, Any], entry: str, rule: str) -> None:
    with pytest.raises(ReplicaSchemaError) as err:
        parse_replica_schemas(doc, source="t.toml")
    assert (err.value.entry, err.value.rule) == (entry, rule)


def test_bad_holders_and_files(tmp_path: Path) -> None:
    doc = minimal()
    doc["category"]["cat"]["holders"] = []
    with pytest.raises(ReplicaSchemaError, match="holders"):
        parse_replica_schemas(doc)
    doc["category"]["cat"]["holders"] = ["municipality", "municipality"]
    with pytest.raises(ReplicaSchemaError, match="duplicate holder"):
        parse_replica_schemas(doc)
    bad = tmp_path / "bad.toml"
    bad.write_text("[category.x\n", encoding="utf-8")
    with pytest.raises(ReplicaSchemaError, match="must be valid TOML"):
        load_replica_schemas(bad)
    with pytest.raises(ReplicaSchemaError, match="cannot be read"):
        load_replica_schemas(tmp_path / "missing.toml")
    good = tmp_path / "good.toml"
    good.write_text(
        '[category.cat]\nlabel = "分類"\nholders = ["municipality"]\n'
        '[category.cat.items.x]\nlabel = "項目"\ntype = "integer"\nrequired = true\nminimum = 0\n',
        encoding="utf-8",
    )
    loaded = load_replica_schemas(good)
    assert loaded["cat"].items["x"].minimum == 0 and loaded["cat"].items["x"].type is ItemType.INTEGER


def _value(spec: ItemSpec) -> st.SearchStrategy[object]:
    if spec.type is ItemType.STRING:
        text = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=spec.max_length or 40)
        return text
    if spec.type is ItemType.INTEGER:
        return st.integers(spec.minimum if spec.minimum is not None else -(10**9), spec.maximum or 10**9)
    if spec.type is ItemType.DATE:
        return st.one_of(st.dates(), st.dates().map(dt.date.isoformat))
    if spec.type is ItemType.BOOLEAN:
        return st.booleans()
    return st.sampled_from(spec.choices)


@st.composite
def registration(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    schemas = load_replica_schemas()
    category = draw(st.sampled_from(sorted(schemas)))
    data: dict[str, object] = {}
    for name, spec in schemas[category].items.items():
        if spec.required or draw(st.booleans()):
            data[name] = draw(_value(spec))
    return category, data


@settings(max_examples=200, deadline=None)
@given(registration())
def test_any_valid_registration_is_accepted_and_stable(case: tuple[str, dict[str, object]]) -> None:
    category, data = case
    schema = replica_schema(category)
    stored = schema.validate(data)
    assert set(stored) == set(data)
    assert schema.validate(stored) == stored  # the stored form is itself a valid registration
    json.dumps(stored)  # and plain JSON
    for name, value in stored.items():
        assert schema.items[name].display(value) != "" or value == ""
