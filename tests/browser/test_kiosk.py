"""A real browser at the kiosk screen (the 行政サービス of a multifunction copier): a card holder
sets a (virtual) card, types the PIN, chooses a 住民票の写し of the household, pays and gets the
PDF, whose text names them; a wrong PIN and a resident with a 転出届 pending are refused on the
screen with the center's Japanese message; and one page of the issued PDF renders to PNG with
pdftoppm from its embedded font.

The app runs under uvicorn in a thread on a free port, on a temporary SQLite database, with the
kiosk's router mounted as the lead mounts it and the issuance center of tests/kiosk/center (the
real card service, OCSP responder, organisation CA and certificate servers) behind the screen's
in-process adapter. Chromium is Debian's, driven by Playwright; without it (or without poppler's
tools for the rendering test) the test skips, except under CI where it fails.
"""

from __future__ import annotations

import datetime as dt
import faulthandler
import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from jlis.auth import passwords
from jlis.card.chip.cardfile import export_card
from jlis.clock import FixedClock
from jlis.db import Base, import_all_tables, make_engine, make_session_factory
from jlis.kiosk.center.tables import CenterLogRow
from jlis.kiosk.screen.adapter import InProcessCenter
from jlis.web import create_app

from ..card.conftest import make_deps
from ..conftest import require_or_skip
from ..kiosk.center.conftest import KIOSK, CenterWorld, Holder
from ..kiosk.screen.conftest import CARD_PASSPHRASE, mount_kiosk
from ..lgwan.conftest import PooledKeyStore
from ..web.support import CHIYODA, FAST_HASHER, make_container
from .test_counter_flow import CHROMIUM, CHROMIUM_ARGS, _artifacts, _Server

pytestmark = pytest.mark.browser
WAIT = 30_000  # ms: issuing signs a PDF on a busy machine (Playwright's default is 5 s)
ISSUE_WAIT = 90_000  # ms: the issuing step itself (see _issue_household_certificate)


@dataclass
class Kiosk:
    server: _Server
    world: CenterWorld
    cards_dir: Path

    def holder(self, **kw: object) -> Holder:
        holder = self.world.holder(CHIYODA, **kw)  # type: ignore[arg-type]
        with self.world.service() as svc:
            chip = svc.chips.load(holder.card_id)
        self.cards_dir.mkdir(parents=True, exist_ok=True)
        export_card(chip, self.cards_dir / f"{holder.card_id}.jcard", CARD_PASSPHRASE, overwrite=True)
        return holder


@pytest.fixture
def kiosk(tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kiosk]:
    require_or_skip(CHROMIUM.exists(), "Chromium")
    import_all_tables()
    engine = make_engine(f"sqlite:///{tmp_path / 'kiosk.sqlite3'}")
    Base.metadata.create_all(engine)
    container = make_container(make_session_factory(engine), clock, tmp_path)
    container.__dict__["keystore"] = PooledKeyStore()
    previous = passwords.use_hasher(FAST_HASHER)
    world = None
    try:
        key_dir = container.settings.resolved_key_dir  # the app's OCSP responder opens the CA keys there
        world = CenterWorld(container, make_deps(container, key_dir, clock, monkeypatch))
        app = create_app(container)
        mount_kiosk(app)
        app.state.kiosk_screen_center = InProcessCenter(world.center, KIOSK)
        app.state.kiosk_cards_dir = tmp_path / "cards"
        with _Server(app) as server:
            yield Kiosk(server, world, tmp_path / "cards")
    finally:
        if world is not None:
            world.close()
        passwords.use_hasher(previous)
        engine.dispose()


