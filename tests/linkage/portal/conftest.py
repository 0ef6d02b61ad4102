"""Fixtures of the portal tests: residents made through the register and sent up to the national
copy, cards delivered through the real card service (pooled keys), the standard linkage members,
and helpers that sign a card holder in exactly as the portal does (challenge → card → verify).

Names start with ``portal_`` (fixtures of other directories are not visible here); the card world
and its key pools come from tests/card/conftest.py."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth import passwords
from jlis.card.chip.cardfile import export_card
from jlis.card.chip.reader import CardReader
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.jpki.rp.login import ReplayGuard, make_challenge, respond, verify_login
from jlis.jpki.rp.server import DatabaseStatus, auth_trust_store
from jlis.jpki.verifiers import VerifierRegistry
from jlis.linkage.exchange.models import sign_request
from jlis.linkage.exchange.service import ExchangeHub
from jlis.linkage.hub.codes import acquire_code
from jlis.linkage.hub.members import Member, MemberService, ensure_standard_members, get_member
from jlis.linkage.middle.service import MiddleServer
from jlis.linkage.portal.service import PortalDeps, PortalService, PortalUser
from jlis.registry import ResidentView

from ...card.conftest import AUTH_PIN, PINS, SIGN_PASSWORD, CardWorld, make_deps
from ...web.support import CHIYODA, FAST_HASHER, SHINJUKU, WebWorld, make_container

__all__ = ["AUTH_PIN", "CHIYODA", "PINS", "SHINJUKU", "SIGN_PASSWORD", "Holder", "PortalWorld"]

AUDIENCE = "http://jlis.test:8000/portal"
MEMBER_PASSWORD = "linkage members pass"
VERIFIER = "bank-a"
CARD_PASSPHRASE = "portal-test-pass"


@dataclass
class Holder:
    resident: ResidentView
    card_id: str
    reader: CardReader


class PortalWorld(CardWorld):
    """Card holders, linkage members and the portal's service on one test database."""

    def __init__(self, container: Any, deps: Any, key_dir: Path) -> None:
        super().__init__(container, deps)
        self.key_dir = key_dir
        counter = itertools.count(1)
        self.portal_deps = PortalDeps(
            clock=self.clock,
            secret=container.secret,
            key_dir=key_dir,
            geography=container.geography,
            provision_table=container.provision_table,
            registry=container.registry,
            new_token=lambda: f"portal-token-{next(counter):06d}-0123456789abcdef",
            new_nonce=lambda: f"{next(counter):032x}",
        )
        with transaction(self.factory) as s:
            ensure_standard_members(
                s, self.clock, key_dir=key_dir, lg_codes=[CHIYODA, SHINJUKU], password=MEMBER_PASSWORD
            )

    # -- people and cards -----------------------------------------------------------------------

    def holder(self, lg_code: str = CHIYODA, **kw: Any) -> Holder:
        """A resident with a delivered card, known to the national copy."""
        resident = self.person(lg_code, **kw)
        self.relay().drain()
        card_id = self.active_card(resident)
        with self.service() as svc:
            chip = svc.chips.load(card_id)
        return Holder(resident, card_id, CardReader(chip.transmit))

    def export(self, holder: Holder, directory: Path) -> Path:
        with self.service() as svc:
            chip = svc.chips.load(holder.card_id)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{holder.card_id}.jcard"
        export_card(chip, path, CARD_PASSPHRASE, overwrite=True)
        return path

    # -- the portal -----------------------------------------------------------------------------

    def portal(self, s: Session) -> PortalService:
        return PortalService(s, self.portal_deps)

    def sign_in(self, holder: Holder, pin: str = AUTH_PIN) -> tuple[str, PortalUser]:
        """The whole sign-in: the portal's challenge, the card's answer, the portal's checks."""
        challenge = make_challenge(AUDIENCE, clock=self.clock)
        response = respond(holder.reader, challenge, pin)
        with transaction(self.factory) as s:
            result = verify_login(
                challenge,
                response,
                trust=auth_trust_store(s),
                revocation=DatabaseStatus(s),
                clock=self.clock,
                replay=ReplayGuard(),
                audience=AUDIENCE,
            )
            signed = self.portal(s).sign_in(result)
        return signed.token, signed.user

    # -- members and exchanges ------------------------------------------------------------------

    def member(self, member_id: str) -> Member:
        with self.factory() as s:
            return get_member(s, member_id)

    def code_of(self, member_id: str, holder: Holder) -> str:
        """The member's own code for the holder (through J-LIS and the hub, as the member would)."""
        with transaction(self.factory) as s:
            return acquire_code(
                s, self.clock, self.container.secret, get_member(s, member_id), holder.resident.resident_code
            )

    def replica(self, holder: Holder, category: str, data: dict[str, object]) -> None:
        """The municipality's business system registers a replica at its middle server."""
        lg = holder.resident.lg_code
        with transaction(self.factory) as s:
            middle = MiddleServer(s, self.clock, f"lg-{lg}", actor=f"tax-{lg}")
            local_id = middle.local_id_for(holder.resident.resident_code)
            middle.link(local_id, secret=self.container.secret)
            middle.register_replica(local_id, category, data)

    def agency_query(
        self,
        holder: Holder,
        *,
        requester: str = "nenkin",
        affair: str = "pension_benefit",
        category: str = "local_tax",
        items: tuple[str, ...] = ("tax_year", "total_income", "tax_exempt", "dependents"),
        request_id: str = "nenkin-0001",
    ) -> Any:
        """A national agency asks the person's municipality through the hub (a lawful query)."""
        code = self.code_of(requester, holder)
        with transaction(self.factory) as s:
            key = MemberService(s, self.clock, actor="test", key_dir=self.key_dir).request_key(requester)
            request = sign_request(
                key,
                requester,
                request_id=request_id,
                requester_code=code,
                affair=affair,
                provider_id=f"lg-{holder.resident.lg_code}",
                category=category,
                items=items,
                sent_at=self.clock.now(),
            )
            hub = ExchangeHub(s, self.clock, self.container.secret, key_dir=self.key_dir)
            return hub.query(get_member(s, requester), request)

    def verifier(self, verifier_id: str = VERIFIER, *, password: str = MEMBER_PASSWORD) -> Any:
        with transaction(self.factory) as s:
            return VerifierRegistry(s, self.clock, actor="jlis-operator").register(
                verifier_id=verifier_id,
                name="テスト銀行",
                signature_verifier=True,
                user_verifier=True,
                basis="主務大臣認定事業者",
                agreement_no="T-0001",
                agreement_date=self.clock.today(),
                username=f"verifier-{verifier_id}",
                password=password,
            )

    def rows(self, table: Any) -> list[Any]:
        with self.factory() as s:
            return list(s.execute(select(table)).all())


