"""Use cases of the card management system (マイナンバーカード管理システム).

A :class:`CardService` works inside the caller's session (the caller decides the unit of work) for
one acting principal, and checks that principal's scope at every entry (deny by default):

- a municipality's staff act on the cards their municipality holds (``card.lg_code``), and take
  counter applications for their own residents;
- a J-LIS operator receives post and online applications, runs production batches, ships, answers
  the 24-hour hotline (一時停止), and sees every card;
- the national change stream acts as :data:`STREAM` (a J-LIS principal of the card system).

The use cases live by who performs them: intake here (:meth:`CardService.apply`), J-LIS production
in ``production.py``, the counter in ``counter.py``, the hotline in ``hotline.py``, smartphone
certificates in ``phone.py``, the national change stream in ``stream.py``.

Every transition goes through :meth:`CardService.transition` (the state machine of ``lifecycle.py``
plus one ``card_events`` row); every read of personal data writes an audit entry in the same
transaction (the register's own reads audit themselves).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.auth.models import Principal, PrincipalKind
from jlis.card.applications import (
    EXPRESS_REISSUE,
    EXPRESS_TARGET_DAYS,
    ApplicationForm,
    ApplicationStatus,
    Channel,
    ExpressCase,
    ReissueReason,
    check_express,
    check_matches,
    express_chargeable,
    fee_yen,
    new_application_id,
    renewal_opens_on,
)
from jlis.card.lifecycle import CardEvent, CardState, VoidReason, next_state
from jlis.card.tables import CardApplicationRow, CardEventRow, CardRow
from jlis.clock import JST, Clock
from jlis.codes import LgCode, MyNumber
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.jpki.tables import AUTH, CARD, GOOD, HOLD, PHONE, SIGN, CaGenerationRow, CertificateRow
from jlis.masters import Geography
from jlis.registry import RegistryService, ResidentView, Status

if TYPE_CHECKING:
    from jlis.card.chip import VirtualChip
    from jlis.card.chip.chip import Keygen
    from jlis.card.chip.face import IssuerKey
    from jlis.card.chip.store import ChipStore
    from jlis.card.counter import Counter
    from jlis.card.hotline import Hotline
    from jlis.card.phone import PhoneCertificates
    from jlis.card.production import Production
    from jlis.container import Container
    from jlis.jpki.ca import CertificationAuthority
    from jlis.jpki.keystore import KeyStore
    from jlis.jpki.revocation import Revocations
    from jlis.settings import Settings

ACCESS_LOG = AuditLog("access")

# The national change stream acts as this principal (no person is behind it).
STREAM = Principal(
    id=0, username="card-stream", kind=PrincipalKind.JLIS_OPERATOR, display_name="カード管理システム"
)


def tool_principal(username: str, display_name: str, lg_code: str | None = None) -> Principal:
    """A principal for a local tool (the CLI, the demo set-up) acting as a J-LIS operator, or as
    staff of ``lg_code``; it signs nothing in, and ``username`` names the tool in the audit trail."""
    kind = PrincipalKind.MUNICIPAL_STAFF if lg_code else PrincipalKind.JLIS_OPERATOR
    return Principal(id=0, username=username, kind=kind, display_name=display_name, lg_code=lg_code)


RegisterFactory = Callable[[Session, str, str], RegistryService]


@dataclass
class CardDeps:
    """The long-lived parts a card service needs, built once (see :func:`deps_from_container`).

    ``registry`` builds a municipality's register on a session (``Container.registry``);
    ``key_dir`` holds the chip-storage key and the CA keys; ``base_url`` is what certificates
    carry in their CRL and OCSP URLs."""

    clock: Clock
    rng: random.Random
    geography: Geography
    registry: RegisterFactory
    key_dir: Path
    base_url: str
    keystore: KeyStore | None = None  # FileKeyStore / Pkcs11KeyStore; from ``settings`` when None
    settings: Settings | None = None
    keygen: Keygen | None = None  # the chips' key generator (tests inject a fast one)

    def chips(self, session: Session) -> ChipStore:
        from jlis.card.chip.store import ChipStore

        return ChipStore(session, self.key_dir, clock=self.clock, keygen=self.keygen)

    def ca(self, session: Session) -> CertificationAuthority:
        from jlis.jpki.ca import CertificationAuthority

        return CertificationAuthority(session, self.clock, self._keystore(), self.base_url, rng=self.rng)

    def _keystore(self) -> KeyStore:
        if self.keystore is None:
            from jlis.jpki.keystore import keystore_from_settings
            from jlis.settings import Settings

            self.keystore = keystore_from_settings(self.settings or Settings(key_dir=self.key_dir))
        return self.keystore

    def revocations(self, session: Session, actor: str) -> Revocations:
        from jlis.jpki.revocation import Revocations

        return Revocations(session, self.clock, actor=actor)


def deps_from_container(container: Container) -> CardDeps:
    settings = container.settings
    return CardDeps(
        clock=container.clock,
        rng=container.rng,
        geography=container.geography,
        registry=container.registry,
        key_dir=settings.resolved_key_dir,
        base_url=settings.resolved_public_url,
        settings=settings,
    )


def card_service(container: Container, session: Session, principal: Principal) -> CardService:
    return CardService(session, deps_from_container(container), principal)


@contextmanager
def card_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One card action: commit on success, roll back on any error — except a wrong or blocked PIN.
    A chip that refused a PIN has counted the try, and the action saved the chip (and nothing else)
    before refusing: that is committed, then the refusal goes on to the caller, as a card would."""
    from jlis.card.chip import PinBlocked, WrongPin

    with factory() as session:
        session.begin()
        try:
            yield session
        except (WrongPin, PinBlocked):
            session.commit()
            raise
        except BaseException:
            session.rollback()
            raise
        session.commit()


