"""The legal exchange table: the packaged data, the rule matching, and the load-time checks against the
replica schemas."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest

from jlis.linkage.middle.schemas import load_replica_schemas
from jlis.masters.exchange_table import (
    MUNICIPALITY,
    RESIDENCE,
    DisclosurePolicy,
    ExchangeTable,
    Refusal,
    default_table_path,
    load_exchange_table,
    parse_exchange_table,
)
from jlis.masters.legal import LegalTableError


@pytest.fixture(scope="module")
def table() -> ExchangeTable:
    return load_exchange_table()


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    with default_table_path().open("rb") as fh:
        return tomllib.load(fh)


def judge(
    table: ExchangeTable,
    requester: str,
    affair: str,
    provider: str,
    category: str,
    items: list[str],
    disclosure: DisclosurePolicy = DisclosurePolicy.IMMEDIATE,
):  # type: ignore[no-untyped-def]
    return table.judge(
        requester=requester,
        requester_municipal=requester.startswith("lg-"),
        affair=affair,
        provider=provider,
        provider_municipal=provider.startswith("lg-"),
        category=category,
        items=items,
        disclosure=disclosure,
    )


def test_the_packaged_table_loads_and_is_checked_against_the_schemas(table: ExchangeTable) -> None:
    assert len(table.rules()) >= 15
    assert load_exchange_table() is table  # read once
    schemas = load_replica_schemas()
    for rule in table.rules():
        assert set(rule.items) <= set(schemas[rule.category].items), rule
        assert DisclosurePolicy.IMMEDIATE in rule.disclosure
    assert table.affair("pension_benefit").name.startswith("国民年金法")
    assert table.category_label("local_tax") == "地方税関係情報"
    assert table.member_name("nenkin") == "日本年金機構"
    assert table.meta["as_of"]


def test_the_portal_may_show_each_category_to_the_person(table: ExchangeTable) -> None:
    portal = {r.category for r in table.rules_for("myna-portal", municipality=False)}
    assert {"juminhyo", "local_tax", "child_allowance", "nhi", "ltc", "pension"} <= portal
    assert all(r.affair == "self_information" for r in table.rules_for("myna-portal", municipality=False))


def test_the_issues_examples_are_lawful(table: ExchangeTable) -> None:
    # 日本年金機構 asks a 市区町村 for 地方税関係情報 for 年金給付.
    assert judge(table, "nenkin", "pension_benefit", "lg-131016", "local_tax", ["total_income"]).allowed
    # One 市区町村 asks another for 児童手当.
    assert judge(table, "lg-131041", "child_allowance", "lg-131016", "child_allowance", ["eligible"]).allowed
    # A municipality asks 日本年金機構 for 年金給付関係情報 for 介護保険.
    assert judge(table, "lg-131041", "ltc", "nenkin", "pension", ["receiving"]).allowed


def test_anything_not_listed_is_refused(table: ExchangeTable) -> None:
    cases = [
        (("nenkin", "no_such_affair", "lg-131016", "local_tax", ["tax_year"]), Refusal.UNKNOWN_AFFAIR),
        (("nenkin", "pension_benefit", "lg-131016", "no_such", ["x"]), Refusal.UNKNOWN_CATEGORY),
        (("nenkin", "pension_benefit", "lg-131016", "child_allowance", ["eligible"]), Refusal.NOT_IN_TABLE),
        (("jasso", "pension_benefit", "lg-131016", "local_tax", ["tax_year"]), Refusal.NOT_IN_TABLE),
        (("nenkin", "pension_benefit", "kyokai", "local_tax", ["tax_year"]), Refusal.NOT_IN_TABLE),
        (("nenkin", "pension_benefit", "lg-131016", "local_tax", ["income_levy"]), Refusal.ITEMS_NOT_ALLOWED),
        (("nenkin", "pension_benefit", "lg-131016", "local_tax", ["my_number"]), Refusal.ITEMS_NOT_ALLOWED),
    ]
    for args, refusal in cases:
        j = judge(table, *args)
        assert not j.allowed and j.refusal is refusal and j.message, args


def test_the_municipality_keyword_needs_a_municipality(table: ExchangeTable) -> None:
    # "municipality" as requester admits municipalities only, never an agency of the same affair.
    assert not judge(table, "kyokai", "child_allowance", "lg-131016", "child_allowance", ["eligible"]).allowed
    assert not judge(table, "lg-131016", "child_allowance", "nenkin", "child_allowance", ["eligible"]).allowed


def test_withholding_only_where_listed(table: ExchangeTable) -> None:
    j = judge(
        table,
        "lg-131016",
        "public_assistance",
        "lg-131041",
        "local_tax",
        ["total_income"],
        DisclosurePolicy.NEVER,
    )
    assert j.allowed
    j = judge(
        table,
        "nenkin",
        "pension_benefit",
        "lg-131016",
        "local_tax",
        ["total_income"],
        DisclosurePolicy.DEFERRED,
    )
    assert j.refusal is Refusal.DISCLOSURE_NOT_ALLOWED


def _break(doc: dict[str, Any], where: str, **change: Any) -> dict[str, Any]:
    broken = copy.deepcopy(doc)
    section, index = where.split(":")
    broken[section][int(index)].update(change)
    return broken


@pytest.mark.parametrize(
    ("where", "change", "needle"),
    [
        ("rule:0", {"category": "horoscope"}, "unknown category"),
        ("rule:0", {"items": ["tax_year", "star_sign"]}, "unknown item 'star_sign'"),
        ("rule:0", {"items": ["tax_year", "tax_year"]}, "duplicate item"),
        ("rule:0", {"items": []}, "non-empty list"),
        ("rule:0", {"provider": "kyokai"}, "keeps no replica"),
        ("rule:0", {"provider": "nobody"}, "unknown provider"),
        ("rule:0", {"requester": "nobody"}, "unknown requester"),
        ("rule:0", {"affair": "unlisted"}, "unknown affair"),
        ("rule:0", {"disclosure": ["never"]}, "must include 'immediate'"),
        ("rule:0", {"disclosure": ["sometimes"]}, "field 'disclosure'"),
        ("rule:0", {"colour": "red"}, "unknown field 'colour'"),
        ("rule:0", {"provider": "nenkin", "category": "pension", "items": ["receiving"]}, "query itself"),
        ("member:0", {"id": "lg-131016"}, "keyword 'municipality'"),
        ("member:0", {"id": "Nenkin"}, "member id"),
        ("affair:0", {"id": "Pension Benefit"}, "snake_case"),
        ("affair:0", {"basis": ""}, "non-empty string"),
    ],
)
def test_a_bad_table_stops_the_load(
    doc: dict[str, Any], where: str, change: dict[str, Any], needle: str
) -> None:
    with pytest.raises(LegalTableError) as info:
        parse_exchange_table(_break(doc, where, **change), load_replica_schemas(), source="t.toml")
    assert needle in str(info.value), str(info.value)


def test_duplicates_and_missing_sections_stop_the_load(doc: dict[str, Any]) -> None:
    schemas = load_replica_schemas()
    dup = copy.deepcopy(doc)
    dup["rule"].append(dict(dup["rule"][0]))
    with pytest.raises(LegalTableError, match="duplicate"):
        parse_exchange_table(dup, schemas)
    for key in ("rule", "affair"):
        empty = copy.deepcopy(doc)
        empty[key] = []
        with pytest.raises(LegalTableError, match=f"at least one \\[\\[{key}\\]\\]"):
            parse_exchange_table(empty, schemas)
    with pytest.raises(LegalTableError, match="unknown top-level"):
        parse_exchange_table({**doc, "extra": 1}, schemas)


def test_keywords_are_what_the_docs_say() -> None:
    assert (MUNICIPALITY, RESIDENCE) == ("municipality", "residence")


def test_a_missing_file_is_a_table_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LegalTableError, match="cannot be read"):
        load_exchange_table(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rule]\n")
    with pytest.raises(LegalTableError, match="valid TOML"):
        load_exchange_table(bad)
