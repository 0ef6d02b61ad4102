"""Pure values: request options, the seal-image check, and the 住民税 computation (figures worked
out by hand from the rules in the docstrings)."""

from __future__ import annotations

import struct
import zlib

import pytest

from jlis.errors import InvalidInput
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.models import (
    IssueOptions,
    assess,
    check_request_id,
    check_seal_image,
    non_taxable_limit,
    salary_deduction,
)

from .conftest import png


def test_options_validate_items_and_year() -> None:
    assert IssueOptions().items == ("name", "birth_date", "sex", "address")
    with pytest.raises(InvalidInput) as info:
        IssueOptions(items=("name", "shoe_size"))
    assert info.value.field == "証明事項" and "shoe_size" in info.value.rule
    with pytest.raises(InvalidInput):
        IssueOptions(items=())
    with pytest.raises(InvalidInput):
        IssueOptions(items=("name", "name"))
    with pytest.raises(InvalidInput):
        IssueOptions(fiscal_year=1999)


@pytest.mark.parametrize(
    ("kind", "options", "field"),
    [
        (CertificateKind.SEAL, IssueOptions(household=True), "世帯全員"),
        (CertificateKind.INCOME, IssueOptions(show_my_number=True), "個人番号の記載"),
        (CertificateKind.KOSEKI, IssueOptions(show_honseki=True), "本籍の記載"),
        (CertificateKind.RESIDENT_ITEMS, IssueOptions(show_relationship=True), "続柄の記載"),
        (CertificateKind.RESIDENT, IssueOptions(items=("name",)), "証明事項"),
        (CertificateKind.RESIDENT, IssueOptions(fiscal_year=2026), "年度"),
    ],
)
def test_options_that_do_not_apply_are_refused(
    kind: CertificateKind, options: IssueOptions, field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        options.check_for(kind)
    assert info.value.field == field


def test_options_that_apply_pass() -> None:
    IssueOptions(household=True, show_honseki=True, show_relationship=True).check_for(
        CertificateKind.RESIDENT
    )
    IssueOptions(items=("name",)).check_for(CertificateKind.RESIDENT_ITEMS)
    IssueOptions(fiscal_year=2026).check_for(CertificateKind.INCOME)
    for kind in CertificateKind:
        IssueOptions().check_for(kind)


@pytest.mark.parametrize("value", ["kiosk-req-0001", "a" * 8, "Z9:_.-abc"])
def test_request_id_accepted(value: str) -> None:
    assert check_request_id(value) == value


@pytest.mark.parametrize("value", ["short", "a" * 65, "has space1", "-leading-dash", "日本語の要求番号です"])
def test_request_id_refused(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_request_id(value)
    assert info.value.field == "要求番号"


def test_seal_image_accepted() -> None:
    image = check_seal_image(png(200, 180))
    assert (image.width, image.height) == (200, 180)
    assert len(image.sha256) == 64


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"", "must be a PNG image"),
        (b"GIF89a" + b"\x00" * 100, "signature"),
        (png()[:-6], "truncated"),
        (png()[:40] + bytes([png()[40] ^ 0xFF]) + png()[41:], "CRC"),
        (png(32, 32), "pixels"),
        (png(2000, 100), "pixels"),
        (png(300, 100), "twice as long"),
        (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100, 100, 8, 0, 0, 0, 0))
            + _chunk(b"IEND", b""),
            "IDAT",
        ),
    ],
)
def test_seal_image_refused(data: bytes, rule: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_seal_image(data)
    assert info.value.field == "印影"
    assert rule in info.value.rule


def test_seal_image_size_cap() -> None:
    with pytest.raises(InvalidInput, match="KiB"):
        check_seal_image(png() + b"\x00" * 300_000)


@pytest.mark.parametrize(
    ("salary", "deduction"),
    [(0, 0), (500_000, 500_000), (1_625_000, 550_000), (1_800_000, 620_000), (3_600_000, 1_160_000),
     (6_600_000, 1_760_000), (8_500_000, 1_950_000), (12_000_000, 1_950_000)],
)  # fmt: skip
def test_salary_deduction_table(salary: int, deduction: int) -> None:
    assert salary_deduction(salary) == deduction


def test_assessment_of_a_salary_earner() -> None:
    f = assess(5_000_000, 0, 1)
    # 給与所得 5,000,000 − 1,440,000 = 3,560,000; 控除 430,000 + 330,000 + 750,000 = 1,510,000
    assert f.total_income == 3_560_000
    assert f.deductions == 1_510_000
    assert f.taxable_income == 2_050_000
    assert f.municipal_tax == 123_000 + 3_000
    assert f.prefectural_tax == 82_000 + 1_000
    assert f.total_tax == 209_000
    assert not f.non_taxable


def test_assessment_of_a_low_income_and_a_pensioner() -> None:
    assert assess(1_000_000, 0, 0).non_taxable  # 給与所得 450,000: at the limit
    assert not assess(1_010_000, 0, 0).non_taxable
    low = assess(1_000_000, 0, 0)
    assert (low.municipal_tax, low.prefectural_tax, low.taxable_income) == (0, 0, 0)
    assert non_taxable_limit(2) == 350_000 * 3 + 310_000
    pension = assess(0, 1_200_000, 0)
    assert pension.total_income == 1_200_000 and pension.taxable_income == 770_000


def test_assessment_refuses_negative_figures() -> None:
    with pytest.raises(InvalidInput) as info:
        assess(-1, 0, 0)
    assert info.value.field == "給与収入"
