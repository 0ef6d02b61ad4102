"""The middle server's HTTP API: registration and reads by staff of the 団体, refusals with the
field and the rule, and scope (another municipality's staff, another kind of principal, no token)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth import passwords
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.juki.network import build_relay
from jlis.linkage.hub.members import MemberKind, MemberService
from jlis.linkage.middle import api as middle_api
from jlis.linkage.middle.tables import CodeLinkRow, ReplicaRow
from jlis.web import create_app
from jlis.web.deps import check_route_guards

from ...web.support import (
    AGENCY,
    CHIYODA,
    FAST_HASHER,
    OPERATOR,
    STAFF_A,
    STAFF_B,
    WebWorld,
    assert_error,
    make_container,
    world_users,
)

BASE = f"/api/v1/municipalities/{CHIYODA}/middle"
TAX = {"tax_year": 2026, "total_income": 3_200_000, "tax_exempt": False}


@pytest.fixture
def world(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[WebWorld]:
    previous = passwords.use_hasher(FAST_HASHER)
    try:
        container = make_container(factory, clock, tmp_path)
        world_users(container)
        app = create_app(container)
        app.include_router(middle_api.router)
        app.include_router(middle_api.member_router)
        check_route_guards(app.routes)
        with TestClient(app, base_url="https://testserver") as client:
            yield WebWorld(container, client)
    finally:
        passwords.use_hasher(previous)


def post(world: WebWorld, path: str, body: dict[str, Any] | None = None, user: str = STAFF_A) -> Any:
    return world.client.post(BASE + path, json=body, headers=world.headers(user))


def get(world: WebWorld, path: str, user: str = STAFF_A) -> Any:
    return world.client.get(BASE + path, headers=world.headers(user))


def count(world: WebWorld, table: Any) -> int:
    with world.factory() as s:
        return int(s.execute(select(func.count()).select_from(table)).scalar_one())


def test_register_and_read_a_replica(world: WebWorld) -> None:
    person = world.resident()
    r = post(world, "/addressees", {"resident_code": person.resident_code})
    assert r.status_code == 200, r.text
    lid = r.json()["local_id"]
    assert lid.startswith(CHIYODA) and len(lid) == 15
    assert post(world, "/addressees", {"resident_code": person.resident_code}).json()["local_id"] == lid
    r = post(world, "/replicas", {"local_id": lid, "category": "local_tax", "data": TAX})
    assert r.status_code == 200, r.text
    assert r.json() == {"local_id": lid, "category": "local_tax", "version": 1}
    world.clock.advance(minutes=1)
    r = post(
        world, "/replicas", {"local_id": lid, "category": "local_tax", "data": TAX | {"total_income": 1}}
    )
    assert r.json()["version"] == 2
    (current,) = get(world, f"/replicas/{lid}").json()
    assert current["label"] == "地方税関係情報" and current["data"]["total_income"] == 1
    assert current["registered_by"] == STAFF_A and current["version"] == 2
    versions = get(world, f"/replicas/{lid}/local_tax?history=true").json()
    assert [v["version"] for v in versions] == [1, 2]
    assert_error(get(world, f"/replicas/{lid}/nhi"), 404, "category")


def test_schemas_are_the_municipal_categories(world: WebWorld) -> None:
    r = get(world, "/schemas")
    assert r.status_code == 200, r.text
    cats = {c["category"]: c for c in r.json()}
    assert set(cats) == {"juminhyo", "local_tax", "child_allowance", "nhi", "ltc"}
    care = next(i for i in cats["ltc"]["items"] if i["name"] == "care_level")
    assert care["type"] == "code" and "care5" in care["choices"] and care["required"]


def test_bad_input_names_the_field_and_changes_nothing(world: WebWorld) -> None:
    person = world.resident()
    lid = post(world, "/addressees", {"resident_code": person.resident_code}).json()["local_id"]
    assert_error(
        post(
            world, "/replicas", {"local_id": lid, "category": "local_tax", "data": TAX | {"tax_exempt": "no"}}
        ),
        422,
        "items.tax_exempt",
        "must be true or false",
    )
    assert_error(post(world, "/replicas", {"local_id": lid, "category": "x", "data": TAX}), 422, "category")
    assert_error(
        post(world, "/replicas", {"local_id": lid, "category": "pension", "data": {"receiving": True}}),
        409,
        "category",
    )
    assert_error(
        post(world, "/replicas", {"local_id": "131016000000999", "category": "local_tax", "data": TAX}),
        404,
        "団体内統合宛名番号",
    )
    assert_error(post(world, "/addressees", {"resident_code": "1234"}), 422, "住民票コード")
    assert count(world, ReplicaRow) == 0


def test_scope(world: WebWorld) -> None:
    person = world.resident()
    lid = post(world, "/addressees", {"resident_code": person.resident_code}).json()["local_id"]
    assert (
        post(world, "/replicas", {"local_id": lid, "category": "local_tax", "data": TAX}).status_code == 200
    )
    assert_error(get(world, f"/replicas/{lid}", user=STAFF_B), 403, "地方公共団体コード")
    for user in (OPERATOR, AGENCY):
        assert get(world, f"/replicas/{lid}", user=user).status_code == 403
    assert world.client.get(BASE + f"/replicas/{lid}").status_code == 401
    # Shinjuku's staff in their own path see Shinjuku's middle server, where the number is unknown
    other = world.client.get(
        f"/api/v1/municipalities/131041/middle/replicas/{lid}", headers=world.headers(STAFF_B)
    )
    assert_error(other, 404, "団体内統合宛名番号")


def test_sync_and_link(world: WebWorld) -> None:
    people = [
        world.resident(),
        world.resident(family="佐藤", given="花子", family_kana="サトウ", given_kana="ハナコ"),
    ]
    # the national copy learns of the 転入 through the relay
    build_relay(world.factory, world.clock, world.container.geography).drain()
    with transaction(world.factory) as s:
        MemberService(s, world.clock, actor="op", key_dir=world.container.settings.resolved_key_dir).register(
            f"lg-{CHIYODA}", "千代田区", MemberKind.MUNICIPALITY
        )
    r = post(world, "/sync")
    assert r.status_code == 200, r.text
    assert r.json() == {"written": 2}
    assert post(world, "/sync").json() == {"written": 0}
    lid = post(world, "/addressees", {"resident_code": people[0].resident_code}).json()["local_id"]
    (juminhyo,) = get(world, f"/replicas/{lid}").json()
    assert juminhyo["data"]["name"] == people[0].name.full
    r = post(world, f"/links/{lid}")
    assert r.status_code == 200, r.text
    assert r.json() == {"local_id": lid, "linked": True}  # the 符号 stays in the middle server
    assert count(world, CodeLinkRow) == 1


def test_an_agency_registers_at_its_own_middle_server(world: WebWorld) -> None:
    person = world.resident()
    build_relay(world.factory, world.clock, world.container.geography).drain()
    key_dir = world.container.settings.resolved_key_dir
    with transaction(world.factory) as s:
        members = MemberService(s, world.clock, actor="op", key_dir=key_dir)
        members.register(
            "nenkin",
            "日本年金機構",
            MemberKind.AGENCY,
            username="nenkin-api",
            password="correct horse battery",
        )
        members.register(
            f"lg-{CHIYODA}",
            "千代田区",
            MemberKind.MUNICIPALITY,
            username="chiyoda-api",
            password="correct horse battery",
        )
    path = "/api/v1/linkage/middle"
    nenkin = world.headers("nenkin-api")
    r = world.client.post(path + "/addressees", json={"resident_code": person.resident_code}, headers=nenkin)
    assert r.status_code == 200, r.text
    lid = r.json()["local_id"]
    assert lid == "000000000000001"
    body = {
        "local_id": lid,
        "category": "pension",
        "data": {"pension_kind": "old_age_basic", "receiving": True},
    }
    r = world.client.post(path + "/replicas", json=body, headers=nenkin)
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    (replica,) = world.client.get(path + f"/replicas/{lid}", headers=nenkin).json()
    assert replica["label"] == "年金給付関係情報" and replica["data"]["receiving"] is True
    assert [c["category"] for c in world.client.get(path + "/schemas", headers=nenkin).json()] == ["pension"]
    r = world.client.post(path + f"/links/{lid}", headers=nenkin)
    assert r.status_code == 200 and r.json()["linked"], r.text
    # the agency keeps no municipal categories; the municipality's member sees its own server only
    assert_error(
        world.client.post(
            path + "/replicas", json=body | {"category": "local_tax", "data": TAX}, headers=nenkin
        ),
        409,
        "category",
    )
    chiyoda = world.headers("chiyoda-api")
    assert_error(world.client.get(path + f"/replicas/{lid}", headers=chiyoda), 404, "団体内統合宛名番号")
    # staff are not linkage members, and a disabled member is refused
    assert world.client.get(path + "/schemas", headers=world.headers(STAFF_A)).status_code == 403
    with transaction(world.factory) as s:
        MemberService(s, world.clock, actor="op", key_dir=key_dir).set_active("nenkin", False)
    assert world.client.get(path + "/schemas", headers=nenkin).status_code == 401
