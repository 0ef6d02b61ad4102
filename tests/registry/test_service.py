"""Each change type of the register, its refusals, and that nothing is ever deleted."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from jlis.codes import MyNumber, ResidentCode
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.messaging.tables import OutboxRow
from jlis.registry import ChangeReason, NewPerson, PersonName, Placement, Sex, Status
from jlis.registry.events import TOPIC_FUHYO, TOPIC_IDENTITY, TOPIC_MOVE_IN_NOTICE, TOPIC_MOVE_OUT_CERT
from jlis.registry.tables import HistoryRow, ResidentRow

from .conftest import CHIYODA, SHINJUKU, YOKOHAMA_TSURUMI, Counter, move_out_to_tsurumi


def outbox(counter: Counter) -> list[OutboxRow]:
    with counter.factory() as s:
        return list(s.execute(select(OutboxRow).order_by(OutboxRow.seq)).scalars())


def count(counter: Counter, table: type) -> int:
    with counter.factory() as s:
        return s.execute(select(func.count()).select_from(table)).scalar_one()


def test_move_in_with_paper_certificate_records_and_notifies(counter: Counter) -> None:
    view = counter.move_in(honseki_lg=YOKOHAMA_TSURUMI)
    assert view.status is Status.ACTIVE and view.is_head and view.relationship == "世帯主"
    assert view.last_reason is ChangeReason.MOVE_IN and view.version == 1
    assert view.address.text.startswith("東京都千代田区")
    assert view.previous_address == "東京都新宿区西新宿2丁目8番1号"
    msgs = {(m.destination, m.topic): json.loads(m.payload) for m in outbox(counter)}
    identity = msgs[(f"cs:{CHIYODA}", TOPIC_IDENTITY)]
    assert identity["resident_code"] == view.resident_code and identity["reason"] == "move_in"
    assert identity["family_kana"] == "ヤマダ" and identity["address"] == view.address.text
    assert msgs[(f"cs:{SHINJUKU}", TOPIC_MOVE_IN_NOTICE)]["to_lg_code"] == CHIYODA
    assert msgs[(f"honseki:{YOKOHAMA_TSURUMI}", TOPIC_FUHYO)]["address"] == view.address.text


def test_move_in_where_the_person_already_lives_is_refused(counter: Counter) -> None:
    view = counter.move_in()
    cert = counter.paper_certificate()
    cert = type(cert)(**{**cert.__dict__, "resident_code": view.resident_code})
    with pytest.raises(RuleViolation) as err, counter.service() as svc:
        svc.record_move_in(cert, Placement(counter.town(), "2番2号"), moved_on=counter.clock.today())
    assert err.value.field == "住民票コード"


def test_move_in_from_the_same_municipality_is_a_relocation(counter: Counter) -> None:
    cert = counter.paper_certificate(from_lg=CHIYODA)
    with pytest.raises(RuleViolation, match="転居"), counter.service() as svc:
        svc.record_move_in(cert, Placement(counter.town(), "2番2号"), moved_on=counter.clock.today())


def test_birth_gets_new_codes_and_joins_the_household(counter: Counter) -> None:
    mother = counter.move_in(
        family="佐藤", given="花子", family_kana="サトウ", given_kana="ハナコ", sex=Sex.FEMALE
    )
    born = counter.clock.today() - dt.timedelta(days=5)
    with counter.service() as svc:
        child = svc.record_birth(
            NewPerson(PersonName.checked("佐藤", "陽太", "サトウ", "ヨウタ"), born, Sex.MALE),
            household_id=mother.household_id,
        )
    ResidentCode.parse(child.resident_code)
    MyNumber.parse(child.my_number)
    assert child.household_id == mother.household_id and child.relationship == "子"
    assert child.address.text == mother.address.text and child.last_reason is ChangeReason.BIRTH


def test_birth_in_the_future_is_refused(counter: Counter) -> None:
    mother = counter.move_in(sex=Sex.FEMALE)
    with pytest.raises(InvalidInput) as err, counter.service() as svc:
        svc.record_birth(
            NewPerson(
                PersonName.checked("山田", "未来", "ヤマダ", "ミライ"),
                counter.clock.today() + dt.timedelta(days=1),
                Sex.FEMALE,
            ),
            household_id=mother.household_id,
        )
    assert err.value.field == "生年月日" and "future" in err.value.rule


def test_non_katakana_furigana_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        PersonName.checked("山田", "太郎", "やまだ", "タロウ")
    assert err.value.field == "氏の振り仮名" and err.value.rule == "must be katakana"
    assert PersonName.checked("山田", "太郎", "ﾔﾏﾀﾞ", "タロウ").family_kana == "ヤマダ"  # half-width folds


def test_relocation_moves_the_person_and_keeps_history(counter: Counter) -> None:
    view = counter.move_in()
    with counter.service() as svc:
        (moved,) = svc.record_relocation(
            view.id, Placement(counter.town(index=1), "3番4号"), moved_on=counter.clock.today()
        )
    assert moved.previous_address == view.address.text and moved.address.banchi == "3番4号"
    assert moved.address_since == counter.clock.today() and moved.version == 2
    with counter.service() as svc:
        hist = svc.history(view.id)
    assert [h.reason for h in hist] == [ChangeReason.MOVE_IN, ChangeReason.RELOCATION]
    assert hist[0].snapshot["address"] == view.address.text


def test_relocation_of_the_whole_household(counter: Counter) -> None:
    head = counter.move_in()
    spouse = counter.move_in(
        given="花子", given_kana="ハナコ", sex=Sex.FEMALE, household_id=head.household_id, relationship="妻"
    )
    with counter.service() as svc:
        moved = svc.record_relocation(
            head.id,
            Placement(counter.town(index=2), "9番9号"),
            moved_on=counter.clock.today(),
            whole_household=True,
        )
    assert {m.id for m in moved} == {head.id, spouse.id}
    assert len({m.address.text for m in moved}) == 1


def test_relocation_to_the_same_address_is_refused(counter: Counter) -> None:
    view = counter.move_in()
    with pytest.raises(RuleViolation) as err, counter.service() as svc:
        svc.record_relocation(
            view.id, Placement(view.address.town_id, view.address.banchi), moved_on=counter.clock.today()
        )
    assert err.value.field == "住所"


def test_relocation_alone_founds_a_new_household(counter: Counter) -> None:
    head = counter.move_in()
    child = counter.move_in(
        given="次郎", given_kana="ジロウ", household_id=head.household_id, relationship="子"
    )
    with counter.service() as svc:
        (moved,) = svc.record_relocation(
            child.id, Placement(counter.town(index=1), "5番5号"), moved_on=counter.clock.today()
        )
    assert moved.household_id != head.household_id and moved.is_head and moved.relationship == "世帯主"


def test_town_of_another_municipality_is_refused(counter: Counter) -> None:
    view = counter.move_in()
    with pytest.raises(InvalidInput) as err, counter.service() as svc:
        svc.record_relocation(
            view.id, Placement(counter.town(SHINJUKU), "1番1号"), moved_on=counter.clock.today()
        )
    assert err.value.field == "町字"


def test_move_out_then_move_in_notice_closes_the_record(counter: Counter) -> None:
    view = counter.move_in()
    with counter.service() as svc:
        out, cert = svc.record_move_out(
            view.id,
            planned_date=counter.clock.today(),
            destination="横浜市鶴見区",
            destination_lg_code=YOKOHAMA_TSURUMI,
        )
    assert out.status is Status.MOVING_OUT and cert.resident_code == view.resident_code
    with pytest.raises(RuleViolation), counter.service() as svc:
        svc.record_relocation(
            view.id, Placement(counter.town(index=1), "1番"), moved_on=counter.clock.today()
        )
    notice = {
        "resident_code": view.resident_code,
        "certificate_no": cert.certificate_no,
        "to_lg_code": YOKOHAMA_TSURUMI,
        "to_address": "神奈川県横浜市鶴見区鶴見1番",
        "moved_on": counter.clock.today().isoformat(),
    }
    with counter.service() as svc:
        svc.receive_move_in_notice(notice)
        svc.receive_move_in_notice(notice)  # a repeat changes nothing
        closed = svc.get(view.id)
    assert closed.status is Status.REMOVED and closed.move_destination.startswith("神奈川県")  # type: ignore[union-attr]
    assert closed.version == 3


def test_a_head_moving_out_names_the_new_head_whose_record_records_the_change(counter: Counter) -> None:
    head = counter.move_in(given="一郎")
    child = counter.move_in(given="二郎", household_id=head.household_id, relationship="子")
    with counter.service() as svc:
        before = svc.s.scalar(select(func.count()).select_from(OutboxRow))
        move_out_to_tsurumi(svc, head.id, new_head_id=child.id)
        sent = svc.s.scalars(select(OutboxRow.key).order_by(OutboxRow.seq).offset(before)).all()
        now_head = svc.get(child.id)
        history = svc.history(child.id)
    assert now_head.is_head and now_head.relationship == "世帯主"
    assert now_head.version == child.version + 1 and now_head.last_reason is ChangeReason.HEAD_CHANGE
    (latest,) = [e for e in history if e.version == now_head.version]
    assert latest.reason is ChangeReason.HEAD_CHANGE and latest.summary == "山田一郎の転出により世帯主"
    # 続柄 is no 本人確認情報: nothing about the new head goes to the network.
    assert child.resident_code not in sent and head.resident_code in sent
    # A new head is named only by a head who leaves others behind, and only among them.
    alone = counter.move_in(given="三郎")
    member = counter.move_in(given="四郎", household_id=child.household_id, relationship="子")
    for mover, named, rule in (
        (alone, child.id, "must be a remaining member"),  # nobody stays behind
        (member, now_head.id, "only a 世帯主"),  # not the head
    ):
        with pytest.raises(InvalidInput, match=f"新世帯主: {rule}"), counter.service() as svc:
            move_out_to_tsurumi(svc, mover.id, new_head_id=named)


def test_special_move_out_sends_the_certificate_over_the_network(counter: Counter) -> None:
    view = counter.move_in()
    with counter.service() as svc:
        svc.record_move_out(
            view.id,
            planned_date=counter.clock.today(),
            destination="新宿区",
            destination_lg_code=SHINJUKU,
            special=True,
        )
    certs = [json.loads(m.payload) for m in outbox(counter) if m.topic == TOPIC_MOVE_OUT_CERT]
    assert len(certs) == 1 and certs[0]["resident_code"] == view.resident_code
    with counter.service(SHINJUKU) as b:
        b.receive_move_out_certificate(certs[0])
        b.receive_move_out_certificate(certs[0])  # idempotent
        assert [c.certificate_no for c in b.received_certificates()] == [certs[0]["certificate_no"]]
        moved = b.record_special_move_in(
            certs[0]["certificate_no"],
            Placement(counter.town(SHINJUKU), "1番"),
            moved_on=counter.clock.today(),
        )
    assert moved.resident_code == view.resident_code and moved.last_reason is ChangeReason.SPECIAL_MOVE_IN
    with pytest.raises(RuleViolation, match="already used"), counter.service(SHINJUKU) as b:
        b.record_special_move_in(
            certs[0]["certificate_no"],
            Placement(counter.town(SHINJUKU), "1番"),
            moved_on=counter.clock.today(),
        )


def test_move_abroad_removes_at_once_and_reports_abroad(counter: Counter) -> None:
    view = counter.move_in(honseki_lg=CHIYODA)
    with counter.service() as svc:
        out, _ = svc.record_move_out(
            view.id,
            planned_date=counter.clock.today(),
            destination="アメリカ合衆国",
            destination_lg_code=None,
        )
    assert out.status is Status.REMOVED and out.last_reason is ChangeReason.MOVE_ABROAD
    last = [json.loads(m.payload) for m in outbox(counter) if m.topic in (TOPIC_IDENTITY, TOPIC_FUHYO)][-2:]
    assert all(p["address"] == "国外" for p in last)


def test_death_removes_but_never_deletes_and_forbids_a_later_move_out(counter: Counter) -> None:
    view = counter.move_in()
    residents_before = count(counter, ResidentRow)
    with counter.service() as svc:
        dead = svc.record_death(view.id, died_on=counter.clock.today())
    assert dead.status is Status.REMOVED and dead.removed_on == counter.clock.today()
    with pytest.raises(RuleViolation) as err, counter.service() as svc:
        svc.record_move_out(
            view.id, planned_date=counter.clock.today(), destination="新宿区", destination_lg_code=SHINJUKU
        )
    assert err.value.field == "状態" and "deceased" in err.value.rule
    assert count(counter, ResidentRow) == residents_before
    with counter.service() as svc:
        assert [h.reason for h in svc.history(view.id)] == [ChangeReason.MOVE_IN, ChangeReason.DEATH]
        assert svc.search("ヤマダ") == []  # removed records leave the default search ...
        assert [v.id for v in svc.search("ヤマダ", include_removed=True)] == [view.id]  # ... but stay


def test_death_before_birth_is_refused(counter: Counter) -> None:
    view = counter.move_in(birth=dt.date(1990, 1, 1))
    with pytest.raises(InvalidInput, match="死亡日"), counter.service() as svc:
        svc.record_death(view.id, died_on=dt.date(1989, 12, 31))


def test_name_change_with_furigana_and_former_surname(counter: Counter) -> None:
    view = counter.move_in(
        family="山田", given="花子", family_kana="ヤマダ", given_kana="ハナコ", sex=Sex.FEMALE
    )
    with counter.service() as svc:
        changed = svc.record_name_change(
            view.id,
            PersonName.checked("鈴木", "花子", "スズキ", "ハナコ"),
            changed_on=counter.clock.today(),
            cause="婚姻",
            keep_former_surname=True,
        )
    assert changed.name.full == "鈴木\u3000花子" and changed.former_surname == "山田"
    with pytest.raises(RuleViolation), counter.service() as svc:
        svc.record_name_change(
            view.id,
            PersonName.checked("鈴木", "花子", "スズキ", "ハナコ"),
            changed_on=counter.clock.today(),
            cause="婚姻",
        )


def test_correction_validates_each_field(counter: Counter) -> None:
    view = counter.move_in()
    with counter.service() as svc:
        fixed = svc.record_correction(
            view.id, {"given_kana": "タロー", "birth_date": "1980-04-02"}, reason="届出誤記"
        )
    assert fixed.name.given_kana == "タロー" and fixed.birth_date == dt.date(1980, 4, 2)
    assert fixed.last_reason is ChangeReason.CORRECTION
    for fields, field in (
        ({"birth_date": "2026-02-30"}, "生年月日"),
        ({"my_number": "1"}, "修正項目"),
        ({"family_kana": "abc"}, "氏の振り仮名"),
    ):
        with pytest.raises(InvalidInput) as err, counter.service() as svc:
            svc.record_correction(view.id, fields, reason="誤記")
        assert err.value.field == field


def test_resident_code_change_changes_the_my_number_and_retires_both(counter: Counter) -> None:
    view = counter.move_in()
    with counter.service() as svc:
        changed = svc.change_resident_code(view.id)
    assert changed.resident_code != view.resident_code and changed.my_number != view.my_number
    ResidentCode.parse(changed.resident_code)
    MyNumber.parse(changed.my_number)
    identity = [json.loads(m.payload) for m in outbox(counter) if m.topic == TOPIC_IDENTITY][-1]
    assert identity["previous_resident_code"] == view.resident_code and identity["reason"] == "code_change"


def test_staff_cannot_reach_another_municipality(counter: Counter) -> None:
    view = counter.move_in()
    with pytest.raises(NotFound), counter.service(SHINJUKU) as other:
        other.get(view.id)


def test_a_refused_change_leaves_nothing_behind(counter: Counter) -> None:
    view = counter.move_in()
    before = (count(counter, ResidentRow), count(counter, HistoryRow), count(counter, OutboxRow))
    with pytest.raises(InvalidInput), counter.service() as svc:
        svc.record_relocation(view.id, Placement(counter.town(index=1), ""), moved_on=counter.clock.today())
    with pytest.raises(InvalidInput), counter.service() as svc:
        svc.record_move_out(
            view.id,
            planned_date=counter.clock.today() + dt.timedelta(days=90),
            destination="x",
            destination_lg_code=SHINJUKU,
        )
    with pytest.raises(InvalidInput), counter.service() as svc:
        svc.record_move_out(
            view.id, planned_date=counter.clock.today(), destination="x", destination_lg_code="131017"
        )
    assert (count(counter, ResidentRow), count(counter, HistoryRow), count(counter, OutboxRow)) == before


def test_reads_are_audited(counter: Counter) -> None:
    from jlis.audit import AuditLog

    view = counter.move_in()
    with counter.service() as svc:
        svc.get(view.id)
        svc.search(view.resident_code)
    with counter.factory() as s:
        entries = AuditLog("access").entries(s, subject=view.resident_code)
    assert len(entries) >= 2 and all(e.actor == "staff-test" for e in entries)


def test_a_refused_relocation_changes_nothing_even_in_a_batch(counter: Counter) -> None:
    """The refusal comes before any change, so a batch that goes on after it keeps no trace."""
    head = counter.move_in()
    child = counter.move_in(
        given="次郎", given_kana="ジロウ", household_id=head.household_id, relationship="子"
    )
    with counter.service() as svc:
        with pytest.raises(RuleViolation):
            svc.record_relocation(
                child.id,
                Placement(child.address.town_id, child.address.banchi),
                moved_on=counter.clock.today(),
            )
        after = svc.get(child.id)
    assert after.household_id == head.household_id and after.relationship == "子" and after.version == 1


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("131017", "check digit does not match"),
        ("13101", "must be 6 digits"),
        ("141003", "must be a municipality that keeps a register"),  # 横浜市: its wards keep them
        ("139998", "unknown municipality"),
    ],
)
def test_a_counter_of_a_bad_municipality_is_refused_every_time(
    counter: Counter, code: str, rule: str
) -> None:
    """The register's code is checked once per distinct value (a cache): a refusal is never cached."""
    for _ in range(2):
        with pytest.raises(InvalidInput, match=rule) as refused, counter.service(code):
            pass
        assert refused.value.field == "地方公共団体コード"


def test_a_counter_code_in_full_width_digits_is_the_same_register(counter: Counter) -> None:
    with counter.service("１３１０１６") as svc:
        assert svc.lg_code == CHIYODA
