"""The 24-hour hotline (個人番号カードコールセンター, 0120-95-0178): a lost or stolen card is suspended
(一時停止) and its certificates put on hold (一時保留) at once, day or night. Lifting it is done only
at the counter (``Counter.lift_suspension``).

Who calls the API: a J-LIS operator acting as the call centre (principal kind ``jlis_operator``;
the hotline has no principal kind of its own). The caller identifies themselves by name, date of
birth and municipality, as on the phone; a card number, when they have it, picks the card. A caller
that matches nobody gets the same "not found" whether or not the card exists.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from jlis.card.lifecycle import CardEvent, CardState
from jlis.card.service import CardService, CardView
from jlis.card.tables import CardRow
from jlis.codes import LgCode
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.jpki.tables import CARD
from jlis.registry.models import check_name, normalise_text

MAX_NOTE = 200


class SuspensionReason(enum.StrEnum):
    LOST = "lost"  # 紛失
    STOLEN = "stolen"  # 盗難
    OTHER = "other"  # その他 (e.g. a card left behind somewhere)

    @property
    def label(self) -> str:
        return {"lost": "紛失", "stolen": "盗難", "other": "その他"}[self.value]

    @classmethod
    def parse(cls, value: str, field: str = "停止理由") -> SuspensionReason:
        try:
            return cls((value or "").strip())
        except ValueError:
            raise InvalidInput(field, f"must be one of {', '.join(r.value for r in cls)}") from None


@dataclass(frozen=True)
class Caller:
    """Who the caller says they are."""

    lg_code: str
    family_name: str
    given_name: str
    birth_date: dt.date
    card_id: str | None = None


class Hotline:
    def __init__(self, svc: CardService) -> None:
        self.svc = svc
        self.s = svc.s

    def suspend(self, caller: Caller, reason: SuspensionReason, *, note: str | None = None) -> CardView:
        """一時停止: the caller's delivered card is suspended and its certificates held."""
        self.svc.require_operator()
        card = self._find(caller)
        event = self.svc.transition(
            card,
            CardEvent.SUSPEND,
            cause="hotline",
            details={"reason": reason.value, "note": (note or "").strip()[:MAX_NOTE] or None},
        )
        card.suspended_at = self.svc.clock.now()
        self.s.flush()
        self.svc.revocations.hold_card(card.id, f"hotline:{card.id}:{event.id}", holders=(CARD,))
        return CardView.of(card)

    def _find(self, caller: Caller) -> CardRow:
        lg = str(LgCode.parse(caller.lg_code, "地方公共団体コード"))
        family = check_name("氏", caller.family_name)
        given = check_name("名", caller.given_name, required=False)
        query = f"{family} {given}".strip()
        matches = [
            r
            for r in self.svc.register(lg).search(query, limit=200)
            if normalise_text(r.name.family) == family
            and normalise_text(r.name.given) == given
            and r.birth_date == caller.birth_date
        ]
        codes = {r.resident_code for r in matches}
        if caller.card_id:
            card = self.s.get(CardRow, caller.card_id.strip())
            if card is None or card.resident_code not in codes:
                raise NotFound("カード", caller.card_id)
            return card
        delivered = [
            c
            for code in sorted(codes)
            for c in self.svc.live_cards(code)
            if c.state in (CardState.ACTIVE.value, CardState.SUSPENDED.value)
        ]
        if not delivered:
            raise NotFound("カード", f"{lg} {query} {caller.birth_date.isoformat()}")
        if len(delivered) > 1:
            raise RuleViolation("カード番号", "several people match: give the card number")
        return delivered[0]
