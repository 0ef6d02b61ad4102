"""The screen's Japanese for refusals of the card reader and the kiosk itself."""

from __future__ import annotations

from jlis.card.chip.errors import PinBlocked, WrongPin
from jlis.errors import InvalidInput, RuleViolation
from jlis.kiosk.screen.messages import PIN_BLOCKED, for_error
from jlis.kiosk.screen.port import CenterRefused


def test_the_centers_message_is_shown_as_it_is() -> None:
    assert (
        for_error(CenterRefused("moving_out", "転出の届出をされているため")) == "転出の届出をされているため"
    )


def test_card_errors_in_japanese() -> None:
    assert for_error(WrongPin("auth", 1)) == "暗証番号が違います。あと 1 回間違えるとロックされます。"
    assert for_error(PinBlocked("auth")) == PIN_BLOCKED
    assert for_error(InvalidInput("passphrase", "wrong passphrase, or the card file was altered")).startswith(
        "カードファイルのパスフレーズが違う"
    )
    assert (
        for_error(InvalidInput("パスフレーズ", "must not be empty"))
        == "カードファイルのパスフレーズを入力してください。"
    )
    assert (
        for_error(InvalidInput("暗証番号", "must be the 4-digit PIN"))
        == "暗証番号は数字4桁で入力してください。"
    )
    assert for_error(InvalidInput("card_file", "a jlis-card/1 file")).startswith(
        "カードファイルを読み取れません"
    )


def test_anything_else_falls_back_to_the_common_rules_then_the_message() -> None:
    assert for_error(InvalidInput("年度", "must be a number")) == "年度は数字で入力してください。"
    assert for_error(RuleViolation("x", "some rule", "そのままの文")) == "そのままの文"
