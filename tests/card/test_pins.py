"""PIN formats at the counter (facts §2.6)."""

from __future__ import annotations

import pytest

from jlis.card.pins import AUTH_FIELD, SIGN_FIELD, PinSet, check_pin, check_sign_password
from jlis.errors import InvalidInput


@pytest.mark.parametrize("value", ["ABC123", "A1B2C3D4E5F6G7H8", "9Z9Z9Z"])
def test_good_signing_passwords(value: str) -> None:
    assert check_sign_password(value) == value


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("AB12", "6 to 16"),
        ("A1B2C3D4E5F6G7H8I", "6 to 16"),
        ("abc123", "upper-case"),
        ("ABC 123", "upper-case"),
        ("ＡＢＣ１２３", "upper-case"),
        ("ABCDEF", "mix letters and digits"),
        ("123456", "mix letters and digits"),
    ],
)
def test_bad_signing_passwords(value: str, rule: str) -> None:
    with pytest.raises(InvalidInput, match=rule) as exc:
        check_sign_password(value)
    assert exc.value.field == SIGN_FIELD


@pytest.mark.parametrize("value", ["123", "12345", "12a4", "", "１２３４"])
def test_bad_four_digit_pins(value: str) -> None:
    with pytest.raises(InvalidInput, match="4 digits") as exc:
        PinSet.checked(None, value, "1234", "1234")
    assert exc.value.field == AUTH_FIELD


def test_pinset_without_signing_password() -> None:
    pins = PinSet.checked("", "1234", "0000", "9999")
    assert pins.sign_password is None and pins.juki_pin == "0000"


def test_check_pin_by_name() -> None:
    assert check_pin("juki", "4321") == "4321"
    assert check_pin("sign", "PASS1234") == "PASS1234"
    with pytest.raises(InvalidInput, match="must be one of"):
        check_pin("text_a", "1234")
