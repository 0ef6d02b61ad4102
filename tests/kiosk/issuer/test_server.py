"""The certificate server end to end on the database: each certificate's content from the real
register and this package's data, each refusal with its code, the request-id binding, the
issuance log and the audit trail."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from sqlalchemy import select

from jlis.audit.tables import AuditEntryRow
from jlis.clock import JST
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, RuleViolation
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.dv import SupportMeasures
from jlis.kiosk.issuer.errors import IssuanceRefused, RefusalReason
from jlis.kiosk.issuer.koseki import KosekiBook
from jlis.kiosk.issuer.models import IssueOptions
from jlis.kiosk.issuer.policy import load_policies, parse_policies
from jlis.kiosk.issuer.server import certificate_number, content_digest, luhn, verify_binding
from jlis.kiosk.issuer.tables import IssuanceRow
from jlis.kiosk.issuer.tax import TaxRoll
from jlis.registry import Sex

from .conftest import CENTER, CHIYODA, SHINJUKU, IssuerWorld, staff


def rows(content: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for section in content.sections:  # type: ignore[attr-defined]
        for row in section.rows:
            out.setdefault(row.label, row.value)
    return out


def refused(world: IssuerWorld, code: RefusalReason, *args: object, **kw: object) -> IssuanceRefused:
    before = world.count(IssuanceRow)
    with pytest.raises(IssuanceRefused) as info:
        world.issue(*args, **kw)  # type: ignore[arg-type]
    assert info.value.reason is code, info.value.detail
    assert info.value.code == code.value
    assert info.value.message == code.message
    assert world.count(IssuanceRow) == before  # nothing issued
    return info.value


# ------------------------------------------------------------------------------------ 住民票の写し


def test_resident_certificate_of_the_requester(world: IssuerWorld) -> None:
    p = world.person(honseki_lg=CHIYODA)
    world.next_day()
    content = world.issue(p, CertificateKind.RESIDENT)
    r = rows(content)
    assert content.kind is CertificateKind.RESIDENT
    assert content.subject_name == "山田\u3000太郎" == r["氏名"]
    assert content.lg_code == CHIYODA
    assert content.issuer_title == "東京都千代田区長"
    assert content.issued_on == world.clock.today()
    assert r["住所"] == p.address.text
    assert r["生年月日"] == "昭和55年4月1日"
    assert r["性別"] == "男"
    # omitted by default: 個人番号, 住民票コード, 本籍, 続柄
    values = " ".join(r.values())
    assert p.my_number not in values and p.resident_code not in values
    assert "本籍" not in r and "続柄" not in r
    assert "個人番号の記載を省略しています。" in content.notes
    assert "本籍の記載を省略しています。" in content.notes
    assert content.attestation.startswith("この写しは、住民票の原本と相違ない")


def test_household_certificate_with_honseki_and_relationship(world: IssuerWorld) -> None:
    head = world.person(honseki_lg=CHIYODA)
    wife = world.person(
        given="花子", given_kana="ハナコ", sex=Sex.FEMALE, honseki_lg=CHIYODA,
        household_id=head.household_id, relationship="妻",
    )  # fmt: skip
    world.next_day()
    content = world.issue(
        wife,
        CertificateKind.RESIDENT,
        IssueOptions(household=True, show_honseki=True, show_relationship=True),
    )
    assert content.subject_name == "山田\u3000花子"
    assert content.title == "住民票の写し（世帯全員）"
    names = [s.rows[0].value for s in content.sections]
    assert names == ["山田\u3000太郎", "山田\u3000花子"]
    for section in content.sections:
        labels = {r.label: r.value for r in section.rows}
        assert labels["本籍"] == "東京都千代田区千代田1番地"
        assert labels["世帯主"] == "山田\u3000太郎"
    assert {r.value for s in content.sections for r in s.rows if r.label == "続柄"} == {"世帯主", "妻"}
    assert "続柄の記載を省略しています。" not in content.notes


def test_my_number_only_where_the_municipality_allows_it(world: IssuerWorld) -> None:
    p = world.person()
    world.next_day()
    refused(
        world,
        RefusalReason.MY_NUMBER_NOT_ALLOWED,
        p,
        CertificateKind.RESIDENT,
        IssueOptions(show_my_number=True),
    )
    allowing = parse_policies(
        {
            "default": {
                "offered": ["resident"], "min_age": 15, "my_number_allowed": True, "max_name_length": 20,
                "max_address_length": 64, "closed": ["12-29", "01-03"], "income_from": "06-01",
                "hours": {"all": {"open": "06:30", "close": "23:00"}},
            }
        }
    )  # fmt: skip
    with transaction(world.factory) as s:
        server = world.server(s, policies=allowing)
        content = server.issue_content(
            p.resident_code,
            "resident",
            IssueOptions(show_my_number=True),
            "req-mynumber-1",
            world.clock.now(),
        )
    assert rows(content)["個人番号"] == p.my_number
    assert "個人番号の記載を省略しています。" not in content.notes


def test_resident_items_certificate_prints_only_the_chosen_items(world: IssuerWorld) -> None:
    p = world.person()
    world.next_day()
    content = world.issue(p, CertificateKind.RESIDENT_ITEMS, IssueOptions(items=("name", "address", "head")))
    assert [(r.label, r.value) for r in content.sections[0].rows] == [
        ("氏名", "山田\u3000太郎"),
        ("住所", p.address.text),
        ("世帯主", "山田\u3000太郎"),
    ]
    assert content.attestation == "上記の事項は、住民票に記載されていることを証明する。"


def test_resident_items_not_offered_in_shinjuku(world: IssuerWorld) -> None:
    p = world.person(SHINJUKU)
    world.next_day()
    refused(world, RefusalReason.NOT_OFFERED, p, CertificateKind.RESIDENT_ITEMS)


# ------------------------------------------------------------------------------------ 印鑑登録証明書


def test_seal_certificate_needs_an_active_registration(world: IssuerWorld) -> None:
    p = world.person()
    world.next_day()
    refused(world, RefusalReason.NO_SEAL_REGISTRATION, p, CertificateKind.SEAL)
    number = world.register_seal(p)
    content = world.issue(p, CertificateKind.SEAL)
    r = rows(content)
    assert r["登録番号"] == number
    assert r["氏名"] == content.subject_name == "山田\u3000太郎"
    assert r["登録年月日"] == "令和8年11月27日"
    [impression] = content.images
    assert impression.label == "登録印影" and impression.png.startswith(b"\x89PNG")


# ------------------------------------------------------------------------------------ 所得・課税証明書


def test_income_certificate_of_the_current_fiscal_year(world: IssuerWorld) -> None:
    p = world.person()
    world.next_day()
    refused(world, RefusalReason.NO_TAX_ASSESSMENT, p, CertificateKind.INCOME)
    with transaction(world.factory) as s:
        TaxRoll(s, world.clock, CHIYODA, staff()).record(
            p.resident_code,
            2026,
            salary_income=5_000_000,
            other_income=0,
            dependents=0,
            address_on_jan1="東京都千代田区",
        )
    content = world.issue(p, CertificateKind.INCOME)
    r = rows(content)
    assert r["年度"] == "令和8年度"
    assert r["所得の年"] == "令和7年分"
    assert r["給与収入"] == "5,000,000円"
    assert r["合計所得金額"] == "3,560,000円"
    assert r["市区町村民税"] == "145,800円"
    # a 年度 not yet available (the 2027 figures come in June 2027) is refused
    refused(world, RefusalReason.NO_TAX_ASSESSMENT, p, CertificateKind.INCOME, IssueOptions(fiscal_year=2027))


# ------------------------------------------------------------------------------------ 戸籍, 附票


def test_koseki_certificate_for_a_resident_of_the_honseki(world: IssuerWorld) -> None:
    head = world.person(honseki_lg=CHIYODA)
    son = world.person(
        given="一郎", given_kana="イチロウ", birth=dt.date(2010, 6, 1),
        household_id=head.household_id, relationship="子", honseki_lg=CHIYODA,
    )  # fmt: skip
    world.koseki_for(head, son)
    world.next_day()
    content = world.issue(head, CertificateKind.KOSEKI)
    r = rows(content)
    assert r["本籍"] == "東京都千代田区千代田1番地"
    assert r["氏名"] == "山田\u3000太郎"
    persons = [row.value for s in content.sections for row in s.rows if row.label == "戸籍に記録されている者"]
    assert persons == ["山田\u3000太郎", "山田\u3000一郎"]
    assert content.attestation == "これは、戸籍に記録されている事項の全部を証明した書面である。"
    # the son is 16: old enough; the 戸籍 names both people
    assert world.issue(son, CertificateKind.KOSEKI).subject_name == "山田\u3000一郎"


def test_koseki_outside_the_honseki_needs_honseki_use_registration(world: IssuerWorld) -> None:
    p = world.person(SHINJUKU, honseki_lg=CHIYODA)  # lives in 新宿区, 本籍 in 千代田区
    world.koseki_for(p)
    world.next_day()
    refused(world, RefusalReason.NO_HONSEKI_USE, p, CertificateKind.KOSEKI, lg_code=CHIYODA)
    with transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, CENTER).register_use(p.resident_code)
    content = world.issue(p, CertificateKind.KOSEKI, lg_code=CHIYODA)
    assert content.subject_name == "山田\u3000太郎"
    assert content.lg_code == CHIYODA


def test_koseki_refusals(world: IssuerWorld) -> None:
    p = world.person(honseki_lg=CHIYODA)
    world.next_day()
    refused(world, RefusalReason.NO_KOSEKI, p, CertificateKind.KOSEKI)
    world.koseki_for(p)
    with transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, staff()).remove_member(
            p.resident_code, reason="死亡", on=world.clock.today()
        )
    refused(world, RefusalReason.DECEASED, p, CertificateKind.KOSEKI)


def test_koseki_on_weekdays_only_where_the_policy_says_so(world: IssuerWorld) -> None:
    p = world.person(SHINJUKU, honseki_lg=SHINJUKU, honseki="東京都新宿区西新宿二丁目8番地")
    world.koseki_for(p, lg_code=SHINJUKU, honseki="東京都新宿区西新宿二丁目8番地")
    world.next_day()  # Friday 27 November 2026, 10:00
    assert world.issue(p, CertificateKind.KOSEKI).lg_code == SHINJUKU
    saturday = dt.datetime(2026, 11, 28, 10, 0, tzinfo=JST)
    refused(world, RefusalReason.CLOSED_HOURS, p, CertificateKind.KOSEKI, now=saturday)
    evening = dt.datetime(2026, 11, 27, 18, 0, tzinfo=JST)
    refused(world, RefusalReason.CLOSED_HOURS, p, CertificateKind.KOSEKI, now=evening)
    # the 住民票 is offered in the evening
    assert world.issue(p, CertificateKind.RESIDENT, now=evening).kind is CertificateKind.RESIDENT


def test_fuhyo_certificate_from_the_honseki_node(world: IssuerWorld) -> None:
    p = world.person(honseki_lg=CHIYODA)
    world.koseki_for(p)
    world.drain()  # the address notice reaches the 本籍地's 附票
    world.next_day()
    content = world.issue(p, CertificateKind.FUHYO)
    r = rows(content)
    assert r["本籍"] == "東京都千代田区千代田1番地"
    assert r["氏名"] == "山田\u3000太郎"
    assert r["住所 1"].startswith(p.address.text)
    assert "住定日" in r["住所 1"]


def test_fuhyo_without_the_notice_is_refused(world: IssuerWorld) -> None:
    p = world.person(honseki_lg=CHIYODA)
    world.koseki_for(p)
    world.next_day()  # the relay has not run: no 附票 at the 本籍地 yet
    refused(world, RefusalReason.NO_FUHYO, p, CertificateKind.FUHYO)


# ------------------------------------------------------------------------------------ 罹災証明書


def test_damage_certificate_through_the_victim_support_system(world: IssuerWorld) -> None:
    from jlis.bcl.disasters import DisasterService
    from jlis.bcl.models import AreaPart

    head = world.person()
    neighbour = world.person(given="次郎", given_kana="ジロウ", banchi="2番2号")
    world.next_day()
    with transaction(world.factory) as s:
        svc = DisasterService(s, world.clock, world.container.geography, staff())
        did = svc.declare(
            name="令和8年11月豪雨",
            cause="heavy_rain",
            occurred_on=world.clock.today(),
            area=[AreaPart(CHIYODA)],
        ).id
        svc.build_victim_register(did, CHIYODA)
        dwellings = {d.address: d.id for d in svc.dwellings(did, CHIYODA)}
        svc.record_survey(dwellings[head.address.text], damage_ratio=45, surveyed_on=world.clock.today())
        svc.decide(svc.apply_at_counter(did, CHIYODA, head.resident_code).id, approve=True)
    content = world.issue(head, CertificateKind.DAMAGE, principal=staff(), request_id="counter-damage-1")
    assert content.kind is CertificateKind.DAMAGE
    assert content.subject_name == "山田\u3000太郎"
    assert content.request_id == "counter-damage-1"
    with world.factory() as s:
        row = s.execute(select(IssuanceRow).where(IssuanceRow.request_id == "counter-damage-1")).scalar_one()
    assert row.certificate_number == content.certificate_number
    assert row.content_sha256 == content_digest(content)
    refused(world, RefusalReason.NO_DAMAGE_CERTIFICATE, neighbour, CertificateKind.DAMAGE, principal=staff())


# ------------------------------------------------------------------------------------ refusals


def test_moved_in_today_is_refused_and_tomorrow_issued(world: IssuerWorld) -> None:
    p = world.person()
    refused(world, RefusalReason.MOVED_IN_TODAY, p, CertificateKind.RESIDENT)
    world.next_day()
    assert world.issue(p, CertificateKind.RESIDENT).subject_name == "山田\u3000太郎"


def test_not_a_resident_here(world: IssuerWorld) -> None:
    p = world.person(SHINJUKU)
    world.next_day()
    refused(world, RefusalReason.NOT_RESIDENT, p, CertificateKind.RESIDENT, lg_code=CHIYODA)


def test_moving_out_and_household_moving_out(world: IssuerWorld) -> None:
    head = world.person()
    wife = world.person(
        given="花子", given_kana="ハナコ", sex=Sex.FEMALE, household_id=head.household_id, relationship="妻"
    )
    world.next_day()
    with transaction(world.factory) as s:
        world.container.registry(s, CHIYODA, "staff").record_move_out(
            wife.id,
            planned_date=world.clock.today() + dt.timedelta(days=3),
            destination="東京都新宿区西新宿2丁目8番1号",
            destination_lg_code=SHINJUKU,
        )
    refused(world, RefusalReason.MOVING_OUT, wife, CertificateKind.RESIDENT)
    refused(world, RefusalReason.HOUSEHOLD_MOVING_OUT, head, CertificateKind.RESIDENT)
    refused(world, RefusalReason.HOUSEHOLD_MOVING_OUT, head, CertificateKind.RESIDENT_ITEMS)


def test_deceased_and_moved_abroad(world: IssuerWorld) -> None:
    dead = world.person()
    abroad = world.person(given="次郎", given_kana="ジロウ", banchi="2番2号")
    world.next_day()
    with transaction(world.factory) as s:
        reg = world.container.registry(s, CHIYODA, "staff")
        reg.record_death(dead.id, died_on=world.clock.today())
        reg.record_move_out(
            abroad.id,
            planned_date=world.clock.today(),
            destination="アメリカ合衆国",
            destination_lg_code=None,
        )
    refused(world, RefusalReason.DECEASED, dead, CertificateKind.RESIDENT)
    refused(world, RefusalReason.MOVED_OUT, abroad, CertificateKind.RESIDENT)


def test_dv_support_measure_blocks_the_person_and_their_household(world: IssuerWorld) -> None:
    head = world.person()
    wife = world.person(
        given="花子", given_kana="ハナコ", sex=Sex.FEMALE, household_id=head.household_id, relationship="妻"
    )
    world.next_day()
    with transaction(world.factory) as s:
        measure = SupportMeasures(s, world.clock, CHIYODA, staff()).start(wife.resident_code)
    refused(world, RefusalReason.DV_SUPPORT, wife, CertificateKind.RESIDENT)
    refused(world, RefusalReason.DV_SUPPORT, head, CertificateKind.RESIDENT, IssueOptions(household=True))
    with transaction(world.factory) as s:
        SupportMeasures(s, world.clock, CHIYODA, staff()).lift(measure)
    assert world.issue(wife, CertificateKind.RESIDENT).subject_name == "山田\u3000花子"


def test_under_15_is_refused(world: IssuerWorld) -> None:
    child = world.person(given="一郎", given_kana="イチロウ", birth=dt.date(2011, 11, 28))
    world.next_day()  # 27 November 2026: 14 until tomorrow
    refused(world, RefusalReason.UNDER_AGE, child, CertificateKind.RESIDENT)
    world.next_day()
    assert world.issue(child, CertificateKind.RESIDENT).subject_name == "山田\u3000一郎"


def test_name_too_long_for_the_layout(world: IssuerWorld) -> None:
    p = world.person(
        family="寿限無寿限無五劫の擦り切れ", given="海砂利水魚の水行末雲来末風来末", given_kana="ジュゲム"
    )
    world.next_day()
    refused(world, RefusalReason.NAME_TOO_LONG, p, CertificateKind.RESIDENT)


def test_year_end_and_hours(world: IssuerWorld) -> None:
    p = world.person()
    world.next_day()
    refused(
        world,
        RefusalReason.CLOSED_YEAR_END,
        p,
        CertificateKind.RESIDENT,
        now=dt.datetime(2026, 12, 29, 10, 0, tzinfo=JST),
    )
    refused(
        world,
        RefusalReason.CLOSED_HOURS,
        p,
        CertificateKind.RESIDENT,
        now=dt.datetime(2026, 11, 27, 6, 29, tzinfo=JST),
    )
    refused(
        world,
        RefusalReason.CLOSED_HOURS,
        p,
        CertificateKind.RESIDENT,
        now=dt.datetime(2026, 11, 27, 23, 0, tzinfo=JST),
    )
    early = world.issue(p, CertificateKind.RESIDENT, now=dt.datetime(2026, 11, 27, 6, 30, tzinfo=JST))
    assert early.kind is CertificateKind.RESIDENT


# ------------------------------------------------------------------------------------ binding and log


def test_request_id_is_answered_once_and_binds_the_subject(world: IssuerWorld) -> None:
    a = world.person()
    b = world.person(family="佐藤", family_kana="サトウ", banchi="3番3号")
    world.next_day()
    first = world.issue(a, CertificateKind.RESIDENT, request_id="kiosk-req-0001")
    assert first.request_id == "kiosk-req-0001"
    refused(world, RefusalReason.REQUEST_REPLAYED, b, CertificateKind.RESIDENT, request_id="kiosk-req-0001")
    refused(world, RefusalReason.REQUEST_REPLAYED, a, CertificateKind.RESIDENT, request_id="kiosk-req-0001")
    with world.factory() as s:
        (row,) = s.execute(select(IssuanceRow)).scalars()
    assert row.resident_code == a.resident_code
    assert row.request_id == "kiosk-req-0001"
    assert row.certificate_number == first.certificate_number
    assert row.content_sha256 == content_digest(first)
    assert row.kind == "resident"


def test_binding_is_verifiable_at_a_later_hop(world: IssuerWorld) -> None:
    a = world.person()
    b = world.person(family="佐藤", family_kana="サトウ", banchi="3番3号")
    world.next_day()
    content = world.issue(a, CertificateKind.RESIDENT, request_id="kiosk-req-0042")
    with world.factory() as s:
        verify_binding(s, content, a.resident_code)
        cases = [
            (replace(content, subject_name="佐藤\u3000太郎"), a.resident_code, "証明書の内容"),
            (content, b.resident_code, "住民票コード"),
            (
                replace(content, certificate_number="131016-20261127-00000099-0"),
                a.resident_code,
                "証明書番号",
            ),
            (replace(content, kind=CertificateKind.SEAL), a.resident_code, "証明書の種類"),
            (replace(content, request_id="kiosk-req-0043"), a.resident_code, "要求番号"),
        ]
        for tampered, code, field in cases:
            with pytest.raises(RuleViolation) as info:
                verify_binding(s, tampered, code)
            assert info.value.field == field


def test_certificate_numbers_are_unique_and_check_digited(world: IssuerWorld) -> None:
    a = world.person()
    world.next_day()
    numbers = {world.issue(a, CertificateKind.RESIDENT).certificate_number for _ in range(3)}
    assert len(numbers) == 3
    for number in numbers:
        lg, day, serial, check = number.split("-")
        assert lg == CHIYODA and day == "20261127"
        assert int(check) == luhn(lg + day + serial)
    assert certificate_number("131016", dt.date(2026, 11, 27), 42) == "131016-20261127-00000042-" + str(
        luhn("1310162026112700000042")
    )


def test_issuance_is_audited(world: IssuerWorld) -> None:
    p = world.person()
    world.register_seal(p)
    world.next_day()
    content = world.issue(p, CertificateKind.SEAL)
    with world.factory() as s:
        entries = (
            s.execute(select(AuditEntryRow).where(AuditEntryRow.subject == p.resident_code)).scalars().all()
        )
    issue = [e for e in entries if e.action == "issue"]
    assert len(issue) == 1
    assert issue[0].actor == "kiosk-center"
    assert content.certificate_number in issue[0].details
    reads = [e for e in entries if e.action == "read" and e.actor == "kiosk-center"]
    assert any("kiosk.issuer" in e.details for e in reads)  # the seal read
    assert any('"registry"' in e.details for e in reads)  # the register's own audit


def test_bad_input_and_scope(world: IssuerWorld) -> None:
    p = world.person()
    world.next_day()
    with pytest.raises(InvalidInput) as info:
        world.issue(p, CertificateKind.RESIDENT, request_id="x")
    assert info.value.field == "要求番号"
    with pytest.raises(InvalidInput):
        world.issue(p, "passport")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        world.issue("12345678901", CertificateKind.RESIDENT)  # check digit
    with pytest.raises(Forbidden):
        world.issue(p, CertificateKind.RESIDENT, principal=staff(SHINJUKU))
    # the municipality's own staff may issue (the counter)
    assert world.issue(p, CertificateKind.RESIDENT, principal=staff(CHIYODA)).subject_name == "山田\u3000太郎"
    assert world.count(IssuanceRow) == 1


def test_default_policies_load() -> None:
    book = load_policies()
    assert CertificateKind.RESIDENT_ITEMS not in book.for_municipality(SHINJUKU).offered
    assert CertificateKind.RESIDENT_ITEMS in book.for_municipality(CHIYODA).offered


# ------------------------------------------------------------------------------------ settling a number


def test_a_number_is_settled_issued_or_void_once(world: IssuerWorld) -> None:
    from jlis.kiosk.issuer.server import mark_issued, void_issuance

    p = world.person()
    world.next_day()
    first = world.issue(p, CertificateKind.RESIDENT)
    second = world.issue(p, CertificateKind.RESIDENT)
    assert {r.state for r in _issuances(world)} == {"numbered"}
    with transaction(world.factory) as s:
        mark_issued(s, first, "a" * 64, world.clock.now())
    with transaction(world.factory) as s:  # an issued number is never voided
        assert void_issuance(s, world.clock, CHIYODA, first.request_id, "late failure", actor="t") is None
    with transaction(world.factory) as s:
        voided = void_issuance(s, world.clock, CHIYODA, second.request_id, "render failed", actor="t")
    assert voided == second.certificate_number
    with pytest.raises(RuleViolation), transaction(world.factory) as s:  # nor is a void one revived
        mark_issued(s, second, "b" * 64, world.clock.now())
    states = {r.request_id: (r.state, r.document_sha256, r.void_reason) for r in _issuances(world)}
    assert states == {
        first.request_id: ("issued", "a" * 64, None),
        second.request_id: ("void", None, "render failed"),
    }
    with world.factory() as s:
        (entry,) = s.scalars(select(AuditEntryRow).where(AuditEntryRow.action == "issue.void")).all()
    assert entry.chain == "access" and entry.subject == p.resident_code


def _issuances(world: IssuerWorld) -> list[IssuanceRow]:
    with world.factory() as s:
        rows = list(s.scalars(select(IssuanceRow).order_by(IssuanceRow.id)))
        s.expunge_all()
        return rows
