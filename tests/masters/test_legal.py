"""The 住基法 別表第一 provision table: the packaged data and the load-time checks."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jlis.errors import InvalidInput, JlisError
from jlis.masters import IdentityItem, LegalTableError, ProvisionTable, load_provision_table
from jlis.masters.legal import default_table_path

I = IdentityItem  # noqa: E741


@pytest.fixture(scope="module")
def table() -> ProvisionTable:
    return load_provision_table()


def test_item_values_are_stable() -> None:
    assert [i.value for i in IdentityItem] == [
        "name",
        "name_kana",
        "birth_date",
        "sex",
        "address",
        "resident_code",
        "my_number",
        "change_info",
    ]
    assert I.MY_NUMBER.label == "個人番号"


def test_packaged_table_loads(table: ProvisionTable) -> None:
    assert len(table.rules()) >= 12
    assert len(table.agencies()) >= 10
    agency_ids = {a.id for a in table.agencies()}
    assert {r.recipient_id for r in table.rules()} <= agency_ids
    assert table.agency("nenkin").name == "日本年金機構"
    assert table.meta["as_of"]
    assert load_provision_table() is load_provision_table()  # the default is read once
    assert load_provision_table(default_table_path()) is not table


def test_my_number_goes_only_where_the_number_act_allows(table: ProvisionTable) -> None:
    for rule in table.rules():
        assert (I.MY_NUMBER in rule.items) == bool(rule.my_number_basis), rule
        assert rule.items and rule.basis.startswith("住基法別表第一")
    assert I.MY_NUMBER in (table.allowed_items("nenkin", "national_pension_benefit") or set())
    passport = table.allowed_items("mofa", "passport")
    assert passport is not None and I.MY_NUMBER not in passport and I.NAME in passport
    jpki = table.allowed_items("jlis", "jpki_certificate")
    assert jpki is not None and I.MY_NUMBER not in jpki and I.CHANGE_INFO in jpki
    assert any(I.MY_NUMBER not in r.items for r in table.rules())


def test_unlisted_pairs_are_refused(table: ProvisionTable) -> None:
    assert table.allowed_items("mofa", "national_pension_benefit") is None
    assert table.allowed_items("nobody", "passport") is None
    assert table.rule("mofa", "passport") is not None
    assert table.permits("mofa", "passport", [I.NAME, I.ADDRESS])
    assert not table.permits("mofa", "passport", [I.NAME, I.MY_NUMBER])
    assert not table.permits("mofa", "tax", [I.NAME])


def test_rules_for(table: ProvisionTable) -> None:
    nenkin = table.rules_for("nenkin")
    assert len(nenkin) >= 2 and {r.recipient_id for r in nenkin} == {"nenkin"}
    with pytest.raises(InvalidInput) as exc:
        table.rules_for("nobody")
    assert (exc.value.field, exc.value.rule) == ("提供先", "unknown agency")


@given(st.sampled_from(sorted(tomllib.loads(default_table_path().read_text("utf-8"))["rule"], key=str)))
def test_every_rule_in_the_file_is_answered_as_written(raw: dict[str, object]) -> None:
    table = load_provision_table()
    allowed = table.allowed_items(str(raw["recipient_id"]), str(raw["affair_id"]))
    assert allowed == frozenset(IdentityItem(str(i)) for i in raw["items"])  # type: ignore[attr-defined]


# -- bad files ---------------------------------------------------------------------------------

AGENCY = '[[agency]]\nid = "nenkin"\nname = "日本年金機構"\n'
RULE = (
    '[[rule]]\nrecipient_id = "nenkin"\naffair_id = "pension"\naffair_name = "年金給付に関する事務"\n'
    'items = ["name", "address"]\nbasis = "住基法別表第一 第一項"\n'
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "table.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_good_file(tmp_path: Path) -> None:
    table = load_provision_table(write(tmp_path, AGENCY + RULE))
    assert table.allowed_items("nenkin", "pension") == {I.NAME, I.ADDRESS}
    assert table.source.endswith("table.toml")


def with_rule(old: str, new: str) -> str:
    return AGENCY + RULE.replace(old, new)


R0 = "rule[0] nenkin/pension"
ITEMS = '["name", "address"]'


@pytest.mark.parametrize(
    ("text", "entry", "rule"),
    [
        (with_rule('"address"', '"adress"'), R0, "unknown item 'adress'"),
        (AGENCY + RULE + RULE, "rule[1] nenkin/pension", "duplicate (recipient_id, affair_id)"),
        (with_rule(ITEMS, "[]"), R0, "items must not be empty"),
        (with_rule('"nenkin"', '"gaimu"'), "rule[0] gaimu/pension", "unknown recipient 'gaimu'"),
        (with_rule('basis = "住基法別表第一 第一項"\n', ""), "rule[0]", "missing field 'basis'"),
        (with_rule('affair_id = "pension"\n', ""), "rule[0]", "missing field 'affair_id'"),
        (with_rule('affair_name = "年金給付に関する事務"\n', ""), "rule[0]", "missing field 'affair_name'"),
        (with_rule(f"items = {ITEMS}\n", ""), "rule[0]", "missing field 'items'"),
        (with_rule('recipient_id = "nenkin"\n', ""), "rule[0]", "missing field 'recipient_id'"),
        (AGENCY.replace('name = "日本年金機構"\n', "") + RULE, "agency[0]", "missing field 'name'"),
        (with_rule(ITEMS, '["name", "my_number"]'), R0, "needs a my_number_basis"),
        (AGENCY + RULE + 'my_number_basis = "番号法別表"\n', R0, "'my_number' is not an item"),
        (with_rule(ITEMS, '["name", "name"]'), R0, "duplicate item 'name'"),
        (with_rule(ITEMS, '"name"'), R0, "list of item names"),
        (AGENCY + RULE + 'iterms = ["sex"]\n', "rule[0]", "unknown field 'iterms'"),
        (with_rule('basis = "住基法別表第一 第一項"', "basis = 1"), "rule[0]", "'basis' must be"),
        (AGENCY + AGENCY + RULE, "agency[1] 'nenkin'", "duplicate agency id"),
        (AGENCY.replace('"nenkin"', '"Nenkin"') + RULE, "agency[0] 'Nenkin'", "snake_case"),
        (AGENCY, "file", "at least one [[rule]]"),
        (RULE, "file", "at least one [[agency]]"),
        (AGENCY + RULE + "[extra]\nx = 1\n", "file", "unknown top-level key 'extra'"),
        ("agency = 3\n" + RULE, "file", "'agency' must be an array of tables"),
        ("[[agency]\nid = ", "file", "must be valid TOML"),
        ("meta = { as_of = 2025-04-01 }\n" + AGENCY + RULE, "meta", "table of strings"),
    ],
)
def test_bad_files_are_refused_naming_entry_and_rule(
    tmp_path: Path, text: str, entry: str, rule: str
) -> None:
    with pytest.raises(LegalTableError) as exc:
        load_provision_table(write(tmp_path, text))
    err = exc.value
    assert err.entry == entry
    assert rule in err.rule
    assert str(tmp_path / "table.toml") in err.message
    assert isinstance(err, JlisError) and err.to_dict()["rule"] == err.rule


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LegalTableError) as exc:
        load_provision_table(tmp_path / "absent.toml")
    assert exc.value.entry == "file" and "cannot be read" in exc.value.rule
