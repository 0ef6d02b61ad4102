"""Refusals of the certificate server: each has a stable code (stored, sent to the kiosk, tested)
and the Japanese message the kiosk shows."""

from __future__ import annotations

import enum

from jlis.errors import RuleViolation


class RefusalReason(enum.StrEnum):
    """Why a certificate is not issued. The value is the stable code; ``message`` the kiosk text."""

    CLOSED_HOURS = "closed_hours"
    CLOSED_YEAR_END = "closed_year_end"
    NOT_OFFERED = "not_offered"
    NOT_RESIDENT = "not_resident"
    MOVED_OUT = "moved_out"
    MOVING_OUT = "moving_out"
    HOUSEHOLD_MOVING_OUT = "household_moving_out"
    DECEASED = "deceased"
    MOVED_IN_TODAY = "moved_in_today"
    DV_SUPPORT = "dv_support"
    UNDER_AGE = "under_age"
    NAME_TOO_LONG = "name_too_long"
    ADDRESS_TOO_LONG = "address_too_long"
    MY_NUMBER_NOT_ALLOWED = "my_number_not_allowed"
    NO_SEAL_REGISTRATION = "no_seal_registration"
    NO_TAX_ASSESSMENT = "no_tax_assessment"
    NO_KOSEKI = "no_koseki"
    NO_HONSEKI_USE = "no_honseki_use"
    HONSEKI_USE_PENDING = "honseki_use_pending"
    HONSEKI_USE_REGISTERED = "honseki_use_registered"
    NO_FUHYO = "no_fuhyo"
    NO_DAMAGE_CERTIFICATE = "no_damage_certificate"
    REQUEST_REPLAYED = "request_replayed"

    @property
    def message(self) -> str:
        return _MESSAGES[self]

    @property
    def field(self) -> str:
        return _FIELDS[self]


_MESSAGES = {
    RefusalReason.CLOSED_HOURS: "ただいまの時間は、この証明書を交付できません。利用時間内にお越しください。",
    RefusalReason.CLOSED_YEAR_END: "12月29日から1月3日までは証明書を交付できません。",
    RefusalReason.NOT_OFFERED: "この市区町村では、この証明書をコンビニ交付していません。",
    RefusalReason.NOT_RESIDENT: "この市区町村に住民登録がないため、交付できません。",
    RefusalReason.MOVED_OUT: "転出または消除により住民票がないため、交付できません。"
    "市区町村の窓口にお問い合わせください。",
    RefusalReason.MOVING_OUT: "転出の届出をされているため、交付できません。"
    "市区町村の窓口にお問い合わせください。",
    RefusalReason.HOUSEHOLD_MOVING_OUT: "世帯に転出の届出をされた方がいるため、交付できません。"
    "市区町村の窓口にお問い合わせください。",
    RefusalReason.DECEASED: "この方の証明書は交付できません。市区町村の窓口にお問い合わせください。",
    RefusalReason.MOVED_IN_TODAY: "転入の届出をされた当日は交付できません。翌日以降にご利用ください。",
    RefusalReason.DV_SUPPORT: "この証明書はコンビニ交付できません。市区町村の窓口にお問い合わせください。",
    RefusalReason.UNDER_AGE: "年齢の制限により、コンビニ交付をご利用いただけません。",
    RefusalReason.NAME_TOO_LONG: "氏名の文字数が多いため、コンビニ交付できません。窓口をご利用ください。",
    RefusalReason.ADDRESS_TOO_LONG: "住所の文字数が多いため、コンビニ交付できません。窓口をご利用ください。",
    RefusalReason.MY_NUMBER_NOT_ALLOWED: "この市区町村では、個人番号入りの住民票はコンビニ交付していません。",
    RefusalReason.NO_SEAL_REGISTRATION: "印鑑登録がないため、印鑑登録証明書を交付できません。",
    RefusalReason.NO_TAX_ASSESSMENT: "この年度の課税の記録がないため、所得・課税証明書を交付できません。",
    RefusalReason.NO_KOSEKI: "この市区町村に戸籍がないため、交付できません。",
    RefusalReason.NO_HONSEKI_USE: "本籍地利用登録がないため、戸籍の証明書を交付できません。"
    "先に本籍地利用登録の申請をしてください。",
    RefusalReason.HONSEKI_USE_PENDING: "本籍地利用登録の申請はすでに受け付けています。"
    "本籍地での確認後（数日）ご利用いただけます。",
    RefusalReason.HONSEKI_USE_REGISTERED: "本籍地利用登録はすでに済んでいます。"
    "戸籍の証明書を選んでください。",
    RefusalReason.NO_FUHYO: "戸籍の附票の記録がないため、交付できません。",
    RefusalReason.NO_DAMAGE_CERTIFICATE: "罹災証明書の交付決定がないため、交付できません。",
    RefusalReason.REQUEST_REPLAYED: "この要求はすでに処理されています。はじめからやり直してください。",
}

_FIELDS = {
    RefusalReason.CLOSED_HOURS: "時刻",
    RefusalReason.CLOSED_YEAR_END: "日付",
    RefusalReason.NOT_OFFERED: "証明書の種類",
    RefusalReason.NOT_RESIDENT: "住民票",
    RefusalReason.MOVED_OUT: "住民票",
    RefusalReason.MOVING_OUT: "住民票",
    RefusalReason.HOUSEHOLD_MOVING_OUT: "世帯",
    RefusalReason.DECEASED: "住民票",
    RefusalReason.MOVED_IN_TODAY: "住民票",
    RefusalReason.DV_SUPPORT: "支援措置",
    RefusalReason.UNDER_AGE: "生年月日",
    RefusalReason.NAME_TOO_LONG: "氏名",
    RefusalReason.ADDRESS_TOO_LONG: "住所",
    RefusalReason.MY_NUMBER_NOT_ALLOWED: "個人番号",
    RefusalReason.NO_SEAL_REGISTRATION: "印鑑登録",
    RefusalReason.NO_TAX_ASSESSMENT: "課税年度",
    RefusalReason.NO_KOSEKI: "戸籍",
    RefusalReason.NO_HONSEKI_USE: "本籍地利用登録",
    RefusalReason.HONSEKI_USE_PENDING: "本籍地利用登録",
    RefusalReason.HONSEKI_USE_REGISTERED: "本籍地利用登録",
    RefusalReason.NO_FUHYO: "戸籍の附票",
    RefusalReason.NO_DAMAGE_CERTIFICATE: "罹災証明書",
    RefusalReason.REQUEST_REPLAYED: "要求番号",
}


class IssuanceRefused(RuleViolation):
    """A certificate the rules do not allow now. ``code`` is the stable reason, the message is the
    kiosk's Japanese text; ``detail`` (English, for logs) says which value broke the rule."""

    kind = "refused"

    def __init__(self, reason: RefusalReason, detail: str = "") -> None:
        super().__init__(reason.field, reason.value, reason.message)
        self.reason = reason
        self.code = reason.value
        self.detail = detail
        self.context["code"] = reason.value
        if detail:
            self.context["detail"] = detail
