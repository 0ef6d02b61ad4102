"""Applications (交付申請) through the service: the checks against the 住民票, one live card per
person, renewal and re-issue rules, 特急発行 eligibility, fees, scope, and reads being audited."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from jlis.audit.tables import AuditEntryRow
from jlis.card.applications import (
    ApplicationStatus,
    Channel,
    ExpressCase,
    ReissueReason,
    parse_application_id,
)
from jlis.card.lifecycle import CardState, VoidReason
from jlis.card.tables import CardApplicationRow
from jlis.errors import Forbidden, InvalidInput, RuleViolation
from jlis.jpki.tables import REVOKED

from .conftest import CHIYODA, OPERATOR, SHINJUKU, CardWorld, staff


def app_count(w: CardWorld) -> int:
    with w.factory() as s:
        return int(s.execute(select(func.count()).select_from(CardApplicationRow)).scalar_one())


# ------------------------------------------------------------------------------------------ intake


def test_post_application_is_checked_and_accepted(card_world: CardWorld) -> None:
    r = card_world.person()
    app = card_world.apply(r)
    assert parse_application_id(app.id) == app.id and app.id.startswith(CHIYODA + "20261126")
    assert app.status is ApplicationStatus.ACCEPTED and app.channel is Channel.POST
    assert app.fee_yen == 0 and app.reissue_of is None and app.target_date is None
    assert app.resident_code == r.resident_code and app.lg_code == CHIYODA


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"family_name": "田中"}, "氏"),
        ({"given_name": "次郎"}, "名"),
        ({"birth_date": dt.date(1980, 4, 2)}, "生年月日"),
    ],
)
def test_application_must_match_the_register(
    card_world: CardWorld, change: dict[str, object], field: str
) -> None:
    r = card_world.person()
    form = card_world.form(r).__class__(**{**card_world.form(r).__dict__, **change})
    with pytest.raises(RuleViolation) as exc, card_world.service() as svc:
        svc.apply(form)
    assert exc.value.field == field and "住民票" in exc.value.rule
    assert app_count(card_world) == 0


def test_application_for_a_resident_elsewhere_is_refused(card_world: CardWorld) -> None:
    r = card_world.person(SHINJUKU)
    form = card_world.form(r).__class__(**{**card_world.form(r).__dict__, "lg_code": CHIYODA})
    with pytest.raises(RuleViolation) as exc, card_world.service() as svc:
        svc.apply(form)
    assert exc.value.field == "個人番号"


def test_application_names_a_bad_my_number(card_world: CardWorld) -> None:
    r = card_world.person()
    form = card_world.form(r).__class__(**{**card_world.form(r).__dict__, "my_number": "123456789012"})
    with pytest.raises(InvalidInput) as exc, card_world.service() as svc:
        svc.apply(form)
    assert exc.value.field == "個人番号"


def test_a_person_moving_out_cannot_apply(card_world: CardWorld) -> None:
    r = card_world.person()
    with card_world.register() as reg:
        reg.record_move_out(
            r.id, planned_date=card_world.clock.today(), destination="新宿", destination_lg_code=SHINJUKU
        )
    with pytest.raises(RuleViolation) as exc:
        card_world.apply(r)
    assert exc.value.field == "住民票" and "moving_out" in exc.value.rule


def test_scope_of_intake(card_world: CardWorld) -> None:
    r = card_world.person()
    with pytest.raises(Forbidden), card_world.service(staff(CHIYODA)) as svc:
        svc.apply(card_world.form(r, Channel.POST))  # post reaches J-LIS, not the counter
    with pytest.raises(Forbidden), card_world.service(OPERATOR) as svc:
        svc.apply(card_world.form(r, Channel.COUNTER))
    with pytest.raises(Forbidden), card_world.service(staff(SHINJUKU)) as svc:
        svc.apply(card_world.form(r, Channel.COUNTER))
    assert card_world.apply(r, Channel.COUNTER).channel is Channel.COUNTER


def test_one_application_at_a_time_and_one_live_card(card_world: CardWorld) -> None:
    r = card_world.person()
    card_world.apply(r)
    with pytest.raises(RuleViolation, match="already being processed"):
        card_world.apply(r)
    (card,) = card_world.produce()
    with pytest.raises(RuleViolation, match="already being processed"):
        card_world.apply(r)
    card_world.ship(card.id)
    card_world.notify(card.id)
    card_world.deliver(card.id)
    with pytest.raises(RuleViolation, match="holds a live card") as exc:
        card_world.apply(r)
    assert exc.value.field == "申請"
    with pytest.raises(RuleViolation, match="at the counter"):
        card_world.apply(r, reissue=ReissueReason.LOST)


def test_renewal_window_and_replacement_at_delivery(card_world: CardWorld) -> None:
    r = card_world.person()
    old_id = card_world.active_card(r)
    expires = card_world.card(old_id).expires_on
    assert expires == dt.date(2036, 4, 1)  # 10th birthday after issue (born 1980-04-01, 18+)
    with pytest.raises(RuleViolation, match="renewal window opens on 2036-01-02") as exc:
        card_world.apply(r, reissue=ReissueReason.RENEWAL)
    assert exc.value.field == "更新"
    card_world.clock.set(dt.datetime(2036, 1, 2, 9, 0, tzinfo=card_world.clock.now().tzinfo))
    app = card_world.apply(r, reissue=ReissueReason.RENEWAL)
    assert app.reissue_of == old_id and app.fee_yen == 0 and app.reissue_reason is ReissueReason.RENEWAL
    assert card_world.card(old_id).state is CardState.ACTIVE  # usable until the new one is handed over
    (new,) = card_world.produce()
    card_world.ship(new.id)
    card_world.notify(new.id)
    card_world.deliver(new.id)
    old = card_world.card(old_id)
    assert old.state is CardState.VOIDED and old.void_reason is VoidReason.REPLACED
    with card_world.service() as svc:
        assert {c.status for c in svc.certificates(old_id)} == {REVOKED}
        assert svc.application(app.id).status is ApplicationStatus.DONE


def test_lost_reissue_voids_at_once_with_the_fee(card_world: CardWorld) -> None:
    r = card_world.person()
    old_id = card_world.active_card(r)
    app = card_world.apply(r, Channel.COUNTER, reissue=ReissueReason.LOST)
    assert app.fee_yen == 1000 and app.reissue_of == old_id
    old = card_world.card(old_id)
    assert old.state is CardState.VOIDED and old.void_reason is VoidReason.LOST_REISSUED
    with card_world.service() as svc:
        certs = svc.certificates(old_id)
        assert certs and all(c.status == REVOKED and c.revocation_reason == "keyCompromise" for c in certs)
        assert all(c.revocation_cause == f"application:{app.id}" for c in certs)
    with pytest.raises(RuleViolation, match="already being processed"):
        card_world.apply(r, Channel.COUNTER, reissue=ReissueReason.LOST)


def test_damage_not_the_holders_doing_is_free(card_world: CardWorld) -> None:
    r = card_world.person()
    card_world.active_card(r)
    app = card_world.apply(r, Channel.COUNTER, reissue=ReissueReason.DAMAGED, holder_responsible=False)
    assert app.fee_yen == 0 and app.reissue_reason is ReissueReason.DEFECT


def test_reissue_without_a_card_is_refused(card_world: CardWorld) -> None:
    r = card_world.person()
    with pytest.raises(RuleViolation, match="needs a live card") as exc:
        card_world.apply(r, Channel.COUNTER, reissue=ReissueReason.LOST)
    assert exc.value.field == "再交付理由"


# ------------------------------------------------------------------------------------------ 特急発行


def test_express_lost_counts_from_the_loss_report(card_world: CardWorld) -> None:
    r = card_world.person()
    old_id = card_world.active_card(r)
    with pytest.raises(RuleViolation, match="loss must have been reported"):
        card_world.apply(r, Channel.COUNTER, express=ExpressCase.LOST)
    with card_world.service() as svc:
        from jlis.card.hotline import Caller, SuspensionReason

        svc.hotline.suspend(Caller(CHIYODA, "山田", "太郎", r.birth_date), SuspensionReason.LOST)
    card_world.clock.advance(days=31)
    with pytest.raises(RuleViolation, match="within 30 days"):
        card_world.apply(r, Channel.COUNTER, express=ExpressCase.LOST)
    card_world.clock.advance(days=-1)
    app = card_world.apply(r, Channel.COUNTER, express=ExpressCase.LOST)
    assert app.fee_yen == 2000 and app.reissue_reason is ReissueReason.LOST and app.reissue_of == old_id
    assert app.target_date == card_world.clock.today() + dt.timedelta(days=7)
    assert card_world.card(old_id).void_reason is VoidReason.LOST_REISSUED


def test_express_needs_the_counter(card_world: CardWorld) -> None:
    baby = card_world.person(birth=dt.date(2026, 10, 1))
    with pytest.raises(RuleViolation) as exc:
        card_world.apply(baby, express=ExpressCase.INFANT)
    assert exc.value.field == "申請方法"
    app = card_world.apply(baby, Channel.COUNTER, express=ExpressCase.INFANT)
    assert app.fee_yen == 0 and app.express_reason is ExpressCase.INFANT


def test_express_case_must_fit_the_person(card_world: CardWorld) -> None:
    adult = card_world.person()
    with pytest.raises(RuleViolation, match="under 1 year"):
        card_world.apply(adult, Channel.COUNTER, express=ExpressCase.INFANT)
    with pytest.raises(InvalidInput, match="must be given"):
        card_world.apply(adult, Channel.COUNTER, express=ExpressCase.RELEASED)
    day = card_world.clock.today() - dt.timedelta(days=3)
    app = card_world.apply(adult, Channel.COUNTER, express=ExpressCase.RELEASED, express_event_date=day)
    assert app.fee_yen == 0


def test_express_damage_charged_when_the_holder_is_responsible(card_world: CardWorld) -> None:
    r = card_world.person()
    card_world.active_card(r)
    day = card_world.clock.today()
    app = card_world.apply(r, Channel.COUNTER, express=ExpressCase.DAMAGED, express_event_date=day)
    assert app.fee_yen == 2000 and app.reissue_reason is ReissueReason.DAMAGED


# ------------------------------------------------------------------------------------------ reads


def access_entries_after(w: CardWorld, seq: int) -> list[AuditEntryRow]:
    with w.factory() as s:
        return list(
            s.execute(
                select(AuditEntryRow)
                .where(AuditEntryRow.chain == "access", AuditEntryRow.seq > seq)
                .order_by(AuditEntryRow.seq)
            ).scalars()
        )


def last_access_seq(w: CardWorld) -> int:
    with w.factory() as s:
        value = s.execute(select(func.max(AuditEntryRow.seq)).where(AuditEntryRow.chain == "access")).scalar()
    return int(value or 0)


def test_reads_are_scoped_and_audited(card_world: CardWorld) -> None:
    r = card_world.person()
    card_id = card_world.active_card(r)
    seq = last_access_seq(card_world)
    with card_world.service(staff(CHIYODA)) as svc:
        assert [c.id for c in svc.cards(CHIYODA)] == [card_id]
        assert svc.get(card_id).state is CardState.ACTIVE
        assert [e.event.value for e in svc.events(card_id)] == ["manufacture", "ship", "notify", "deliver"]
    new = access_entries_after(card_world, seq)
    assert len(new) == 3
    assert all(e.subject == r.resident_code and e.actor == "staff-131016" for e in new)
    assert all('"system": "card"' in e.details or '"system":"card"' in e.details for e in new)
    with pytest.raises(Forbidden), card_world.service(staff(SHINJUKU)) as svc:
        svc.get(card_id)
    with pytest.raises(Forbidden), card_world.service(staff(SHINJUKU)) as svc:
        svc.cards(CHIYODA)
