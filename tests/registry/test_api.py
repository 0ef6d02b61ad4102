"""The register's HTTP API: each change type, the reads, bad input (4xx naming the field and the
rule, nothing written) and scope (wrong municipality, wrong principal kind, no token)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.clock import FixedClock
from jlis.juki.network import build_relay
from jlis.registry import ChangeReason, Sex, Status

from ..web.support import AGENCY, CHIYODA, OPERATOR, SHINJUKU, STAFF_A, STAFF_B, WebWorld, assert_error

BASE = f"/api/v1/municipalities/{CHIYODA}"


@pytest.fixture
def world(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[WebWorld]:
    with WebWorld.start(factory, clock, tmp_path) as w:
        yield w


def post(world: WebWorld, path: str, body: dict[str, Any], user: str = STAFF_A) -> Any:
    return world.client.post(path, json=body, headers=world.headers(user))


def get(world: WebWorld, path: str, user: str = STAFF_A) -> Any:
    return world.client.get(path, headers=world.headers(user))


def today(world: WebWorld, days: int = 0) -> str:
    return (world.clock.today() + dt.timedelta(days=days)).isoformat()


def cert_body(world: WebWorld, **overrides: Any) -> dict[str, Any]:
    c = world.certificate()
    return {
        "certificate_no": c.certificate_no,
        "from_lg_code": SHINJUKU,
        "resident_code": c.resident_code,
        "my_number": c.my_number,
        "family_name": "佐藤",
        "given_name": "花子",
        "family_kana": "サトウ",
        "given_kana": "ハナコ",
        "birth_date": "1990-05-06",
        "sex": "female",
        "previous_address": "東京都新宿区西新宿2丁目8番1号",
        "planned_date": today(world, -3),
        **overrides,
    }


def move_in_body(world: WebWorld, cert: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    return {
        "certificate": cert or cert_body(world),
        "placement": {"town_id": world.town(), "banchi": "3番4号"},
        "moved_on": today(world, -1),
        **overrides,
    }


# ------------------------------------------------------------------------------------------ reads


def test_search_get_history_and_household(world: WebWorld) -> None:
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
    r = get(world, f"{BASE}/residents?q=スズキ")
    assert r.status_code == 200 and [x["given_name"] for x in r.json()] == ["一郎", "花子"]
    assert get(world, f"{BASE}/residents?q={head.resident_code}").json()[0]["id"] == head.id
    assert get(world, f"{BASE}/residents?q={head.my_number}").json()[0]["id"] == head.id
    one = get(world, f"{BASE}/residents/{head.id}").json()
    assert one["resident_code"] == head.resident_code and one["address"]["text"].startswith("東京都千代田区")
    assert one["last_reason"] == "move_in" and one["is_head"] is True
    history = get(world, f"{BASE}/residents/{head.id}/history").json()
    assert [h["reason_label"] for h in history] == ["転入"]
    members = get(world, f"{BASE}/households/{head.household_id}/members").json()
    assert {m["relationship"] for m in members} == {"世帯主", "妻"}
    assert_error(get(world, f"{BASE}/residents?q="), 422, "検索語", "must not be empty")


def test_reads_are_audited_with_the_staff_member(world: WebWorld) -> None:
    r = world.resident()
    get(world, f"{BASE}/residents/{r.id}")
    with world.factory() as s:
        entries = AuditLog("access").entries(s, subject=r.resident_code)
    assert [e.actor for e in entries][-1] == STAFF_A
    assert entries[-1].details["purpose"] == "閲覧"


def test_town_search(world: WebWorld) -> None:
    towns = get(world, f"{BASE}/towns?q=ちよだ").json()
    assert towns and towns[0]["name"].startswith("千代田")
    assert len(get(world, f"{BASE}/towns?limit=5").json()) == 5


# ------------------------------------------------------------------------------------------ changes


def test_move_in_birth_relocation_name_change_correction_code_change_death(world: WebWorld) -> None:
    r = post(world, f"{BASE}/move-ins", move_in_body(world))
    assert r.status_code == 201, r.text
    mother = r.json()
    assert mother["last_reason"] == "move_in" and mother["previous_address"].startswith("東京都新宿区")

    r = post(
        world,
        f"{BASE}/households/{mother['household_id']}/births",
        {
            "family_name": "佐藤",
            "given_name": "陽太",
            "family_kana": "サトウ",
            "given_kana": "ヒナタ",
            "birth_date": today(world, -2),
            "sex": "male",
        },
    )
    assert r.status_code == 201, r.text
    child = r.json()
    assert child["relationship"] == "子" and child["household_id"] == mother["household_id"]

    town = world.town(index=3)
    r = post(
        world,
        f"{BASE}/residents/{mother['id']}/relocation",
        {"town_id": town, "banchi": "5番6号", "moved_on": today(world), "whole_household": True},
    )
    assert r.status_code == 200, r.text
    assert {v["id"] for v in r.json()} == {mother["id"], child["id"]}
    assert all(v["last_reason"] == "relocation" and v["address"]["town_id"] == town for v in r.json())

    r = post(
        world,
        f"{BASE}/residents/{mother['id']}/name-change",
        {
            "family_name": "田中",
            "given_name": "花子",
            "family_kana": "タナカ",
            "given_kana": "ハナコ",
            "changed_on": today(world),
            "cause": "婚姻",
            "keep_former_surname": True,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["family_name"] == "田中" and r.json()["former_surname"] == "佐藤"

    r = post(
        world,
        f"{BASE}/residents/{child['id']}/correction",
        {"fields": {"given_kana": "ヨウタ"}, "reason": "届書の誤記"},
    )
    assert r.status_code == 200 and r.json()["given_kana"] == "ヨウタ"

    r = post(world, f"{BASE}/residents/{child['id']}/code-change", {})
    assert r.status_code == 200 and r.json()["resident_code"] != child["resident_code"]
    assert r.json()["my_number"] != child["my_number"]

    r = post(world, f"{BASE}/residents/{mother['id']}/death", {"died_on": today(world)})
    assert r.status_code == 200 and r.json()["status"] == "removed" and r.json()["last_reason"] == "death"
    history = get(world, f"{BASE}/residents/{mother['id']}/history").json()
    assert [h["reason"] for h in history] == ["move_in", "relocation", "name_change", "death"]


def test_move_out_and_abroad(world: WebWorld) -> None:
    a, b = world.resident(), world.resident()
    r = post(
        world,
        f"{BASE}/residents/{a.id}/move-out",
        {
            "planned_date": today(world, 5),
            "destination": "神奈川県横浜市鶴見区鶴見中央1丁目1番1号",
            "destination_lg_code": "141011",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["resident"]["status"] == "moving_out" and r.json()["certificate"]["certificate_no"]
    r = post(
        world,
        f"{BASE}/residents/{b.id}/move-out",
        {"planned_date": today(world), "destination": "アメリカ合衆国", "abroad": True},
    )
    assert r.status_code == 200 and r.json()["resident"]["last_reason"] == ChangeReason.MOVE_ABROAD.value
    assert world.get_resident(b.id).status == Status.REMOVED


def test_special_move_in_uses_the_certificate_that_arrived(world: WebWorld) -> None:
    leaving = world.resident(SHINJUKU)
    r = post(
        world,
        f"/api/v1/municipalities/{SHINJUKU}/residents/{leaving.id}/move-out",
        {
            "planned_date": today(world, 2),
            "destination": "東京都千代田区",
            "destination_lg_code": CHIYODA,
            "special": True,
        },
        user=STAFF_B,
    )
    assert r.status_code == 200, r.text
    build_relay(world.factory, world.clock, world.container.geography).drain()
    certs = get(world, f"{BASE}/move-out-certificates").json()
    assert [c["resident_code"] for c in certs] == [leaving.resident_code]
    r = post(
        world,
        f"{BASE}/special-move-ins",
        {
            "certificate_no": certs[0]["certificate_no"],
            "placement": {"town_id": world.town(), "banchi": "1番"},
            "moved_on": today(world),
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["last_reason"] == "special_move_in" and r.json()["resident_code"] == leaving.resident_code
    again = post(
        world,
        f"{BASE}/special-move-ins",
        {
            "certificate_no": certs[0]["certificate_no"],
            "placement": {"town_id": world.town(), "banchi": "1番"},
            "moved_on": today(world),
        },
    )
    assert_error(again, 409, "転出証明書情報", "already used")


# ------------------------------------------------------------------------------------------ bad input


def _bad_digit(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


Case = tuple[str, Callable[[WebWorld, int], tuple[str, dict[str, Any]]], int, str, str]

BAD_INPUT: list[Case] = [
    (
        "resident code check digit",
        lambda w, rid: (
            f"{BASE}/move-ins",
            move_in_body(w, cert_body(w, resident_code=_bad_digit(w.certificate().resident_code))),
        ),
        422,
        "住民票コード",
        "check digit does not match",
    ),
    (
        "my number check digit",
        lambda w, rid: (
            f"{BASE}/move-ins",
            move_in_body(w, cert_body(w, my_number=_bad_digit(w.certificate().my_number))),
        ),
        422,
        "個人番号",
        "check digit does not match",
    ),
    (
        "my number length",
        lambda w, rid: (f"{BASE}/move-ins", move_in_body(w, cert_body(w, my_number="1234"))),
        422,
        "個人番号",
        "must be 12 digits",
    ),
    (
        "from municipality check digit",
        lambda w, rid: (f"{BASE}/move-ins", move_in_body(w, cert_body(w, from_lg_code="131042"))),
        422,
        "転出元 地方公共団体コード",
        "check digit does not match",
    ),
    (
        "unknown municipality",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/move-out",
            {"planned_date": today(w, 1), "destination": "どこか", "destination_lg_code": "131997"},
        ),
        422,
        "転出先 地方公共団体コード",
        "unknown municipality",
    ),
    (
        "destination missing",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/move-out",
            {"planned_date": today(w, 1), "destination": "どこか"},
        ),
        422,
        "転出先 地方公共団体コード",
        "required unless 国外転出",
    ),
    (
        "unknown town",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/relocation",
            {"town_id": "131016100000199", "banchi": "1番", "moved_on": today(w)},
        ),
        422,
        "町字",
        "unknown town",
    ),
    (
        "town of another municipality",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/relocation",
            {"town_id": w.town(SHINJUKU), "banchi": "1番", "moved_on": today(w)},
        ),
        422,
        "町字",
        "must be a town of",
    ),
    (
        "malformed town id",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/relocation",
            {"town_id": "千代田", "banchi": "1番", "moved_on": today(w)},
        ),
        422,
        "町字",
        "must be 15 digits",
    ),
    (
        "empty banchi",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/relocation",
            {"town_id": w.town(index=2), "banchi": " ", "moved_on": today(w)},
        ),
        422,
        "番地",
        "must not be empty",
    ),
    (
        "February 30th",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/relocation",
            {"town_id": w.town(index=2), "banchi": "1番", "moved_on": "2026-02-30"},
        ),
        422,
        "転居日",
        "must be a real date",
    ),
    (
        "future relocation",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/relocation",
            {"town_id": w.town(index=2), "banchi": "1番", "moved_on": today(w, 1)},
        ),
        422,
        "転居日",
        "must not be in the future",
    ),
    (
        "future death",
        lambda w, rid: (f"{BASE}/residents/{rid}/death", {"died_on": today(w, 3)}),
        422,
        "死亡日",
        "must not be in the future",
    ),
    (
        "Japanese-style date",
        lambda w, rid: (f"{BASE}/residents/{rid}/death", {"died_on": "2026年2月30日"}),
        422,
        "死亡日",
        "must be a real date",
    ),
    (
        "future notification",
        lambda w, rid: (f"{BASE}/residents/{rid}/death", {"died_on": today(w), "notified_on": today(w, 1)}),
        422,
        "届出日",
        "must not be in the future",
    ),
    (
        "future birth",
        lambda w, rid: (
            f"{BASE}/households/{w.get_resident(rid).household_id}/births",
            {"family_name": "山田", "family_kana": "ヤマダ", "birth_date": today(w, 1), "sex": "male"},
        ),
        422,
        "生年月日",
        "must not be in the future",
    ),
    (
        "bad sex",
        lambda w, rid: (
            f"{BASE}/households/{w.get_resident(rid).household_id}/births",
            {"family_name": "山田", "family_kana": "ヤマダ", "birth_date": today(w), "sex": "x"},
        ),
        422,
        "性別",
        "must be male or female",
    ),
    (
        "empty family name",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/name-change",
            {"family_name": "", "family_kana": "ヤマダ", "changed_on": today(w), "cause": "婚姻"},
        ),
        422,
        "氏",
        "must not be empty",
    ),
    (
        "oversize name",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/name-change",
            {"family_name": "長" * 51, "family_kana": "ナガ", "changed_on": today(w), "cause": "婚姻"},
        ),
        422,
        "氏",
        "at most 50 characters",
    ),
    (
        "hiragana furigana",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/name-change",
            {"family_name": "田中", "family_kana": "たなか", "changed_on": today(w), "cause": "婚姻"},
        ),
        422,
        "氏の振り仮名",
        "must be katakana",
    ),
    (
        "latin furigana",
        lambda w, rid: (
            f"{BASE}/households/{w.get_resident(rid).household_id}/births",
            {"family_name": "山田", "family_kana": "Yamada", "birth_date": today(w), "sex": "male"},
        ),
        422,
        "氏の振り仮名",
        "must be katakana",
    ),
    (
        "oversize previous address",
        lambda w, rid: (f"{BASE}/move-ins", move_in_body(w, cert_body(w, previous_address="あ" * 201))),
        422,
        "前住所",
        "at most 200 characters",
    ),
    (
        "oversize honseki",
        lambda w, rid: (
            f"{BASE}/households/{w.get_resident(rid).household_id}/births",
            {
                "family_name": "山田",
                "family_kana": "ヤマダ",
                "birth_date": today(w),
                "sex": "male",
                "honseki": "東京都千代田区" + "一" * 200,
                "honseki_lg_code": CHIYODA,
            },
        ),
        422,
        "本籍",
        "at most 200 characters",
    ),
    (
        "same name",
        lambda w, rid: (
            f"{BASE}/residents/{rid}/name-change",
            {
                "family_name": "山田",
                "given_name": "太郎",
                "family_kana": "ヤマダ",
                "given_kana": "タロウ",
                "changed_on": today(w),
                "cause": "婚姻",
            },
        ),
        409,
        "氏名",
        "same as the current name",
    ),
    (
        "correction of an unknown item",
        lambda w, rid: (f"{BASE}/residents/{rid}/correction", {"fields": {"my_number": "1"}, "reason": "x"}),
        422,
        "修正項目",
        "cannot be corrected here",
    ),
    (
        "missing field",
        lambda w, rid: (f"{BASE}/residents/{rid}/death", {}),
        422,
        "body.died_on",
        "Field required",
    ),
    (
        "unknown field",
        lambda w, rid: (f"{BASE}/residents/{rid}/death", {"died_on": today(w), "cause": "x"}),
        422,
        "body.cause",
        "Extra inputs are not permitted",
    ),
    (
        "number where text belongs",
        lambda w, rid: (f"{BASE}/residents/{rid}/death", {"died_on": 20261126}),
        422,
        "body.died_on",
        "valid string",
    ),
    (
        "path id not a number",
        lambda w, rid: (f"{BASE}/residents/abc/death", {"died_on": today(w)}),
        422,
        "path.resident_id",
        "valid integer",
    ),
]


@pytest.mark.parametrize(
    ("name", "request_of", "status", "field", "rule"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_names_field_and_rule_and_writes_nothing(
    world: WebWorld,
    name: str,
    request_of: Callable[[WebWorld, int], tuple[str, dict[str, Any]]],
    status: int,
    field: str,
    rule: str,
) -> None:
    resident = world.resident()
    path, body = request_of(world, resident.id)
    headers = world.headers(STAFF_A)
    before = world.counts()
    r = world.client.post(path, json=body, headers=headers)
    assert_error(r, status, field, rule)
    assert world.counts() == before, f"{name}: something was written"


def test_a_failure_late_in_a_change_leaves_nothing_behind(world: WebWorld) -> None:
    """A whole-household 転居 that fails on the last check must not keep the first member's move."""
    head = world.resident()
    world.resident(household_id=head.household_id, relationship="子")
    before = world.counts()
    r = post(
        world,
        f"{BASE}/residents/{head.id}/relocation",
        {"town_id": world.town(), "banchi": "1番1号", "moved_on": today(world), "whole_household": True},
    )
    assert_error(r, 409, "住所", "current address")
    assert world.counts() == before


