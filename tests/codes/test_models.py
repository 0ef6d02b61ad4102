"""The domain types: what they accept, what they refuse and with which rule, and exactly which
single-digit errors each check digit catches."""

from __future__ import annotations

import random
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from jlis.codes.generate import (
    random_corporate_number,
    random_lg_code,
    random_my_number,
    random_resident_code,
)
from jlis.codes.models import CodeKind, CorporateNumber, LgCode, MyNumber, ResidentCode, identify
from jlis.errors import InvalidInput

VECTORS = tomllib.loads((Path(__file__).parent / "vectors.toml").read_text(encoding="utf-8"))
TYPES = {
    "my_number": MyNumber,
    "resident_code": ResidentCode,
    "lg_code": LgCode,
    "corporate_number": CorporateNumber,
}
GENERATORS: dict[CodeKind, Callable[[random.Random], str]] = {
    CodeKind.MY_NUMBER: random_my_number,
    CodeKind.RESIDENT_CODE: random_resident_code,
    CodeKind.LG_CODE: random_lg_code,
    CodeKind.CORPORATE_NUMBER: random_corporate_number,
}


# -- parse and the constructor ----------------------------------------------------------------


@pytest.mark.parametrize(("key", "cls"), TYPES.items())
def test_valid_vectors_parse_to_their_type(key: str, cls: type[str]) -> None:
    for value in VECTORS[key]["valid"]:
        parsed = cls.parse(value)  # type: ignore[attr-defined]
        assert type(parsed) is cls
        assert parsed == value
        assert cls(value) == value


@pytest.mark.parametrize(("key", "cls"), TYPES.items())
def test_invalid_vectors_are_refused_for_the_check_digit(key: str, cls: type[str]) -> None:
    for value in VECTORS[key]["invalid"]:
        with pytest.raises(InvalidInput) as info:
            cls.parse(value)  # type: ignore[attr-defined]
        assert info.value.rule == "check digit does not match"


def test_check_digit_message_names_field_and_expected_digit() -> None:
    with pytest.raises(InvalidInput) as info:
        MyNumber.parse("123456789019")
    assert info.value.field == "個人番号"
    assert info.value.message == "個人番号 check digit does not match (expected 8)"
    assert info.value.to_dict()["rule"] == "check digit does not match"


def test_corporate_number_names_its_leading_check_digit() -> None:
    with pytest.raises(InvalidInput, match=r"法人番号 check digit does not match \(expected 1\)"):
        CorporateNumber.parse("2180301018771")


def test_parse_accepts_what_counter_staff_type() -> None:
    assert MyNumber.parse("  123456789018\n") == "123456789018"
    assert MyNumber.parse("\u3000１２３４５６７８９０１８\u3000") == "123456789018"  # IME: full-width
    assert type(ResidentCode.parse("２４７２７０５９６０８")) is ResidentCode


def test_constructor_takes_only_the_exact_form() -> None:
    with pytest.raises(InvalidInput) as info:
        MyNumber(" 123456789018")
    assert info.value.rule == "must contain only digits"
    with pytest.raises(InvalidInput):
        MyNumber("１２３４５６７８９０１８")


@pytest.mark.parametrize(
    ("value", "rule", "message"),
    [
        (
            "1234-5678-9018",
            "must contain only digits",
            "個人番号 must contain only digits (found '-' at position 5)",
        ),
        (
            "1234 5678 9018",
            "must contain only digits",
            "個人番号 must contain only digits (found ' ' at position 5)",
        ),
        ("12345678901", "must be 12 digits", "個人番号 must be 12 digits (got 11)"),
        ("", "must be 12 digits", "個人番号 must be 12 digits (got 0)"),
        ("١٢٣٤٥٦٧٨٩٠١٨", "must contain only digits", None),  # Unicode digits other than full-width
        ("12345678901８x", "must contain only digits", None),
    ],
)
def test_my_number_rules(value: str, rule: str, message: str | None) -> None:
    with pytest.raises(InvalidInput) as info:
        MyNumber.parse(value)
    assert info.value.rule == rule
    if message is not None:
        assert info.value.message == message


def test_field_name_can_be_given_by_the_caller() -> None:
    with pytest.raises(InvalidInput) as info:
        ResidentCode.parse("123", field="世帯主の住民票コード")
    assert info.value.field == "世帯主の住民票コード"
    assert info.value.rule == "must be 11 digits"


def test_lg_code_prefecture_part() -> None:
    assert LgCode.parse("131016").pref_code == "13"
    assert LgCode("011002").pref_code == "01"
    for value in ("001007", "481000", "991014"):  # check digits right, prefecture not 01-47
        with pytest.raises(InvalidInput) as info:
            LgCode.parse(value)
        assert info.value.rule == "prefecture part must be 01-47"


def test_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        MyNumber.parse(123456789018)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LgCode(131016)  # type: ignore[arg-type]


def test_kinds() -> None:
    assert [(k.value, k.label, k.length) for k in CodeKind] == [
        ("my-number", "個人番号", 12),
        ("resident-code", "住民票コード", 11),
        ("lg-code", "地方公共団体コード", 6),
        ("corporate-number", "法人番号", 13),
    ]
    assert MyNumber.kind is CodeKind.MY_NUMBER


