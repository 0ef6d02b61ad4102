"""J-LIS production (カード発行センター): batches of accepted applications become cards, cards are
shipped to their municipalities, 特急発行 targets are watched, and expired cards are voided.

A J-LIS operator runs all of it. In a batch each card is made in its own savepoint: one that cannot
be made (the person died or left since applying, or the 住民票 holds something the card face
refuses) closes its application as rejected, with the reason, and the rest of the batch goes on.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from jlis.card.applications import ApplicationStatus, ExpressCase
from jlis.card.lifecycle import CardEvent, CardState, VoidReason
from jlis.card.service import CardService, CardView, express_target, sex_iso5218
from jlis.card.tables import CardApplicationRow, CardRow
from jlis.clock import JST
from jlis.errors import InvalidInput, JlisError, NotFound, RuleViolation
from jlis.registry import Status

if TYPE_CHECKING:
    from jlis.jpki.profile import CardProfile

AT_RISK_DAYS = 2  # an express card not shipped this close to its target is at risk
MAX_BATCH = 1000


class ExpressStatus(enum.StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"  # not shipped, target within AT_RISK_DAYS
    LATE = "late"  # not shipped, target passed
    MET = "met"  # shipped on or before the target
    MISSED = "missed"  # shipped after the target

    @property
    def label(self) -> str:
        return {
            "on_track": "順調",
            "at_risk": "遅延のおそれ",
            "late": "遅延",
            "met": "達成",
            "missed": "未達",
        }[self.value]


@dataclass(frozen=True)
class ExpressItem:
    """One 特急発行 application and its card (if made yet), against its one-week target."""

    application_id: str
    card_id: str | None
    lg_code: str
    case: ExpressCase
    target_date: dt.date
    stage: str  # the card's state, or the application's status while no card exists
    shipped_on: dt.date | None
    status: ExpressStatus


@dataclass(frozen=True)
class BatchResult:
    batch_id: str
    cards: list[CardView]
    rejected: list[tuple[str, str]]  # (申請書ID, reason)


def _day(at: dt.datetime | None) -> dt.date | None:
    return at.astimezone(JST).date() if at is not None else None


def express_status(target: dt.date, shipped_on: dt.date | None, today: dt.date) -> ExpressStatus:
    """Pure: where one express card stands against its target on ``today``."""
    if shipped_on is not None:
        return ExpressStatus.MET if shipped_on <= target else ExpressStatus.MISSED
    if today > target:
        return ExpressStatus.LATE
    if (target - today).days <= AT_RISK_DAYS:
        return ExpressStatus.AT_RISK
    return ExpressStatus.ON_TRACK


class Production:
    def __init__(self, svc: CardService) -> None:
        self.svc = svc
        self.s = svc.s

    def produce(
        self, *, limit: int = 100, algorithm: str | None = None, express_only: bool = False
    ) -> BatchResult:
        """製造: up to ``limit`` accepted applications, 特急発行 first, oldest first. Each card gets a
        chip (from the pool when one is there), the card face from the 住民票, a security code, and
        its expiry (10th birthday after issue for 18+, 5th under 18)."""
        from jlis.jpki.profile import Algorithm, profile_for

        self.svc.require_operator()
        if not 1 <= limit <= MAX_BATCH:
            raise InvalidInput("件数", f"must be 1 to {MAX_BATCH}")
        alg = Algorithm.parse(algorithm) if algorithm else Algorithm.RSA2048_SHA256
        profile = profile_for(alg)
        stmt = select(CardApplicationRow).where(CardApplicationRow.status == ApplicationStatus.ACCEPTED.value)
        if express_only:
            stmt = stmt.where(CardApplicationRow.express_reason.is_not(None))
        apps = list(
            self.s.execute(
                stmt.order_by(
                    CardApplicationRow.express_reason.is_(None),  # False (express) sorts first
                    CardApplicationRow.received_at,
                    CardApplicationRow.id,
                ).limit(limit)
            ).scalars()
        )
        now = self.svc.clock.now()
        batch_id = f"B{now.astimezone(JST):%Y%m%d%H%M%S}{self.svc.rng.randrange(16**4):04X}"
        cards: list[CardView] = []
        rejected: list[tuple[str, str]] = []
        for app in apps:
            try:
                with self.s.begin_nested():
                    cards.append(CardView.of(self._make(app, batch_id, alg.value, profile)))
            except JlisError as exc:
                app.status = ApplicationStatus.REJECTED.value
                app.rejection = exc.message[:200]
                app.decided_at = now
                rejected.append((app.id, exc.message))
        return BatchResult(batch_id, cards, rejected)

    def _make(self, app: CardApplicationRow, batch_id: str, algorithm: str, profile: CardProfile) -> CardRow:
        from jlis.card.chip import CardFace
        from jlis.jpki.validity import card_expiry

        svc = self.svc
        resident = svc.register(app.lg_code).find_by_code(app.resident_code)
        if resident.status is not Status.ACTIVE:
            raise RuleViolation(
                "住民票", f"the applicant is no longer a resident here ({resident.status.value})"
            )
        today = svc.clock.today()
        expires_on = card_expiry(resident.birth_date, today, profile)
        security_code = f"{svc.rng.randrange(10_000):04d}"
        card_id = self._new_card_id()
        face = CardFace(
            my_number=resident.my_number,
            name=resident.name.full,
            address=resident.address.text,
            birth_date=resident.birth_date,
            sex=sex_iso5218(resident.sex.value),
            expires_on=expires_on,
            security_code=security_code,
            name_kana=resident.name.full_kana or None,
            former_surname=resident.former_surname,
            alias=resident.alias,
            resident_code=resident.resident_code,
        )
        chip = svc.chips.take_from_pool(card_id, algorithm)
        chip.personalise(face, issuer_key=svc.issuer_key)
        svc.chips.save(chip)
        card = CardRow(
            id=card_id,
            application_id=app.id,
            resident_code=app.resident_code,
            lg_code=app.lg_code,
            state=CardState.MANUFACTURED.value,
            algorithm=algorithm,
            batch_id=batch_id,
            express=app.express_reason is not None,
            target_date=express_target(app),
            manufactured_at=svc.clock.now(),
            expires_on=expires_on,
            security_code=security_code,
            endorsements=[],
        )
        self.s.add(card)
        self.s.flush()
        svc.record_creation(card, cause=f"batch:{batch_id}", details={"application_id": app.id})
        app.status = ApplicationStatus.IN_PRODUCTION.value
        return card

    def _new_card_id(self) -> str:
        for _ in range(20):
            candidate = f"{self.svc.rng.getrandbits(64):016X}"
            if self.s.get(CardRow, candidate) is None:
                return candidate
        raise RuleViolation("カード番号", "could not draw an unused number")  # pragma: no cover

    def ship(self, *, batch_id: str | None = None, card_ids: list[str] | None = None) -> list[CardView]:
        """発送: the manufactured cards of a batch (or the named cards) leave for their
        municipalities. A named card that is not manufactured is refused (nothing ships)."""
        self.svc.require_operator()
        if (batch_id is None) == (card_ids is None):
            raise InvalidInput("発送対象", "give a batch id or card ids, not both")
        if batch_id is not None:
            rows = list(
                self.s.execute(
                    select(CardRow)
                    .where(CardRow.batch_id == batch_id, CardRow.state == CardState.MANUFACTURED.value)
                    .order_by(CardRow.id)
                ).scalars()
            )
            if not rows:
                raise NotFound("未発送のカードがあるバッチ", batch_id)
        else:
            rows = [self.svc.load(c) for c in card_ids or []]
        now = self.svc.clock.now()
        for card in rows:
            self.svc.transition(card, CardEvent.SHIP, cause=f"batch:{card.batch_id}")
            card.shipped_at = now
        return [CardView.of(r) for r in rows]

    def express_report(self, *, only_open: bool = False) -> list[ExpressItem]:
        """Every 特急発行 application against its one-week target (applications waiting for a batch
        included). ``only_open``: those not shipped yet."""
        self.svc.require_operator()
        today = self.svc.clock.today()
        rows = self.s.execute(
            select(CardApplicationRow, CardRow)
            .outerjoin(CardRow, CardRow.application_id == CardApplicationRow.id)
            .where(CardApplicationRow.express_reason.is_not(None))
            .order_by(CardApplicationRow.received_at)
        ).all()
        items = []
        for app, card in rows:
            target = express_target(app)
            assert target is not None
            if card is None and app.status != ApplicationStatus.ACCEPTED.value:
                continue  # rejected before a card was made
            shipped = _day(card.shipped_at) if card is not None else None
            if only_open and shipped is not None:
                continue
            items.append(
                ExpressItem(
                    application_id=app.id,
                    card_id=card.id if card is not None else None,
                    lg_code=app.lg_code,
                    case=ExpressCase(str(app.express_reason)),
                    target_date=target,
                    stage=card.state if card is not None else app.status,
                    shipped_on=shipped,
                    status=express_status(target, shipped, today),
                )
            )
        return items

    def void_expired(self) -> list[str]:
        """有効期限切れ: delivered cards whose last day has passed are voided, their certificates
        revoked. Returns the card ids."""
        self.svc.require_operator()
        today = self.svc.clock.today()
        rows = list(
            self.s.execute(
                select(CardRow)
                .where(
                    CardRow.state.in_([CardState.ACTIVE.value, CardState.SUSPENDED.value]),
                    CardRow.expires_on < today,
                )
                .order_by(CardRow.id)
            ).scalars()
        )
        for card in rows:
            self.svc.void(card, VoidReason.EXPIRY, cause=f"expiry:{today.isoformat()}")
        return [r.id for r in rows]
