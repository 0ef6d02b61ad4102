"""The card's state machine, pure: every (state, event) pair is either the documented transition or
a refusal naming the state, the event and the rule."""

from __future__ import annotations

import pytest

from jlis.card.lifecycle import (
    TRANSITIONS,
    CardEvent,
    CardState,
    VoidReason,
    allowed_events,
    next_state,
)
from jlis.errors import InvalidInput, RuleViolation

S, E = CardState, CardEvent

EXPECTED: dict[tuple[CardState, CardEvent], CardState] = {
    (S.MANUFACTURED, E.SHIP): S.SHIPPED,
    (S.SHIPPED, E.NOTIFY): S.NOTIFIED,
    (S.NOTIFIED, E.DELIVER): S.ACTIVE,
    (S.ACTIVE, E.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, E.LIFT): S.ACTIVE,
    (S.ACTIVE, E.CONTINUED_USE): S.ACTIVE,
    (S.ACTIVE, E.ABROAD_REQUESTED): S.ACTIVE,
    (S.ACTIVE, E.PIN_RESET): S.ACTIVE,
    (S.SUSPENDED, E.PIN_RESET): S.SUSPENDED,
    (S.ACTIVE, E.SIGN_CERT_ISSUED): S.ACTIVE,
    (S.ACTIVE, E.PHONE_PROVISIONED): S.ACTIVE,
    **{(s, E.VOID): S.VOIDED for s in S if s is not S.VOIDED},
}
EVENTS = [e for e in CardEvent if e is not CardEvent.MANUFACTURE]


@pytest.mark.parametrize("state", list(CardState))
@pytest.mark.parametrize("event", EVENTS)
def test_every_pair_is_the_table_or_a_refusal(state: CardState, event: CardEvent) -> None:
    reason = VoidReason.RETURNED if state in (S.ACTIVE, S.SUSPENDED) else VoidReason.UNCOLLECTED
    expected = EXPECTED.get((state, event))
    if expected is not None:
        assert next_state(state, event, reason if event is E.VOID else None) is expected
        assert event in allowed_events(state)
        return
    with pytest.raises(RuleViolation) as exc:
        next_state(state, event, reason if event is E.VOID else None)
    assert exc.value.field == "カードの状態"
    assert state.value in exc.value.message and event.value in exc.value.message
    assert exc.value.rule == TRANSITIONS[event].rule
    assert event not in allowed_events(state)


def test_voided_is_terminal() -> None:
    assert allowed_events(S.VOIDED) == []
    with pytest.raises(RuleViolation, match="cannot be voided again or revived"):
        next_state(S.VOIDED, E.VOID, VoidReason.DEATH)


def test_manufacture_only_creates() -> None:
    with pytest.raises(RuleViolation, match="manufactured once"):
        next_state(S.MANUFACTURED, E.MANUFACTURE)


def test_void_needs_a_reason() -> None:
    with pytest.raises(InvalidInput) as exc:
        next_state(S.ACTIVE, E.VOID)
    assert exc.value.field == "廃止理由"


@pytest.mark.parametrize(
    "reason", [VoidReason.EXPIRY, VoidReason.RETURNED, VoidReason.LOST_REISSUED, VoidReason.DAMAGED]
)
def test_reasons_of_a_delivered_card_refused_before_delivery(reason: VoidReason) -> None:
    assert next_state(S.ACTIVE, E.VOID, reason) is S.VOIDED
    with pytest.raises(RuleViolation) as exc:
        next_state(S.NOTIFIED, E.VOID, reason)
    assert exc.value.field == "廃止理由" and "delivered card only" in exc.value.rule


def test_uncollected_only_before_delivery() -> None:
    assert next_state(S.SHIPPED, E.VOID, VoidReason.UNCOLLECTED) is S.VOIDED
    with pytest.raises(RuleViolation, match="not yet delivered"):
        next_state(S.ACTIVE, E.VOID, VoidReason.UNCOLLECTED)


@pytest.mark.parametrize("reason", [VoidReason.DEATH, VoidReason.CODE_CHANGE, VoidReason.MOVE_ABROAD])
def test_events_of_the_register_void_in_any_live_state(reason: VoidReason) -> None:
    for state in S:
        if state.live:
            assert next_state(state, E.VOID, reason) is S.VOIDED


def test_labels_and_parse() -> None:
    assert S.SUSPENDED.label == "一時停止" and E.DELIVER.label == "交付" and VoidReason.DEATH.label == "死亡"
    assert VoidReason.parse("returned") is VoidReason.RETURNED
    with pytest.raises(InvalidInput):
        VoidReason.parse("stolen")
