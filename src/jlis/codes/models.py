"""Domain types for the four identifiers. Pure: no I/O, no clock, no randomness.

Each type is a ``str`` subclass that can only hold a valid value: the constructor checks the
exact text (ASCII digits, length, check digit) and :meth:`parse` first normalises what a person
typed (surrounding whitespace, full-width digits). Anything else is refused with
:class:`jlis.errors.InvalidInput` naming the field and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Self

from jlis.codes.checkdigits import (
    corporate_number_check_digit,
    lg_code_check_digit,
    mynumber_check_digit,
    resident_code_check_digit,
)
from jlis.errors import InvalidInput


class CodeKind(StrEnum):
    """The kinds of number this package knows; the value is the CLI spelling."""

    MY_NUMBER = "my-number"
    RESIDENT_CODE = "resident-code"
    LG_CODE = "lg-code"
    CORPORATE_NUMBER = "corporate-number"

    @property
    def label(self) -> str:
        """The Japanese name, used as the field name in errors."""
        return _LABELS[self]

    @property
    def length(self) -> int:
        return _LENGTHS[self]


_LABELS = {
    CodeKind.MY_NUMBER: "個人番号",
    CodeKind.RESIDENT_CODE: "住民票コード",
    CodeKind.LG_CODE: "地方公共団体コード",
    CodeKind.CORPORATE_NUMBER: "法人番号",
}
_LENGTHS = {
    CodeKind.MY_NUMBER: 12,
    CodeKind.RESIDENT_CODE: 11,
    CodeKind.LG_CODE: 6,
    CodeKind.CORPORATE_NUMBER: 13,
}

# Counter staff type with a Japanese IME, which gives full-width digits; nothing else is rewritten.
_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def normalise(value: str) -> str:
    """What :meth:`parse` accepts beyond the exact form: surrounding whitespace (including the
    full-width space) and full-width digits. Inner spaces or hyphens are not removed."""
    return value.strip().translate(_FULL_WIDTH_DIGITS)


class _Number(str):
    kind: ClassVar[CodeKind]
    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        cls._validate(value, cls.kind.label)
        return str.__new__(cls, value)

    @classmethod
    def _trusted(cls, value: str) -> Self:
        # For values this package has just built with a correct check digit (generation,
        # derivation, bulk allocation), where validating again would double the hot-path cost.
        return str.__new__(cls, value)

    @classmethod
    def _parse(cls, value: str, field: str) -> Self:
        if not isinstance(value, str):
            raise TypeError(f"{field} must be given as str, not {type(value).__name__}")
        text = normalise(value)
        cls._validate(text, field)
        return str.__new__(cls, text)

    @classmethod
    def _validate(cls, text: str, field: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"{field} must be given as str, not {type(text).__name__}")
        if not (text.isascii() and text.isdigit()):
            for position, char in enumerate(text, start=1):
                if not ("0" <= char <= "9"):
                    raise InvalidInput(
                        field,
                        "must contain only digits",
                        f"{field} must contain only digits (found {char!r} at position {position})",
                    )
        length = cls.kind.length
        if len(text) != length:
            raise InvalidInput(
                field, f"must be {length} digits", f"{field} must be {length} digits (got {len(text)})"
            )
        cls._validate_parts(text, field)
        expected, actual = cls._check_digits(text)
        if expected != actual:
            raise InvalidInput(
                field,
                "check digit does not match",
                f"{field} check digit does not match (expected {expected})",
            )

    @classmethod
    def _validate_parts(cls, text: str, field: str) -> None:
        """Rules on the structure beyond length and check digit; none by default."""

    @classmethod
    def _check_digits(cls, text: str) -> tuple[int, int]:
        """(expected, actual) check digit of a string of the right length and only digits."""
        raise NotImplementedError


class MyNumber(_Number):
    """個人番号: 11 digits derived from the 住民票コード, then a check digit."""

    kind = CodeKind.MY_NUMBER
    __slots__ = ()

    @classmethod
    def parse(cls, value: str, field: str = "個人番号") -> Self:
        return cls._parse(value, field)

    @classmethod
    def _check_digits(cls, text: str) -> tuple[int, int]:
        return mynumber_check_digit(text[:11]), int(text[11])


class ResidentCode(_Number):
    """住民票コード: 10 random digits, then a check digit."""

    kind = CodeKind.RESIDENT_CODE
    __slots__ = ()

    @classmethod
    def parse(cls, value: str, field: str = "住民票コード") -> Self:
        return cls._parse(value, field)

    @classmethod
    def _check_digits(cls, text: str) -> tuple[int, int]:
        return resident_code_check_digit(text[:10]), int(text[10])


class LgCode(_Number):
    """全国地方公共団体コード: prefecture (2) + municipality (3) + check digit."""

    kind = CodeKind.LG_CODE
    __slots__ = ()

    @classmethod
    def parse(cls, value: str, field: str = "地方公共団体コード") -> Self:
        return cls._parse(value, field)

    @property
    def pref_code(self) -> str:
        """The 都道府県コード, "01" to "47"."""
        return self[:2]

    @classmethod
    def _validate_parts(cls, text: str, field: str) -> None:
        if not 1 <= int(text[:2]) <= 47:
            raise InvalidInput(
                field,
                "prefecture part must be 01-47",
                f"{field} prefecture part must be 01-47 (got {text[:2]})",
            )

    @classmethod
    def _check_digits(cls, text: str) -> tuple[int, int]:
        return lg_code_check_digit(text[:5]), int(text[5])


class CorporateNumber(_Number):
    """法人番号: a LEADING check digit, then 12 digits."""

    kind = CodeKind.CORPORATE_NUMBER
    __slots__ = ()

    @classmethod
    def parse(cls, value: str, field: str = "法人番号") -> Self:
        return cls._parse(value, field)

    @classmethod
    def _check_digits(cls, text: str) -> tuple[int, int]:
        return corporate_number_check_digit(text[1:]), int(text[0])


NUMBER_TYPES: dict[CodeKind, type[MyNumber | ResidentCode | LgCode | CorporateNumber]] = {
    CodeKind.MY_NUMBER: MyNumber,
    CodeKind.RESIDENT_CODE: ResidentCode,
    CodeKind.LG_CODE: LgCode,
    CodeKind.CORPORATE_NUMBER: CorporateNumber,
}
_KIND_BY_LENGTH = {kind.length: kind for kind in CodeKind}


@dataclass(frozen=True)
class CheckResult:
    """What :func:`identify` found out about a number of unknown kind."""

    value: str
    """The input after normalisation (see :func:`normalise`)."""
    kind: CodeKind | None
    """The kind guessed from the length; ``None`` when no kind has that length."""
    valid: bool
    rule: str | None = None
    """The rule that failed, as in :class:`InvalidInput`; ``None`` when valid."""
    reason: str | None = None
    """A readable sentence naming the field and the rule; ``None`` when valid."""


def identify(number: str) -> CheckResult:
    """Guess the kind of ``number`` from its length (12, 11, 6, 13 digits) and validate it as that kind."""
    text = normalise(number)
    kind = _KIND_BY_LENGTH.get(len(text))
    if kind is None:
        known = ", ".join(f"{k.label} {k.length}" for k in CodeKind)
        reason = f"length {len(text)} matches no known number ({known})"
        return CheckResult(text, None, False, "length matches no known number", reason)
    try:
        NUMBER_TYPES[kind]._validate(text, kind.label)
    except InvalidInput as exc:
        return CheckResult(text, kind, False, exc.rule, exc.message)
    return CheckResult(text, kind, True)
