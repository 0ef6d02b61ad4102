"""交付申請 (card applications): the 申請書ID, the channels, re-issue reasons, 特急発行 cases, fees
and the renewal window. Pure rules: no database, no clock (callers pass ``today``).

申請書ID: real forms carry a 23-digit number whose internal layout J-LIS does not publish. Ours is
``LLLLLL YYYYMMDD NNNNNNNN C`` — the municipality's 団体コード (6, with its check digit), the date the
form was issued (8), 8 random digits, and one check digit over the 22 before it (mod 11, weights
2–7 repeating from the right; remainder 0 or 1 gives 0, as for the 個人番号). It names the
application, never the person: it carries no 個人番号 and no 住民票コード.
"""

from __future__ import annotations

import datetime as dt
import enum
import random
from dataclasses import dataclass

from jlis.codes import LgCode
from jlis.errors import InvalidInput, RuleViolation
from jlis.jpki.validity import add_months

APPLICATION_ID_LENGTH = 23
EXPRESS_TARGET_DAYS = 7  # 特急発行: one week as a rule, 5 days at the fastest (facts §10)
EXPRESS_WINDOW_DAYS = 30  # each case has a 30-day window from its event (facts §10)

# Fees (facts §10; the certificate part is facts §3.4).
CARD_FEE_YEN = 800
CERTIFICATE_FEE_YEN = 200
EXPRESS_FEE_YEN = 2000
EXPRESS_FEE_WITHOUT_CERTIFICATES_YEN = 1800

# Renewal opens this many months before expiry (facts §3.4; next-generation card §3.8: one year).
RENEWAL_MONTHS_CURRENT = 3
RENEWAL_MONTHS_NEXT_GEN = 12


class Channel(enum.StrEnum):
    POST = "post"  # 郵送 (the 交付申請書 with its QR code / 申請書ID)
    ONLINE = "online"  # スマートフォン・パソコン・証明写真機
    COUNTER = "counter"  # 窓口 (申請時来庁方式)

    @property
    def label(self) -> str:
        return {"post": "郵送", "online": "オンライン", "counter": "窓口"}[self.value]

    @classmethod
    def parse(cls, value: str, field: str = "申請方法") -> Channel:
        try:
            return cls((value or "").strip())
        except ValueError:
            raise InvalidInput(field, f"must be one of {', '.join(c.value for c in cls)}") from None


class ApplicationStatus(enum.StrEnum):
    """Values stored in ``card_applications.status``. An application that fails its checks at
    intake is refused and not stored; ``rejected`` is for one that became impossible later (the
    person died or left before the card was made)."""

    ACCEPTED = "accepted"  # checked against the 住民票, waiting for a batch
    IN_PRODUCTION = "in_production"  # its card is made (manufactured … notified)
    DONE = "done"  # its card was delivered
    REJECTED = "rejected"  # closed without a delivered card; ``rejection`` says why

    @property
    def label(self) -> str:
        return {"accepted": "受付済", "in_production": "製造中", "done": "交付済", "rejected": "却下"}[
            self.value
        ]


class ReissueReason(enum.StrEnum):
    """Why a person with a card (or whose card was voided) applies again."""

    RENEWAL = "renewal"  # 更新: within the renewal window; free
    LOST = "lost"  # 紛失: 1,000 yen; the old card is voided at once
    DAMAGED = "damaged"  # 焼失・損傷 the holder is responsible for: 1,000 yen; old card voided at once
    DEFECT = "defect"  # 機能不良 not the holder's doing (or the municipality's error): free
    ENDORSEMENT_FULL = "endorsement_full"  # 追記欄の余白がない: free
    CODE_CHANGE = "code_change"  # the card was voided by a change of 個人番号 / 住民票コード: free

    @property
    def label(self) -> str:
        return _REISSUE_LABELS[self]

    @property
    def chargeable(self) -> bool:
        return self in (ReissueReason.LOST, ReissueReason.DAMAGED)

    @classmethod
    def parse(cls, value: str, field: str = "再交付理由") -> ReissueReason:
        try:
            return cls((value or "").strip())
        except ValueError:
            raise InvalidInput(field, f"must be one of {', '.join(r.value for r in cls)}") from None


