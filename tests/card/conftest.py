"""Fixtures of the card-management tests: a ``card_world`` with residents made through the real
register, the real CA (file key store), the real chip store and revocation service.

Names start with ``card_`` because the chip tests (tests/card/chip) share this directory. Key
generation dominates a card's cost, so chips and CA keys come from small pools of keys made once
per session (the code under test does not care whether two chips share a key pair).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth.models import Principal, PrincipalKind
from jlis.card.applications import ApplicationForm, Channel
from jlis.card.documents import Document
from jlis.card.pins import PinSet
from jlis.card.service import ApplicationView, CardDeps, CardService, CardView, card_transaction
from jlis.card.stream import DESTINATION, NODE_KIND, CardStreamNode
from jlis.card.tables import CardEventRow
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.jpki.keystore import FileKeyStore
from jlis.jpki.profile import Algorithm
from jlis.juki.network import build_relay
from jlis.messaging import Relay
from jlis.registry import Placement, RegistryService, ResidentView, Sex

from ..web.support import CHIYODA, SHINJUKU, YOKOHAMA_TSURUMI, Residents, WebWorld, make_container

__all__ = ["CHIYODA", "SHINJUKU", "CardWorld"]

AUTH_PIN, SIGN_PASSWORD, JUKI_PIN, TEXT_PIN = "1234", "ABC123XYZ", "5678", "2468"
PINS = PinSet(SIGN_PASSWORD, AUTH_PIN, JUKI_PIN, TEXT_PIN)
ID_DOCS = (Document.NOTICE, Document.DRIVER_LICENCE)


@functools.cache
def _rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(6)]


@functools.cache
def _ec_keys() -> list[ec.EllipticCurvePrivateKey]:
    return [ec.generate_private_key(ec.SECP384R1()) for _ in range(2)]


def pooled_keygen() -> Callable[[Any], rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    """Chip keys from the session's pool (the CA's two keys are kept apart from the chips')."""
    rsa_keys = itertools.cycle(_rsa_keys()[2:])
    ec_keys = itertools.cycle(_ec_keys())

    def keygen(alg: Any) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        return next(rsa_keys) if Algorithm(alg) is Algorithm.RSA2048_SHA256 else next(ec_keys)

    return keygen


def staff(lg_code: str = CHIYODA) -> Principal:
    return Principal(
        id=1,
        username=f"staff-{lg_code}",
        kind=PrincipalKind.MUNICIPAL_STAFF,
        display_name="窓口",
        lg_code=lg_code,
    )


OPERATOR = Principal(id=3, username="jlis-operator", kind=PrincipalKind.JLIS_OPERATOR, display_name="J-LIS")


