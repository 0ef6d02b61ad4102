"""Provision of 本人確認情報: allowed items only, deny by default with the refusal on record, the keys
(住民票コード, 個人番号, 基本4情報), the log and the disclosure."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from jlis.audit import AuditEntry, AuditLog
from jlis.errors import Forbidden, InvalidInput
from jlis.juki import Basic4Query, Outcome, ProvisionResult, ProvisionService, provide
from jlis.juki.provision import MAX_CANDIDATES, PROVISION_LOG
from jlis.masters import Agency, IdentityItem, ProvisionRule, ProvisionTable
from jlis.registry import ResidentView, Sex

from .factories import CHIYODA, SHINJUKU, World

It = IdentityItem
People = dict[str, ResidentView]
TABLE = ProvisionTable(
    [Agency("pension", "日本年金機構"), Agency("passport", "外務省"), Agency("tax", "国税庁")],
    [
        ProvisionRule(
            "pension",
            "benefit",
            "年金給付",
            frozenset({It.NAME, It.BIRTH_DATE, It.ADDRESS, It.CHANGE_INFO}),
            "別表第一 第九十二号",
        ),
        ProvisionRule(
            "passport",
            "issue",
            "旅券発給",
            frozenset({It.NAME, It.NAME_KANA, It.SEX, It.RESIDENT_CODE}),
            "別表第一 第四十二号",
        ),
        ProvisionRule(
            "tax",
            "filing",
            "国税の賦課",
            frozenset(IdentityItem),
            "別表第一 第六十六号",
            my_number_basis="番号法 別表 第二十四項",
        ),
    ],
)


@pytest.fixture
def people(world: World) -> People:
    taro = world.person(CHIYODA)
    hanako = world.person(
        SHINJUKU,
        family="鈴木",
        given="花子",
        family_kana="スズキ",
        given_kana="ハナコ",
        sex=Sex.FEMALE,
        birth=dt.date(1991, 2, 3),
    )
    world.drain()
    return {"taro": taro, "hanako": hanako}


def query(world: World, agency: str, affair: str, **key: Any) -> ProvisionResult:
    with world.factory() as s, s.begin():
        return ProvisionService(s, world.clock, TABLE).query(agency, affair, **key)


def log(world: World) -> list[AuditEntry]:
    with world.factory() as s:
        return PROVISION_LOG.entries(s)


def test_only_the_allowed_items_are_provided(world: World, people: People) -> None:
    taro = people["taro"]
    result = query(world, "pension", "benefit", resident_code=taro.resident_code)
    assert result.outcome is Outcome.PROVIDED
    [record] = result.records
    assert set(record) == {It.NAME, It.BIRTH_DATE, It.ADDRESS, It.CHANGE_INFO}
    assert record[It.NAME] == "山田\u3000太郎" and record[It.ADDRESS] == taro.address.text
    assert record[It.CHANGE_INFO] == {
        "reason": "move_in",
        "label": "転入",
        "date": world.clock.today().isoformat(),
    }
    passport = query(world, "passport", "issue", resident_code=taro.resident_code).records[0]
    assert passport == {
        It.NAME: "山田\u3000太郎",
        It.NAME_KANA: "ヤマダ\u3000タロウ",
        It.SEX: "male",
        It.RESIDENT_CODE: taro.resident_code,
    }
    [entry, _] = log(world)
    assert entry.actor == "pension" and entry.action == "provide" and entry.subject == taro.resident_code
    assert entry.details["items"] == ["address", "birth_date", "change_info", "name"]
    assert entry.details["affair"] == "benefit" and entry.details["recipient_name"] == "日本年金機構"


def test_an_unlisted_pair_is_refused_and_the_refusal_is_on_record(world: World, people: People) -> None:
    code = people["taro"].resident_code
    with pytest.raises(Forbidden) as err:
        provide(world.factory, world.clock, TABLE, "passport", "benefit", resident_code=code)
    assert err.value.context["field"] == "affair"
    assert err.value.context["rule"] == "not in 住基法 別表第一 for this agency"
    with pytest.raises(Forbidden):
        provide(world.factory, world.clock, TABLE, "unknown_agency", "benefit", resident_code=code)
    entries = log(world)  # committed although the requests failed
    assert [(e.actor, e.action, e.subject) for e in entries] == [
        ("passport", "refuse", code),
        ("unknown_agency", "refuse", code),
    ]
    assert entries[0].details["items"] == [] and entries[0].details["outcome"] == "refused"
    # The service itself returns the refusal, without any personal data.
    result = query(world, "passport", "benefit", resident_code=code)
    assert result.outcome is Outcome.REFUSED and result.records == () and result.items == frozenset()


def test_by_my_number(world: World, people: People) -> None:
    hanako = people["hanako"]
    result = query(world, "tax", "filing", my_number=hanako.my_number)
    [record] = result.records
    assert record[It.MY_NUMBER] == hanako.my_number and record[It.RESIDENT_CODE] == hanako.resident_code
    assert log(world)[-1].subject == hanako.resident_code


@pytest.mark.parametrize("name", ["スズキ　ハナコ", "すずき はなこ", "ｽｽﾞｷﾊﾅｺ", "鈴木　花子", "鈴木花子"])
def test_by_basic_four(world: World, people: People, name: str) -> None:
    hanako = people["hanako"]
    q = Basic4Query(name=name, birth_date=dt.date(1991, 2, 3), sex="female", address="東京都新宿区")
    result = query(world, "passport", "issue", basic4=q)
    assert [r[It.RESIDENT_CODE] for r in result.records] == [hanako.resident_code]
    wrong_sex = query(world, "passport", "issue", basic4=Basic4Query(name, dt.date(1991, 2, 3), "male"))
    elsewhere = query(
        world, "passport", "issue", basic4=Basic4Query(name, dt.date(1991, 2, 3), "female", "大阪府")
    )
    assert wrong_sex.outcome is Outcome.NO_MATCH and elsewhere.outcome is Outcome.NO_MATCH


def test_basic_four_answers_several_candidates_up_to_the_cap(world: World) -> None:
    codes = {world.person(CHIYODA, banchi=f"{i}番1号").resident_code for i in range(1, MAX_CANDIDATES + 3)}
    world.drain()
    result = query(
        world, "passport", "issue", basic4=Basic4Query("ヤマダタロウ", dt.date(1980, 4, 1), "male")
    )
    assert len(result.records) == MAX_CANDIDATES and result.truncated
    assert {r[It.RESIDENT_CODE] for r in result.records} <= codes
    assert [e.subject for e in log(world)] == [r[It.RESIDENT_CODE] for r in result.records]  # one entry each


def test_no_match_is_answered_and_logged(world: World, people: People) -> None:
    result = query(world, "pension", "benefit", resident_code="00000000000")
    assert result.outcome is Outcome.NO_MATCH and result.records == ()
    [entry] = log(world)
    assert entry.action == "no_match" and entry.subject == "00000000000" and entry.details["items"] == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"resident_code": "12345678900"}, "住民票コード"),
        ({"resident_code": "1234"}, "住民票コード"),
        ({"my_number": "123456789010"}, "個人番号"),
        ({}, "query"),
        ({"resident_code": "00000000000", "my_number": "123456789018"}, "query"),
        ({"basic4": Basic4Query("", dt.date(1990, 1, 1), "male")}, "氏名"),
        ({"basic4": Basic4Query("ヤマダ", dt.date(1990, 1, 1), "男性")}, "性別"),
    ],
)
def test_malformed_requests_name_the_field_and_change_nothing(
    world: World,
    kwargs: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(InvalidInput) as err:
        query(world, "pension", "benefit", **kwargs)
    assert err.value.field == field
    assert log(world) == []


def test_the_provision_log_verifies_and_disclosure_lists_a_persons_provisions(
    world: World,
    people: People,
) -> None:
    taro, hanako = people["taro"], people["hanako"]
    query(world, "pension", "benefit", resident_code=taro.resident_code)
    query(world, "tax", "filing", my_number=hanako.my_number)
    query(world, "passport", "issue", resident_code=taro.resident_code)
    query(world, "passport", "benefit", resident_code=taro.resident_code)  # refused
    with world.factory() as s, s.begin():
        assert PROVISION_LOG.verify(s).ok
        entries = ProvisionService(s, world.clock, TABLE).disclose(
            taro.resident_code, requested_by="resident"
        )
    assert [(e.recipient, e.affair, e.outcome) for e in entries] == [
        ("pension", "benefit", Outcome.PROVIDED),
        ("passport", "issue", Outcome.PROVIDED),
        ("passport", "benefit", Outcome.REFUSED),
    ]
    assert entries[0].items == ("address", "birth_date", "change_info", "name")
    assert entries[0].recipient_name == "日本年金機構" and entries[0].affair_name == "年金給付"
    with world.factory() as s:  # the disclosure itself is an audited read
        [access] = AuditLog("access").entries(s, subject=taro.resident_code)
    assert access.action == "disclose" and access.actor == "resident"


def test_the_current_national_record_follows_a_code_change(world: World) -> None:
    from jlis.juki.provision import current_national_record

    view = world.person(CHIYODA)
    world.drain()
    with world.register(CHIYODA) as reg:
        changed = reg.change_resident_code(view.id)
    world.drain()
    with world.factory() as s:
        by_old = current_national_record(s, view.resident_code)
        by_new = current_national_record(s, changed.resident_code)
        unknown = current_national_record(s, "12345678901")
    assert by_old is not None and by_new is not None
    assert by_old.resident_code == by_new.resident_code == changed.resident_code
    assert by_old.superseded_by is None and by_old.family_name == view.name.family
    assert unknown is None
