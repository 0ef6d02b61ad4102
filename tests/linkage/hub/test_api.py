"""The hub's HTTP API: the operator's register of members, and acquisition by a member with its own
token; the guards (no token 401, another principal kind 403, an inactive member 403)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.linkage.hub import api
from jlis.linkage.hub.codes import acquire_code
from jlis.linkage.hub.members import MemberService

from ...web.support import AGENCY, OPERATOR, PASSWORD, STAFF_A, WebWorld, assert_error
from .conftest import load_national, resident_codes

MEMBERS = "/api/v1/jlis/linkage/members"
CODES = "/api/v1/linkage/codes"


@pytest.fixture
def web(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[WebWorld]:
    with WebWorld.start(factory, clock, tmp_path) as w:
        app: Any = w.client.app
        app.include_router(api.jlis_router)
        app.include_router(api.router)
        yield w


def register(web: WebWorld, **body: Any) -> Any:
    return web.client.post(MEMBERS, json=body, headers=web.headers(OPERATOR))


def test_the_operator_registers_and_a_member_acquires(web: WebWorld) -> None:
    people = resident_codes(3)
    load_national(web.factory, web.clock, people)
    r = register(
        web,
        member_id="lg-131016",
        name="千代田区",
        kind="municipality",
        username="linkage-chiyoda",
        password=PASSWORD,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["member"] == {
        "id": "lg-131016",
        "name": "千代田区",
        "kind": "municipality",
        "lg_code": "131016",
        "active": True,
    }
    key = base64.b64decode(body["request_key"])
    key_dir = web.container.settings.resolved_key_dir
    with web.factory() as s:
        assert MemberService(s, web.clock, actor="t", key_dir=key_dir).request_key("lg-131016") == key
    listed = web.client.get(MEMBERS, headers=web.headers(OPERATOR))
    assert [m["id"] for m in listed.json()] == ["lg-131016"]

    one = web.client.post(CODES, json={"resident_code": people[0]}, headers=web.headers("linkage-chiyoda"))
    assert one.status_code == 200, one.text
    assert one.json()["member_id"] == "lg-131016" and len(one.json()["serial"]) == 12
    assert set(one.json()) == {"member_id", "serial", "code"}  # no value, no link
    bulk = web.client.post(
        f"{CODES}/bulk",
        json={"resident_codes": [*people, "12345678903", "x"]},
        headers=web.headers("linkage-chiyoda"),
    )
    assert bulk.status_code == 200, bulk.text
    b = bulk.json()
    assert b["issued"] == 3 and b["invalid"] == ["x"] and b["unknown"] == ["12345678903"]
    assert b["codes"][0] == {"resident_code": people[0], "code": one.json()["code"]}
    with transaction(web.factory) as s:
        member = MemberService(s, web.clock, actor="t", key_dir=key_dir).get("lg-131016")
        assert acquire_code(s, web.clock, web.container.secret, member, people[1]) == b["codes"][1]["code"]


def test_refusals_name_the_field_and_change_nothing(web: WebWorld) -> None:
    assert register(web, member_id="nenkin", name="日本年金機構", kind="agency").status_code == 201
    assert_error(register(web, member_id="nenkin", name="x", kind="agency"), 409, "member_id", "unique")
    assert_error(register(web, member_id="lg-131017", name="x", kind="municipality"), 422, "lg_code")
    assert_error(web.client.get(f"{MEMBERS}/nobody", headers=web.headers(OPERATOR)), 404, "member")
    register(
        web,
        member_id="jasso",
        name="日本学生支援機構",
        kind="agency",
        username="linkage-jasso",
        password=PASSWORD,
    )
    unknown = web.client.post(
        CODES, json={"resident_code": "12345678903"}, headers=web.headers("linkage-jasso")
    )
    assert_error(unknown, 404, "住民票コード")
    malformed = web.client.post(
        CODES, json={"resident_code": "12345678901"}, headers=web.headers("linkage-jasso")
    )
    assert_error(malformed, 422, "住民票コード", "check digit")


def test_guards(web: WebWorld) -> None:
    assert web.client.get(MEMBERS).status_code == 401
    assert web.client.get(MEMBERS, headers=web.headers(STAFF_A)).status_code == 403
    assert (
        web.client.post(CODES, json={"resident_code": "12345678903"}, headers=web.headers(AGENCY)).status_code
        == 403
    )
    assert web.client.post(CODES, json={"resident_code": "12345678903"}).status_code == 401
    register(
        web,
        member_id="jasso",
        name="日本学生支援機構",
        kind="agency",
        username="linkage-jasso",
        password=PASSWORD,
    )
    token = web.headers("linkage-jasso")
    off = web.client.post(f"{MEMBERS}/jasso/active", json={"active": False}, headers=web.headers(OPERATOR))
    assert off.status_code == 200 and off.json()["active"] is False
    # Deactivation disabled the principal: its token is gone.
    assert web.client.post(CODES, json={"resident_code": "12345678903"}, headers=token).status_code == 401
    rotated = web.client.post(f"{MEMBERS}/jasso/request-key", headers=web.headers(OPERATOR))
    assert rotated.status_code == 200 and len(base64.b64decode(rotated.json()["request_key"])) == 32


def test_a_bulk_request_is_bounded(web: WebWorld) -> None:
    register(
        web,
        member_id="jasso",
        name="日本学生支援機構",
        kind="agency",
        username="linkage-jasso",
        password=PASSWORD,
    )
    too_many = {"resident_codes": ["12345678903"] * (api.MAX_BULK + 1)}
    r = web.client.post(f"{CODES}/bulk", json=too_many, headers=web.headers("linkage-jasso"))
    assert r.status_code == 422
    extra = web.client.post(
        CODES, json={"resident_code": "12345678903", "x": 1}, headers=web.headers("linkage-jasso")
    )
    assert extra.status_code == 422