_REISSUE_LABELS = {
    ReissueReason.RENEWAL: "更新",
    ReissueReason.LOST: "紛失",
    ReissueReason.DAMAGED: "焼失・損傷",
    ReissueReason.DEFECT: "機能不良",
    ReissueReason.ENDORSEMENT_FULL: "追記欄満欄",
    ReissueReason.CODE_CHANGE: "個人番号・住民票コードの変更",
}


class ExpressCase(enum.StrEnum):
    """The cases eligible for 特急発行 (facts §10, from 2024-12-02), each with its event."""

    INFANT = "infant"  # 1歳未満 (first card; until the day before the first birthday)
    FROM_ABROAD = "from_abroad"  # 国外からの転入 (the 転入届)
    LOST = "lost"  # 紛失 (the loss report)
    NEW_ENTRY = "new_entry"  # 出生・転入以外で新たに住民票に記載 (無戸籍 etc.: documents obtained)
    MID_LONG_TERM = "mid_long_term"  # 新たに記載された中長期在留者等 (the notification)
    CODE_CHANGE = "code_change"  # card voided by a change of 個人番号 / 住民票コード (the change)
    DAMAGED = "damaged"  # 焼失・損傷・機能不良 (the day the card stopped working)
    ENDORSEMENT_FULL = "endorsement_full"  # 追記欄満欄 (the day an endorsement could not be made)
    RELEASED = "released"  # 刑事施設等からの出所 (documents obtained)

    @property
    def label(self) -> str:
        return _EXPRESS_LABELS[self]

    @classmethod
    def parse(cls, value: str, field: str = "特急発行") -> ExpressCase:
        try:
            return cls((value or "").strip())
        except ValueError:
            raise InvalidInput(field, f"must be one of {', '.join(c.value for c in cls)}") from None


_EXPRESS_LABELS = {
    ExpressCase.INFANT: "1歳未満",
    ExpressCase.FROM_ABROAD: "国外からの転入",
    ExpressCase.LOST: "紛失",
    ExpressCase.NEW_ENTRY: "新たに住民票に記載",
    ExpressCase.MID_LONG_TERM: "中長期在留者等",
    ExpressCase.CODE_CHANGE: "個人番号・住民票コードの変更による失効",
    ExpressCase.DAMAGED: "焼失・損傷・機能不良",
    ExpressCase.ENDORSEMENT_FULL: "追記欄満欄",
    ExpressCase.RELEASED: "刑事施設等からの出所",
}

# The express cases that are a re-issue, and the re-issue reason each implies.
EXPRESS_REISSUE = {
    ExpressCase.LOST: ReissueReason.LOST,
    ExpressCase.DAMAGED: ReissueReason.DAMAGED,
    ExpressCase.ENDORSEMENT_FULL: ReissueReason.ENDORSEMENT_FULL,
    ExpressCase.CODE_CHANGE: ReissueReason.CODE_CHANGE,
}


# ------------------------------------------------------------------------------------------ 申請書ID


def _check_digit(body: str) -> int:
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(body)))
    r = total % 11
    return 0 if r <= 1 else 11 - r


def new_application_id(lg_code: str, issued_on: dt.date, rng: random.Random) -> str:
    body = f"{LgCode.parse(lg_code)}{issued_on:%Y%m%d}{rng.randrange(10**8):08d}"
    return body + str(_check_digit(body))


def parse_application_id(value: str, field: str = "申請書ID") -> str:
    text = (value or "").strip().translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    text = text.replace(" ", "").replace("-", "")
    if len(text) != APPLICATION_ID_LENGTH:
        raise InvalidInput(field, f"must be {APPLICATION_ID_LENGTH} digits")
    if not (text.isascii() and text.isdigit()):
        raise InvalidInput(field, "must contain only digits")
    if _check_digit(text[:-1]) != int(text[-1]):
        raise InvalidInput(field, "check digit does not match")
    return text


def application_lg_code(application_id: str) -> str:
    return application_id[:6]


