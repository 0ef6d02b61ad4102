"""J-LIS production: batches (express first, per-card failures closing their application), the
card face on the chip, validity through the service, shipment, express targets and expiry."""

from __future__ import annotations

import datetime as dt

import pytest

from jlis.card.applications import ApplicationStatus, Channel, ExpressCase
from jlis.card.chip import CardVoided
from jlis.card.chip.reader import CardReader
from jlis.card.lifecycle import CardState, VoidReason
from jlis.card.production import ExpressStatus, express_status
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.jpki.tables import REVOKED

from .conftest import CHIYODA, TEXT_PIN, CardWorld, staff


def test_batch_makes_cards_express_first(card_world: CardWorld) -> None:
    a = card_world.person(given="一郎", given_kana="イチロウ")
    b = card_world.person(given="二郎", given_kana="ジロウ")
    card_world.apply(a)
    day = card_world.clock.today()
    express = card_world.apply(b, Channel.COUNTER, express=ExpressCase.RELEASED, express_event_date=day)
    with card_world.service() as svc:
        result = svc.production.produce(limit=1)
    assert [c.application_id for c in result.cards] == [express.id] and not result.rejected
    card = result.cards[0]
    assert card.state is CardState.MANUFACTURED and card.express and card.batch_id == result.batch_id
    assert card.target_date == day + dt.timedelta(days=7)
    assert card.lg_code == CHIYODA and card.resident_code == b.resident_code
    with card_world.service() as svc:
        assert svc.application(express.id).status is ApplicationStatus.IN_PRODUCTION
        chip = svc.chips.load(card.id)
        row = svc.load(card.id)
    assert row.security_code is not None and len(row.security_code) == 4 and row.security_code.isdigit()
    assert chip.personalised and chip.card_id == card.id
    attributes = CardReader(chip.transmit).read_attributes(b.my_number, with_="text_a")
    assert attributes.name == "山田\u3000二郎" and attributes.birth_date == b.birth_date
    assert attributes.address == b.address.text and attributes.sex == 1


def test_a_batch_closes_applications_that_became_impossible(card_world: CardWorld) -> None:
    a = card_world.person(given="一郎", given_kana="イチロウ")
    b = card_world.person(given="二郎", given_kana="ジロウ")
    app_a = card_world.apply(a)
    card_world.apply(b)
    with card_world.register() as reg:  # died before the card was made; the stream is not run here
        reg.record_death(a.id, died_on=card_world.clock.today())
    with card_world.service() as svc:
        result = svc.production.produce()
        assert [c.resident_code for c in result.cards] == [b.resident_code]
        assert [r[0] for r in result.rejected] == [app_a.id]
        closed = svc.application(app_a.id)
    assert closed.status is ApplicationStatus.REJECTED and "no longer a resident" in (closed.rejection or "")


@pytest.mark.parametrize(
    ("birth", "expires"),
    [
        (dt.date(2008, 11, 26), dt.date(2036, 11, 26)),  # 18 today: 10th birthday after issue
        (dt.date(2008, 11, 27), dt.date(2030, 11, 27)),  # 18 tomorrow: 5th birthday (tomorrow is the 1st)
        (dt.date(1980, 2, 29), dt.date(2036, 2, 29)),  # leap-day birthday, leap expiry year
        (dt.date(1981, 2, 28), dt.date(2036, 2, 28)),
        (dt.date(2026, 10, 1), dt.date(2031, 10, 1)),  # a baby
    ],
)
def test_card_expiry_through_the_service(card_world: CardWorld, birth: dt.date, expires: dt.date) -> None:
    r = card_world.person(birth=birth)
    card_world.apply(r)
    (card,) = card_world.produce()
    assert card.expires_on == expires


def test_produce_scope_and_limits(card_world: CardWorld) -> None:
    with pytest.raises(Forbidden), card_world.service(staff()) as svc:
        svc.production.produce()
    with pytest.raises(InvalidInput) as exc, card_world.service() as svc:
        svc.production.produce(limit=0)
    assert exc.value.field == "件数"


def test_next_generation_algorithm(card_world: CardWorld) -> None:
    r = card_world.person()
    card_world.apply(r)
    with card_world.service() as svc:
        (card,) = svc.production.produce(algorithm="p384-sha384").cards
        assert svc.chips.load(card.id).algorithm == "p384-sha384"


