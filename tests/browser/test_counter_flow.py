"""A real browser at the counter: sign in as staff, find a resident, record a 転居 through the form,
then watch it reach the national server from the J-LIS operator's view.

The app runs under uvicorn in a thread on a free port, on a temporary SQLite database, with the relay
worker on, exactly as ``jlis demo`` serves it. Chromium is Debian's (/usr/bin/chromium), driven by
Playwright; without it the test skips, except under CI where it fails.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Page, expect, sync_playwright

from jlis.auth import passwords
from jlis.clock import FixedClock
from jlis.container import Container
from jlis.db import Base, import_all_tables, make_engine, make_session_factory, transaction
from jlis.registry import Placement, Sex
from jlis.web import create_app

from ..conftest import require_or_skip
from ..web.support import (
    CHIYODA,
    FAST_HASHER,
    OPERATOR,
    PASSWORD,
    STAFF_A,
    Residents,
    make_container,
    world_users,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, app: FastAPI) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def served(tmp_path: Path, clock: FixedClock) -> Iterator[tuple[_Server, dict[str, int]]]:
    require_or_skip(CHROMIUM.exists(), "Chromium")
    import_all_tables()
    engine = make_engine(f"sqlite:///{tmp_path / 'browser.sqlite3'}")
    Base.metadata.create_all(engine)
    container = make_container(make_session_factory(engine), clock, tmp_path)
    previous = passwords.use_hasher(FAST_HASHER)
    try:
        world_users(container)
        ids = _seed(container)
        with _Server(create_app(container, relay_worker=True)) as server:
            yield server, ids
    finally:
        passwords.use_hasher(previous)
        engine.dispose()


def _seed(container: Container) -> dict[str, int]:
    """Three residents of 千代田区, created through the register like any counter would."""
    people = Residents(container, seed=3)
    head = people.resident(family="山田", given="太郎", family_kana="ヤマダ", given_kana="タロウ")
    people.resident(
        household_id=head.household_id,
        relationship="妻",
        family="山田",
        given="花子",
        family_kana="ヤマダ",
        given_kana="ハナコ",
        sex=Sex.FEMALE,
        birth=dt.date(1982, 7, 7),
    )
    other = people.resident(family="鈴木", given="一郎", family_kana="スズキ", given_kana="イチロウ")
    with transaction(container.factory) as s:
        container.registry(s, CHIYODA, "seed").record_relocation(
            other.id, Placement(people.town(index=2), "2番2号"), moved_on=container.clock.today()
        )
    return {"head": head.id}


def _artifacts(path: Path) -> None:
    target = os.environ.get("JLIS_BROWSER_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def _national(page: Page) -> tuple[int, int]:
    """(messages applied, messages pending) at the national server, as the operator's page shows them."""
    return int(page.inner_text("#national-applied")), int(page.inner_text("#national-pending"))


def _wait_national(
    page: Page, url: str, ok: Callable[[tuple[int, int]], bool], timeout: float = 30.0
) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url + "/jlis")
        state = _national(page)
        if ok(state) or time.monotonic() > deadline:
            return state
        time.sleep(0.3)


def test_relocation_at_the_counter_reaches_the_national_server(
    served: tuple[_Server, dict[str, int]], tmp_path: Path, clock: FixedClock
) -> None:
    server, ids = served
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            operator = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            operator.goto(server.url + "/login")
            operator.fill("input[name=username]", OPERATOR)
            operator.fill("input[name=password]", PASSWORD)
            operator.click("button[type=submit]")
            expect(operator).to_have_url(server.url + "/jlis")
            # The seeded changes arrive first: nothing pending, and a baseline of applied messages.
            baseline, pending = _wait_national(operator, server.url, lambda s: s[1] == 0 and s[0] > 0)
            assert pending == 0 and baseline > 0

            staff = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            staff.goto(server.url + "/")
            expect(staff).to_have_url(server.url + "/login")
            staff.fill("input[name=username]", STAFF_A)
            staff.fill("input[name=password]", PASSWORD)
            staff.click("button[type=submit]")
            expect(staff).to_have_url(server.url + f"/counter/{CHIYODA}")

            staff.fill("input[name=q]", "ヤマダ")
            staff.click("button:has-text('検索')")
            expect(staff.locator("table.results tbody tr")).to_have_count(2)
            shot = tmp_path / "counter-search.png"
            staff.screenshot(path=str(shot), full_page=True)
            _artifacts(shot)

            staff.click("text=山田\u3000太郎")
            expect(staff).to_have_url(server.url + f"/counter/{CHIYODA}/residents/{ids['head']}")
            shot = tmp_path / "counter-resident.png"
            staff.screenshot(path=str(shot), full_page=True)
            _artifacts(shot)

            staff.click(".actions >> text=転居")
            expect(staff.locator("h1")).to_have_text("転居届")
            staff.fill("input[data-filter-for=town_id]", "いちばん")  # hiragana finds 一番町 (イチバンチョウ)
            visible = staff.locator("#town_id option:not([hidden])")
            expect(visible).to_have_count(1)
            staff.select_option("#town_id", value=visible.first.get_attribute("value"))
            staff.fill("input[name=banchi]", "5番6号")
            staff.fill("input[name=moved_on]", clock.today().isoformat())
            shot = tmp_path / "counter-relocation.png"
            staff.screenshot(path=str(shot), full_page=True)
            _artifacts(shot)
            staff.click("button:has-text('転居を記録')")

            expect(staff.locator(".alert.ok")).to_have_text("転居を記録しました。")
            expect(staff.locator("#last-reason")).to_contain_text("転居")
            expect(staff.locator("dl.items")).to_contain_text("一番町5番6号")

            # The J-LIS view: the change went CS → 都道府県サーバ → 全国サーバ.
            applied, pending = _wait_national(
                operator, server.url, lambda s: s[0] >= baseline + 1 and s[1] == 0
            )
            assert (applied, pending) == (baseline + 1, 0)
            expect(operator.locator("#prefectures tr[data-pref='13']")).to_contain_text("東京都")
            shot = tmp_path / "jlis-propagation.png"
            operator.screenshot(path=str(shot), full_page=True)
            _artifacts(shot)
        finally:
            browser.close()
