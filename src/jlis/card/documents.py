"""本人確認書類: what the counter checks before it hands over, unblocks or re-issues a card.

The rule most municipalities publish: one photo document issued by a public body (A), or two
others (B). Delivery also needs the 交付通知書; lifting a suspension needs the card itself.
The documents shown are recorded with the card event (kinds only, never their numbers).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from jlis.errors import InvalidInput, RuleViolation


class Document(enum.StrEnum):
    NOTICE = "notice"  # 交付通知書 (the postcard)
    MY_NUMBER_CARD = "my_number_card"  # マイナンバーカード (the card itself: lift, 継続利用)
    DRIVER_LICENCE = "driver_licence"  # 運転免許証
    PASSPORT = "passport"  # 旅券
    RESIDENCE_CARD = "residence_card"  # 在留カード・特別永住者証明書
    DISABILITY_BOOK = "disability_book"  # 身体障害者手帳等
    HEALTH_INSURANCE = "health_insurance"  # 健康保険の資格確認書等
    PENSION_BOOK = "pension_book"  # 年金手帳・基礎年金番号通知書
    STUDENT_ID = "student_id"  # 学生証 (with photo)
    EMPLOYEE_ID = "employee_id"  # 社員証 (with photo)
    NUMBER_NOTICE = "number_notice"  # 通知カード・個人番号通知書

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def photo_id(self) -> bool:
        """Class A: one is enough."""
        return self in _CLASS_A

    @classmethod
    def parse(cls, value: str, field: str = "本人確認書類") -> Document:
        try:
            return cls((value or "").strip())
        except ValueError:
            raise InvalidInput(field, f"must be one of {', '.join(d.value for d in cls)}") from None


_LABELS = {
    Document.NOTICE: "交付通知書",
    Document.MY_NUMBER_CARD: "マイナンバーカード",
    Document.DRIVER_LICENCE: "運転免許証",
    Document.PASSPORT: "旅券",
    Document.RESIDENCE_CARD: "在留カード・特別永住者証明書",
    Document.DISABILITY_BOOK: "身体障害者手帳等",
    Document.HEALTH_INSURANCE: "健康保険の資格確認書等",
    Document.PENSION_BOOK: "年金手帳・基礎年金番号通知書",
    Document.STUDENT_ID: "学生証",
    Document.EMPLOYEE_ID: "社員証",
    Document.NUMBER_NOTICE: "通知カード・個人番号通知書",
}
_CLASS_A = frozenset(
    {
        Document.MY_NUMBER_CARD,
        Document.DRIVER_LICENCE,
        Document.PASSPORT,
        Document.RESIDENCE_CARD,
        Document.DISABILITY_BOOK,
    }
)
# Papers that prove nothing about who holds them (the postcard and the number notice).
_NOT_IDENTITY = frozenset({Document.NOTICE, Document.NUMBER_NOTICE})


def parse_documents(values: Iterable[str]) -> list[Document]:
    seen: list[Document] = []
    for v in values:
        d = Document.parse(v)
        if d not in seen:
            seen.append(d)
    return seen


def check_identity(documents: Iterable[Document], *, require: Iterable[Document] = ()) -> list[Document]:
    """Refuse unless one class-A document or two others were shown (plus each of ``require``).
    Returns the documents in a stable order, for the record."""
    docs = list(dict.fromkeys(documents))
    for needed in require:
        if needed not in docs:
            raise RuleViolation("本人確認書類", f"{needed.value} ({needed.label}) must be presented")
    proofs = [d for d in docs if d not in _NOT_IDENTITY]
    if not any(d.photo_id for d in proofs) and len(proofs) < 2:
        raise RuleViolation("本人確認書類", "one photo ID (A) or two other documents (B) must be presented")
    return sorted(docs, key=lambda d: d.value)
