"""The card system's handler of the national change stream (node kind ``card``).

``NationalNode`` forwards every applied 本人確認情報 record to its subscribers; the relay hands the
card system's share to :class:`CardStreamNode` in the relay's transaction. What the card system does
with each change (the *card* consequences; the revocation helper revokes signing certificates on
its own subscription):

- 死亡 (death): the card is voided (death) and every certificate of it revoked; an application not
  yet made into a card is closed.
- 国外転出: the card is voided (move_abroad) unless the holder asked for 継続利用 abroad at the
  counter before the 届出 (``Counter.continue_use_abroad`` flags the card); then the card is kept
  and the move is endorsed. Modelling note: the real card lapses on the move date itself; we act on
  the 届出, which the register records with the planned date.
- 住民票コード変更 (``previous_resident_code`` set): the card issued under the old code is voided
  (code_change) and the new code is recorded on the void event, which makes the person eligible for
  特急発行 (code_change) with the new code.
- 住民票の消除 for any other reason (the record says ``removed``): voided (register_deleted).
- A 転入 elsewhere before the card was delivered: the card can no longer be handed over where it
  waits, so it is voided (register_deleted) and its application closed; the person applies again.
- Anything else (a delivered card's holder moving, a name change, a correction): nothing here. The
  authentication certificate survives; 継続利用 and 追記 are done at the counter.

Idempotent: each consequence records ``cause = identity:<message id>``, and a repeat (the relay's
inbox already drops most) finds the card voided or the cause recorded and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.card.applications import ApplicationStatus
from jlis.card.lifecycle import CardEvent, CardState, VoidReason
from jlis.card.service import STREAM, CardDeps, CardService
from jlis.card.tables import CardApplicationRow, CardEventRow, CardRow
from jlis.juki.errors import MessageRefused
from jlis.juki.models import NATIONAL
from jlis.messaging import Message
from jlis.registry import ChangeReason, IdentityRecord, Status
from jlis.registry.events import TOPIC_IDENTITY

NODE_KIND = "card"
DESTINATION = "card"  # what the national node's ``subscribers`` lists for the card system
_UNDELIVERED = (CardState.MANUFACTURED.value, CardState.SHIPPED.value, CardState.NOTIFIED.value)


class CardStreamNode:
    def __init__(self, deps: CardDeps) -> None:
        self.deps = deps

    def __call__(self, session: Session, node: str, messages: list[Message]) -> None:
        self.apply_groups(session, [(node, messages)])

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]]) -> None:
        """Most records change nothing for cards (and most people have none): the round looks up,
        in one query per table, which of the people it concerns have a card or an application,
        and applies only their records."""
        records: list[tuple[IdentityRecord, str]] = []
        for node, messages in groups:
            for m in messages:
                # Fails closed: anything but the national server's identity records is refused
                # (the relay then parks it with its error) and nothing of the batch is applied.
                if m.topic != TOPIC_IDENTITY:
                    raise MessageRefused(
                        node, m.source, m.topic, "the card system takes identity records only"
                    )
                if m.source != NATIONAL:
                    raise MessageRefused(node, m.source, m.topic, "only the national server's change stream")
                if m.payload.get("reason") in _RELEVANT or m.payload.get("status") == Status.REMOVED.value:
                    records.append((IdentityRecord.from_payload(m.payload), m.message_id))
        if not records:
            return
        concerned = _with_cards(session, {_subject(r) for r, _ in records})
        if not concerned:
            return
        svc = CardService(session, self.deps, STREAM)
        for record, message_id in records:
            if _subject(record) in concerned:
                apply_record(svc, record, message_id)


_RELEVANT = frozenset(
    r.value
    for r in (
        ChangeReason.DEATH,
        ChangeReason.MOVE_ABROAD,
        ChangeReason.CODE_CHANGE,
        ChangeReason.MOVE_IN,
        ChangeReason.SPECIAL_MOVE_IN,
    )
)
_CHUNK = 500


def _subject(record: IdentityRecord) -> str:
    """Whose cards a record concerns (a code change concerns the cards of the old code)."""
    if record.reason is ChangeReason.CODE_CHANGE and record.previous_resident_code:
        return record.previous_resident_code
    return record.resident_code


def _with_cards(session: Session, codes: set[str]) -> set[str]:
    """The codes among ``codes`` with a live card or an open application."""
    found: set[str] = set()
    ordered = sorted(codes)
    open_apps = [ApplicationStatus.ACCEPTED.value, ApplicationStatus.IN_PRODUCTION.value]
    for i in range(0, len(ordered), _CHUNK):
        chunk = ordered[i : i + _CHUNK]
        found.update(
            session.execute(
                select(CardRow.resident_code).where(
                    CardRow.resident_code.in_(chunk), CardRow.state != CardState.VOIDED.value
                )
            ).scalars()
        )
        found.update(
            session.execute(
                select(CardApplicationRow.resident_code).where(
                    CardApplicationRow.resident_code.in_(chunk), CardApplicationRow.status.in_(open_apps)
                )
            ).scalars()
        )
    return found


def apply_record(svc: CardService, record: IdentityRecord, message_id: str) -> list[str]:
    """The card consequences of one record; returns the ids of the cards it changed."""
    cause = f"identity:{message_id}"
    reason = record.reason
    if reason is ChangeReason.CODE_CHANGE and record.previous_resident_code:
        return _void_all(
            svc,
            record.previous_resident_code,
            VoidReason.CODE_CHANGE,
            cause,
            {"new_resident_code": record.resident_code, "change_date": record.change_date.isoformat()},
        )
    if reason is ChangeReason.DEATH:
        return _void_all(
            svc,
            record.resident_code,
            VoidReason.DEATH,
            cause,
            {"change_date": record.change_date.isoformat()},
        )
    if reason is ChangeReason.MOVE_ABROAD:
        return _move_abroad(svc, record, cause)
    if reason in (ChangeReason.MOVE_IN, ChangeReason.SPECIAL_MOVE_IN):
        return _moved_before_delivery(svc, record, cause)
    if record.status == Status.REMOVED.value:  # 消除 for any other reason (e.g. 職権消除)
        return _void_all(
            svc,
            record.resident_code,
            VoidReason.REGISTER_DELETED,
            cause,
            {"change_date": record.change_date.isoformat(), "reason": reason.value},
        )
    return []


def _cards(svc: CardService, resident_code: str) -> list[CardRow]:
    return list(
        svc.s.execute(
            select(CardRow)
            .where(CardRow.resident_code == resident_code, CardRow.state != CardState.VOIDED.value)
            .order_by(CardRow.id)
        ).scalars()
    )


def _seen(svc: CardService, card_id: str, cause: str) -> bool:
    return (
        svc.s.execute(
            select(CardEventRow.id).where(CardEventRow.card_id == card_id, CardEventRow.cause == cause)
        ).first()
        is not None
    )


def _close_applications(svc: CardService, resident_code: str, why: str) -> None:
    for app in svc.s.execute(
        select(CardApplicationRow).where(
            CardApplicationRow.resident_code == resident_code,
            CardApplicationRow.status == ApplicationStatus.ACCEPTED.value,
        )
    ).scalars():
        app.status = ApplicationStatus.REJECTED.value
        app.rejection = why
        app.decided_at = svc.clock.now()


def _void_all(
    svc: CardService, resident_code: str, reason: VoidReason, cause: str, details: dict[str, str]
) -> list[str]:
    changed = []
    for card in _cards(svc, resident_code):
        if _seen(svc, card.id, cause):
            continue
        svc.void(card, reason, cause=cause, details=details)
        changed.append(card.id)
    _close_applications(svc, resident_code, f"{reason.value} ({cause})")
    return changed


def _move_abroad(svc: CardService, record: IdentityRecord, cause: str) -> list[str]:
    changed = []
    for card in _cards(svc, record.resident_code):
        if _seen(svc, card.id, cause):
            continue
        if card.state == CardState.ACTIVE.value and _abroad_requested(svc, card.id):
            entry = {
                "on": record.change_date.isoformat(),
                "kind": "moved_abroad",
                "address": record.address,
                "lg_code": card.lg_code,
                "by": svc.actor,
            }
            card.endorsements = [*(card.endorsements or []), entry]
            svc.transition(card, CardEvent.CONTINUED_USE, cause=cause, details=entry)
        else:
            svc.void(
                card,
                VoidReason.MOVE_ABROAD,
                cause=cause,
                details={"change_date": record.change_date.isoformat()},
            )
        changed.append(card.id)
    _close_applications(svc, record.resident_code, f"move_abroad ({cause})")
    return changed


def _abroad_requested(svc: CardService, card_id: str) -> bool:
    last: Sequence[str] = (
        svc.s.execute(
            select(CardEventRow.event)
            .where(
                CardEventRow.card_id == card_id,
                CardEventRow.event.in_([CardEvent.ABROAD_REQUESTED.value, CardEvent.CONTINUED_USE.value]),
            )
            .order_by(CardEventRow.id.desc())
            .limit(1)
        )
        .scalars()
        .all()
    )
    return bool(last) and last[0] == CardEvent.ABROAD_REQUESTED.value


def _moved_before_delivery(svc: CardService, record: IdentityRecord, cause: str) -> list[str]:
    changed = []
    for card in _cards(svc, record.resident_code):
        if card.state not in _UNDELIVERED or card.lg_code == record.lg_code or _seen(svc, card.id, cause):
            continue
        svc.void(
            card,
            VoidReason.REGISTER_DELETED,
            cause=cause,
            details={"moved_to": record.lg_code, "change_date": record.change_date.isoformat()},
        )
        changed.append(card.id)
    for app in svc.s.execute(
        select(CardApplicationRow).where(
            CardApplicationRow.resident_code == record.resident_code,
            CardApplicationRow.status == ApplicationStatus.ACCEPTED.value,
            CardApplicationRow.lg_code != record.lg_code,
        )
    ).scalars():
        app.status = ApplicationStatus.REJECTED.value
        app.rejection = f"moved to {record.lg_code} before the card was made ({cause})"
        app.decided_at = svc.clock.now()
    return changed
