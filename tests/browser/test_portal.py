"""A real browser at マイナポータル: sign in with a (virtual) card and its PIN through the simulated
user's software, look at the exchange history, then watch a query that 日本年金機構 has just made
about the holder appear in it.

The app runs under uvicorn in a thread on a free port, on a temporary SQLite database, with the
portal's routers mounted as the lead mounts them. The card is delivered through the real card
service and exported as a demo card file. Chromium is Debian's, driven by Playwright; without it
the test skips, except under CI where it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from jlis.auth import passwords
from jlis.clock import FixedClock
from jlis.db import Base, import_all_tables, make_engine, make_session_factory
from jlis.web import create_app

from ..card.conftest import make_deps
from ..conftest import require_or_skip
from ..linkage.portal.conftest import CARD_PASSPHRASE, TAX, Holder, PortalWorld, mount_portal
from ..web.support import FAST_HASHER, make_container, world_users
from .test_counter_flow import CHROMIUM, CHROMIUM_ARGS, _artifacts, _Server

pytestmark = pytest.mark.browser


@pytest.fixture
def portal_served(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[_Server, PortalWorld, Holder]]:
    require_or_skip(CHROMIUM.exists(), "Chromium")
    import_all_tables()
    engine = make_engine(f"sqlite:///{tmp_path / 'portal.sqlite3'}")
    Base.metadata.create_all(engine)
    container = make_container(make_session_factory(engine), clock, tmp_path)
    previous = passwords.use_hasher(FAST_HASHER)
    try:
        world_users(container)
        key_dir = container.settings.resolved_key_dir  # the app's JPKI services open the CA keys there
        world = PortalWorld(container, make_deps(container, key_dir, clock, monkeypatch), key_dir)
        holder = world.holder(family="高橋", given="美咲", family_kana="タカハシ", given_kana="ミサキ")
        world.replica(holder, "local_tax", TAX)
        world.export(holder, tmp_path / "cards")
        app = create_app(container)
        mount_portal(app, monkeypatch)
        app.state.portal_deps = world.portal_deps
        app.state.portal_cards_dir = tmp_path / "cards"
        with _Server(app) as server:
            yield server, world, holder
    finally:
        passwords.use_hasher(previous)
        engine.dispose()


def test_sign_in_with_the_card_and_see_an_agencys_query(
    portal_served: tuple[_Server, PortalWorld, Holder], tmp_path: Path
) -> None:
    server, world, holder = portal_served
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.goto(server.url + "/portal")
            expect(page).to_have_url(server.url + "/portal/login")
            expect(page.locator("#challenge")).to_contain_text("jlis-jpki-login/1")
            page.select_option("#card", value=holder.card_id)
            page.fill("input[name=passphrase]", CARD_PASSPHRASE)
            page.fill("input[name=pin]", "1234")
            shot = tmp_path / "portal-login.png"
            page.screenshot(path=str(shot), full_page=True)
            _artifacts(shot)
            page.click("#login-form button[type=submit]")
            expect(page).to_have_url(server.url + "/portal")
            expect(page.locator("#portal-nav")).to_contain_text("やりとり履歴")

            page.click("#portal-nav >> text=やりとり履歴")
            expect(page.locator("h1")).to_have_text("やりとり履歴")
            expect(page.locator("#history")).to_have_count(0)

            # 日本年金機構 asks 千代田区 for the holder's 地方税関係情報, through the hub.
            answer = world.agency_query(holder)
            assert answer.outcome.value == "provided"

            page.reload()
            row = page.locator(f"#history tr[data-exchange='{answer.exchange_no}']")
            expect(row).to_contain_text("日本年金機構")
            expect(row).to_contain_text("千代田区")
            expect(row).to_contain_text("地方税関係情報")
            expect(row).to_contain_text("提供")
            shot = tmp_path / "portal-history.png"
            page.screenshot(path=str(shot), full_page=True)
            _artifacts(shot)

            page.click("#portal-nav >> text=自己情報")
            page.click("#topics >> text=地方税関係情報")
            expect(page.locator("#self-result")).to_contain_text("3,200,000")

            page.click("header >> text=ログアウト")
            expect(page).to_have_url(server.url + "/portal/login")
        finally:
            browser.close()
