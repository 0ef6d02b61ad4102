"""住基ネット over HTTP: provision to an agency (only the allowed items; refusals on record), the
operator's disclosure, propagation and audit views, and who may call what."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.clock import FixedClock
from jlis.juki.network import build_relay
from jlis.registry import ResidentView

from ..web.support import AGENCY, CHIYODA, OPERATOR, STAFF_A, WebWorld, assert_error

QUERY = "/api/v1/provision/query"


@pytest.fixture
def web(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[WebWorld]:
    with WebWorld.start(factory, clock, tmp_path) as w:
        yield w


def arrived(web: WebWorld, **kwargs: Any) -> ResidentView:
    """A resident whose 本人確認情報 has reached the national server."""
    r = web.resident(**kwargs)
    build_relay(web.factory, web.clock, web.container.geography).drain()
    return r


def query(web: WebWorld, body: dict[str, Any], user: str = AGENCY) -> Any:
    return web.client.post(QUERY, json=body, headers=web.headers(user))


def test_agency_gets_only_the_allowed_items(web: WebWorld) -> None:
    r = arrived(web)
    resp = query(web, {"affair": "employees_pension_insured", "resident_code": r.resident_code})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["outcome"] == "provided" and body["agency"] == "nenkin" and body["key"] == "resident_code"
    [record] = body["records"]
    # This affair gets neither the furigana nor the change information: they are not in the answer at all.
    assert (
        set(record)
        == set(body["items"])
        == {"name", "birth_date", "sex", "address", "resident_code", "my_number"}
    )
    assert record["name"] == "山田\u3000太郎" and record["address"] == r.address.text
    resp = query(web, {"affair": "national_pension_benefit", "my_number": r.my_number})
    record = resp.json()["records"][0]
    assert record["my_number"] == r.my_number and record["change_info"]["reason"] == "move_in"


def test_basic4_query(web: WebWorld) -> None:
    r = arrived(web)
    resp = query(
        web,
        {
            "affair": "national_pension_benefit",
            "basic4": {"name": "ヤマダ タロウ", "birth_date": "1980-04-01", "sex": "male"},
        },
    )
    assert resp.status_code == 200 and [x["resident_code"] for x in resp.json()["records"]] == [
        r.resident_code
    ]
    resp = query(
        web,
        {
            "affair": "national_pension_benefit",
            "basic4": {"name": "ヤマダ タロウ", "birth_date": "1980-02-30", "sex": "male"},
        },
    )
    assert_error(resp, 422, "生年月日", "must be a real date")


def test_no_match_is_an_answer(web: WebWorld) -> None:
    code = web.certificate().resident_code
    resp = query(web, {"affair": "national_pension_benefit", "resident_code": code})
    assert resp.status_code == 200 and resp.json()["outcome"] == "no_match" and resp.json()["records"] == []


def test_refused_pair_is_403_and_on_record(web: WebWorld) -> None:
    """旅券 (passport) is the 外務省's affair, not the 年金機構's."""
    r = arrived(web)
    resp = query(web, {"affair": "passport", "resident_code": r.resident_code})
    body = assert_error(resp, 403, "affair", "not in 住基法 別表第一")
    assert r.resident_code not in resp.text and "山田" not in resp.text
    with web.factory() as s:
        [entry] = AuditLog("juki.provision").entries(s, subject=r.resident_code)
    assert entry.action == "refuse" and entry.actor == "nenkin"
    assert body["error"] == "forbidden"


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        (
            {"affair": "passport", "resident_code": "12345678901"},
            "住民票コード",
            "check digit does not match",
        ),
        ({"affair": "passport", "my_number": "12345"}, "個人番号", "must be 12 digits"),
        ({"affair": "passport"}, "query", "exactly one of"),
        ({"affair": "passport", "resident_code": "x", "my_number": "y"}, "query", "exactly one of"),
        ({"affair": "", "resident_code": "12345678901"}, "affair", "non-empty"),
        ({"resident_code": "12345678901"}, "body.affair", "Field required"),
        ({"affair": "passport", "agency": "mofa"}, "body.agency", "Extra inputs"),
    ],
)
def test_bad_queries_name_field_and_rule_and_log_nothing(
    web: WebWorld, body: dict[str, Any], field: str, rule: str
) -> None:
    assert_error(query(web, body), 422, field, rule)
    with web.factory() as s:
        assert AuditLog("juki.provision").entries(s) == []


@pytest.mark.parametrize("user", [STAFF_A, OPERATOR])
def test_only_agencies_may_query(web: WebWorld, user: str) -> None:
    r = arrived(web)
    assert_error(
        query(web, {"affair": "passport", "resident_code": r.resident_code}, user), 403, "principal", "agency"
    )
    assert_error(
        web.client.post(QUERY, json={"affair": "passport", "resident_code": r.resident_code}),
        401,
        "Authorization",
    )


def test_disclosure_lists_every_provision_and_is_itself_recorded(web: WebWorld) -> None:
    r = arrived(web)
    query(web, {"affair": "national_pension_benefit", "resident_code": r.resident_code})
    query(web, {"affair": "passport", "resident_code": r.resident_code})
    resp = web.client.get(f"/api/v1/disclosure/{r.resident_code}", headers=web.headers(OPERATOR))
    assert resp.status_code == 200
    entries = resp.json()["entries"]
    assert [(e["affair"], e["outcome"]) for e in entries] == [
        ("national_pension_benefit", "provided"),
        ("passport", "refused"),
    ]
    assert entries[0]["recipient_name"] == "日本年金機構" and "name" in entries[0]["items"]
    with web.factory() as s:
        access = AuditLog("access").entries(s, subject=r.resident_code)
    assert access[-1].action == "disclose" and access[-1].actor == OPERATOR
    assert_error(
        web.client.get("/api/v1/disclosure/12345678901", headers=web.headers(OPERATOR)),
        422,
        "住民票コード",
        "check digit",
    )
    for user in (STAFF_A, AGENCY):
        assert_error(
            web.client.get(f"/api/v1/disclosure/{r.resident_code}", headers=web.headers(user)),
            403,
            "principal",
        )


def test_provision_log_for_operators(web: WebWorld) -> None:
    r = arrived(web)
    query(web, {"affair": "national_pension_benefit", "resident_code": r.resident_code})
    log = web.client.get("/api/v1/provision/log?limit=10", headers=web.headers(OPERATOR)).json()
    assert log[0]["resident_code"] == r.resident_code and log[0]["outcome"] == "provided"
    assert_error(web.client.get("/api/v1/provision/log?limit=0", headers=web.headers(OPERATOR)), 422, "limit")


def test_propagation_shows_a_change_arriving(web: WebWorld) -> None:
    headers = web.headers(OPERATOR)
    web.resident()
    state = web.client.get("/api/v1/propagation", headers=headers).json()
    tokyo = next(p for p in state["prefectures"] if p["pref_code"] == "13")
    assert tokyo["pending"] >= 1 and state["national"]["records"] == 0
    build_relay(web.factory, web.clock, web.container.geography).drain()
    state = web.client.get("/api/v1/propagation", headers=headers).json()
    tokyo = next(p for p in state["prefectures"] if p["pref_code"] == "13")
    assert tokyo["pending"] == 0 and tokyo["records"] == 1 and state["national"]["records"] == 1
    assert len(state["prefectures"]) == 47
    assert_error(web.client.get("/api/v1/propagation", headers=web.headers(STAFF_A)), 403, "principal")


def test_audit_chains_verify(web: WebWorld) -> None:
    r = arrived(web)
    web.client.get(f"/api/v1/municipalities/{CHIYODA}/residents/{r.id}", headers=web.headers(STAFF_A))
    chains = web.client.get("/api/v1/audit/chains", headers=web.headers(OPERATOR)).json()
    assert {c["chain"] for c in chains} >= {"access"} and all(c["ok"] for c in chains)


def test_token_names_the_agency_not_the_body(web: WebWorld) -> None:
    """An agency cannot ask as another: the agency comes from the token only."""
    r = arrived(web)
    resp = query(web, {"affair": "national_pension_benefit", "resident_code": r.resident_code})
    assert resp.json()["agency"] == "nenkin"
    assert (
        dt.datetime.fromisoformat(
            web.client.get("/api/v1/provision/log", headers=web.headers(OPERATOR)).json()[0]["at"]
        )
        <= web.clock.now()
    )
