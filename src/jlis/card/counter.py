"""The municipal counter's card work (窓口): the 交付通知書, delivery with the identity check and the
four PINs (both certificates issued then), lifting a suspension, re-issue, return and voiding,
継続利用 after a move, PIN resets and a new signing certificate.

Scope: the staff of the municipality that holds the card (``card.lg_code``); 継続利用 after a move
is done by the staff of the municipality moved *into*, which then holds the card.

PINs and the chip: where the holder types a PIN (継続利用), a wrong one decrements the chip's
counter like a real card. That decrement is kept even though the action is refused: the chip is
saved before :class:`WrongPin` / :class:`PinBlocked` propagates, nothing else has been changed by
then, and the faces commit on those two errors (see :func:`jlis.card.service.card_transaction`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from jlis.auth.models import PrincipalKind
from jlis.card.applications import ApplicationForm, ApplicationStatus, Channel, ExpressCase, ReissueReason
from jlis.card.chip import PinBlocked, VirtualChip, WrongPin
from jlis.card.documents import Document, check_identity
from jlis.card.lifecycle import CardEvent, CardState, VoidReason, next_state
from jlis.card.pins import PinSet, check_pin, check_sign_password
from jlis.card.service import ApplicationView, CardService, CardView
from jlis.card.tables import CardApplicationRow, CardRow
from jlis.clock import JST
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.jpki.tables import AUTH, CARD, HOLD, SIGN
from jlis.registry import ResidentView, Status

MAX_ENDORSEMENTS = 6  # lines of the 追記欄 on the back of the card (our choice; when full: re-issue)
MOVE_IN_NOTICE_DAYS = 14  # the 転入届 is due within 14 days of moving in (facts §4.4)
CONTINUED_USE_DAYS = 90  # 継続利用 within 90 days of the 転入届, or the card lapses ([M], facts §4.4)
SIGN_MIN_AGE = 15  # signing certificates are not issued to under-15s in principle (facts §3.2)
COLLECT_WITHIN_DAYS = 90  # printed on the 交付通知書 as the collection deadline (municipal practice)
ABROAD = "国外"

# Reasons a counter may void a card for (a loss goes through re-issue, which charges its fee).
COUNTER_VOID_REASONS = frozenset(VoidReason) - {VoidReason.LOST_REISSUED}

T = TypeVar("T")


@dataclass(frozen=True)
class Notice:
    """交付通知書: what the postcard says."""

    card: CardView
    name: str
    address: str
    birth_date: dt.date
    municipality: str
    sent_on: dt.date
    collect_by: dt.date


@dataclass(frozen=True)
class Delivery:
    card: CardView
    auth_serial: str
    sign_serial: str | None


class Counter:
    def __init__(self, svc: CardService) -> None:
        self.svc = svc
        self.s = svc.s

    # ------------------------------------------------------------------------------ helpers

    def _card_here(self, card_id: str) -> CardRow:
        card = self.svc.load(card_id)
        self.svc.require_staff_of(card.lg_code)
        return card

    def _check_event(self, card: CardRow, event: CardEvent) -> None:
        """Refuse an illegal event before anything is written (the transition checks again)."""
        next_state(card.state, event)

    def _resident_here(self, card: CardRow, lg_code: str | None = None) -> ResidentView:
        resident = self.svc.register(lg_code or card.lg_code).find_by_code(card.resident_code)
        if resident.status is not Status.ACTIVE:
            raise RuleViolation(
                "住民票", f"the holder must be a resident of this municipality (now {resident.status.value})"
            )
        return resident

    def _holder_here(self, card: CardRow) -> ResidentView:
        """The holder's 住民票 in the staff member's municipality: the one holding the card, or the
        one the holder has moved into (which takes the card over with 継続利用). Staff of any other
        municipality are refused as if the card were not theirs (fails closed)."""
        self.svc.principal.require_kind(PrincipalKind.MUNICIPAL_STAFF)
        here = str(self.svc.principal.lg_code)
        if here == card.lg_code:
            return self._resident_here(card)
        try:
            resident = self.svc.register(here).find_by_code(card.resident_code)
        except NotFound:
            resident = None
        if resident is None or resident.status is not Status.ACTIVE:
            raise Forbidden(
                f"the holder of this card is not a resident of {here}",
                field="地方公共団体コード",
                rule="must be the municipality holding the card or the holder's new one",
            )
        return resident

    def _with_pin(self, chip: VirtualChip, action: Callable[[], T]) -> T:
        try:
            return action()
        except (WrongPin, PinBlocked):
            self.svc.chips.save(chip)  # the chip's counter went down: keep it, as the card would
            raise

    def _municipality_name(self, lg_code: str) -> str:
        m = self.svc.geo.municipality(lg_code)
        return self.svc.geo.prefecture(m.pref_code).name + m.full_name

    def _endorse(self, card: CardRow, entry: dict[str, str]) -> None:
        card.endorsements = [*(card.endorsements or []), entry]  # a new list: JSON columns see reassignment

    # ------------------------------------------------------------------------------ 交付通知書

    def send_notice(self, card_id: str) -> Notice:
        """The municipality received the card and mails the 交付通知書."""
        card = self._card_here(card_id)
        self._check_event(card, CardEvent.NOTIFY)
        resident = self._resident_here(card)
        self.svc.transition(card, CardEvent.NOTIFY)
        card.notice_sent_at = self.svc.clock.now()
        return self._notice(card, resident)

    def notice(self, card_id: str) -> Notice:
        """The 交付通知書 of a card waiting at the counter, to print (again)."""
        card = self._card_here(card_id)
        if card.state != CardState.NOTIFIED.value:
            raise RuleViolation("カードの状態", "a 交付通知書 exists for a card waiting at the counter only")
        resident = self.svc.holder(card)
        return self._notice(card, resident)

    def _notice(self, card: CardRow, resident: ResidentView) -> Notice:
        sent = card.notice_sent_at or self.svc.clock.now()
        sent_on = sent.astimezone(JST).date()
        return Notice(
            card=CardView.of(card),
            name=resident.name.full,
            address=resident.address.text,
            birth_date=resident.birth_date,
            municipality=self._municipality_name(card.lg_code),
            sent_on=sent_on,
            collect_by=sent_on + dt.timedelta(days=COLLECT_WITHIN_DAYS),
        )

    # ------------------------------------------------------------------------------ delivery

    def deliver(
        self,
        card_id: str,
        *,
        documents: Iterable[Document],
        pins: PinSet,
        representative: str | None = None,
    ) -> Delivery:
        """交付: identity check (the 交付通知書 and ID), the four PINs on the chip, the
        authentication certificate (everyone) and the signing certificate (15 or over, when a
        password is set), both installed on the chip. A renewed card's predecessor is voided."""
        from jlis.jpki.validity import age_on

        card = self._card_here(card_id)
        self._check_event(card, CardEvent.DELIVER)
        shown = check_identity(documents, require=[Document.NOTICE])
        resident = self._resident_here(card)
        today = self.svc.clock.today()
        age = age_on(resident.birth_date, today)
        rep = (representative or "").strip() or None
        if age < SIGN_MIN_AGE:
            if pins.sign_password is not None:
                raise RuleViolation(SIGN_FIELD, "a signing certificate is not issued to a holder under 15")
            if rep is None:
                raise InvalidInput("法定代理人", "required for a holder under 15 (the PINs are set by them)")
        kinds = [AUTH, SIGN] if pins.sign_password is not None else [AUTH]
        chip = self.svc.chips.load(card.id)
        chip.set_pins(pins.auth_pin, pins.sign_password, pins.juki_pin, pins.text_pin)
        issued = self.svc.issue_certificates(card, chip, resident, kinds=kinds)
        self.svc.chips.save(chip)
        self.svc.transition(
            card,
            CardEvent.DELIVER,
            details={
                "documents": [d.value for d in shown],
                "representative": rep,
                "certificates": {k: c.serial for k, c in issued.items()},
            },
        )
        card.delivered_at = self.svc.clock.now()
        app = self.s.get(CardApplicationRow, card.application_id)
        if app is not None:
            app.status = ApplicationStatus.DONE.value
            app.decided_at = card.delivered_at
            if app.reissue_of:
                old = self.s.get(CardRow, app.reissue_of)
                if old is not None and old.state != CardState.VOIDED.value:
                    self.svc.void(old, VoidReason.REPLACED, cause=f"delivery:{card.id}")
        return Delivery(
            CardView.of(card), issued[AUTH].serial, issued[SIGN].serial if SIGN in issued else None
        )

    # ------------------------------------------------------------------------------ suspension

    def lift_suspension(self, card_id: str, *, documents: Iterable[Document]) -> CardView:
        """一時停止の解除: the holder comes with the card and ID; the held certificates return to good."""
        card = self._card_here(card_id)
        self._check_event(card, CardEvent.LIFT)
        shown = check_identity(documents, require=[Document.MY_NUMBER_CARD])
        self._resident_here(card)
        self.svc.transition(card, CardEvent.LIFT, details={"documents": [d.value for d in shown]})
        card.suspended_at = None
        held = self.svc.good_certificates(card.id)
        if any(c.status == HOLD for c in held.values()):
            self.svc.revocations.release_card(
                card.id, staff=self.svc.principal, cause=f"counter:lift:{card.id}", holders=(CARD,)
            )
        return CardView.of(card)

    # ------------------------------------------------------------------------------ re-issue

    def reissue(
        self,
        card_id: str,
        reason: ReissueReason,
        *,
        documents: Iterable[Document],
        express: bool = False,
        event_date: dt.date | None = None,
        holder_responsible: bool = True,
        lost_outside_home: bool = False,
        police_report_no: str | None = None,
        certificates: bool = True,
    ) -> ApplicationView:
        """再交付 (loss, damage, 追記欄満欄, renewal) of the card the holder has (or had): a new
        counter application with its fee; after a loss or damage the old card is voided at once and
        its certificates revoked."""
        card = self._card_here(card_id)
        shown = check_identity(documents)
        police = (police_report_no or "").strip() or None
        if reason is ReissueReason.LOST and lost_outside_home and police is None:
            raise InvalidInput("遺失届の受理番号", "required for a loss outside the home")
        resident = self._resident_here(card)
        case = _EXPRESS_FOR.get(reason) if express else None
        if express and case is None:
            raise RuleViolation("特急発行", f"a {reason.value} re-issue is not an express case")
        form = ApplicationForm(
            lg_code=card.lg_code,
            my_number=resident.my_number,
            family_name=resident.name.family,
            given_name=resident.name.given,
            birth_date=resident.birth_date,
            channel=Channel.COUNTER,
            express=case,
            express_event_date=event_date,
            reissue=reason,
            holder_responsible=holder_responsible and reason is not ReissueReason.DEFECT,
            certificates=certificates,
        )
        return self.svc.apply(
            form,
            void_details={
                "documents": [d.value for d in shown],
                "police_report_no": police,
                "lost_outside_home": lost_outside_home,
            },
        )

    # ------------------------------------------------------------------------------ return / void

    def return_card(
        self, card_id: str, reason: VoidReason, *, documents: Iterable[Document] = ()
    ) -> CardView:
        """返納・廃止 at the counter; the card's certificates (and its phone's) are revoked."""
        card = self._card_here(card_id)
        if reason not in COUNTER_VOID_REASONS:
            raise RuleViolation("廃止理由", "a lost card is voided by its re-issue (with the fee)")
        next_state(card.state, CardEvent.VOID, reason)
        self.svc.void(
            card,
            reason,
            cause=f"counter:{reason.value}:{card.id}",
            details={"documents": sorted(d.value for d in documents)},
        )
        return CardView.of(card)

    # ------------------------------------------------------------------------------ 継続利用

    def continue_use(self, card_id: str, *, juki_pin: str, documents: Iterable[Document]) -> CardView:
        """継続利用 / 住所の書換え: the holder's new address goes onto the chip (with the 住基 PIN)
        and onto the back of the card (追記). After a 転入 the municipality moved into does it,
        within the deadlines, and then holds the card; after a 転居 the same municipality does.
        The authentication certificate survives; the signing one was revoked by the move."""
        card = self.svc.load(card_id)
        resident = self._holder_here(card)
        here = resident.lg_code
        self._check_event(card, CardEvent.CONTINUED_USE)
        shown = check_identity(documents, require=[Document.MY_NUMBER_CARD])
        self._check_room(card)
        today = self.svc.clock.today()
        moved = here != card.lg_code
        if moved:
            self._check_move_deadlines(resident, today)
        chip = self.svc.chips.load(card.id)
        if self._chip_address(chip) == resident.address.text:
            raise RuleViolation("住所", "the card already shows the current address")
        issuer_key = self.svc.issuer_key
        self._with_pin(
            chip,
            lambda: chip.rewrite_address(resident.address.text, juki_pin=juki_pin, issuer_key=issuer_key),
        )
        self.svc.chips.save(chip)
        entry = {
            "on": today.isoformat(),
            "kind": "move_in" if moved else "relocation",
            "address": resident.address.text,
            "lg_code": here,
            "by": self.svc.actor,
        }
        self._endorse(card, entry)
        self.svc.transition(
            card,
            CardEvent.CONTINUED_USE,
            details={"documents": [d.value for d in shown], "from_lg_code": card.lg_code, **entry},
        )
        card.lg_code = here
        return CardView.of(card)

    def continue_use_abroad(self, card_id: str, *, juki_pin: str, documents: Iterable[Document]) -> CardView:
        """国外転出者向けの継続利用 (Japanese nationals, since 2024-05-27): done at the counter before
        the 国外転出届 is recorded. The chip's address becomes 国外, the back is endorsed, and the
        card is flagged so that the 国外転出 in the national change stream keeps it instead of
        voiding it. (Modelled as a flag before the move because the stream acts on the 届出 itself.)"""
        card = self._card_here(card_id)
        self._check_event(card, CardEvent.ABROAD_REQUESTED)
        shown = check_identity(documents, require=[Document.MY_NUMBER_CARD])
        self._check_room(card)
        resident = self._resident_here(card)
        if resident.is_foreign:
            raise RuleViolation("国籍", "継続利用 abroad is for Japanese nationals")
        chip = self.svc.chips.load(card.id)
        issuer_key = self.svc.issuer_key
        self._with_pin(chip, lambda: chip.rewrite_address(ABROAD, juki_pin=juki_pin, issuer_key=issuer_key))
        self.svc.chips.save(chip)
        today = self.svc.clock.today()
        entry = {
            "on": today.isoformat(),
            "kind": "abroad",
            "address": ABROAD,
            "lg_code": card.lg_code,
            "by": self.svc.actor,
        }
        self._endorse(card, entry)
        self.svc.transition(
            card, CardEvent.ABROAD_REQUESTED, details={"documents": [d.value for d in shown], **entry}
        )
        return CardView.of(card)

    def _check_room(self, card: CardRow) -> None:
        if len(card.endorsements or []) >= MAX_ENDORSEMENTS:
            raise RuleViolation(
                "追記欄", "no room left: apply for a re-issue (endorsement_full, free, 特急発行 eligible)"
            )

    def _check_move_deadlines(self, resident: ResidentView, today: dt.date) -> None:
        # resident_since is the move-in date even if the holder has moved again within the town since.
        if (resident.notified_on - resident.resident_since).days > MOVE_IN_NOTICE_DAYS:
            raise RuleViolation(
                "転入届", f"継続利用 needs a 転入届 within {MOVE_IN_NOTICE_DAYS} days of moving in"
            )
        if (today - resident.notified_on).days > CONTINUED_USE_DAYS:
            raise RuleViolation(
                "継続利用",
                f"must be done within {CONTINUED_USE_DAYS} days of the 転入届; the card has lapsed",
            )

    @staticmethod
    def _chip_address(chip: VirtualChip) -> str:
        from jlis.card.chip import files
        from jlis.card.chip.face import parse_text_attributes

        return parse_text_attributes(chip.file(files.TEXT_AID, files.TEXT_ATTRIBUTES)).address

    # ------------------------------------------------------------------------------ PINs and certificates

    def reset_pin(self, card_id: str, which: str, new_pin: str, *, documents: Iterable[Document]) -> CardView:
        """暗証番号の初期化 (a forgotten or blocked PIN): identity check, a new PIN, a full counter.
        Done where the holder lives (after a move, before 継続利用 too)."""
        card = self.svc.load(card_id)
        self._holder_here(card)
        self._check_event(card, CardEvent.PIN_RESET)
        value = check_pin(which, new_pin)
        shown = check_identity(documents)
        chip = self.svc.chips.load(card.id)
        chip.reset_pin(which, value)
        self.svc.chips.save(chip)
        self.svc.transition(
            card, CardEvent.PIN_RESET, details={"pin": which, "documents": [d.value for d in shown]}
        )
        return CardView.of(card)

    def issue_signing_certificate(self, card_id: str, *, password: str, documents: Iterable[Document]) -> str:
        """A new 署名用電子証明書 (after a move or a name change revoked the old one), with a new
        password. Returns its serial. The chip keeps its signing key pair: our chip has no command
        to generate a new one (the real card does), which the docs list as a simplification."""
        from jlis.jpki.validity import age_on

        card = self._card_here(card_id)
        self._check_event(card, CardEvent.SIGN_CERT_ISSUED)
        value = check_sign_password(password)
        shown = check_identity(documents)
        resident = self._resident_here(card)
        if age_on(resident.birth_date, self.svc.clock.today()) < SIGN_MIN_AGE:
            raise RuleViolation(SIGN_FIELD, "a signing certificate is not issued to a holder under 15")
        if SIGN in self.svc.good_certificates(card.id):
            raise RuleViolation("署名用電子証明書", "the card already has a signing certificate in force")
        if AUTH not in self.svc.good_certificates(card.id):
            raise RuleViolation(
                "利用者証明用電子証明書", "the card has no authentication certificate in force"
            )
        chip = self.svc.chips.load(card.id)
        chip.reset_pin("sign", value)
        issued = self.svc.issue_certificates(card, chip, resident, kinds=[SIGN])
        self.svc.chips.save(chip)
        self.svc.transition(
            card,
            CardEvent.SIGN_CERT_ISSUED,
            details={"serial": issued[SIGN].serial, "documents": [d.value for d in shown]},
        )
        return issued[SIGN].serial


SIGN_FIELD = "署名用電子証明書"
_EXPRESS_FOR = {
    ReissueReason.LOST: ExpressCase.LOST,
    ReissueReason.DAMAGED: ExpressCase.DAMAGED,
    ReissueReason.DEFECT: ExpressCase.DAMAGED,
    ReissueReason.ENDORSEMENT_FULL: ExpressCase.ENDORSEMENT_FULL,
}
