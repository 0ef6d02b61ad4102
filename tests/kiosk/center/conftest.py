"""Fixtures of the issuance-center tests: residents made through the real register and sent up to the
national copy, cards delivered through the real card service (pooled keys), the JPKI OCSP responder
in process, the organisation CA with 職責証明書 for 千代田区, 新宿区 and the BCL, and the center.

Residents are made ten days ago (a 転入 on the day itself is refused at the kiosk)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import jlis.kiosk.center.tables  # noqa: F401  (the tables exist before create_all)
from jlis.auth import passwords
from jlis.card.chip.reader import CardReader
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.jpki.api import RevocationServices
from jlis.kiosk.center.card import card_answer
from jlis.kiosk.center.models import CenterSession, IssuedCertificate, Quote
from jlis.kiosk.center.service import IssuanceCenter, ensure_center
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.models import IssueOptions
from jlis.lgwan.ca import ensure_organisation_pki
from jlis.registry import ResidentView

from ...card.conftest import AUTH_PIN, CardWorld, make_deps
from ...lgwan.conftest import PooledKeyStore
from ...web.support import CHIYODA, FAST_HASHER, SHINJUKU, YOKOHAMA_TSURUMI, make_container

__all__ = ["AUTH_PIN", "CHIYODA", "KIOSK", "SHINJUKU", "YOKOHAMA_TSURUMI", "CenterWorld", "Holder"]

KIOSK = "K-0001"
VERIFIER_PASSWORD = "kiosk center verifier pass"


@dataclass
class Holder:
    resident: ResidentView
    card_id: str
    reader: CardReader


class CenterWorld(CardWorld):
    def __init__(self, container: Any, deps: Any) -> None:
        super().__init__(container, deps)
        self.keystore = container.keystore
        with transaction(self.factory) as s:
            base = container.settings.resolved_public_url
            ensure_organisation_pki(s, self.clock, self.keystore, base, [CHIYODA, SHINJUKU], actor="test")
            self.setup = ensure_center(
                s,
                self.clock,
                container,
                kiosks={KIOSK: "テスト店 1号機", "K-0002": "テスト店 2号機"},
                verifier_password=VERIFIER_PASSWORD,
            )
        self.revocation = RevocationServices(container, deps.keystore)
        self.revocation.start()
        self.center = IssuanceCenter(container, self.revocation)

    def close(self) -> None:
        self.revocation.stop()

    def holder(self, lg_code: str = CHIYODA, **kw: Any) -> Holder:
        resident = self.person(lg_code, **kw)
        self.relay().drain()
        card_id = self.active_card(resident)
        with self.service() as svc:
            chip = svc.chips.load(card_id)
        self.clock.advance(days=1)  # the kiosk refuses on the day of the 転入 notification
        return Holder(resident, card_id, CardReader(chip.transmit))

    def login(self, holder: Holder, pin: str = AUTH_PIN, kiosk: str = KIOSK) -> CenterSession:
        challenge = self.center.open_session(kiosk)
        return self.center.authenticate(challenge, card_answer(self.center, challenge, holder.reader, pin))

    def quote(
        self,
        holder: Holder,
        kind: CertificateKind = CertificateKind.RESIDENT,
        options: IssueOptions | None = None,
        copies: int = 1,
        **kw: Any,
    ) -> tuple[CenterSession, Quote]:
        session = self.login(holder)
        return session, self.center.request(session, kind, options, copies, **kw)

    def issue(
        self,
        holder: Holder,
        kind: CertificateKind = CertificateKind.RESIDENT,
        options: IssueOptions | None = None,
        copies: int = 1,
        **kw: Any,
    ) -> IssuedCertificate:
        session, quote = self.quote(holder, kind, options, copies, **kw)
        receipt = self.center.pay(quote)
        return self.center.issue(session, receipt)

    def count(self, table: type) -> int:
        with self.factory() as s:
            return int(s.execute(select(func.count()).select_from(table)).scalar_one())

    def rows(self, table: Any) -> list[Any]:
        with self.factory() as s:
            rows = list(s.scalars(select(table).order_by(table.id)))
            s.expunge_all()
            return rows

    def rows_of(self, table: Any) -> list[Any]:
        """Every row of a table without an ``id`` (in primary-key order)."""
        with self.factory() as s:
            rows = list(s.scalars(select(table).order_by(*table.__table__.primary_key.columns)))
            s.expunge_all()
            return rows


@pytest.fixture
def center_world(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CenterWorld]:
    previous = passwords.use_hasher(FAST_HASHER)
    world = None
    try:
        container = make_container(factory, clock, tmp_path)
        container.__dict__["keystore"] = PooledKeyStore()
        deps = make_deps(container, tmp_path / "keys", clock, monkeypatch)
        world = CenterWorld(container, deps)
        yield world
    finally:
        if world is not None:
            world.close()
        passwords.use_hasher(previous)


def pdf_text(pdf: bytes) -> str:
    import io

    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def center_file_world(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CenterWorld]:
    """As ``center_world``, but every CA key (JPKI and the organisation CA) in the encrypted-file key
    store of ``tmp_path/keys`` — what a command-line process finds through its settings."""
    previous = passwords.use_hasher(FAST_HASHER)
    world = None
    try:
        container = make_container(factory, clock, tmp_path)
        deps = make_deps(container, tmp_path / "keys", clock, monkeypatch)
        container.__dict__["keystore"] = deps.keystore
        world = CenterWorld(container, deps)
        yield world
    finally:
        if world is not None:
            world.close()
        passwords.use_hasher(previous)