# ------------------------------------------------------------------------------------------ views


@dataclass(frozen=True)
class CardView:
    """A card as staff and operators see it (without the security code printed on its face)."""

    id: str
    application_id: str
    resident_code: str
    lg_code: str
    state: CardState
    algorithm: str
    batch_id: str | None
    express: bool
    target_date: dt.date | None
    manufactured_at: dt.datetime | None
    shipped_at: dt.datetime | None
    notice_sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    expires_on: dt.date | None
    suspended_at: dt.datetime | None
    voided_at: dt.datetime | None
    void_reason: VoidReason | None
    endorsements: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, row: CardRow) -> CardView:
        return cls(
            id=row.id,
            application_id=row.application_id,
            resident_code=row.resident_code,
            lg_code=row.lg_code,
            state=CardState(row.state),
            algorithm=row.algorithm,
            batch_id=row.batch_id,
            express=row.express,
            target_date=row.target_date,
            manufactured_at=row.manufactured_at,
            shipped_at=row.shipped_at,
            notice_sent_at=row.notice_sent_at,
            delivered_at=row.delivered_at,
            expires_on=row.expires_on,
            suspended_at=row.suspended_at,
            voided_at=row.voided_at,
            void_reason=VoidReason(row.void_reason) if row.void_reason else None,
            endorsements=tuple(row.endorsements or ()),
        )


@dataclass(frozen=True)
class ApplicationView:
    id: str
    resident_code: str
    lg_code: str
    channel: Channel
    express_reason: ExpressCase | None
    reissue_of: str | None
    reissue_reason: ReissueReason | None
    fee_yen: int
    status: ApplicationStatus
    rejection: str | None
    received_at: dt.datetime
    decided_at: dt.datetime | None
    target_date: dt.date | None

    @classmethod
    def of(cls, row: CardApplicationRow) -> ApplicationView:
        return cls(
            id=row.id,
            resident_code=row.resident_code,
            lg_code=row.lg_code,
            channel=Channel(row.channel),
            express_reason=ExpressCase(row.express_reason) if row.express_reason else None,
            reissue_of=row.reissue_of,
            reissue_reason=ReissueReason(row.reissue_reason) if row.reissue_reason else None,
            fee_yen=row.fee_yen,
            status=ApplicationStatus(row.status),
            rejection=row.rejection,
            received_at=row.received_at,
            decided_at=row.decided_at,
            target_date=express_target(row),
        )


@dataclass(frozen=True)
class EventView:
    at: dt.datetime
    event: CardEvent
    from_state: CardState | None
    to_state: CardState
    actor: str
    cause: str | None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: CardEventRow) -> EventView:
        return cls(
            at=row.at,
            event=CardEvent(row.event),
            from_state=CardState(row.from_state) if row.from_state else None,
            to_state=CardState(row.to_state),
            actor=row.actor,
            cause=row.cause,
            details=dict(row.details or {}),
        )


