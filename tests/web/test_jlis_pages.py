"""The J-LIS operator's pages, and the relay worker the app can run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.clock import FixedClock
from jlis.juki.network import build_relay

from .support import AGENCY, CHIYODA, OPERATOR, STAFF_A, WebWorld


@pytest.fixture
def world(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[WebWorld]:
    with WebWorld.start(factory, clock, tmp_path) as w:
        yield w


def test_propagation_page_counts_the_copies(world: WebWorld) -> None:
    world.resident()
    world.login(OPERATOR)
    page = world.client.get("/jlis")
    assert page.status_code == 200 and "東京都" in page.text
    assert 'id="national-records">0<' in page.text
    build_relay(world.factory, world.clock, world.container.geography).drain()
    page = world.client.get("/jlis")
    assert 'id="national-records">1<' in page.text and 'badge ok">0<' in page.text
    assert world.client.get("/jlis?all=1").text.count("data-pref=") == 47


def test_provision_log_and_disclosure_pages(world: WebWorld) -> None:
    r = world.resident()
    build_relay(world.factory, world.clock, world.container.geography).drain()
    world.client.post(
        "/api/v1/provision/query",
        headers=world.headers(AGENCY),
        json={"affair": "national_pension_benefit", "resident_code": r.resident_code},
    )
    world.login(OPERATOR)
    log = world.client.get("/jlis/provisions")
    assert log.status_code == 200 and r.resident_code in log.text and "日本年金機構" in log.text
    page = world.client.get(f"/jlis/disclosure?resident_code={r.resident_code}")
    assert page.status_code == 200 and "1 件" in page.text and "提供" in page.text
    bad = world.client.get("/jlis/disclosure?resident_code=1234")
    assert bad.status_code == 422 and "住民票コード" in bad.text and "must be 11 digits" in bad.text
    with world.factory() as s:
        assert AuditLog("access").entries(s, subject=r.resident_code)[-1].action == "disclose"


def test_audit_page_verifies_on_request(world: WebWorld) -> None:
    r = world.resident()
    world.client.get(f"/api/v1/municipalities/{CHIYODA}/residents/{r.id}", headers=world.headers(STAFF_A))
    world.login(OPERATOR)
    assert "検証結果" not in world.client.get("/jlis/audit").text
    page = world.client.get("/jlis/audit?verify=1")
    assert "検証結果" in page.text and "正常" in page.text and "改ざん" not in page.text.split("検証結果")[1]


def test_agency_lands_on_its_account_page(world: WebWorld) -> None:
    world.login(AGENCY)
    r = world.client.get("/", follow_redirects=True)
    assert r.status_code == 200 and "/api/v1/provision/query" in r.text
    assert world.client.get("/jlis").status_code == 403


def test_app_runs_the_relay_worker(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> None:
    with WebWorld.start(factory, clock, tmp_path, relay_worker=True) as world:
        world.resident()
        headers = world.headers(OPERATOR)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state = world.client.get("/api/v1/propagation", headers=headers).json()
            # The change reaches the national copy, then its subscribers (jpki, card, linkage,
            # middle): done when nothing is pending any more.
            if state["national"]["records"] == 1 and state["national"]["pending"] == 0:
                break
            time.sleep(0.1)
        assert state["national"]["records"] == 1 and state["national"]["pending"] == 0
        worker = world.client.app.state.relay_worker  # type: ignore[attr-defined]
        assert worker.is_alive()
    assert not worker.is_alive()
