"""The counter pages (統合端末): search, the 住民票, each change form, refused forms shown again
with the message (and nothing written), CSRF, and staff seeing their own municipality only."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.juki.network import build_relay
from jlis.registry import Sex, Status

from ..web.support import CHIYODA, OPERATOR, SHINJUKU, STAFF_A, WebWorld, csrf_of

COUNTER = f"/counter/{CHIYODA}"


@pytest.fixture
def world(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[WebWorld]:
    with WebWorld.start(factory, clock, tmp_path) as w:
        w.login(STAFF_A)
        yield w


def submit(world: WebWorld, path: str, data: dict[str, str], *, csrf: bool = True) -> httpx.Response:
    form = dict(data)
    if csrf:
        form["csrf_token"] = world.page_csrf(path)
    return world.client.post(path, data=form, follow_redirects=False)


def day(world: WebWorld, days: int = 0) -> str:
    return (world.clock.today() + dt.timedelta(days=days)).isoformat()


def text(r: httpx.Response) -> str:
    return html.unescape(r.text)


def test_search_and_resident_page(world: WebWorld) -> None:
    head = world.resident(family="鈴木", family_kana="スズキ", given="一郎", given_kana="イチロウ")
    world.resident(
        household_id=head.household_id,
        relationship="妻",
        family="鈴木",
        family_kana="スズキ",
        given="花子",
        given_kana="ハナコ",
        sex=Sex.FEMALE,
    )
    r = world.client.get(f"{COUNTER}?q=スズキ")
    assert r.status_code == 200
    assert "鈴木\u3000一郎" in r.text and "鈴木\u3000花子" in r.text and "2 件" in r.text
    r = world.client.get(f"{COUNTER}?q={head.resident_code}")
    assert f"/residents/{head.id}" in r.text
    page = world.client.get(f"{COUNTER}/residents/{head.id}")
    assert page.status_code == 200
    for item in (
        head.resident_code,
        head.my_number,
        "東京都千代田区",
        "世帯主",
        "転入",
        "鈴木\u3000花子",
        "妻",
    ):
        assert item in page.text, item


def test_empty_search_is_just_the_form(world: WebWorld) -> None:
    r = world.client.get(COUNTER)
    assert r.status_code == 200 and "該当する住民はいません" not in r.text
    r = world.client.get(f"{COUNTER}?q=ノーバディ")
    assert "該当する住民はいません" in r.text


def test_relocation_through_the_form(world: WebWorld) -> None:
    r = world.resident()
    form_page = world.client.get(f"{COUNTER}/residents/{r.id}/relocation")
    assert form_page.status_code == 200
    towns = world.container.geography.towns(CHIYODA)
    assert form_page.text.count("<option value=") == len(towns)  # every town of the municipality is offered
    target = towns[5]
    resp = submit(
        world,
        f"{COUNTER}/residents/{r.id}/relocation",
        {"town_id": target.town_id, "banchi": "9番9号", "moved_on": day(world)},
    )
    assert (
        resp.status_code == 303 and resp.headers["location"] == f"{COUNTER}/residents/{r.id}?done=relocation"
    )
    page = world.client.get(resp.headers["location"])
    assert "転居を記録しました" in page.text and target.name + "9番9号" in page.text
    assert world.get_resident(r.id).last_reason == "relocation"


def test_refused_form_comes_back_with_the_message_and_the_values(world: WebWorld) -> None:
    r = world.resident()
    before = world.counts()
    resp = submit(
        world,
        f"{COUNTER}/residents/{r.id}/relocation",
        {"town_id": world.town(index=4), "banchi": "7番7号", "moved_on": "2026-02-30"},
    )
    assert resp.status_code == 422
    body = text(resp)
    assert "転居日は実在する日付 (年-月-日) で入力してください。" in body  # the counter speaks Japanese
    assert "項目: 転居日" in body and "must be a real date" in body  # and keeps the rule beside it
    assert 'value="7番7号"' in body and 'value="2026-02-30"' in body  # what was typed is kept
    assert f'value="{world.town(index=4)}" data-kana' in body and "selected" in body
    assert world.counts() == before


@pytest.mark.parametrize(
    ("slug", "data", "field", "rule"),
    [
        (
            "relocation",
            {"town_id": "131016100000199", "banchi": "1", "moved_on": "2026-11-26"},
            "町字",
            "unknown town",
        ),
        ("relocation", {"town_id": "", "banchi": "1", "moved_on": "2026-11-26"}, "町字", "must be 15 digits"),
        ("death", {"died_on": "2026-11-27"}, "死亡日", "must not be in the future"),
        (
            "name-change",
            {"family_name": "田中", "family_kana": "たなか", "changed_on": "2026-11-26", "cause": "婚姻"},
            "氏の振り仮名",
            "must be katakana",
        ),
        (
            "name-change",
            {"family_name": "", "family_kana": "タナカ", "changed_on": "2026-11-26", "cause": "婚姻"},
            "氏",
            "must not be empty",
        ),
        (
            "move-out",
            {"planned_date": "2026-11-30", "destination": "横浜", "destination_lg_code": "141012"},
            "転出先 地方公共団体コード",
            "check digit does not match",
        ),
        (
            "move-out",
            {"planned_date": "2026-11-30", "destination": "横浜", "destination_lg_code": "131997"},
            "転出先 地方公共団体コード",
            "unknown municipality",
        ),
        (
            "move-out",
            {
                "planned_date": "2026-11-30",
                "destination": "横浜",
                "destination_lg_code": "141011",
                "new_head_id": "x",
            },
            "新世帯主",
            "must be a number",
        ),
        ("correction", {"reason": "確認"}, "修正項目", "must name at least one item"),
    ],
)
def test_bad_input_on_each_form(
    world: WebWorld, slug: str, data: dict[str, str], field: str, rule: str
) -> None:
    r = world.resident()
    before = world.counts()
    if slug == "correction":
        # Send the form back unchanged: no item differs from the record.
        data = {**dict(_correction_values(world, r.id)), **data}
    resp = submit(world, f"{COUNTER}/residents/{r.id}/{slug}", data)
    assert resp.status_code in (409, 422), text(resp)
    body = text(resp)
    assert f"項目: {field}" in body and rule in body, body[:3000]
    assert world.counts() == before


def _correction_values(world: WebWorld, resident_id: int) -> dict[str, str]:
    row = world.get_resident(resident_id)
    return {
        "family_name": row.family_name,
        "given_name": row.given_name,
        "family_kana": row.family_kana,
        "given_kana": row.given_kana,
        "former_surname": row.former_surname or "",
        "former_surname_kana": row.former_surname_kana or "",
        "alias": row.alias or "",
        "birth_date": row.birth_date.isoformat(),
        "sex": row.sex,
        "banchi": row.banchi,
        "relationship": row.relationship,
        "honseki": row.honseki or "",
    }


def test_correction_changes_only_what_was_edited(world: WebWorld) -> None:
    r = world.resident()
    data = {**_correction_values(world, r.id), "given_kana": "タロー", "reason": "届書の誤記"}
    resp = submit(world, f"{COUNTER}/residents/{r.id}/correction", data)
    assert resp.status_code == 303
    row = world.get_resident(r.id)
    assert row.given_kana == "タロー" and row.family_name == "山田" and row.last_reason == "correction"


def test_death_name_change_code_change_and_move_out_forms(world: WebWorld) -> None:
    a, b, c, d = (world.resident() for _ in range(4))
    assert submit(world, f"{COUNTER}/residents/{a.id}/death", {"died_on": day(world)}).status_code == 303
    assert world.get_resident(a.id).status == Status.REMOVED
    resp = submit(
        world,
        f"{COUNTER}/residents/{b.id}/name-change",
        {
            "family_name": "田中",
            "given_name": "太郎",
            "family_kana": "タナカ",
            "given_kana": "タロウ",
            "cause": "婚姻",
            "changed_on": day(world),
            "keep_former_surname": "on",
        },
    )
    assert resp.status_code == 303
    assert world.get_resident(b.id).former_surname == "山田"
    assert submit(world, f"{COUNTER}/residents/{c.id}/code-change", {}).status_code == 303
    assert world.get_resident(c.id).resident_code != c.resident_code
    resp = submit(
        world,
        f"{COUNTER}/residents/{d.id}/move-out",
        {"planned_date": day(world, 3), "destination": "アメリカ合衆国", "abroad": "on"},
    )
    assert resp.status_code == 303
    assert world.get_resident(d.id).last_reason == "move_abroad"


def test_birth_form(world: WebWorld) -> None:
    mother = world.resident(
        family="佐藤", family_kana="サトウ", given="花子", given_kana="ハナコ", sex=Sex.FEMALE
    )
    path = f"{COUNTER}/households/{mother.household_id}/birth"
    assert "佐藤\u3000花子" in world.client.get(path).text
    resp = submit(
        world,
        path,
        {
            "family_name": "佐藤",
            "given_name": "陽太",
            "family_kana": "サトウ",
            "given_kana": "ヒナタ",
            "birth_date": day(world, -1),
            "sex": "male",
            "relationship": "子",
        },
    )
    assert resp.status_code == 303
    page = world.client.get(resp.headers["location"])
    assert "出生を記録しました" in page.text and "佐藤\u3000陽太" in page.text


def test_move_in_form_with_paper_certificate(world: WebWorld) -> None:
    cert = world.certificate()
    data = {
        "cert_certificate_no": "TP-0001",
        "cert_from_lg_code": SHINJUKU,
        "cert_resident_code": cert.resident_code,
        "cert_my_number": cert.my_number,
        "cert_family_name": "高橋",
        "cert_given_name": "次郎",
        "cert_family_kana": "タカハシ",
        "cert_given_kana": "ジロウ",
        "cert_birth_date": "1975-01-02",
        "cert_sex": "male",
        "cert_planned_date": day(world, -2),
        "cert_nationality": "JP",
        "cert_previous_address": "東京都新宿区歌舞伎町1丁目1番1号",
        "town_id": world.town(index=1),
        "banchi": "2番3号",
        "moved_on": day(world),
        "relationship": "世帯主",
    }
    bad = submit(world, f"{COUNTER}/move-in", {**data, "cert_resident_code": cert.resident_code[:-1] + "x"})
    assert bad.status_code == 422 and "住民票コード" in text(bad) and "must contain only digits" in text(bad)
    assert 'value="高橋"' in text(bad)
    resp = submit(world, f"{COUNTER}/move-in", data)
    assert resp.status_code == 303, text(resp)
    page = world.client.get(resp.headers["location"])
    assert "転入を記録しました" in page.text and cert.resident_code in page.text


def test_special_move_in_form(world: WebWorld) -> None:
    leaving = world.resident(SHINJUKU)
    with world.factory() as s, s.begin():
        world.container.registry(s, SHINJUKU, "staff-b").record_move_out(
            leaving.id,
            planned_date=world.clock.today(),
            destination="東京都千代田区",
            destination_lg_code=CHIYODA,
            special=True,
        )
    build_relay(world.factory, world.clock, world.container.geography).drain()
    page = world.client.get(f"{COUNTER}/special-move-in")
    assert leaving.name.full in page.text
    cert_no = f"TS-{SHINJUKU}-{leaving.id}-2"
    assert cert_no in page.text
    resp = submit(
        world,
        f"{COUNTER}/special-move-in",
        {"certificate_no": cert_no, "town_id": world.town(), "banchi": "1番", "moved_on": day(world)},
    )
    assert resp.status_code == 303, text(resp)
    assert "使用の転出証明書情報はありません" in world.client.get(f"{COUNTER}/special-move-in").text


def test_forms_need_the_csrf_token(world: WebWorld) -> None:
    r = world.resident()
    before = world.counts()
    resp = submit(world, f"{COUNTER}/residents/{r.id}/death", {"died_on": day(world)}, csrf=False)
    assert resp.status_code == 403
    resp = world.client.post(
        f"{COUNTER}/residents/{r.id}/death",
        data={"died_on": day(world), "csrf_token": "0" * 64},
        follow_redirects=False,
    )
    assert resp.status_code == 403
    assert world.counts() == before


def test_csrf_token_of_another_session_is_refused(world: WebWorld) -> None:
    r = world.resident()
    token = world.page_csrf(f"{COUNTER}/residents/{r.id}/death")
    world.login(STAFF_A)  # a new session: the old token no longer fits
    resp = world.client.post(
        f"{COUNTER}/residents/{r.id}/death",
        data={"died_on": day(world), "csrf_token": token},
        follow_redirects=False,
    )
    assert resp.status_code == 403 and world.get_resident(r.id).status == Status.ACTIVE


def test_staff_see_their_own_municipality_only(world: WebWorld) -> None:
    theirs = world.resident(SHINJUKU)
    before = world.counts()
    assert world.client.get(f"/counter/{SHINJUKU}").status_code == 403
    assert world.client.get(f"/counter/{SHINJUKU}/residents/{theirs.id}").status_code == 403
    r = world.client.get(f"{COUNTER}/residents/{theirs.id}")
    assert r.status_code == 404 and theirs.name.full not in r.text
    assert world.client.get(f"{COUNTER}/residents/{theirs.id}/relocation").status_code == 404
    token = world.page_csrf(COUNTER)
    resp = world.client.post(
        f"{COUNTER}/residents/{theirs.id}/death",
        data={"died_on": day(world), "csrf_token": token},
        follow_redirects=False,
    )
    assert resp.status_code == 404
    assert theirs.name.full not in world.client.get(f"{COUNTER}?q=ヤマダ").text
    assert world.counts() == before


def test_signed_out_and_operators_cannot_use_the_counter(world: WebWorld) -> None:
    r = world.resident()
    world.client.cookies.clear()
    resp = world.client.get(f"{COUNTER}/residents/{r.id}", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login?next=")
    world.login(OPERATOR)
    assert world.client.get(f"{COUNTER}/residents/{r.id}").status_code == 403


def test_municipality_suggestions(world: WebWorld) -> None:
    found = world.client.get(f"{COUNTER}/municipalities?q=横浜市鶴見").json()
    assert found and found[0]["value"] == "141011" and "横浜市鶴見区" in found[0]["label"]
    assert world.client.get(f"{COUNTER}/municipalities?q=").json() == []


def test_page_shows_the_csrf_token_of_this_session(world: WebWorld) -> None:
    page = world.client.get(COUNTER)
    assert csrf_of(page.text) == world.page_csrf(COUNTER)
