"""A real browser on the public verification page: the QR code's link says valid, an uploaded PDF
says valid with its hash, a tampered copy of it says not valid.

The app runs under uvicorn in a thread on a free port, on a temporary SQLite database, with this
package's routers mounted as ``create_app`` will mount them. Chromium is Debian's
(/usr/bin/chromium), driven by Playwright; without it the test skips, except under CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import expect, sync_playwright

from jlis.clock import FixedClock
from jlis.db import Base, import_all_tables, make_engine, make_session_factory, transaction
from jlis.kiosk.pdf.sample import sample_content
from jlis.kiosk.pdf.service import IssuedDocument, documents_for
from jlis.lgwan.ca import ensure_organisation_pki
from jlis.web import create_app

from ..conftest import require_or_skip
from ..lgwan.conftest import PooledKeyStore
from ..web.support import make_container

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

pytestmark = pytest.mark.browser
WAIT = 20_000  # ms: the machine running the tests may be busy (Playwright's default is 5 s)


class _Server:
    def __init__(self, app: FastAPI) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
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
def served(tmp_path: Path, clock: FixedClock) -> Iterator[tuple[_Server, IssuedDocument]]:
    require_or_skip(CHROMIUM.exists(), "Chromium")
    from jlis.kiosk.pdf import api as pdf_api
    from jlis.kiosk.pdf import pages as pdf_pages

    import_all_tables()
    engine = make_engine(f"sqlite:///{tmp_path / 'browser.sqlite3'}")
    Base.metadata.create_all(engine)
    container = make_container(make_session_factory(engine), clock, tmp_path)
    container.__dict__["keystore"] = PooledKeyStore()
    with transaction(container.factory) as s:
        ensure_organisation_pki(s, clock, container.keystore, "http://127.0.0.1", ["131016"])
        doc = documents_for(s, container).issue(
            sample_content(
                "131016",
                "東京都千代田区長",
                certificate_number="131016-2026-000042",
                request_id="REQ-BROWSER-1",
                issued_on=clock.today(),
            ),
            actor="test",
        )
    clock.advance(minutes=1)
    app = create_app(container)
    paths = {getattr(r, "path", "") for r in app.routes}
    if "/verify" not in paths:  # until the lead mounts them in create_app
        for router in (pdf_api.router, pdf_pages.router):
            app.include_router(router)
    try:
        with _Server(app) as server:
            yield server, doc
    finally:
        engine.dispose()


def _artifact(path: Path) -> None:
    target = os.environ.get("JLIS_BROWSER_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def test_verify_page_valid_then_invalid_for_a_tampered_file(
    served: tuple[_Server, IssuedDocument], tmp_path: Path
) -> None:
    server, doc = served
    good = tmp_path / "certificate.pdf"
    good.write_bytes(doc.pdf)
    tampered = bytearray(doc.pdf)
    tampered[doc.pdf.index(b"/Author") + 9] ^= 1
    bad = tmp_path / "tampered.pdf"
    bad.write_bytes(bytes(tampered))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
            page.set_default_timeout(WAIT)
            # What the QR code on the printout opens.
            page.goto(f"{server.url}/verify?n={doc.certificate_number}&c={doc.code}")
            expect(page.locator("#verdict")).to_have_attribute("data-verdict", "valid", timeout=WAIT)
            expect(page.locator("#sha256")).to_have_text(doc.sha256, timeout=WAIT)
            expect(page.locator("#verdict")).to_contain_text("住民票の写し", timeout=WAIT)
            expect(page.locator("body")).not_to_contain_text(
                "見本 太郎", timeout=WAIT
            )  # never the person's data

            page.goto(f"{server.url}/verify")
            expect(page.locator("#verdict")).to_have_count(0, timeout=WAIT)
            page.set_input_files("#by-file input[name=pdf]", str(good))
            page.click("#by-file button[type=submit]")
            expect(page.locator("#verdict")).to_have_attribute("data-verdict", "valid", timeout=WAIT)
            expect(page.locator("#sha256")).to_have_text(doc.sha256, timeout=WAIT)
            expect(page.locator("#verdict")).to_contain_text("東京都千代田区長", timeout=WAIT)
            shot = tmp_path / "verify-valid.png"
            page.screenshot(path=str(shot), full_page=True)
            _artifact(shot)

            page.set_input_files("#by-file input[name=pdf]", str(bad))
            page.click("#by-file button[type=submit]")
            expect(page.locator("#verdict")).to_have_attribute("data-verdict", "invalid", timeout=WAIT)
            expect(page.locator("#verdict")).to_contain_text("確認できません", timeout=WAIT)
            expect(page.locator("#sha256")).not_to_have_text(doc.sha256, timeout=WAIT)
            shot = tmp_path / "verify-tampered.png"
            page.screenshot(path=str(shot), full_page=True)
            _artifact(shot)

            page.fill("#by-code input[name=n]", doc.certificate_number)
            page.fill("#by-code input[name=c]", "AAAAAAAAAAAAAAAA")
            page.click("#by-code button[type=submit]")
            expect(page.locator("#verdict")).to_have_attribute("data-verdict", "invalid", timeout=WAIT)
        finally:
            browser.close()
