"""Check digits against the facts file: known answers, worked examples, and an independent
transcription of the formulas as written there."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jlis.codes.checkdigits import (
    CORPORATE_WEIGHTS,
    MYNUMBER_WEIGHTS,
    RESIDENT_CODE_WEIGHTS,
    corporate_number_check_digit,
    lg_code_check_digit,
    mynumber_check_digit,
    resident_code_check_digit,
)

VECTORS = tomllib.loads((Path(__file__).parent / "vectors.toml").read_text(encoding="utf-8"))


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


# -- the formulas as the facts file states them, n counted from the right -----------------------


def facts_mynumber(body11: str) -> int:
    s = sum(int(body11[11 - n]) * (n + 1 if n <= 6 else n - 5) for n in range(1, 12))
    r = s % 11
    return 0 if r <= 1 else 11 - r


def facts_resident_code(body10: str) -> int:
    s = sum(int(body10[10 - n]) * (n + 1 if n <= 6 else n - 5) for n in range(1, 11))
    r = s % 11
    return 0 if r <= 1 else 11 - r


def facts_lg_code(body5: str) -> int:
    s = sum(int(d) * w for d, w in zip(body5, (6, 5, 4, 3, 2), strict=True))
    return (11 - s % 11) % 10


def facts_corporate(body12: str) -> int:
    s = sum(int(body12[12 - n]) * (1 if n % 2 else 2) for n in range(1, 13))
    return 9 - s % 9


# -- known answers ------------------------------------------------------------------------------


def test_worked_examples() -> None:
    assert mynumber_check_digit("12345678901") == 8
    assert resident_code_check_digit("1234567890") == 3


def test_weights_read_left_to_right() -> None:
    assert MYNUMBER_WEIGHTS == (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    assert RESIDENT_CODE_WEIGHTS == (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    assert CORPORATE_WEIGHTS == (2, 1) * 6


@pytest.mark.parametrize("number", VECTORS["my_number"]["valid"])
def test_my_number_vectors_valid(number: str) -> None:
    assert mynumber_check_digit(number[:11]) == int(number[11])


@pytest.mark.parametrize("number", VECTORS["my_number"]["invalid"])
def test_my_number_vectors_invalid(number: str) -> None:
    assert mynumber_check_digit(number[:11]) != int(number[11])


@pytest.mark.parametrize("code", VECTORS["resident_code"]["valid"])
def test_resident_code_vectors_valid(code: str) -> None:
    assert resident_code_check_digit(code[:10]) == int(code[10])


@pytest.mark.parametrize("code", VECTORS["resident_code"]["invalid"])
def test_resident_code_vectors_invalid(code: str) -> None:
    assert resident_code_check_digit(code[:10]) != int(code[10])


@pytest.mark.parametrize("code", VECTORS["lg_code"]["valid"])
def test_lg_code_vectors_valid(code: str) -> None:
    assert lg_code_check_digit(code[:5]) == int(code[5])


@pytest.mark.parametrize("code", VECTORS["lg_code"]["invalid"])
def test_lg_code_vectors_invalid(code: str) -> None:
    assert lg_code_check_digit(code[:5]) != int(code[5])


@pytest.mark.parametrize("number", VECTORS["corporate_number"]["valid"])
def test_corporate_vectors_valid(number: str) -> None:
    assert corporate_number_check_digit(number[1:]) == int(number[0])


@pytest.mark.parametrize("number", VECTORS["corporate_number"]["invalid"])
def test_corporate_vectors_invalid(number: str) -> None:
    assert corporate_number_check_digit(number[1:]) != int(number[0])


def test_lg_code_special_remainders() -> None:
    assert lg_code_check_digit("01101") == 1  # Σ = 5 + 4 + 2 = 11, remainder 0 -> 1
    assert lg_code_check_digit("00006") == 0  # Σ = 12, remainder 1 -> 0
    assert lg_code_check_digit("00005") == 1  # Σ = 10, remainder 10 -> 1, like remainder 0


# -- against the facts formulas, for any body ---------------------------------------------------


@given(digits(11))
def test_my_number_matches_facts_formula(body: str) -> None:
    assert mynumber_check_digit(body) == facts_mynumber(body)


@given(digits(10))
def test_resident_code_matches_facts_formula(body: str) -> None:
    assert resident_code_check_digit(body) == facts_resident_code(body)


@given(digits(5))
def test_lg_code_matches_facts_formula(body: str) -> None:
    assert lg_code_check_digit(body) == facts_lg_code(body)


@given(digits(12))
def test_corporate_matches_facts_formula(body: str) -> None:
    digit = corporate_number_check_digit(body)
    assert digit == facts_corporate(body)
    assert 1 <= digit <= 9  # a leading 0 never occurs


# -- bad bodies are programming errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "body"),
    [
        (mynumber_check_digit, "1234567890"),  # 10 digits
        (mynumber_check_digit, "123456789012"),  # 12 digits
        (mynumber_check_digit, "１２３４５６７８９０１"),  # full-width: the model normalises, not this
        (resident_code_check_digit, "12345678a0"),
        (lg_code_check_digit, "1310"),
        (corporate_number_check_digit, "18030101877 "),
        (corporate_number_check_digit, "٠١٢٣٤٥٦٧٨٩٠١"),  # Arabic-Indic digits pass str.isdigit()
    ],
)
def test_bad_body_is_a_value_error(function: object, body: str) -> None:
    assert callable(function)
    with pytest.raises(ValueError, match="ASCII digits"):
        function(body)