# ------------------------------------------------------------------------------------------ scope


def test_staff_of_another_municipality_is_refused(world: WebWorld) -> None:
    mine = world.resident(CHIYODA)
    theirs = world.resident(SHINJUKU)
    before = world.counts()
    # The other municipality's path: refused by the guard.
    assert_error(
        get(world, f"/api/v1/municipalities/{SHINJUKU}/residents/{theirs.id}"), 403, "地方公共団体コード"
    )
    assert_error(
        post(
            world, f"/api/v1/municipalities/{SHINJUKU}/residents/{theirs.id}/death", {"died_on": today(world)}
        ),
        403,
        "地方公共団体コード",
    )
    # Their resident through my own path: answered as missing, not as forbidden.
    assert_error(get(world, f"{BASE}/residents/{theirs.id}"), 404, "住民票")
    assert_error(post(world, f"{BASE}/residents/{theirs.id}/death", {"died_on": today(world)}), 404, "住民票")
    assert_error(get(world, f"{BASE}/households/{theirs.household_id}/members"), 404, "世帯")
    assert [x["id"] for x in get(world, f"{BASE}/residents?q=ヤマダ").json()] == [mine.id]
    assert world.counts() == before


@pytest.mark.parametrize("user", [OPERATOR, AGENCY])
def test_other_principal_kinds_may_not_use_the_register(world: WebWorld, user: str) -> None:
    r = world.resident()
    before = world.counts()
    assert_error(get(world, f"{BASE}/residents/{r.id}", user=user), 403, "principal", "municipal_staff")
    assert_error(
        post(world, f"{BASE}/residents/{r.id}/death", {"died_on": today(world)}, user=user), 403, "principal"
    )
    assert world.counts() == before