TAX = {"tax_year": 2026, "total_income": 3_200_000, "tax_exempt": False, "dependents": 1}


@pytest.fixture
def portal_world(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PortalWorld]:
    previous = passwords.use_hasher(FAST_HASHER)
    try:
        container = make_container(factory, clock, tmp_path)
        key_dir = tmp_path / "keys"
        deps = make_deps(container, key_dir, clock, monkeypatch)
        yield PortalWorld(container, deps, key_dir)
    finally:
        passwords.use_hasher(previous)


class PortalWeb(PortalWorld):
    """The web app with the portal's routers and templates mounted (as the lead wires them), the
    users of tests/web/support.py, and the demo card directory the sign-in page offers."""

    def __init__(self, web: WebWorld, deps: Any, key_dir: Path, cards_dir: Path) -> None:
        super().__init__(web.container, deps, key_dir)
        self.web = web
        self.client = web.client
        self.cards_dir = cards_dir

    def headers(self, username: str, password: str | None = None) -> dict[str, str]:
        if password is None:
            return self.web.headers(username)
        r = self.client.post("/api/v1/token", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


def mount_portal(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the lead adds to jlis.web.app: the routers, and the template folder as ``portal/``."""
    from jlis.linkage.portal import api as portal_api
    from jlis.linkage.portal import pages as portal_pages
    from jlis.web import templating
    from jlis.web.deps import check_route_guards

    monkeypatch.setitem(templating.TEMPLATE_DIRS, "portal", Path(portal_pages.__file__).parent / "templates")
    for r in (*portal_api.ROUTERS, portal_pages.router, portal_pages.staff_router):
        app.include_router(r)
    check_route_guards(app.routes)
    app.state.templates = templating.build_environment()


@pytest.fixture
def portal_web(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PortalWeb]:
    with WebWorld.start(factory, clock, tmp_path) as web:
        app = web.client.app
        mount_portal(app, monkeypatch)
        key_dir = tmp_path / "keys"
        world = PortalWeb(
            web, make_deps(web.container, key_dir, clock, monkeypatch), key_dir, tmp_path / "cards"
        )
        app.state.portal_deps = world.portal_deps  # type: ignore[attr-defined]
        app.state.portal_cards_dir = world.cards_dir  # type: ignore[attr-defined]
        yield world
