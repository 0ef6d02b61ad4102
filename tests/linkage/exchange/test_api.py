"""/api/v1/linkage over HTTP: members query with a bearer token and a MAC, refusals are 403 and on
record, batches, the member's own records, and who may call."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from jlis.auth import api as auth_api
from jlis.auth import service as auth
from jlis.auth.models import PrincipalKind
from jlis.container import Container
from jlis.db import transaction
from jlis.linkage.exchange import api as exchange_api
from jlis.linkage.exchange import records as store
from jlis.linkage.exchange.models import HUB_KEEPER, QueryRequest
from jlis.linkage.hub.tables import MemberRow
from jlis.settings import Settings
from jlis.web import errors
from jlis.web.deps import check_route_guards

from .conftest import CHIYODA, SECRET, TAX, World

PASSWORD = "correct horse battery"
PENSION_TAX = dict(affair="pension_benefit", provider=CHIYODA, category="local_tax")


class Api:
    def __init__(self, world: World, client: TestClient) -> None:
        self.world = world
        self.client = client
        self._tokens: dict[str, str] = {}

    def headers(self, username: str) -> dict[str, str]:
        if username not in self._tokens:
            r = self.client.post("/api/v1/token", json={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self._tokens[username] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self._tokens[username]}"}

    def post(self, path: str, body: dict[str, Any], user: str = "linkage-nenkin") -> Any:
        return self.client.post(f"/api/v1/linkage{path}", json=body, headers=self.headers(user))


def body(r: QueryRequest) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "requester_code": r.requester_code,
        "affair": r.affair,
        "provider_id": r.provider_id,
        "category": r.category,
        "items": list(r.items),
        "sent_at": r.sent_at.isoformat(),
        "mac": r.mac,
        "disclosure": r.disclosure.value,
        "disclose_after": r.disclose_after.isoformat() if r.disclose_after else None,
    }


@pytest.fixture
def api(world: World) -> Iterator[Api]:
    container = Container(
        Settings(data_dir=world.key_dir.parent / "data", key_dir=world.key_dir),
        clock=world.clock,
        rng=random.Random(1),
    )
    container.__dict__["engine"] = world.factory.kw["bind"]
    container.__dict__["factory"] = world.factory
    container.__dict__["secret"] = SECRET
    with transaction(world.factory) as s:
        for mid in ("nenkin", CHIYODA):
            p = auth.create_principal(
                s,
                username=f"linkage-{mid}",
                password=PASSWORD,
                kind=PrincipalKind.LINKAGE_MEMBER,
                display_name=mid,
                now=world.clock.now(),
            )
            s.get(MemberRow, mid).principal_id = p.id  # type: ignore[union-attr]
        auth.create_principal(
            s,
            username="staff-131016",
            password=PASSWORD,
            kind=PrincipalKind.MUNICIPAL_STAFF,
            display_name="職員",
            now=world.clock.now(),
            lg_code="131016",
        )
    app = FastAPI()
    app.state.container = container
    errors.install(app)
    app.include_router(auth_api.router)
    app.include_router(exchange_api.router)
    check_route_guards(app.routes)
    with TestClient(app) as client:
        yield Api(world, client)


def test_a_member_queries_over_http(api: Api) -> None:
    person = api.world.people[0]
    api.world.replica(CHIYODA, person, "local_tax", TAX)
    r = api.post(
        "/queries", body(api.world.request("nenkin", person, items=["tax_year", "tax_exempt"], **PENSION_TAX))
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["outcome"] == "provided" and got["data"] == {"tax_year": 2026, "tax_exempt": False}
    assert got["exchange_no"] == 1 and got["reason"] is None
    mine = api.client.get("/api/v1/linkage/records", headers=api.headers("linkage-nenkin")).json()
    assert [(x["exchange_no"], x["role"], x["outcome"]) for x in mine] == [(1, "requester", "provided")]
    theirs = api.client.get("/api/v1/linkage/records", headers=api.headers(f"linkage-{CHIYODA}")).json()
    assert [x["role"] for x in theirs] == ["provider"]
    assert theirs[0]["person"] != mine[0]["person"]  # each by its own code


def test_a_refusal_is_403_naming_the_rule_and_stays_on_record(api: Api) -> None:
    person = api.world.people[0]
    r = api.post("/queries", body(api.world.request("nenkin", person, items=["income_levy"], **PENSION_TAX)))
    assert r.status_code == 403
    err = r.json()
    assert err["rule"] == "items_not_allowed" and err["field"] == "items" and err["exchange_no"] == 1
    with api.world.factory() as s:
        assert [x.reason.value for x in store.records(s, HUB_KEEPER) if x.reason] == ["items_not_allowed"]


def test_a_tampered_body_is_refused(api: Api) -> None:
    person = api.world.people[0]
    b = body(api.world.request("nenkin", person, items=["tax_year"], **PENSION_TAX))
    b["items"] = ["tax_year", "total_income"]
    r = api.post("/queries", b)
    assert r.status_code == 403 and r.json()["rule"] == "tampered"


def test_bad_input_is_422_and_nothing_is_recorded(api: Api) -> None:
    person = api.world.people[0]
    good = body(api.world.request("nenkin", person, items=["tax_year"], **PENSION_TAX))
    for change, field in (
        ({"sent_at": "yesterday"}, "sent_at"),
        ({"sent_at": "2026-11-26T10:00:00"}, "sent_at"),
        ({"disclosure": "later"}, "disclosure"),
        ({"items": []}, "items"),
    ):
        r = api.post("/queries", {**good, **change})
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert api.post("/queries", {**good, "extra": 1}).status_code == 422
    with api.world.factory() as s:
        assert store.records(s, HUB_KEEPER) == []


def test_a_batch_answers_each_query(api: Api) -> None:
    people = api.world.people[:3]
    for p in people:
        api.world.replica(CHIYODA, p, "local_tax", TAX)
    reqs = [api.world.request("nenkin", p, items=["tax_year"], **PENSION_TAX) for p in people]
    reqs.append(api.world.request("nenkin", people[0], items=["my_number"], **PENSION_TAX))
    r = api.post("/queries/batch", {"queries": [body(x) for x in reqs]})
    assert r.status_code == 200, r.text
    answers = r.json()["answers"]
    assert [a["outcome"] for a in answers] == ["provided"] * 3 + ["refused"]
    assert answers[3]["reason"] == "items_not_allowed" and answers[3]["data"] == {}
    bad = body(reqs[0]) | {"sent_at": "x"}
    r = api.post("/queries/batch", {"queries": [body(reqs[1]), bad]})
    assert r.status_code == 422 and r.json()["field"] == "queries[1].sent_at"


def test_the_rules_a_member_may_use(api: Api) -> None:
    rules = api.client.get("/api/v1/linkage/rules", headers=api.headers("linkage-nenkin")).json()
    assert {r["affair"] for r in rules} >= {"pension_benefit", "pension_premium_exemption"}
    assert all(r["affair"] != "child_allowance" for r in rules)
    municipal = api.client.get("/api/v1/linkage/rules", headers=api.headers(f"linkage-{CHIYODA}")).json()
    assert any(r["affair"] == "child_allowance" for r in municipal)


def test_only_linkage_members_may_call(api: Api) -> None:
    person = api.world.people[0]
    b = body(api.world.request("nenkin", person, items=["tax_year"], **PENSION_TAX))
    assert api.client.post("/api/v1/linkage/queries", json=b).status_code == 401
    r = api.client.post("/api/v1/linkage/queries", json=b, headers=api.headers("staff-131016"))
    assert r.status_code == 403
    assert api.client.get("/api/v1/linkage/records", headers=api.headers("staff-131016")).status_code == 403


def test_single_queries_go_through_the_group_commit_when_it_runs(api: Api) -> None:
    person = api.world.people[0]
    api.world.replica(CHIYODA, person, "local_tax", TAX)
    app = api.client.app
    batcher = exchange_api.start_services(app)  # type: ignore[arg-type]
    try:
        ok = api.post(
            "/queries", body(api.world.request("nenkin", person, items=["tax_year"], **PENSION_TAX))
        )
        refused = api.post(
            "/queries", body(api.world.request("nenkin", person, items=["my_number"], **PENSION_TAX))
        )
    finally:
        exchange_api.stop_services(app)  # type: ignore[arg-type]
    assert ok.status_code == 200 and ok.json()["data"] == {"tax_year": 2026}
    assert refused.status_code == 403 and refused.json()["rule"] == "items_not_allowed"
    assert batcher.queries == 2 and not batcher.running