# ------------------------------------------------------------------------------------------ fees


def fee_yen(*, chargeable: bool, express: bool, certificates: bool = True) -> int:
    """The fee of one application: free unless the re-issue is chargeable (facts §10)."""
    if not chargeable:
        return 0
    if express:
        return EXPRESS_FEE_YEN if certificates else EXPRESS_FEE_WITHOUT_CERTIFICATES_YEN
    return CARD_FEE_YEN + (CERTIFICATE_FEE_YEN if certificates else 0)


def express_chargeable(case: ExpressCase, *, holder_responsible: bool) -> bool:
    """Loss is always charged; damage when the holder is responsible; every other case is free."""
    if case is ExpressCase.LOST:
        return True
    return case is ExpressCase.DAMAGED and holder_responsible


# ------------------------------------------------------------------------------------------ dates


def renewal_opens_on(expires_on: dt.date, *, next_generation: bool = False) -> dt.date:
    """The first day a renewal application is accepted: the day after the point 3 months (one
    year on the next-generation card) before expiry (facts §3.4, §3.8)."""
    months = RENEWAL_MONTHS_NEXT_GEN if next_generation else RENEWAL_MONTHS_CURRENT
    return add_months(expires_on, -months) + dt.timedelta(days=1)


def express_deadline(case: ExpressCase, *, event_date: dt.date | None, birth_date: dt.date) -> dt.date:
    """The last day an express application for ``case`` is accepted."""
    if case is ExpressCase.INFANT:
        return add_months(birth_date, 12) - dt.timedelta(days=1)  # the day before the first birthday
    if event_date is None:
        raise InvalidInput("特急発行の事由発生日", f"must be given for {case.value}")
    return event_date + dt.timedelta(days=EXPRESS_WINDOW_DAYS)


def check_express(
    case: ExpressCase,
    *,
    event_date: dt.date | None,
    birth_date: dt.date,
    today: dt.date,
    channel: Channel,
) -> dt.date:
    """Refuse an express application outside its case's rules; return its target date."""
    if channel is not Channel.COUNTER:
        raise RuleViolation("申請方法", "特急発行 is applied for at the counter (本人来庁)")
    if event_date is not None and event_date > today:
        raise InvalidInput("特急発行の事由発生日", "must not be in the future")
    if case is ExpressCase.INFANT and add_months(birth_date, 12) <= today:
        raise RuleViolation("特急発行", "infant: the applicant must be under 1 year old")
    deadline = express_deadline(case, event_date=event_date, birth_date=birth_date)
    if today > deadline:
        window = "before the first birthday" if case is ExpressCase.INFANT else f"{EXPRESS_WINDOW_DAYS} days"
        raise RuleViolation("特急発行", f"{case.value}: must be applied for within {window} of the event")
    return today + dt.timedelta(days=EXPRESS_TARGET_DAYS)


# ------------------------------------------------------------------------------------------ the form


@dataclass(frozen=True)
class ApplicationForm:
    """What an application says about the applicant. The 4 items are checked against the 住民票;
    the 個人番号 (written on the hand-written form, or known from the pre-printed one) finds it."""

    lg_code: str
    my_number: str
    family_name: str
    given_name: str
    birth_date: dt.date
    channel: Channel
    express: ExpressCase | None = None
    express_event_date: dt.date | None = None
    reissue: ReissueReason | None = None
    holder_responsible: bool = True  # damage: the holder's doing (charged) or not (free)
    certificates: bool = True  # the holder wants the certificates (the fee differs by 200 yen)


def _fold(text: str) -> str:
    return "".join(text.split()).replace("\u3000", "")


def check_matches(form: ApplicationForm, *, family_name: str, given_name: str, birth_date: dt.date) -> None:
    """The application's name and birth date must be the 住民票's (spaces aside)."""
    if _fold(form.family_name) != _fold(family_name):
        raise RuleViolation("氏", "must match the 住民票")
    if _fold(form.given_name) != _fold(given_name):
        raise RuleViolation("名", "must match the 住民票")
    if form.birth_date != birth_date:
        raise RuleViolation("生年月日", "must match the 住民票")
