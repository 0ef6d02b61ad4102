"""Check digits of the four identifiers (jlis-facts §1). Pure functions over ASCII digit strings.

Each function takes the body (every digit except the check digit) and returns the check digit.
A body of the wrong length or with anything but ASCII digits is a programming error here:
``ValueError``. Boundary validation with field names lives in :mod:`jlis.codes.models`.

The 住民票コード formula is [M] in the facts file (告示436 not retrieved): it is kept as one
weight rule shared with the 個人番号 so that a correction is a one-line change.
"""

from __future__ import annotations

from operator import mul


def _mod11_weights(body_length: int) -> tuple[int, ...]:
    # Facts §1.1/§1.2: counting from the right (n = 1 is the rightmost body digit),
    # Qn = n + 1 for n <= 6 and n - 5 above. Stored left to right so a sum is a plain zip.
    return tuple((n + 1 if n <= 6 else n - 5) for n in range(body_length, 0, -1))


MYNUMBER_WEIGHTS = _mod11_weights(11)  # 6,5,4,3,2,7,6,5,4,3,2
RESIDENT_CODE_WEIGHTS = _mod11_weights(10)  # 5,4,3,2,7,6,5,4,3,2
LG_CODE_WEIGHTS = (6, 5, 4, 3, 2)
# 法人番号: Qn = 1 for odd n, 2 for even n, n counted from the right of the 12 body digits.
CORPORATE_WEIGHTS = tuple(1 if n % 2 else 2 for n in range(12, 0, -1))


def _weighted_sum(body: str, weights: tuple[int, ...], zero: int, what: str) -> int:
    if len(body) != len(weights) or not (body.isascii() and body.isdigit()):
        raise ValueError(f"{what} body must be {len(weights)} ASCII digits, got {body!r}")
    # The bytes of ASCII digits are their code points: weight those, then take away
    # zero = ord("0") * Σ weights. Much faster than int() per digit, which bulk seeding needs.
    return sum(map(mul, weights, body.encode("ascii"))) - zero


_MYNUMBER_ZERO = ord("0") * sum(MYNUMBER_WEIGHTS)
_RESIDENT_CODE_ZERO = ord("0") * sum(RESIDENT_CODE_WEIGHTS)
_LG_CODE_ZERO = ord("0") * sum(LG_CODE_WEIGHTS)
_CORPORATE_ZERO = ord("0") * sum(CORPORATE_WEIGHTS)


def mynumber_check_digit(body11: str) -> int:
    """Check digit (12th digit) of a 個人番号 from its 11 body digits."""
    r = _weighted_sum(body11, MYNUMBER_WEIGHTS, _MYNUMBER_ZERO, "個人番号") % 11
    # Remainders 0 and 1 both give 0, which lets some single-digit errors through (docs/codes.md).
    return 0 if r <= 1 else 11 - r


def resident_code_check_digit(body10: str) -> int:
    """Check digit (11th digit) of a 住民票コード from its 10 body digits (same rule as 個人番号)."""
    r = _weighted_sum(body10, RESIDENT_CODE_WEIGHTS, _RESIDENT_CODE_ZERO, "住民票コード") % 11
    return 0 if r <= 1 else 11 - r


def lg_code_check_digit(body5: str) -> int:
    """Check digit (6th digit) of a 全国地方公共団体コード: (11 - Σ mod 11) mod 10.

    Remainder 0 gives 1 and remainder 1 gives 0; remainder 10 also gives 1.
    """
    return (11 - _weighted_sum(body5, LG_CODE_WEIGHTS, _LG_CODE_ZERO, "地方公共団体コード") % 11) % 10


def corporate_number_check_digit(body12: str) -> int:
    """The LEADING check digit of a 法人番号 from the 12 digits after it: 9 - (Σ mod 9), always 1..9."""
    return 9 - _weighted_sum(body12, CORPORATE_WEIGHTS, _CORPORATE_ZERO, "法人番号") % 9
