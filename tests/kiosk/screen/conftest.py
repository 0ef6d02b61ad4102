"""Fixtures of the kiosk-screen tests: the issuance center's world (tests/kiosk/center: residents
through the real register, cards through the real card service, the OCSP responder in process, the
organisation CA with 職責証明書) and the app with the kiosk's pages mounted as the lead mounts them,
the center reached through the screen's in-process adapter, and card files the reader can take.

A :class:`KioskScreenWeb` drives the screen as a browser would: it reads each page's CSRF token and
posts the forms. ``kiosk_workers`` is the same screen served by two apps on one database and one
data dir (two worker processes of ``jlis serve --workers 2``), the browser's requests alternating
between them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth import passwords
from jlis.card.chip.cardfile import export_card
from jlis.clock import FixedClock
from jlis.kiosk.screen import pages
from jlis.kiosk.screen.adapter import InProcessCenter
from jlis.web import create_app
from jlis.web.deps import check_route_guards

from ...card.conftest import make_deps
from ...lgwan.conftest import PooledKeyStore
from ...web.support import FAST_HASHER, make_container
from ..center.conftest import AUTH_PIN, CHIYODA, KIOSK, SHINJUKU, CenterWorld, Holder, pdf_text

__all__ = [
    "AUTH_PIN",
    "CARD_PASSPHRASE",
    "CHIYODA",
    "SHINJUKU",
    "Holder",
    "KioskScreenWeb",
    "KioskWorkers",
    "pdf_text",
]

CARD_PASSPHRASE = "kiosk-test-pass"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def mount_kiosk(app: Any) -> None:
    """What the lead adds to jlis.web.app: the screen's router (its templates are an overlay)."""
    if not any(getattr(r, "path", "") == "/kiosk" for r in app.routes):
        app.include_router(pages.router)
    check_route_guards(app.routes)


@dataclass
class KioskScreenWeb:
    world: CenterWorld
    client: TestClient
    cards_dir: Path

    # -- cards ---------------------------------------------------------------------------------

    def card_file(self, holder: Holder) -> Path:
        """The holder's card exported as a card file the reader can take (a demo card)."""
        with self.world.service() as svc:
            chip = svc.chips.load(holder.card_id)
        self.cards_dir.mkdir(parents=True, exist_ok=True)
        path = self.cards_dir / f"{holder.card_id}.jcard"
        export_card(chip, path, CARD_PASSPHRASE, overwrite=True)
        return path

    def holder(self, lg_code: str = CHIYODA, **kw: Any) -> Holder:
        holder = self.world.holder(lg_code, **kw)
        self.card_file(holder)
        return holder

    # -- the screen ----------------------------------------------------------------------------

    def csrf(self, html: str) -> str:
        m = _CSRF.search(html)
        assert m, "no CSRF token on the page"
        return m.group(1)

    def post(self, path: str, data: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        """Post the form of the page the screen is on (its CSRF token read from ``path``'s page)."""
        page = self.client.get(kw.pop("page", path))
        assert page.status_code == 200, page.text
        return self.client.post(path, data={"csrf_token": self.csrf(page.text), **(data or {})}, **kw)

    def start(self) -> httpx.Response:
        r = self.client.post("/kiosk/start", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/kiosk/card", r.text
        return r

    def set_card(self, holder: Holder, passphrase: str = CARD_PASSPHRASE) -> httpx.Response:
        return self.post(
            "/kiosk/card",
            {"source": "demo", "card": holder.card_id, "passphrase": passphrase},
            follow_redirects=False,
        )

    def enter_pin(self, pin: str = AUTH_PIN) -> httpx.Response:
        return self.post("/kiosk/pin", {"pin": pin}, follow_redirects=False)

    def sign_in(self, holder: Holder) -> None:
        self.start()
        r = self.set_card(holder)
        assert r.status_code == 303 and r.headers["location"] == "/kiosk/pin", r.text
        r = self.enter_pin()
        assert r.status_code == 303 and r.headers["location"] == "/kiosk/menu", r.text

    def choose(self, kind: str, data: dict[str, str] | None = None) -> httpx.Response:
        return self.post(
            f"/kiosk/certificates/{kind}", {"copies": "1", **(data or {})}, follow_redirects=False
        )

    def pay(self, paid: str | None = None) -> httpx.Response:
        page = self.client.get("/kiosk/fee")
        assert page.status_code == 200, page.text
        fee = re.search(r'name="paid" value="(\d+)"', page.text)
        assert fee
        return self.client.post(
            "/kiosk/pay",
            data={"csrf_token": self.csrf(page.text), "paid": paid if paid is not None else fee.group(1)},
            follow_redirects=False,
        )


@pytest.fixture
def kiosk_web(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KioskScreenWeb]:
    previous = passwords.use_hasher(FAST_HASHER)
    world = None
    try:
        container = make_container(factory, clock, tmp_path)
        container.__dict__["keystore"] = PooledKeyStore()
        # The app serves OCSP with the key store of its settings: the CA keys go there.
        key_dir = container.settings.resolved_key_dir
        world = CenterWorld(container, make_deps(container, key_dir, clock, monkeypatch))
        app = create_app(container)
        mount_kiosk(app)
        app.state.kiosk_screen_center = InProcessCenter(world.center, KIOSK)
        app.state.kiosk_cards_dir = tmp_path / "cards"
        with TestClient(app, base_url="https://testserver") as client:
            yield KioskScreenWeb(world, client, tmp_path / "cards")
    finally:
        if world is not None:
            world.close()
        passwords.use_hasher(previous)


class Alternating:
    """A browser whose requests reach two worker processes in turn (no sticky sessions): one
    cookie jar, carried over from the app that answered to the other."""

    def __init__(self, *clients: TestClient) -> None:
        self.clients = clients
        self.served = [0] * len(clients)
        self._next = 0

    @property
    def app(self) -> Any:
        return self.clients[0].app

    @property
    def cookies(self) -> httpx.Cookies:
        return self.clients[self._next].cookies

    def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        i = self._next
        self._next = (i + 1) % len(self.clients)
        response: httpx.Response = getattr(self.clients[i], method)(url, **kw)
        self.served[i] += 1
        for other in self.clients:
            if other is not self.clients[i]:
                other.cookies.clear()
                for cookie in self.clients[i].cookies.jar:
                    other.cookies.jar.set_cookie(cookie)
        return response

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self._send("get", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self._send("post", url, **kw)


@dataclass
class KioskWorkers:
    web: KioskScreenWeb  # its client alternates between the two apps
    first: TestClient
    second: TestClient
    browser: Alternating
    uploads_dir: Path


@pytest.fixture
def kiosk_workers(
    kiosk_web: KioskScreenWeb, factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> Iterator[KioskWorkers]:
    """A second app (another worker process) on the same database and data dir; each app has its
    own kiosk screen (its own Visits). Both reach the same issuance center: the center keeps its
    sessions itself (in the database once jlis.kiosk.center does), which is not what this tests."""
    first = kiosk_web.client
    app = create_app(make_container(factory, clock, tmp_path))
    mount_kiosk(app)
    app.state.kiosk_screen_center = first.app.state.kiosk_screen_center  # type: ignore[attr-defined]
    app.state.kiosk_cards_dir = kiosk_web.cards_dir
    with TestClient(app, base_url="https://testserver") as second:
        browser = Alternating(first, second)
        web = KioskScreenWeb(kiosk_web.world, browser, kiosk_web.cards_dir)  # type: ignore[arg-type]
        uploads = kiosk_web.world.container.settings.data_dir / pages.UPLOADS
        yield KioskWorkers(web, first, second, browser, uploads)
