"""The counter: the 交付通知書, delivery (identity check, PINs, both certificates on the chip),
under-15s, lifting a suspension, re-issue with its fee, return, 継続利用, PIN resets and a new
signing certificate; each refused case names the item and the rule and changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from jlis.card.applications import ApplicationStatus, ReissueReason
from jlis.card.chip import CardVoided, PinBlocked, WrongPin
from jlis.card.chip.reader import CardReader
from jlis.card.counter import MAX_ENDORSEMENTS
from jlis.card.documents import Document as D
from jlis.card.hotline import Caller, SuspensionReason
from jlis.card.lifecycle import CardState, VoidReason
from jlis.card.pins import PinSet
from jlis.errors import Forbidden, InvalidInput, RuleViolation
from jlis.jpki.profile import POLICY_AUTH, POLICY_SIGN
from jlis.jpki.tables import AUTH, GOOD, HOLD, REVOKED, SIGN
from jlis.registry import Placement

from ..web.support import YOKOHAMA_TSURUMI
from .conftest import AUTH_PIN, CHIYODA, JUKI_PIN, PINS, SHINJUKU, SIGN_PASSWORD, TEXT_PIN, CardWorld, staff


def statuses(w: CardWorld, card_id: str) -> dict[str, str]:
    with w.service() as svc:
        return {
            c.ca_kind + ("" if c.holder == "card" else "-phone"): c.status for c in svc.certificates(card_id)
        }


def chip_of(w: CardWorld, card_id: str) -> CardReader:
    with w.service() as svc:
        return CardReader(svc.chips.load(card_id).transmit)


# ------------------------------------------------------------------------------------------ notice


def test_notice_is_sent_once_by_the_holding_municipality(card_world: CardWorld) -> None:
    r = card_world.person()
    card_world.apply(r)
    (card,) = card_world.produce()
    with pytest.raises(RuleViolation) as exc, card_world.service(staff()) as svc:
        svc.counter.send_notice(card.id)  # not shipped yet
    assert exc.value.field == "カードの状態" and "manufactured" in exc.value.message
    card_world.ship(card.id)
    with pytest.raises(Forbidden), card_world.service(staff(SHINJUKU)) as svc:
        svc.counter.send_notice(card.id)
    with card_world.service(staff()) as svc:
        notice = svc.counter.send_notice(card.id)
    assert notice.name == "山田\u3000太郎" and notice.address == r.address.text
    assert notice.municipality == "東京都千代田区" and notice.collect_by == dt.date(2027, 2, 24)
    assert notice.card.state is CardState.NOTIFIED
    with pytest.raises(RuleViolation), card_world.service(staff()) as svc:
        svc.counter.send_notice(card.id)
    with card_world.service(staff()) as svc:
        assert svc.counter.notice(card.id).sent_on == card_world.clock.today()


# ------------------------------------------------------------------------------------------ delivery


def test_delivery_sets_pins_and_installs_both_certificates(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.card_waiting(r)
    delivery = card_world.deliver(card_id)
    assert delivery.card.state is CardState.ACTIVE and delivery.sign_serial and delivery.auth_serial
    with card_world.service() as svc:
        certs = {c.ca_kind: c for c in svc.certificates(card_id)}
        app = svc.application(delivery.card.application_id)
        events = svc.events(card_id)
    assert app.status is ApplicationStatus.DONE
    assert {k: c.status for k, c in certs.items()} == {AUTH: GOOD, SIGN: GOOD}
    assert certs[SIGN].serial == delivery.sign_serial and certs[AUTH].resident_code == r.resident_code
    assert events[-1].details["documents"] == ["driver_licence", "notice"]
    reader = chip_of(card_world, card_id)
    auth_der = reader.read_certificate("auth")
    sign_der = reader.read_certificate("sign", SIGN_PASSWORD)
    assert auth_der == certs[AUTH].der and sign_der == certs[SIGN].der
    sign = x509.load_der_x509_certificate(sign_der)
    policies = sign.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in policies] == [POLICY_SIGN]
    auth = x509.load_der_x509_certificate(auth_der)
    auth_policies = auth.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in auth_policies] == [POLICY_AUTH]
    end = dt.datetime(2031, 4, 1, 14, 59, 59, tzinfo=dt.UTC)  # 23:59:59 JST on the 5th birthday
    assert sign.not_valid_after_utc == end and auth.not_valid_after_utc == end
    # Both certificates end on the 5th birthday after issue (born 1 April), within the card.
    reader.verify_pin("auth", AUTH_PIN)
    reader.verify_pin("juki", JUKI_PIN)
    assert reader.read_my_number(TEXT_PIN) == r.my_number


def test_delivery_refusals_change_nothing(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.card_waiting(r)
    events = card_world.event_count()
    with pytest.raises(RuleViolation, match="notice") as exc, card_world.service(staff()) as svc:
        svc.counter.deliver(card_id, documents=[D.PASSPORT], pins=PINS)
    assert exc.value.field == "本人確認書類"
    with pytest.raises(RuleViolation, match="one photo ID"), card_world.service(staff()) as svc:
        svc.counter.deliver(card_id, documents=[D.NOTICE, D.HEALTH_INSURANCE], pins=PINS)
    with pytest.raises(Forbidden), card_world.service(staff(SHINJUKU)) as svc:
        svc.counter.deliver(card_id, documents=[D.NOTICE, D.PASSPORT], pins=PINS)
    with pytest.raises(InvalidInput), card_world.service(staff()) as svc:
        svc.counter.deliver(card_id, documents=[D.NOTICE, D.PASSPORT], pins=PinSet("ABC", "1", "2", "3"))
    assert card_world.event_count() == events and statuses(card_world, card_id) == {}
    assert card_world.card(card_id).state is CardState.NOTIFIED


def test_delivery_to_a_holder_who_left_is_refused(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.card_waiting(r)
    with card_world.register() as reg:
        reg.record_move_out(
            r.id, planned_date=card_world.clock.today(), destination="新宿区", destination_lg_code=SHINJUKU
        )
    with pytest.raises(RuleViolation, match="moving_out") as exc:
        card_world.deliver(card_id)
    assert exc.value.field == "住民票"


def test_under_15_no_signing_certificate_and_a_representative(card_world: CardWorld) -> None:
    child = card_world.person(birth=dt.date(2015, 6, 1))
    card_id = card_world.card_waiting(child)
    with pytest.raises(RuleViolation, match="under 15"):
        card_world.deliver(card_id, representative="山田 花子")
    no_sign = PinSet(None, AUTH_PIN, JUKI_PIN, TEXT_PIN)
    with pytest.raises(InvalidInput) as exc:
        card_world.deliver(card_id, pins=no_sign)
    assert exc.value.field == "法定代理人"
    delivery = card_world.deliver(card_id, pins=no_sign, representative="山田 花子")
    assert delivery.sign_serial is None and statuses(card_world, card_id) == {AUTH: GOOD}
    with card_world.service() as svc:
        assert svc.events(card_id)[-1].details["representative"] == "山田 花子"


def test_an_adult_may_decline_the_signing_certificate(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.card_waiting(r)
    card_world.deliver(card_id, pins=PinSet(None, AUTH_PIN, JUKI_PIN, TEXT_PIN))
    assert statuses(card_world, card_id) == {AUTH: GOOD}


# ------------------------------------------------------------------------------------------ suspension


def suspend(
    w: CardWorld, family: str = "山田", given: str = "太郎", birth: dt.date = dt.date(1980, 4, 1)
) -> None:
    with w.service() as svc:
        svc.hotline.suspend(Caller(CHIYODA, family, given, birth), SuspensionReason.LOST)


def test_lift_at_the_counter_with_the_card(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    suspend(card_world)
    assert statuses(card_world, card_id) == {AUTH: HOLD, SIGN: HOLD}
    with pytest.raises(RuleViolation, match="my_number_card"), card_world.service(staff()) as svc:
        svc.counter.lift_suspension(card_id, documents=[D.PASSPORT])
    with pytest.raises(Forbidden), card_world.service(staff(SHINJUKU)) as svc:
        svc.counter.lift_suspension(card_id, documents=[D.MY_NUMBER_CARD])
    with card_world.service(staff()) as svc:
        view = svc.counter.lift_suspension(card_id, documents=[D.MY_NUMBER_CARD])
    assert view.state is CardState.ACTIVE and view.suspended_at is None
    assert statuses(card_world, card_id) == {AUTH: GOOD, SIGN: GOOD}
    with pytest.raises(RuleViolation, match="only a suspended card"), card_world.service(staff()) as svc:
        svc.counter.lift_suspension(card_id, documents=[D.MY_NUMBER_CARD])


# ------------------------------------------------------------------------------------------ re-issue


def test_reissue_after_loss(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    with pytest.raises(InvalidInput) as exc, card_world.service(staff()) as svc:
        svc.counter.reissue(card_id, ReissueReason.LOST, documents=[D.PASSPORT], lost_outside_home=True)
    assert exc.value.field == "遺失届の受理番号"
    with card_world.service(staff()) as svc:
        app = svc.counter.reissue(
            card_id,
            ReissueReason.LOST,
            documents=[D.PASSPORT],
            lost_outside_home=True,
            police_report_no="R-123",
        )
    assert app.fee_yen == 1000 and app.reissue_of == card_id
    assert statuses(card_world, card_id) == {AUTH: REVOKED, SIGN: REVOKED}
    with card_world.service() as svc:
        void = svc.events(card_id)[-1]
    assert void.details["police_report_no"] == "R-123" and void.details["documents"] == ["passport"]
    new_id = card_world.produce()[0].id
    card_world.ship(new_id)
    card_world.notify(new_id)
    card_world.deliver(new_id)
    assert card_world.card(new_id).state is CardState.ACTIVE


def test_express_reissue_after_loss_costs_2000(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    suspend(card_world)
    with card_world.service(staff()) as svc:
        app = svc.counter.reissue(card_id, ReissueReason.LOST, documents=[D.PASSPORT], express=True)
    assert app.fee_yen == 2000 and app.target_date is not None


def test_reissue_for_a_full_endorsement_area_keeps_the_card_until_delivery(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    with card_world.service(staff()) as svc:
        app = svc.counter.reissue(
            card_id,
            ReissueReason.ENDORSEMENT_FULL,
            documents=[D.MY_NUMBER_CARD],
            express=True,
            event_date=card_world.clock.today(),
        )
    assert app.fee_yen == 0 and card_world.card(card_id).state is CardState.ACTIVE


# ------------------------------------------------------------------------------------------ return


def test_return_voids_and_revokes(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    with pytest.raises(RuleViolation, match="re-issue"), card_world.service(staff()) as svc:
        svc.counter.return_card(card_id, VoidReason.LOST_REISSUED)
    with card_world.service(staff()) as svc:
        view = svc.counter.return_card(card_id, VoidReason.RETURNED, documents=[D.MY_NUMBER_CARD])
    assert view.state is CardState.VOIDED and view.void_reason is VoidReason.RETURNED
    assert statuses(card_world, card_id) == {AUTH: REVOKED, SIGN: REVOKED}
    with card_world.service() as svc:
        assert {c.revocation_reason for c in svc.certificates(card_id)} == {"cessationOfOperation"}
    with pytest.raises(CardVoided):
        chip_of(card_world, card_id).read_certificate("auth")
    with pytest.raises(RuleViolation, match="cannot be voided again"), card_world.service(staff()) as svc:
        svc.counter.return_card(card_id, VoidReason.RETURNED)


def test_an_uncollected_card_is_voided_before_delivery(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.card_waiting(r)
    with pytest.raises(RuleViolation, match="delivered card only"), card_world.service(staff()) as svc:
        svc.counter.return_card(card_id, VoidReason.RETURNED)
    with card_world.service(staff()) as svc:
        svc.counter.return_card(card_id, VoidReason.UNCOLLECTED)
        app = svc.application(svc.get(card_id).application_id)
    assert app.status is ApplicationStatus.REJECTED and "uncollected" in (app.rejection or "")


# ------------------------------------------------------------------------------------------ 継続利用


def test_continued_use_after_a_move(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    moved = card_world.move(r, SHINJUKU)
    docs = [D.MY_NUMBER_CARD]
    with pytest.raises(RuleViolation) as exc, card_world.service(staff(CHIYODA)) as svc:
        svc.counter.continue_use(card_id, juki_pin=JUKI_PIN, documents=docs)  # not a resident there now
    assert exc.value.field == "住民票"
    with pytest.raises(WrongPin) as wrong, card_world.service(staff(SHINJUKU)) as svc:
        svc.counter.continue_use(card_id, juki_pin="0000", documents=docs)
    assert wrong.value.tries_left == 2
    assert chip_of(card_world, card_id).retries("juki") == 2  # the try was counted and kept
    assert card_world.card(card_id).lg_code == CHIYODA  # nothing else changed
    with card_world.service(staff(SHINJUKU)) as svc:
        view = svc.counter.continue_use(card_id, juki_pin=JUKI_PIN, documents=docs)
    assert view.lg_code == SHINJUKU and view.state is CardState.ACTIVE
    assert (
        view.endorsements[-1]["kind"] == "move_in" and view.endorsements[-1]["address"] == moved.address.text
    )
    reader = chip_of(card_world, card_id)
    assert reader.retries("juki") == 3
    assert reader.read_attributes(TEXT_PIN).address == moved.address.text
    assert statuses(card_world, card_id)[AUTH] == GOOD  # the authentication certificate survives
    with pytest.raises(RuleViolation, match="already shows"), card_world.service(staff(SHINJUKU)) as svc:
        svc.counter.continue_use(card_id, juki_pin=JUKI_PIN, documents=docs)


def test_continued_use_deadline(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    card_world.move(r, SHINJUKU)
    card_world.clock.advance(days=91)
    with (
        pytest.raises(RuleViolation, match="within 90 days") as exc,
        card_world.service(staff(SHINJUKU)) as svc,
    ):
        svc.counter.continue_use(card_id, juki_pin=JUKI_PIN, documents=[D.MY_NUMBER_CARD])
    assert exc.value.field == "継続利用"


def test_blocked_juki_pin_is_reset_at_the_counter(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    card_world.move(r, SHINJUKU)
    for _ in range(3):
        with pytest.raises((WrongPin, PinBlocked)), card_world.service(staff(SHINJUKU)) as svc:
            svc.counter.continue_use(card_id, juki_pin="0000", documents=[D.MY_NUMBER_CARD])
    with pytest.raises(PinBlocked), card_world.service(staff(SHINJUKU)) as svc:
        svc.counter.continue_use(card_id, juki_pin=JUKI_PIN, documents=[D.MY_NUMBER_CARD])
    with pytest.raises(RuleViolation, match="resident"), card_world.service(staff(CHIYODA)) as svc:
        svc.counter.reset_pin(card_id, "juki", "9999", documents=[D.PASSPORT])  # the holder left
    with pytest.raises(Forbidden), card_world.service(staff(YOKOHAMA_TSURUMI)) as svc:
        svc.counter.reset_pin(card_id, "juki", "9999", documents=[D.PASSPORT])
    with card_world.service(staff(SHINJUKU)) as svc:  # where the holder lives now
        svc.counter.reset_pin(card_id, "juki", "9999", documents=[D.PASSPORT])
    with card_world.service(staff(SHINJUKU)) as svc:
        assert (
            svc.counter.continue_use(card_id, juki_pin="9999", documents=[D.MY_NUMBER_CARD]).lg_code
            == SHINJUKU
        )


def test_relocation_is_endorsed_until_the_area_is_full(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    for i in range(MAX_ENDORSEMENTS):
        with card_world.register() as reg:
            reg.record_relocation(
                r.id,
                Placement(card_world.town(CHIYODA, i + 1), f"{i + 1}番1号"),
                moved_on=card_world.clock.today(),
            )
        with card_world.service(staff()) as svc:
            view = svc.counter.continue_use(card_id, juki_pin=JUKI_PIN, documents=[D.MY_NUMBER_CARD])
        assert view.endorsements[-1]["kind"] == "relocation" and view.lg_code == CHIYODA
    with card_world.register() as reg:
        reg.record_relocation(
            r.id, Placement(card_world.town(CHIYODA, 0), "9番9号"), moved_on=card_world.clock.today()
        )
    with pytest.raises(RuleViolation, match="endorsement_full") as exc, card_world.service(staff()) as svc:
        svc.counter.continue_use(card_id, juki_pin=JUKI_PIN, documents=[D.MY_NUMBER_CARD])
    assert exc.value.field == "追記欄"


# ------------------------------------------------------------------------------------------ PINs, signing


def test_pin_reset(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    reader = chip_of(card_world, card_id)
    with pytest.raises(WrongPin):
        reader.verify_pin("auth", "0000")
    with pytest.raises(InvalidInput), card_world.service(staff()) as svc:
        svc.counter.reset_pin(card_id, "auth", "12", documents=[D.PASSPORT])
    with card_world.service(staff()) as svc:
        svc.counter.reset_pin(card_id, "sign", "NEWPASS99", documents=[D.PASSPORT])
        svc.counter.reset_pin(card_id, "auth", "4321", documents=[D.PASSPORT])
    reader = chip_of(card_world, card_id)
    reader.verify_pin("auth", "4321")
    assert reader.read_certificate("sign", "NEWPASS99")


def test_a_new_signing_certificate_after_the_old_one_was_revoked(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    with pytest.raises(RuleViolation, match="already has"), card_world.service(staff()) as svc:
        svc.counter.issue_signing_certificate(card_id, password="NEWPASS1", documents=[D.PASSPORT])
    with card_world.service() as svc:  # as the revocation helper does on a change of 基本4情報
        sign = next(c for c in svc.certificates(card_id) if c.ca_kind == SIGN)
        svc.revocations.revoke(sign, "affiliationChanged", "identity:test")
    with card_world.service(staff()) as svc:
        serial = svc.counter.issue_signing_certificate(card_id, password="NEWPASS1", documents=[D.PASSPORT])
    with card_world.service() as svc:
        current = [c for c in svc.certificates(card_id) if c.ca_kind == SIGN and c.status == GOOD]
    assert [c.serial for c in current] == [serial]
    assert chip_of(card_world, card_id).read_certificate("sign", "NEWPASS1") == current[0].der