class CardWorld(Residents):
    """Residents (made through the register), and a card service on the same database."""

    def __init__(self, container: Any, deps: CardDeps) -> None:
        super().__init__(container)
        self.deps = deps

    @contextmanager
    def service(self, principal: Principal = OPERATOR) -> Iterator[CardService]:
        with card_transaction(self.factory) as s:
            yield CardService(s, self.deps, principal)

    def form(self, resident: ResidentView, channel: Channel = Channel.POST, **kw: Any) -> ApplicationForm:
        return ApplicationForm(
            lg_code=resident.lg_code,
            my_number=resident.my_number,
            family_name=resident.name.family,
            given_name=resident.name.given,
            birth_date=resident.birth_date,
            channel=channel,
            **kw,
        )

    def apply(self, resident: ResidentView, channel: Channel = Channel.POST, **kw: Any) -> ApplicationView:
        principal = staff(resident.lg_code) if channel is Channel.COUNTER else OPERATOR
        with self.service(principal) as svc:
            return svc.apply(self.form(resident, channel, **kw))

    def produce(self, **kw: Any) -> list[CardView]:
        with self.service() as svc:
            return svc.production.produce(**kw).cards

    def ship(self, card_id: str) -> None:
        with self.service() as svc:
            svc.production.ship(card_ids=[card_id])

    def notify(self, card_id: str, lg_code: str = CHIYODA) -> None:
        with self.service(staff(lg_code)) as svc:
            svc.counter.send_notice(card_id)

    def deliver(self, card_id: str, lg_code: str = CHIYODA, pins: PinSet = PINS, **kw: Any) -> Any:
        with self.service(staff(lg_code)) as svc:
            return svc.counter.deliver(card_id, documents=ID_DOCS, pins=pins, **kw)

    def card_waiting(self, resident: ResidentView, **kw: Any) -> str:
        """Apply, manufacture, ship and notify: the card waits at the counter."""
        self.apply(resident, **kw)
        (card,) = self.produce()
        self.ship(card.id)
        self.notify(card.id, resident.lg_code)
        return card.id

    def active_card(self, resident: ResidentView, **kw: Any) -> str:
        card_id = self.card_waiting(resident, **kw)
        self.deliver(card_id, resident.lg_code)
        return card_id

    def card(self, card_id: str) -> CardView:
        with self.service() as svc:
            return svc.get(card_id)

    def event_count(self) -> int:
        with self.factory() as s:
            return int(s.execute(select(func.count()).select_from(CardEventRow)).scalar_one())

    @contextmanager
    def register(self, lg_code: str = CHIYODA) -> Iterator[RegistryService]:
        with transaction(self.factory) as s:
            yield self.container.registry(s, lg_code, "staff-test")

    def relay(self) -> Relay:
        """The network with the card system subscribed to the national change stream."""
        return build_relay(
            self.factory,
            self.clock,
            self.container.geography,
            subscribers=[DESTINATION],
            extra_handlers={NODE_KIND: CardStreamNode(self.deps)},
        )

    def die(self, resident: ResidentView) -> None:
        with self.register(resident.lg_code) as reg:
            reg.record_death(resident.id, died_on=self.clock.today())
        self.relay().drain()

    def move(self, resident: ResidentView, to_lg: str, *, days_ago: int = 1) -> ResidentView:
        """転出 (paper certificate) and 転入 in ``to_lg``; the stream is delivered."""
        moved_on = self.clock.today() - dt.timedelta(days=days_ago)
        with self.register(resident.lg_code) as reg:
            _view, cert = reg.record_move_out(
                resident.id, planned_date=moved_on, destination="新住所", destination_lg_code=to_lg
            )
        with self.register(to_lg) as reg:
            moved = reg.record_move_in(cert, Placement(self.town(to_lg), "2番3号"), moved_on=moved_on)
        self.relay().drain()
        return moved

    def person(
        self, lg_code: str = CHIYODA, *, birth: dt.date = dt.date(1980, 4, 1), **kw: Any
    ) -> ResidentView:
        kw.setdefault("sex", Sex.MALE)
        # Moved in from a third town, so that its 転入通知 (delivered whenever the relay runs) never
        # closes a record in the municipalities the tests move people between.
        kw.setdefault("from_lg", YOKOHAMA_TSURUMI)
        return self.resident(lg_code, birth=birth, **kw)


@pytest.fixture
def card_world(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> CardWorld:
    container = make_container(factory, clock, tmp_path)
    return CardWorld(container, make_deps(container, tmp_path / "keys", clock, monkeypatch))


def make_deps(container: Any, key_dir: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> CardDeps:
    ca_keys = itertools.cycle(_rsa_keys()[:2])
    monkeypatch.setattr("jlis.jpki.keystore.generate_private_key", lambda alg: next(ca_keys))
    deps = CardDeps(
        clock=clock,
        rng=random.Random(3),
        geography=container.geography,
        registry=container.registry,
        key_dir=key_dir,
        base_url="http://jlis.test:8000",
        keystore=FileKeyStore(key_dir),
        keygen=pooled_keygen(),
    )
    with card_transaction(container.factory) as s:
        deps.ca(s).ensure()
    return deps


class CardWeb(CardWorld):
    """The web app with the card routers and templates mounted (as the lead wires them), a
    TestClient, and the users of tests/web/support.py (staff of 千代田区 and 新宿区, an operator)."""

    def __init__(self, web: WebWorld, deps: CardDeps) -> None:
        super().__init__(web.container, deps)
        self.web = web
        self.client = web.client

    def headers(self, username: str) -> dict[str, str]:
        return self.web.headers(username)

    def login(self, username: str) -> None:
        self.web.login(username)

    def page_csrf(self, path: str) -> str:
        return self.web.page_csrf(path)


@pytest.fixture
def card_web(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CardWeb]:
    from jlis.card import api as card_api
    from jlis.card import pages as card_pages
    from jlis.web import templating
    from jlis.web.deps import check_route_guards

    monkeypatch.setitem(templating.TEMPLATE_DIRS, "card", Path(card_pages.__file__).parent / "templates")
    with WebWorld.start(factory, clock, tmp_path) as web:
        app = web.client.app
        for r in (card_api.router, card_api.hotline_router, card_api.jlis_router, card_pages.router):
            app.include_router(r)  # type: ignore[attr-defined]
        check_route_guards(app.routes)  # type: ignore[attr-defined]
        app.state.templates = templating.build_environment()  # type: ignore[attr-defined]
        deps = make_deps(web.container, tmp_path / "card-keys", clock, monkeypatch)
        app.state.card_deps = deps  # type: ignore[attr-defined]
        yield CardWeb(web, deps)
