"""The 24-hour hotline: a caller identified by name, birth date and municipality gets their card
suspended and its certificates held; only the counter lifts it."""

from __future__ import annotations

import datetime as dt

import pytest

from jlis.card.documents import Document as D
from jlis.card.hotline import Caller, SuspensionReason
from jlis.card.lifecycle import CardState
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.jpki.tables import GOOD, HOLD

from .conftest import CHIYODA, SHINJUKU, CardWorld, staff

BIRTH = dt.date(1980, 4, 1)


def caller(**kw: object) -> Caller:
    values: dict[str, object] = {
        "lg_code": CHIYODA,
        "family_name": "山田",
        "given_name": "太郎",
        "birth_date": BIRTH,
    }
    values.update(kw)
    return Caller(**values)  # type: ignore[arg-type]


def held(w: CardWorld, card_id: str) -> set[str]:
    with w.service() as svc:
        return {c.status for c in svc.certificates(card_id)}


def test_hotline_to_counter(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    with card_world.service() as svc:
        view = svc.hotline.suspend(caller(), SuspensionReason.STOLEN, note="駅で盗難")
    assert view.state is CardState.SUSPENDED and view.suspended_at == card_world.clock.now()
    assert held(card_world, card_id) == {HOLD}
    with card_world.service() as svc:
        event = svc.events(card_id)[-1]
    assert event.cause == "hotline" and event.details == {"reason": "stolen", "note": "駅で盗難"}
    assert event.actor == "jlis-operator"
    with pytest.raises(RuleViolation, match="only a delivered, active card"), card_world.service() as svc:
        svc.hotline.suspend(caller(), SuspensionReason.LOST)
    with card_world.service(staff()) as svc:
        svc.counter.lift_suspension(card_id, documents=[D.MY_NUMBER_CARD])
    assert held(card_world, card_id) == {GOOD} and card_world.card(card_id).state is CardState.ACTIVE


def test_caller_must_match(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    for wrong in (
        caller(birth_date=dt.date(1980, 4, 2)),
        caller(given_name="次郎"),
        caller(lg_code=SHINJUKU),
    ):
        with pytest.raises(NotFound), card_world.service() as svc:
            svc.hotline.suspend(wrong, SuspensionReason.LOST)
    other = card_world.person(given="次郎", given_kana="ジロウ")
    other_card = card_world.active_card(other)
    with pytest.raises(NotFound), card_world.service() as svc:  # someone else's card number
        svc.hotline.suspend(caller(card_id=other_card), SuspensionReason.LOST)
    assert held(card_world, card_id) == {GOOD} and held(card_world, other_card) == {GOOD}


def test_namesakes_need_the_card_number(card_world: CardWorld) -> None:
    a = card_world.person()
    b = card_world.person()
    card_a = card_world.active_card(a)
    card_b = card_world.active_card(b)
    with pytest.raises(RuleViolation) as exc, card_world.service() as svc:
        svc.hotline.suspend(caller(), SuspensionReason.LOST)
    assert exc.value.field == "カード番号"
    with card_world.service() as svc:
        svc.hotline.suspend(caller(card_id=card_b), SuspensionReason.LOST)
    assert held(card_world, card_a) == {GOOD} and held(card_world, card_b) == {HOLD}


def test_hotline_is_for_operators_and_undelivered_cards_are_not_found(card_world: CardWorld) -> None:
    r = card_world.person()
    card_world.card_waiting(r)
    with pytest.raises(Forbidden), card_world.service(staff()) as svc:
        svc.hotline.suspend(caller(), SuspensionReason.LOST)
    with pytest.raises(NotFound), card_world.service() as svc:
        svc.hotline.suspend(caller(), SuspensionReason.LOST)
    with pytest.raises(InvalidInput) as exc:
        SuspensionReason.parse("bored")
    assert exc.value.field == "停止理由"


def test_during_a_renewal_the_card_in_hand_is_suspended(card_world: CardWorld) -> None:
    from jlis.card.applications import ReissueReason

    r = card_world.person()
    old = card_world.active_card(r)
    card_world.clock.set(dt.datetime(2036, 2, 1, 9, 0, tzinfo=card_world.clock.now().tzinfo))
    card_world.apply(r, reissue=ReissueReason.RENEWAL)
    (new,) = card_world.produce()
    with card_world.service() as svc:
        assert svc.hotline.suspend(caller(), SuspensionReason.LOST).id == old
    assert card_world.card(new.id).state is CardState.MANUFACTURED