def _shot(page: Page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    _artifacts(shot)


def _set_card_and_pin(page: Page, url: str, holder: Holder, pin: str) -> None:
    page.goto(url + "/kiosk")
    page.click("#start button")
    expect(page.locator("h1")).to_have_text("マイナンバーカードを置いてください")
    page.select_option("#card", value=holder.card_id)
    page.fill("input[name=passphrase]", CARD_PASSPHRASE)
    page.click("#card-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("暗証番号を入力してください")
    page.fill("#pin", pin)
    page.click("#pin-form button[type=submit]")


def _pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages)


def _issue_household_certificate(page: Page, kiosk: Kiosk, holder: Holder, tmp_path: Path) -> bytes:
    """The whole flow through the screen; returns the downloaded PDF."""
    url = kiosk.server.url
    _set_card_and_pin(page, url, holder, "1234")
    expect(page.locator("h1")).to_have_text("証明書を選んでください")
    expect(page.locator("#screen")).to_contain_text("東京都千代田区")
    _shot(page, tmp_path, "kiosk-menu")
    page.click("#offers a[data-kind=resident]")
    expect(page.locator("h1")).to_have_text("住民票の写し")
    page.check("input[name=scope][value=household]")
    page.check("input[name=show_relationship]")
    page.select_option("#copies", value="2")
    _shot(page, tmp_path, "kiosk-options")
    page.click("#options-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("手数料をお支払いください")
    expect(page.locator("#fee")).to_have_text("400円")
    expect(page.locator("#quote")).to_contain_text("世帯全員")
    _shot(page, tmp_path, "kiosk-fee")
    # Paying issues the certificate: the card's signature, OCSP, the PDF and its signature. Alone
    # that takes a few seconds here; in the full suite beside a second worker it once took more
    # than 30 s. The click does not wait for the navigation; the heading is waited for longer, and
    # if it never comes, every thread's stack shows where the server was.
    page.click("#pay-form button[type=submit]", no_wait_after=True)
    try:
        expect(page.locator("h1")).to_have_text("証明書を印刷しました", timeout=ISSUE_WAIT)
    except AssertionError:
        faulthandler.dump_traceback(all_threads=True)
        raise
    expect(page.locator("#reminder")).to_contain_text("証明書とカードの取り忘れにご注意ください")
    _shot(page, tmp_path, "kiosk-printed")
    with page.expect_download() as info:
        page.click("#download-pdf")
    download = info.value
    assert download.suggested_filename.endswith(".pdf")
    pdf = Path(download.path()).read_bytes()
    assert pdf.startswith(b"%PDF-")
    # The PDF shown on the screen is the same document.
    shown = page.request.get(url + "/kiosk/document.pdf")
    assert shown.headers["content-type"] == "application/pdf" and shown.body() == pdf
    number = page.inner_text("#certificate-number")
    page.click("#cancel button")
    expect(page.locator("#take-card")).to_contain_text("カードをお取りください")
    assert number in _pdf_text(pdf)
    return pdf


def test_a_whole_kiosk_flow_yields_the_holders_pdf(kiosk: Kiosk, tmp_path: Path) -> None:
    holder = kiosk.holder(family="髙橋", given="美咲", family_kana="タカハシ", given_kana="ミサキ")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            page.set_default_timeout(WAIT)
            pdf = _issue_household_certificate(page, kiosk, holder, tmp_path)
        finally:
            browser.close()
    text = _pdf_text(pdf)
    assert "住民票の写し" in text and "髙橋" in text and "美咲" in text
    (row,) = kiosk.world.rows(CenterLogRow)
    assert (row.outcome, row.copies, row.charged) == ("issued", 2, 400)
    assert row.request_id in text  # the request id is printed on the page: bound end to end


def test_refusals_are_shown_on_the_screen(kiosk: Kiosk, tmp_path: Path) -> None:
    holder = kiosk.holder(given="二郎")
    moving = kiosk.holder(given="三郎")
    with kiosk.world.register(CHIYODA) as reg:
        reg.record_move_out(
            moving.resident.id,
            planned_date=kiosk.world.clock.today() + dt.timedelta(days=7),
            destination="神奈川県横浜市鶴見区",
            destination_lg_code="141011",
        )
    url = kiosk.server.url
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            page.set_default_timeout(WAIT)
            # A wrong PIN: counted on the card, the center's message on the screen, try again.
            _set_card_and_pin(page, url, holder, "9999")
            expect(page.locator("#error")).to_contain_text("暗証番号が違います")
            expect(page.locator("#error")).to_contain_text("残り2回")
            _shot(page, tmp_path, "kiosk-wrong-pin")
            page.fill("#pin", "1234")
            page.click("#pin-form button[type=submit]")
            expect(page.locator("h1")).to_have_text("証明書を選んでください")
            page.click("#cancel button")

            # A resident with a 転出届 pending: refused at issue, nothing charged.
            _set_card_and_pin(page, url, moving, "1234")
            page.click("#offers a[data-kind=resident]")
            page.click("#options-form button[type=submit]")
            page.click("#pay-form button[type=submit]")
            expect(page.locator("#error")).to_have_text(
                "転出の届出をされているため、交付できません。市区町村の窓口にお問い合わせください。"
            )
            expect(page.locator("#not-charged")).to_contain_text("手数料はいただいていません")
            _shot(page, tmp_path, "kiosk-refused")
        finally:
            browser.close()
    codes = [(r.code, r.charged) for r in kiosk.world.rows(CenterLogRow)]
    assert codes == [("wrong_pin", 0), ("moving_out", 0)]


def test_an_issued_pdf_renders_with_its_embedded_font(kiosk: Kiosk, tmp_path: Path) -> None:
    require_or_skip(
        shutil.which("pdftoppm") is not None and shutil.which("pdffonts") is not None,
        "poppler-utils (pdftoppm, pdffonts)",
    )
    from PIL import Image

    holder = kiosk.holder(family="渡辺", given="健太")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            page.set_default_timeout(WAIT)
            pdf = _issue_household_certificate(page, kiosk, holder, tmp_path)
        finally:
            browser.close()
    path = tmp_path / "issued.pdf"
    path.write_bytes(pdf)
    fonts = subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True).stdout
    lines = [line for line in fonts.splitlines()[2:] if line.strip()]
    assert lines, fonts
    for line in lines:  # name type encoding emb sub uni object ID: every font embedded
        assert "NotoSansJP" in line and line.split()[-5] == "yes", fonts
    done = subprocess.run(
        ["pdftoppm", "-r", "72", "-png", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "font" not in done.stderr.lower(), done.stderr  # no substitution, no missing glyphs
    (png,) = tmp_path.glob("page*.png")
    _artifacts(png)
    with Image.open(png) as img:
        gray = img.convert("L")
    width, height = gray.size
    assert abs(width - 595) <= 1 and abs(height - 842) <= 1  # A4 (595.3 × 841.9 pt) at 72 dpi
    # The title block is drawn: dark glyph pixels in the top fifth of the page, on white paper.
    top = gray.crop((0, 0, width, height // 5))
    dark = sum(top.histogram()[:80])
    assert dark > 500, dark
