"""Refusals of the issuance center. Each has a stable ``code`` (stored in the issuance log, sent to
the kiosk, tested) and the Japanese ``message`` the kiosk shows. A refusal of a municipality's
certificate server (:class:`jlis.kiosk.issuer.errors.IssuanceRefused`) keeps its own code and
message when the center passes it on."""

from __future__ import annotations

import enum

from jlis.errors import JlisError, RuleViolation


class CenterReason(enum.StrEnum):
    UNKNOWN_KIOSK = "unknown_kiosk"
    CHALLENGE_UNKNOWN = "challenge_unknown"
    WRONG_PIN = "wrong_pin"
    PIN_BLOCKED = "pin_blocked"
    CARD_UNREADABLE = "card_unreadable"
    CARD_INVALID = "card_invalid"
    CARD_REVOKED = "card_revoked"
    CARD_ON_HOLD = "card_on_hold"
    CARD_STATUS_UNKNOWN = "card_status_unknown"
    HOLDER_UNKNOWN = "holder_unknown"
    SESSION_UNKNOWN = "session_unknown"
    UNKNOWN_MUNICIPALITY = "unknown_municipality"
    NOT_PARTICIPATING = "not_participating"
    NOT_OFFERED = "not_offered"
    INVALID_REQUEST = "invalid_request"
    QUOTE_UNKNOWN = "quote_unknown"
    QUOTE_TAMPERED = "quote_tampered"
    PAYMENT_MISMATCH = "payment_mismatch"
    NOT_PAID = "not_paid"
    BINDING_MISMATCH = "binding_mismatch"
    ISSUER_FAILED = "issuer_failed"

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_AGAIN = "はじめからやり直してください。"
_MESSAGES = {
    CenterReason.UNKNOWN_KIOSK: "この端末は証明書交付センターに登録されていません。",
    CenterReason.CHALLENGE_UNKNOWN: "カードの読み取りの有効期限が切れたか、無効な要求です。" + _AGAIN,
    CenterReason.WRONG_PIN: "暗証番号が違います。",
    CenterReason.PIN_BLOCKED: "暗証番号が連続して誤って入力されたため、カードの利用者証明用電子証明書が"
    "ロックされています。市区町村の窓口で暗証番号の初期化をしてください。",
    CenterReason.CARD_UNREADABLE: "カードを読み取れませんでした。カードを置き直してください。",
    CenterReason.CARD_INVALID: "このカードの利用者証明用電子証明書を確認できません。"
    "市区町村の窓口にお問い合わせください。",
    CenterReason.CARD_REVOKED: "このカードの利用者証明用電子証明書は失効しているため、ご利用いただけません。"
    "市区町村の窓口にお問い合わせください。",
    CenterReason.CARD_ON_HOLD: "このカードは一時停止されているため、ご利用いただけません。"
    "コールセンターまたは市区町村の窓口にお問い合わせください。",
    CenterReason.CARD_STATUS_UNKNOWN: "電子証明書の有効性を確認できませんでした。"
    "しばらくしてからやり直してください。",
    CenterReason.HOLDER_UNKNOWN: "このカードでは証明書を交付できません。"
    "市区町村の窓口にお問い合わせください。",
    CenterReason.SESSION_UNKNOWN: "操作の有効期限が切れたか、無効な要求です。" + _AGAIN,
    CenterReason.UNKNOWN_MUNICIPALITY: "指定された市区町村が見つかりません。",
    CenterReason.NOT_PARTICIPATING: "お住まいの市区町村（または本籍地）はコンビニ交付を行っていません。",
    CenterReason.NOT_OFFERED: "この市区町村では、この証明書をコンビニ交付していません。",
    CenterReason.INVALID_REQUEST: "選択された内容では証明書を交付できません。選択し直してください。",
    CenterReason.QUOTE_UNKNOWN: "この要求は無効か、有効期限が切れています。" + _AGAIN,
    CenterReason.QUOTE_TAMPERED: "要求の内容が一致しません。" + _AGAIN,
    CenterReason.PAYMENT_MISMATCH: "お支払いの金額が手数料と一致しません。",
    CenterReason.NOT_PAID: "手数料のお支払いが確認できません。",
    CenterReason.BINDING_MISMATCH: "証明書を正しく作成できませんでした。手数料はいただいていません。"
    + _AGAIN,
    CenterReason.ISSUER_FAILED: "証明書を作成できませんでした。手数料はいただいていません。"
    "しばらくしてからやり直してください。",
}


class CenterRefused(RuleViolation):
    """A refusal at the center. ``code`` is stable, ``message`` the kiosk's Japanese text, ``detail``
    (English, for logs) which value broke which rule. Nothing is issued and nothing is charged."""

    kind = "refused"

    def __init__(self, code: str, message: str, detail: str = "", *, field: str = "kiosk") -> None:
        super().__init__(field, code, message)
        self.code = code
        self.detail = detail
        # The certificate number this refusal voided (the document failed after the certificate
        # server committed the number), for the issuance log; None otherwise.
        self.certificate_number: str | None = None
        self.context["code"] = code
        if detail:
            self.context["detail"] = detail

    @classmethod
    def of(cls, reason: CenterReason, detail: str = "", *, field: str = "kiosk") -> CenterRefused:
        return cls(reason.value, reason.message, detail, field=field)

    @classmethod
    def wrap(cls, reason: CenterReason, exc: JlisError) -> CenterRefused:
        """A lower layer's error as a kiosk refusal, keeping the lower layer's field and rule."""
        field = str(exc.context.get("field", "kiosk"))
        rule = str(exc.context.get("rule", exc.message))
        return cls(reason.value, reason.message, f"{field}: {rule}", field=field)
