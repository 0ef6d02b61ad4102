"""The screen's Japanese for what the card reader and the kiosk itself refuse. The center's
refusals come with their own Japanese message (:class:`jlis.kiosk.screen.port.CenterRefused`)."""

from __future__ import annotations

from jlis.card.chip.errors import PinBlocked, WrongPin
from jlis.errors import JlisError
from jlis.kiosk.screen.port import CenterRefused
from jlis.web.templating import message_ja

PIN_BLOCKED = (
    "暗証番号が連続して誤って入力されたため、カードの利用者証明用電子証明書がロックされています。"
    "市区町村の窓口で暗証番号の初期化をしてください。"
)

# (field, rule prefix or "") -> text; the first match wins.
_BY_FIELD: tuple[tuple[str, str, str], ...] = (
    ("暗証番号", "", "暗証番号は数字4桁で入力してください。"),
    ("passphrase", "", "カードファイルのパスフレーズが違うか、カードファイルが変更されています。"),
    ("パスフレーズ", "must not be empty", "カードファイルのパスフレーズを入力してください。"),
    ("パスフレーズ", "", "カードファイルのパスフレーズが長すぎます。"),
    ("card_file", "", "カードファイルを読み取れません。jlis-card/1 形式のファイルを選んでください。"),
    ("カードファイル", "", "カードファイルを読み取れません。jlis-card/1 形式のファイルを選んでください。"),
    ("path", "", "カードを読み取れませんでした。カードを置き直してください。"),
    ("カード", "", "カードを選んでください。"),
    ("source", "", "カードの読み取り方法を選んでください。"),
    ("部数", "", "部数を選んでください。"),
    ("本籍地の市区町村", "", "本籍地の市区町村を一覧から選んでください。"),
    ("筆頭者の氏", "must not be empty", "筆頭者の氏を入力してください。"),
    ("筆頭者の氏", "at most", "筆頭者の氏が長すぎます（50文字まで）。"),
    ("筆頭者の氏", "", "筆頭者の氏を確認してください。"),
    ("筆頭者の名", "must not be empty", "筆頭者の名を入力してください。"),
    ("筆頭者の名", "at most", "筆頭者の名が長すぎます（50文字まで）。"),
    ("筆頭者の名", "", "筆頭者の名を確認してください。"),
    ("お支払い", "", "お支払いの金額を確認してください。"),
    ("操作", "", "前の操作を処理しています。しばらくお待ちください。"),
    ("端末", "", "ただいま混み合っています。しばらくしてからやり直してください。"),
)


def for_error(exc: JlisError) -> str:
    """The sentence the screen shows for ``exc``."""
    if isinstance(exc, CenterRefused):
        return exc.message
    if isinstance(exc, WrongPin):
        return f"暗証番号が違います。あと {exc.tries_left} 回間違えるとロックされます。"
    if isinstance(exc, PinBlocked):
        return PIN_BLOCKED
    field = str(exc.context.get("field") or "")
    rule = str(exc.context.get("rule") or "")
    for name, prefix, text in _BY_FIELD:
        if field == name and rule.startswith(prefix):
            return text
    return message_ja(exc)