def test_no_token_no_access(world: WebWorld) -> None:
    r = world.resident()
    before = world.counts()
    assert_error(
        world.client.post(f"{BASE}/residents/{r.id}/death", json={"died_on": today(world)}),
        401,
        "Authorization",
    )
    assert world.counts() == before
    with world.factory() as s:
        assert not AuditLog("access").entries(s, subject=r.resident_code, since=world.clock.now())


def test_no_personal_data_read_without_audit(world: WebWorld) -> None:
    """Every resident shown through the API leaves one access record."""
    r = world.resident()
    with world.factory() as s:
        before = len(AuditLog("access").entries(s, subject=r.resident_code))
    get(world, f"{BASE}/residents?q=ヤマダ")
    get(world, f"{BASE}/residents/{r.id}/history")
    with world.factory() as s:
        after = AuditLog("access").entries(s, subject=r.resident_code)
    assert len(after) == before + 2
    assert {e.details["purpose"] for e in after[-2:]} == {"検索", "履歴閲覧"}


def test_concurrent_counter_actions_share_commits_and_a_refusal_fails_alone(world: WebWorld) -> None:
    """Clerks at once: the app's group commit (jlis.groupcommit) puts their actions in shared
    transactions; every caller gets its own answer, and one refused action changes nothing and
    fails only its own request."""
    from concurrent.futures import ThreadPoolExecutor

    ids = []
    for _ in range(12):
        r = post(world, f"{BASE}/move-ins", move_in_body(world))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    assert post(world, f"{BASE}/residents/{ids[5]}/death", {"died_on": today(world)}).status_code == 200
    desk = world.client.app.state.counter_desk  # type: ignore[attr-defined]
    assert desk.running
    towns = [world.town(index=i % 4 + 1) for i in range(12)]
    headers = world.headers(STAFF_A)

    def relocate(i: int) -> Any:
        body = {"town_id": towns[i], "banchi": f"{i + 1}番", "moved_on": today(world)}
        return world.client.post(f"{BASE}/residents/{ids[i]}/relocation", json=body, headers=headers)

    before = desk.groups
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(relocate, range(12)))
    assert answers[5].status_code == 409 and answers[5].json()["field"] == "状態"  # deceased
    for i, r in enumerate(answers):
        if i != 5:
            assert r.status_code == 200, r.text
            assert r.json()[0]["address"]["town_id"] == towns[i]
    for i in range(12):
        history = get(world, f"{BASE}/residents/{ids[i]}/history").json()
        assert [h["reason"] for h in history].count("relocation") == (0 if i == 5 else 1)
    assert desk.groups > before  # the relocations went through the group commit