def express_target(row: CardApplicationRow) -> dt.date | None:
    """特急発行's target: one week from the day the application was received (JST)."""
    if not row.express_reason:
        return None
    return row.received_at.astimezone(JST).date() + dt.timedelta(days=EXPRESS_TARGET_DAYS)


def sex_iso5218(sex: str) -> int:
    """The register's sex as the chip's text application codes it (ISO 5218)."""
    return {"male": 1, "female": 2}.get(str(sex), 9)


# ------------------------------------------------------------------------------------------ service


class CardService:
    def __init__(self, session: Session, deps: CardDeps, principal: Principal) -> None:
        self.s = session
        self.deps = deps
        self.clock = deps.clock
        self.rng = deps.rng
        self.geo = deps.geography
        self.principal = principal
        self.actor = principal.actor
        self._registers: dict[str, RegistryService] = {}

    # -------------------------------------------------------------------------------- use cases

    @cached_property
    def counter(self) -> Counter:
        from jlis.card.counter import Counter

        return Counter(self)

    @cached_property
    def production(self) -> Production:
        from jlis.card.production import Production

        return Production(self)

    @cached_property
    def hotline(self) -> Hotline:
        from jlis.card.hotline import Hotline

        return Hotline(self)

    @cached_property
    def phone(self) -> PhoneCertificates:
        from jlis.card.phone import PhoneCertificates

        return PhoneCertificates(self)

    @cached_property
    def chips(self) -> ChipStore:
        return self.deps.chips(self.s)

    @cached_property
    def ca(self) -> CertificationAuthority:
        return self.deps.ca(self.s)

    @cached_property
    def issuer_key(self) -> IssuerKey:
        """The card-issuing system's key that signs the chip's card-face files (read once)."""
        return self.chips.issuer_key()

    # -------------------------------------------------------------------------------- scope

    def require_operator(self) -> None:
        self.principal.require_operator()

    def require_staff_of(self, lg_code: str) -> None:
        self.principal.require_staff_of(lg_code)

    def require_reader_of(self, lg_code: str) -> None:
        """Staff of the card's municipality, or a J-LIS operator."""
        if self.principal.kind is PrincipalKind.JLIS_OPERATOR:
            return
        self.principal.require_staff_of(lg_code)

    # -------------------------------------------------------------------------------- reads (audited)

    def get(self, card_id: str, *, purpose: str = "カード照会") -> CardView:
        row = self.load(card_id)
        self.require_reader_of(row.lg_code)
        self.audit_read(row.resident_code, purpose, card_id=row.id)
        return CardView.of(row)

    def cards(
        self, lg_code: str, *, state: CardState | None = None, limit: int = 200, purpose: str = "カード一覧"
    ) -> list[CardView]:
        """The cards a municipality holds (newest first), optionally in one state."""
        lg = str(LgCode.parse(lg_code, "地方公共団体コード"))
        self.require_reader_of(lg)
        stmt = select(CardRow).where(CardRow.lg_code == lg)
        if state is not None:
            stmt = stmt.where(CardRow.state == state.value)
        rows = self.s.execute(
            stmt.order_by(CardRow.manufactured_at.desc(), CardRow.id).limit(limit)
        ).scalars()
        views = []
        for row in rows:
            self.audit_read(row.resident_code, purpose, card_id=row.id)
            views.append(CardView.of(row))
        return views

    def events(self, card_id: str) -> list[EventView]:
        row = self.load(card_id)
        self.require_reader_of(row.lg_code)
        self.audit_read(row.resident_code, "カード履歴", card_id=row.id)
        rows = self.s.execute(
            select(CardEventRow).where(CardEventRow.card_id == card_id).order_by(CardEventRow.id)
        ).scalars()
        return [EventView.of(r) for r in rows]

    def application(self, application_id: str) -> ApplicationView:
        row = self.s.get(CardApplicationRow, application_id)
        if row is None:
            raise NotFound("申請書ID", application_id)
        self.require_reader_of(row.lg_code)
        self.audit_read(row.resident_code, "申請照会", application_id=row.id)
        return ApplicationView.of(row)

    def holder(self, card: CardView | CardRow) -> ResidentView:
        """The 住民票 of a card's holder in the card's municipality (the register audits the read)."""
        return self.register(card.lg_code).find_by_code(card.resident_code)

    def certificates(self, card_id: str) -> list[CertificateRow]:
        """The certificates issued for a card (its own and any phone's), oldest first."""
        return list(
            self.s.execute(
                select(CertificateRow).where(CertificateRow.card_id == card_id).order_by(CertificateRow.id)
            ).scalars()
        )

    # -------------------------------------------------------------------------------- intake

    def apply(self, form: ApplicationForm, *, void_details: dict[str, Any] | None = None) -> ApplicationView:
        """交付申請: checked against the 住民票 and the card history, then accepted (and stored).
        A refused application raises, naming the item and the rule, and stores nothing.

        Post and online applications reach J-LIS (a J-LIS operator enters them); counter
        applications are taken by the staff of the applicant's municipality."""
        lg = str(LgCode.parse(form.lg_code, "地方公共団体コード"))
        if form.channel is Channel.COUNTER:
            self.require_staff_of(lg)
        else:
            self.require_operator()
        MyNumber.parse(form.my_number)
        today = self.clock.today()
        resident = self.resident_by_number(lg, form.my_number)
        check_matches(
            form,
            family_name=resident.name.family,
            given_name=resident.name.given,
            birth_date=resident.birth_date,
        )
        plan = self.plan_application(resident, form, today)
        row = CardApplicationRow(
            id=self._new_application_id(lg, today),
            resident_code=resident.resident_code,
            lg_code=lg,
            channel=form.channel.value,
            express_reason=form.express.value if form.express else None,
            reissue_of=plan.reissue_of,
            reissue_reason=plan.reissue.value if plan.reissue else None,
            fee_yen=plan.fee,
            status=ApplicationStatus.ACCEPTED.value,
            rejection=None,
            received_at=self.clock.now(),
            decided_at=self.clock.now(),
        )
        self.s.add(row)
        self.s.flush()
        if plan.void_now is not None:
            old = self.load(plan.void_now[0])
            self.void(
                old,
                plan.void_now[1],
                cause=f"application:{row.id}",
                details={
                    "application_id": row.id,
                    "reissue_reason": plan.reissue.value if plan.reissue else None,
                    **(void_details or {}),
                },
            )
        return ApplicationView.of(row)

    def plan_application(self, resident: ResidentView, form: ApplicationForm, today: dt.date) -> Plan:
        """The rules that depend on the person's cards: one live card per person, renewal window,
        re-issue, 特急発行 and the fee."""
        live = self.live_card(resident.resident_code)
        pending = self.s.execute(
            select(CardApplicationRow.id).where(
                CardApplicationRow.resident_code == resident.resident_code,
                CardApplicationRow.status.in_(
                    [ApplicationStatus.ACCEPTED.value, ApplicationStatus.IN_PRODUCTION.value]
                ),
            )
        ).first()
        if pending is not None:
            raise RuleViolation("申請", f"an application is already being processed ({pending[0]})")
        reissue = form.reissue
        if form.express is not None and form.express in EXPRESS_REISSUE:
            implied = EXPRESS_REISSUE[form.express]
            if reissue is ReissueReason.DEFECT and implied is ReissueReason.DAMAGED:
                implied = ReissueReason.DEFECT  # damage that is not the holder's doing: the same case, free
            if reissue is not None and reissue is not implied:
                raise InvalidInput("再交付理由", f"must be {implied.value} for 特急発行 {form.express.value}")
            reissue = implied
        void_now: tuple[str, VoidReason] | None = None
        reissue_of: str | None = None
        if live is not None:
            state = CardState(live.state)
            if state not in (CardState.ACTIVE, CardState.SUSPENDED):
                raise RuleViolation(
                    "申請", "a card for this person is already being made or waiting at the counter"
                )
            if reissue is None:
                raise RuleViolation(
                    "申請",
                    "the person holds a live card: apply for a renewal (from 3 months before expiry) "
                    "or a re-issue (loss, damage, 追記欄満欄)",
                )
            if reissue is ReissueReason.CODE_CHANGE:
                raise RuleViolation("再交付理由", "code_change applies once the old card has been voided")
            if reissue is ReissueReason.RENEWAL:
                opens = renewal_opens_on(live.expires_on or today, next_generation=self._next_gen(live))
                if today < opens:
                    raise RuleViolation("更新", f"the renewal window opens on {opens.isoformat()}")
            elif form.channel is not Channel.COUNTER:
                raise RuleViolation("申請方法", "a re-issue is applied for at the counter")
            if reissue is ReissueReason.LOST:
                void_now = (live.id, VoidReason.LOST_REISSUED)
            elif reissue in (ReissueReason.DAMAGED, ReissueReason.DEFECT):
                void_now = (live.id, VoidReason.DAMAGED)
            reissue_of = live.id
        elif reissue is not None and reissue is not ReissueReason.CODE_CHANGE:
            last = self.last_card(resident.resident_code)
            if (
                reissue is ReissueReason.LOST
                and last is not None
                and last.void_reason == VoidReason.LOST_REISSUED
            ):
                raise RuleViolation("申請", "the lost card has already been re-issued")
            raise RuleViolation("再交付理由", f"{reissue.value} needs a live card to replace")
        elif reissue is ReissueReason.CODE_CHANGE:
            reissue_of = self._code_change_voided(resident.resident_code)
            if reissue_of is None:
                raise RuleViolation("再交付理由", "no card of this person was voided by a code change")
        if form.express is not None:
            event_date = self.express_event_date(resident, form, live)
            check_express(
                form.express,
                event_date=event_date,
                birth_date=resident.birth_date,
                today=today,
                channel=form.channel,
            )
            if form.express is ExpressCase.INFANT and (
                live is not None or self.last_card(resident.resident_code)
            ):
                raise RuleViolation("特急発行", "infant: only for a first card")
            chargeable = express_chargeable(form.express, holder_responsible=form.holder_responsible)
        else:
            chargeable = reissue is not None and reissue.chargeable
            if reissue is ReissueReason.DAMAGED and not form.holder_responsible:
                chargeable = False
        if reissue is ReissueReason.DEFECT:
            chargeable = False
        if reissue is ReissueReason.DAMAGED and not form.holder_responsible:
            reissue = ReissueReason.DEFECT
        fee = fee_yen(chargeable=chargeable, express=form.express is not None, certificates=form.certificates)
        return Plan(reissue=reissue, reissue_of=reissue_of, void_now=void_now, fee=fee)

    def express_event_date(
        self, resident: ResidentView, form: ApplicationForm, live: CardRow | None
    ) -> dt.date | None:
        """The event an express case counts its 30 days from: taken from our own records where we
        have them (the loss report, the voiding by a code change), else as the applicant states it."""
        case = form.express
        if case is ExpressCase.LOST:
            if live is None or live.state != CardState.SUSPENDED.value or live.suspended_at is None:
                raise RuleViolation("特急発行", "lost: the loss must have been reported (一時停止) first")
            return live.suspended_at.astimezone(JST).date()
        if case is ExpressCase.CODE_CHANGE:
            voided_id = self._code_change_voided(resident.resident_code)
            voided = self.s.get(CardRow, voided_id) if voided_id else None
            if voided is None or voided.voided_at is None:
                raise RuleViolation(
                    "特急発行", "code_change: no card of this person was voided by a code change"
                )
            return voided.voided_at.astimezone(JST).date()
        if case is ExpressCase.FROM_ABROAD and form.express_event_date is None:
            return resident.notified_on
        return form.express_event_date

    def resident_by_number(self, lg_code: str, my_number: str) -> ResidentView:
        """The 住民 (status active) of ``lg_code`` with this 個人番号; refused otherwise."""
        found = self.register(lg_code).search(my_number)
        if not found:
            raise RuleViolation("個人番号", "must be a resident of the municipality (住民票 not found)")
        resident = found[0]
        if resident.status is not Status.ACTIVE:
            raise RuleViolation("住民票", f"must be 記載 (active), not {resident.status.value}")
        return resident

    # -------------------------------------------------------------------------------- internals

    def register(self, lg_code: str) -> RegistryService:
        if lg_code not in self._registers:
            self._registers[lg_code] = self.deps.registry(self.s, lg_code, self.actor)
        return self._registers[lg_code]

    def load(self, card_id: str) -> CardRow:
        row = self.s.get(CardRow, (card_id or "").strip())
        if row is None:
            raise NotFound("カード", card_id)
        return row

    def live_cards(self, resident_code: str) -> list[CardRow]:
        """Usually one; two while a renewed card is being made and the old one is still in use."""
        return list(
            self.s.execute(
                select(CardRow)
                .where(CardRow.resident_code == resident_code, CardRow.state != CardState.VOIDED.value)
                .order_by(CardRow.manufactured_at)
            ).scalars()
        )

    def live_card(self, resident_code: str) -> CardRow | None:
        """The person's card in the holder's hands if there is one, else the one being made."""
        cards = self.live_cards(resident_code)
        delivered = [c for c in cards if c.state in (CardState.ACTIVE.value, CardState.SUSPENDED.value)]
        found = delivered or cards
        return found[0] if found else None

    def last_card(self, resident_code: str) -> CardRow | None:
        return (
            self.s.execute(
                select(CardRow)
                .where(CardRow.resident_code == resident_code)
                .order_by(CardRow.manufactured_at.desc())
            )
            .scalars()
            .first()
        )

    def _code_change_voided(self, resident_code: str) -> str | None:
        """The card voided by the change that gave this person ``resident_code`` (the void event
        records the new code: the card itself keeps the code it was issued under)."""
        rows = self.s.execute(
            select(CardEventRow.card_id, CardEventRow.details)
            .join(CardRow, CardRow.id == CardEventRow.card_id)
            .where(
                and_(
                    CardEventRow.event == CardEvent.VOID.value,
                    CardRow.void_reason == VoidReason.CODE_CHANGE.value,
                )
            )
            .order_by(CardEventRow.id.desc())
        )
        for card_id, details in rows:
            if (details or {}).get("new_resident_code") == resident_code:
                return str(card_id)
        return None

    def _next_gen(self, card: CardRow) -> bool:
        from jlis.jpki.profile import Algorithm

        return card.algorithm == Algorithm.P384_SHA384.value

    def _new_application_id(self, lg_code: str, today: dt.date) -> str:
        for _ in range(20):
            candidate = new_application_id(lg_code, today, self.rng)
            if self.s.get(CardApplicationRow, candidate) is None:
                return candidate
        raise RuleViolation("申請書ID", "could not draw an unused number")  # pragma: no cover

    def transition(
        self,
        card: CardRow,
        event: CardEvent,
        *,
        cause: str | None = None,
        reason: VoidReason | None = None,
        details: dict[str, Any] | None = None,
    ) -> CardEventRow:
        """Apply ``event`` to ``card`` (refused by the state machine if illegal) and record it."""
        before = CardState(card.state)
        after = next_state(before, event, reason)
        now = self.clock.now()
        card.state = after.value
        row = CardEventRow(
            card_id=card.id,
            at=now,
            event=event.value,
            from_state=before.value,
            to_state=after.value,
            actor=self.actor,
            cause=cause,
            details=details or {},
        )
        self.s.add(row)
        return row

    def record_creation(self, card: CardRow, *, cause: str | None, details: dict[str, Any]) -> None:
        self.s.add(
            CardEventRow(
                card_id=card.id,
                at=self.clock.now(),
                event=CardEvent.MANUFACTURE.value,
                from_state=None,
                to_state=CardState.MANUFACTURED.value,
                actor=self.actor,
                cause=cause,
                details=details,
            )
        )

    def void(
        self,
        card: CardRow,
        reason: VoidReason,
        *,
        cause: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """廃止: the transition, the chip terminated, and every certificate of the card (and of a
        phone linked to it) revoked. The application of an undelivered card is closed."""
        self.transition(card, CardEvent.VOID, cause=cause, reason=reason, details=details)
        card.voided_at = self.clock.now()
        card.void_reason = reason.value
        chip = self.chips.load(card.id) if self.chips.exists(card.id) else None
        if chip is not None and not chip.voided:
            chip.void()
            self.chips.save(chip)
        self.revoke_certificates(card.id, reason, cause=cause)
        app = self.s.get(CardApplicationRow, card.application_id)
        if app is not None and app.status == ApplicationStatus.IN_PRODUCTION.value:
            app.status = ApplicationStatus.REJECTED.value
            app.rejection = f"card voided before delivery: {reason.value}"
            app.decided_at = self.clock.now()

    @cached_property
    def revocations(self) -> Revocations:
        return self.deps.revocations(self.s, self.actor)

    def revoke_certificates(
        self,
        card_id: str,
        reason: VoidReason,
        *,
        cause: str,
        kinds: Sequence[str] = (SIGN, AUTH),
        holders: Sequence[str] = (CARD, PHONE),
    ) -> list[CertificateRow]:
        """Revoke the card's certificates (by default its phone's too: they end with the card)."""
        return self.revocations.revoke_card(
            card_id, crl_reason(reason), cause[:120], kinds=tuple(kinds), holders=tuple(holders)
        )

    # -------------------------------------------------------------------------------- certificates

    def issue_certificates(
        self,
        card: CardRow,
        chip: VirtualChip,
        resident: ResidentView,
        *,
        kinds: Sequence[str],
        holder_kind: str = CARD,
    ) -> dict[str, CertificateRow]:
        """Issue the certificates of ``kinds`` for the chip's keys (A's CA) and install them."""
        from jlis.jpki.holder import from_resident
        from jlis.jpki.profile import profile_for
        from jlis.jpki.revocation import notify_issued

        profile = profile_for(card.algorithm)
        holder = from_resident(resident)
        assert card.expires_on is not None
        issued: dict[str, CertificateRow] = {}
        for kind in kinds:
            issued[kind] = self.ca.issue(
                kind,
                chip.public_key("sign" if kind == SIGN else "auth"),
                holder,
                card_id=card.id,
                holder_kind=holder_kind,
                card_expires_on=card.expires_on,
                profile=profile,
            )
        self.s.flush()
        for kind, cert in issued.items():
            chip.install_certificate("sign" if kind == SIGN else "auth", cert.der, self.ca_der(cert))
        # After the commit, this process's OCSP responder pre-signs their answers.
        notify_issued(self.s, list(issued.values()))
        return issued

    def ca_der(self, cert: CertificateRow) -> bytes:
        generation = self.s.get(CaGenerationRow, cert.ca_generation_id)
        assert generation is not None
        return generation.certificate_der

    def good_certificates(self, card_id: str, *, holder: str = CARD) -> dict[str, CertificateRow]:
        """The certificates of a card (or its phone) still in force (good or on hold), by kind."""
        out: dict[str, CertificateRow] = {}
        for cert in self.certificates(card_id):
            if cert.holder == holder and cert.status in (GOOD, HOLD):
                out[cert.ca_kind] = cert
        return out

    # -------------------------------------------------------------------------------- audit

    def audit_read(self, resident_code: str, purpose: str, **ids: str) -> None:
        ACCESS_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=self.actor,
            action="read",
            subject=resident_code,
            details={"system": "card", "purpose": purpose, **ids},
        )


