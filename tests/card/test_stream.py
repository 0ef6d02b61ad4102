"""The card system on the national change stream: each kind of change and its card consequence,
through the real network (register → CS → prefecture → national → card), and idempotence."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from jlis.card.applications import ApplicationStatus, Channel, ExpressCase, ReissueReason
from jlis.card.documents import Document as D
from jlis.card.lifecycle import CardEvent, CardState, VoidReason
from jlis.card.service import STREAM, CardService
from jlis.card.stream import CardStreamNode, apply_record
from jlis.card.tables import CardEventRow
from jlis.juki.errors import MessageRefused
from jlis.messaging import Message
from jlis.registry import ChangeReason, IdentityRecord, ResidentView
from jlis.registry.events import TOPIC_IDENTITY
from jlis.registry.service import identity_record

from .conftest import CHIYODA, JUKI_PIN, SHINJUKU, CardWorld, staff


def statuses(w: CardWorld, card_id: str) -> set[str]:
    with w.service() as svc:
        return {c.status for c in svc.certificates(card_id)}


def test_death_voids_the_card_and_closes_applications(card_world: CardWorld) -> None:
    r = card_world.person()
    other = card_world.person(given="花子", given_kana="ハナコ")
    card_id = card_world.active_card(r)
    app = card_world.apply(other)
    card_world.die(r)
    card_world.die(other)
    card = card_world.card(card_id)
    assert card.state is CardState.VOIDED and card.void_reason is VoidReason.DEATH
    assert statuses(card_world, card_id) == {"revoked"}
    with card_world.service() as svc:
        event = svc.events(card_id)[-1]
        closed = svc.application(app.id)
    assert event.actor == "card-stream" and (event.cause or "").startswith("identity:")
    assert closed.status is ApplicationStatus.REJECTED and "death" in (closed.rejection or "")


def test_redelivery_changes_nothing(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    with card_world.register() as reg:
        dead = reg.record_death(r.id, died_on=card_world.clock.today())
    record = identity_record(dead, ChangeReason.DEATH, dead.last_change_date, card_world.clock.now(), None)
    message = Message("m-1", "national", "card", TOPIC_IDENTITY, r.resident_code, record.to_payload())
    node = CardStreamNode(card_world.deps)
    for _ in range(2):
        with card_world.service() as svc:
            node(svc.s, "card", [message])
    with card_world.factory() as s:
        causes = s.execute(select(CardEventRow.cause).where(CardEventRow.card_id == card_id)).scalars().all()
    assert causes.count("identity:m-1") == 1
    # A direct second application of the same record is also a no-op.
    with card_world.service() as svc:
        assert apply_record(CardService(svc.s, card_world.deps, STREAM), record, "m-1") == []


def test_move_abroad_voids_unless_continued_use_was_asked(card_world: CardWorld) -> None:
    a = card_world.person(given="一郎", given_kana="イチロウ")
    b = card_world.person(given="二郎", given_kana="ジロウ")
    card_a = card_world.active_card(a)
    card_b = card_world.active_card(b)
    with card_world.service(staff()) as svc:
        svc.counter.continue_use_abroad(card_b, juki_pin=JUKI_PIN, documents=[D.MY_NUMBER_CARD])
    for person in (a, b):
        with card_world.register() as reg:
            reg.record_move_out(
                person.id,
                planned_date=card_world.clock.today(),
                destination="アメリカ合衆国",
                destination_lg_code=None,
            )
    card_world.relay().drain()
    voided = card_world.card(card_a)
    kept = card_world.card(card_b)
    assert voided.state is CardState.VOIDED and voided.void_reason is VoidReason.MOVE_ABROAD
    assert kept.state is CardState.ACTIVE
    assert [e["kind"] for e in kept.endorsements] == ["abroad", "moved_abroad"]
    assert statuses(card_world, card_b) == {"good"}  # the revocation helper revokes signing on its own


def test_code_change_voids_and_opens_express_reissue(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    with card_world.register() as reg:
        changed = reg.change_resident_code(r.id)
    card_world.relay().drain()
    card = card_world.card(card_id)
    assert card.state is CardState.VOIDED and card.void_reason is VoidReason.CODE_CHANGE
    with card_world.service() as svc:
        assert svc.events(card_id)[-1].details["new_resident_code"] == changed.resident_code
    app = card_world.apply(changed, Channel.COUNTER, express=ExpressCase.CODE_CHANGE)
    assert app.reissue_reason is ReissueReason.CODE_CHANGE and app.reissue_of == card_id and app.fee_yen == 0
    assert app.target_date == card_world.clock.today() + dt.timedelta(days=7)


def test_a_move_before_delivery_voids_the_waiting_card(card_world: CardWorld) -> None:
    r = card_world.person()
    waiting = card_world.card_waiting(r)
    card_world.move(r, SHINJUKU)
    card = card_world.card(waiting)
    assert card.state is CardState.VOIDED and card.void_reason is VoidReason.REGISTER_DELETED


def test_a_move_of_a_delivered_card_changes_nothing_at_once(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    events = card_world.event_count()
    card_world.move(r, SHINJUKU)
    assert card_world.event_count() == events
    card = card_world.card(card_id)
    assert card.state is CardState.ACTIVE and card.lg_code == CHIYODA
    assert statuses(card_world, card_id) == {"good"}


def record_of(view: ResidentView, reason: ChangeReason, at: dt.datetime) -> IdentityRecord:
    return identity_record(view, reason, view.last_change_date, at, None)


@pytest.mark.parametrize(
    ("topic", "source"),
    [("move_in_notice", "national"), (TOPIC_IDENTITY, "pref:13"), (TOPIC_IDENTITY, "registry:131016")],
)
def test_only_the_national_stream_is_taken(card_world: CardWorld, topic: str, source: str) -> None:
    r = card_world.person()
    payload = record_of(r, ChangeReason.DEATH, card_world.clock.now()).to_payload()
    with pytest.raises(MessageRefused), card_world.service() as svc:
        CardStreamNode(card_world.deps)(svc.s, "card", [Message("m-x", source, "card", topic, "k", payload)])


def test_stream_events_are_recorded_as_transitions(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    card_world.die(r)
    with card_world.service() as svc:
        last = svc.events(card_id)[-1]
    assert (
        last.event is CardEvent.VOID
        and last.from_state is CardState.ACTIVE
        and last.to_state is CardState.VOIDED
    )


def test_any_other_deletion_of_the_register_voids(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    removed = dataclasses.replace(
        record_of(r, ChangeReason.CORRECTION, card_world.clock.now()), status="removed"
    )  # e.g. a 職権消除, which the register does not model yet
    with card_world.service() as svc:
        changed = apply_record(CardService(svc.s, card_world.deps, STREAM), removed, "m-del")
    assert changed == [card_id]
    assert card_world.card(card_id).void_reason is VoidReason.REGISTER_DELETED


def test_a_round_for_people_without_cards_costs_one_lookup(card_world: CardWorld) -> None:
    from sqlalchemy import event

    r = card_world.person()
    base = record_of(r, ChangeReason.DEATH, card_world.clock.now())
    deaths = [
        Message(
            f"d-{i}",
            "national",
            "card",
            TOPIC_IDENTITY,
            str(i),
            {**base.to_payload(), "resident_code": f"{i:011d}"},
        )
        for i in range(50)
    ]
    moves = [
        Message(
            f"r-{i}",
            "national",
            "card",
            TOPIC_IDENTITY,
            str(i),
            {**base.to_payload(), "reason": "relocation"},
        )
        for i in range(50)
    ]
    engine = card_world.factory.kw["bind"]
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    node = CardStreamNode(card_world.deps)
    with card_world.service() as svc:
        svc.s.connection()  # the transaction's BEGIN is not the handler's
        event.listen(engine, "before_cursor_execute", count)
        try:
            node.apply_groups(svc.s, [("card", moves)])
            assert statements == []
            node.apply_groups(svc.s, [("card", deaths)])
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 2  # live cards, open applications: nobody here has either