def test_shipping(card_world: CardWorld) -> None:
    r = card_world.person()
    card_world.apply(r)
    (card,) = card_world.produce()
    with card_world.service() as svc:
        (shipped,) = svc.production.ship(batch_id=card.batch_id)
    assert shipped.state is CardState.SHIPPED and shipped.shipped_at is not None
    with pytest.raises(NotFound), card_world.service() as svc:
        svc.production.ship(batch_id=card.batch_id)  # nothing left to ship in it
    with pytest.raises(RuleViolation) as exc, card_world.service() as svc:
        svc.production.ship(card_ids=[card.id])
    assert "shipped" in exc.value.message and "ship" in exc.value.message
    with pytest.raises(InvalidInput), card_world.service() as svc:
        svc.production.ship()
    with pytest.raises(Forbidden), card_world.service(staff()) as svc:
        svc.production.ship(card_ids=[card.id])


def test_express_status_pure() -> None:
    target = dt.date(2026, 12, 3)
    assert express_status(target, None, dt.date(2026, 11, 26)) is ExpressStatus.ON_TRACK
    assert express_status(target, None, dt.date(2026, 12, 1)) is ExpressStatus.AT_RISK
    assert express_status(target, None, dt.date(2026, 12, 3)) is ExpressStatus.AT_RISK
    assert express_status(target, None, dt.date(2026, 12, 4)) is ExpressStatus.LATE
    assert express_status(target, dt.date(2026, 12, 3), dt.date(2026, 12, 9)) is ExpressStatus.MET
    assert express_status(target, dt.date(2026, 12, 4), dt.date(2026, 12, 9)) is ExpressStatus.MISSED


def test_express_targets_are_tracked_per_card(card_world: CardWorld) -> None:
    day = card_world.clock.today()
    a = card_world.person(given="一郎", given_kana="イチロウ")
    b = card_world.person(given="二郎", given_kana="ジロウ")
    card_world.apply(a, Channel.COUNTER, express=ExpressCase.RELEASED, express_event_date=day)
    app_b = card_world.apply(b, Channel.COUNTER, express=ExpressCase.RELEASED, express_event_date=day)
    card_world.apply(card_world.person(given="三郎", given_kana="サブロウ"))  # not express: not listed
    with card_world.service() as svc:
        report = svc.production.express_report()
    assert [i.status for i in report] == [ExpressStatus.ON_TRACK] * 2
    assert all(i.card_id is None and i.stage == "accepted" for i in report)
    card_world.clock.advance(days=2)
    cards = card_world.produce(limit=2)
    card_b = next(c for c in cards if c.application_id == app_b.id)
    card_a = next(c for c in cards if c.application_id != app_b.id)
    card_world.clock.advance(days=3)
    card_world.ship(card_a.id)
    with card_world.service() as svc:
        by_app = {i.application_id: i for i in svc.production.express_report()}
    assert by_app[app_b.id].status is ExpressStatus.AT_RISK and by_app[app_b.id].card_id == card_b.id
    assert {i.status for i in by_app.values()} == {ExpressStatus.MET, ExpressStatus.AT_RISK}
    card_world.clock.advance(days=3)
    with card_world.service() as svc:
        open_items = svc.production.express_report(only_open=True)
    assert [(i.card_id, i.status) for i in open_items] == [(card_b.id, ExpressStatus.LATE)]
    with pytest.raises(Forbidden), card_world.service(staff()) as svc:
        svc.production.express_report()


def test_expired_cards_are_voided(card_world: CardWorld) -> None:
    r = card_world.person(birth=dt.date(2010, 1, 1))
    card_id = card_world.active_card(r)
    assert card_world.card(card_id).expires_on == dt.date(2031, 1, 1)
    card_world.clock.set(dt.datetime(2031, 1, 1, 23, 0, tzinfo=card_world.clock.now().tzinfo))
    with card_world.service() as svc:
        assert svc.production.void_expired() == []
    card_world.clock.advance(hours=2)
    with card_world.service() as svc:
        assert svc.production.void_expired() == [card_id]
        assert {c.status for c in svc.certificates(card_id)} == {REVOKED}
        chip = svc.chips.load(card_id)
    card = card_world.card(card_id)
    assert card.state is CardState.VOIDED and card.void_reason is VoidReason.EXPIRY
    with pytest.raises(CardVoided):
        CardReader(chip.transmit).read_attributes(TEXT_PIN)