@dataclass(frozen=True)
class Plan:
    reissue: ReissueReason | None
    reissue_of: str | None
    void_now: tuple[str, VoidReason] | None
    fee: int


def crl_reason(reason: VoidReason) -> str:
    """The RFC 5280 reason the certificates of a card voided for ``reason`` are revoked with."""
    from jlis.jpki.revocation import Reason

    reasons = {
        VoidReason.DEATH: Reason.CESSATION_OF_OPERATION,
        VoidReason.MOVE_ABROAD: Reason.CESSATION_OF_OPERATION,
        VoidReason.EXPIRY: Reason.CESSATION_OF_OPERATION,
        VoidReason.REPLACED: Reason.SUPERSEDED,
        VoidReason.CODE_CHANGE: Reason.AFFILIATION_CHANGED,
        VoidReason.REGISTER_DELETED: Reason.CESSATION_OF_OPERATION,
        VoidReason.RETURNED: Reason.CESSATION_OF_OPERATION,
        VoidReason.LOST_REISSUED: Reason.KEY_COMPROMISE,  # the lost card's keys are out of our hands
        VoidReason.DAMAGED: Reason.SUPERSEDED,
        VoidReason.UNCOLLECTED: Reason.CESSATION_OF_OPERATION,
    }
    return reasons[reason].value
