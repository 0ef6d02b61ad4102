"""Fees as data: the packaged file, per-municipality overrides, copies, and a malformed file."""

from __future__ import annotations

from pathlib import Path

import pytest

from jlis.errors import InvalidInput
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.fees import FeeTableError, load_fees, parse_fees


def test_packaged_fees() -> None:
    fees = load_fees()
    assert fees.fee("131016", CertificateKind.RESIDENT) == 200
    assert fees.fee("131041", "koseki") == 450  # 新宿区 overrides the default 350
    assert fees.fee("131016", CertificateKind.KOSEKI) == 350
    assert fees.fee("011002", CertificateKind.DAMAGE) == 0  # no override: the default
    assert fees.fee("131016", CertificateKind.SEAL, copies=3) == 600
    schedule = fees.schedule("131041")
    assert set(schedule) == set(CertificateKind)
    assert schedule[CertificateKind.KOSEKI] == 450


@pytest.mark.parametrize(("copies", "ok"), [(1, True), (10, True), (0, False), (11, False), (True, False)])
def test_copies(copies: int, ok: bool) -> None:
    fees = load_fees()
    if ok:
        assert fees.fee("131016", "resident", copies=copies) == 200 * copies
    else:
        with pytest.raises(InvalidInput) as info:
            fees.fee("131016", "resident", copies=copies)
        assert info.value.field == "部数"


def test_unknown_kind_and_municipality_code() -> None:
    fees = load_fees()
    with pytest.raises(InvalidInput) as info:
        fees.fee("131016", "passport")
    assert info.value.field == "証明書の種類"
    with pytest.raises(InvalidInput):
        fees.fee("131017", "resident")  # check digit


def test_a_type_without_any_fee() -> None:
    fees = parse_fees({"default": {"resident": 300}})
    with pytest.raises(InvalidInput, match="no fee"):
        fees.fee("131016", "koseki")


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"default": {"resident": -1}}, "default.resident"),
        ({"default": {"resident": 1.5}}, "default.resident"),
        ({"default": {"resident": 20_000}}, "default.resident"),
        ({"default": {"passport": 100}}, "default.passport"),
        ({"default": {}}, "default"),
        (
            {"default": {"resident": 200}, "municipality": {"999999": {"resident": 100}}},
            "municipality.999999",
        ),
        (
            {"default": {"resident": 200}, "municipality": {"131016": {"resident": "free"}}},
            "municipality.131016.resident",
        ),
        ({"default": {"resident": 200}, "surcharge": 1}, "file"),
    ],
)
def test_malformed_fee_files(doc: dict[str, object], field: str) -> None:
    with pytest.raises(FeeTableError) as info:
        parse_fees(doc)
    assert info.value.field == field


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FeeTableError, match="cannot be read"):
        load_fees(tmp_path / "missing.toml")
    path = tmp_path / "fees.toml"
    path.write_text('[default]\nresident = 150\n[municipality."131016"]\nresident = 100\n')
    fees = load_fees(path)
    assert fees.fee("131016", "resident") == 100 and fees.fee("131041", "resident") == 150