# -- identify ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("123456789018", CodeKind.MY_NUMBER),
        ("24727059608", CodeKind.RESIDENT_CODE),
        ("131016", CodeKind.LG_CODE),
        ("1180301018771", CodeKind.CORPORATE_NUMBER),
        (" ７００００１２０５０００２ ", CodeKind.CORPORATE_NUMBER),
    ],
)
def test_identify_valid(value: str, kind: CodeKind) -> None:
    result = identify(value)
    assert (result.kind, result.valid, result.rule, result.reason) == (kind, True, None, None)


def test_identify_invalid_gives_kind_and_reason() -> None:
    result = identify("25208017644")
    assert result.kind is CodeKind.RESIDENT_CODE
    assert not result.valid
    assert result.rule == "check digit does not match"
    assert result.reason == "住民票コード check digit does not match (expected 3)"


def test_identify_unknown_length() -> None:
    result = identify("1234567")
    assert result.kind is None
    assert not result.valid
    assert result.reason is not None and result.reason.startswith("length 7 matches no known number")


def test_identify_guesses_by_length_even_with_bad_characters() -> None:
    result = identify("12345678901x")
    assert (result.kind, result.rule) == (CodeKind.MY_NUMBER, "must contain only digits")


# -- single-digit errors ------------------------------------------------------------------------
#
# The exact property, worked out in docs/codes.md: a change of the check digit itself is always
# caught; a change of a body digit moves the weighted sum by w·δ, never 0 mod 11 (11 is prime,
# 1 <= w <= 7, 1 <= |δ| <= 9), so it escapes only where two remainders share a check digit:
# {0, 1} for 個人番号/住民票コード, {0, 10} for 地方公共団体コード. The mod-9 法人番号 sum moves by
# w·δ with w in {1, 2}, which is 0 mod 9 exactly when δ = ±9: a 0 <-> 9 swap.

WEIGHTS = {
    CodeKind.MY_NUMBER: (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2),  # facts §1.1, left to right
    CodeKind.RESIDENT_CODE: (5, 4, 3, 2, 7, 6, 5, 4, 3, 2),
    CodeKind.LG_CODE: (6, 5, 4, 3, 2),
}


def remainder(kind: CodeKind, number: str) -> int:
    weights = WEIGHTS[kind]
    return sum(int(d) * w for d, w in zip(number, weights, strict=False)) % 11


def escapes(kind: CodeKind, valid: str, position: int, digit: str) -> bool:
    """Whether the check digit lets ``valid`` with ``digit`` at ``position`` through."""
    changed = valid[:position] + digit + valid[position + 1 :]
    if kind is CodeKind.CORPORATE_NUMBER:
        return position != 0 and abs(int(valid[position]) - int(digit)) == 9
    if position == kind.length - 1:
        return False
    pair = {remainder(kind, valid), remainder(kind, changed)}
    if kind is CodeKind.LG_CODE:
        return pair == {0, 10} and 1 <= int(changed[:2]) <= 47
    return pair == {0, 1}


def single_digit_changes(number: str) -> list[tuple[int, str]]:
    return [(p, d) for p in range(len(number)) for d in "0123456789" if d != number[p]]


@st.composite
def valid_and_change(draw: st.DrawFn) -> tuple[CodeKind, str, int, str]:
    kind = draw(st.sampled_from(list(CodeKind)))
    number = GENERATORS[kind](draw(st.randoms(use_true_random=False)))
    position = draw(st.integers(0, kind.length - 1))
    digit = draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    return kind, number, position, digit


@given(valid_and_change())
@example((CodeKind.MY_NUMBER, "123456789000", 1, "4"))
@example((CodeKind.RESIDENT_CODE, "12345678040", 1, "5"))
@example((CodeKind.LG_CODE, "011011", 1, "3"))
@example((CodeKind.CORPORATE_NUMBER, "1180301018771", 3, "9"))
def test_single_digit_change_is_caught_exactly_unless_it_escapes(
    case: tuple[CodeKind, str, int, str],
) -> None:
    kind, number, position, digit = case
    changed = number[:position] + digit + number[position + 1 :]
    result = identify(changed)
    assert result.kind is kind
    assert result.valid is escapes(kind, number, position, digit)


@given(valid_and_change())
def test_single_digit_change_is_always_caught_outside_the_weak_cases(
    case: tuple[CodeKind, str, int, str],
) -> None:
    # The readable form of the property: the weakness needs a check digit of 0 (mod-11 schemes)
    # or 1 (地方公共団体コード), or a 0 <-> 9 swap (法人番号).
    kind, number, position, digit = case
    weak = {
        CodeKind.MY_NUMBER: number[-1] == "0",
        CodeKind.RESIDENT_CODE: number[-1] == "0",
        CodeKind.LG_CODE: number[-1] == "1",
        CodeKind.CORPORATE_NUMBER: {number[position], digit} == {"0", "9"},
    }[kind]
    if not weak:
        assert not identify(number[:position] + digit + number[position + 1 :]).valid


@pytest.mark.parametrize("key", TYPES)
def test_every_single_digit_change_of_the_vectors(key: str) -> None:
    kind = TYPES[key].kind
    for number in VECTORS[key]["valid"]:
        for position, digit in single_digit_changes(number):
            changed = number[:position] + digit + number[position + 1 :]
            assert identify(changed).valid is escapes(kind, number, position, digit), changed


@pytest.mark.parametrize("key", TYPES)
def test_documented_escapes_are_real(key: str) -> None:
    cls = TYPES[key]
    for valid, also_valid in VECTORS["escapes"][key]:
        assert sum(a != b for a, b in zip(valid, also_valid, strict=True)) == 1
        assert cls.parse(valid) and cls.parse(also_valid)  # type: ignore[attr-defined]
