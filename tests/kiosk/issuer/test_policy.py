"""The policy file: the packaged one loads, overrides merge per key and per type's hours, and
every malformed entry is refused with the entry named."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.policy import PolicyError, load_policies, parse_policies

BASE: dict[str, Any] = {
    "default": {
        "offered": ["resident", "koseki"],
        "min_age": 15,
        "my_number_allowed": False,
        "max_name_length": 20,
        "max_address_length": 64,
        "closed": ["12-29", "01-03"],
        "income_from": "06-01",
        "hours": {"all": {"open": "06:30", "close": "23:00"}, "koseki": {"open": "09:00", "close": "17:00"}},
    },
    "municipality": {"131016": {"min_age": 0, "hours": {"koseki": {"open": "08:00", "close": "20:00"}}}},
}


def test_packaged_policy() -> None:
    book = load_policies()
    chiyoda = book.for_municipality("131016")
    assert chiyoda.hours_for(CertificateKind.KOSEKI).close == dt.time(23, 0)
    other = book.for_municipality("011002")  # 札幌市: no override, the default
    assert other == book.default
    assert other.hours_for(CertificateKind.RESIDENT).open == dt.time(6, 30)
    assert other.hours_for(CertificateKind.KOSEKI).weekdays_only


def test_override_merges_keys_and_hours() -> None:
    book = parse_policies(BASE)
    p = book.for_municipality("131016")
    assert p.min_age == 0 and p.max_name_length == 20
    assert p.hours_for(CertificateKind.KOSEKI).open == dt.time(8, 0)
    assert p.hours_for(CertificateKind.RESIDENT).open == dt.time(6, 30)  # kept from the default
    assert p.offered == frozenset({CertificateKind.RESIDENT, CertificateKind.KOSEKI})


def _broken(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("default", "offered"), ["passport"], "default.offered"),
        (("default", "min_age"), -1, "default.min_age"),
        (("default", "min_age"), True, "default.min_age"),
        (("default", "closed"), ["12-32", "01-03"], "default.closed"),
        (("default", "income_from"), "June", "default.income_from"),
        (("default", "hours"), {"all": {"open": "23:00", "close": "06:30"}}, "default.hours.all"),
        (("default", "hours"), {"all": {"open": "6:30pm", "close": "23:00"}}, "default.hours.all"),
        (("default", "colour"), "red", "default.colour"),
        (("municipality", "131017"), {}, "municipality.131017"),
        (
            ("municipality", "131016", "hours"),
            {"passport": {"open": "09:00", "close": "17:00"}},
            "municipality.131016.hours.passport",
        ),
        (("extra",), 1, "file"),
    ],
)
def test_malformed_entries_are_named(path: tuple[str, ...], value: Any, field: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policies(_broken(path, value))
    assert info.value.field == field


def test_default_must_be_complete_and_file_must_parse(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    del doc["default"]["min_age"]
    with pytest.raises(PolicyError, match="min_age"):
        parse_policies(doc)
    bad = tmp_path / "policy.toml"
    bad.write_text("[default\n")
    with pytest.raises(PolicyError, match="valid TOML"):
        load_policies(bad)
