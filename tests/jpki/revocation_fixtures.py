"""A small JPKI for the revocation tests: both CAs (jlis.jpki.ca) over a file key store in the test's
directory, certificates issued for made-up holders, and the helpers the revocation tests share.

Each test module wraps :class:`Pki` in its own fixture (fixtures imported across modules would be
shadowed names to the linter). Card keys come from a small pool generated once per process: the CA
does not care that two test cards share a key, and RSA key generation is the slow part.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.container import Container
from jlis.db import transaction
from jlis.jpki.ca import CertificationAuthority
from jlis.jpki.crl import CrlPublisher, keystore_signers
from jlis.jpki.holder import HolderInfo
from jlis.jpki.keystore import FileKeyStore
from jlis.jpki.profile import CURRENT, Algorithm, CardProfile, generate_private_key
from jlis.jpki.tables import AUTH, CARD, SIGN, CaGenerationRow, CertificateRow

BASE_URL = "http://127.0.0.1:8765"
PASSWORD = "correct horse battery"
CHIYODA, SHINJUKU = "131016", "131041"


@functools.lru_cache(maxsize=8)
def key_pool(alg: Algorithm) -> tuple[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, ...]:
    return tuple(generate_private_key(alg) for _ in range(3))


_counter = itertools.count(1)


def holder(
    resident_code: str | None = None,
    *,
    lg_code: str = CHIYODA,
    family: str = "山田",
    given: str = "太郎",
    sex: str = "male",
    birth: dt.date = dt.date(1980, 4, 1),
    address: str = "東京都千代田区千代田1番1号",
) -> HolderInfo:
    code = resident_code or f"{next(_counter):011d}"
    return HolderInfo(code, lg_code, family, given, sex, birth, address)


class Pki:
    """The CAs of one test database."""

    def __init__(self, factory: sessionmaker[Session], clock: FixedClock, key_dir: Path) -> None:
        self.factory = factory
        self.clock = clock
        self.keystore = FileKeyStore(key_dir)  # the passphrase file the CLI and the app would use
        self.rng = random.Random(20261126)
        self.signer_for = keystore_signers(self.keystore)
        with transaction(factory) as s:
            self.ca(s).ensure()

    @classmethod
    @contextmanager
    def start(cls, factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[Pki]:
        yield cls(factory, clock, tmp_path / "keys")

    def ca(self, session: Session) -> CertificationAuthority:
        return CertificationAuthority(session, self.clock, self.keystore, BASE_URL, rng=self.rng)

    def generation(self, kind: str = SIGN, n: int = 1) -> CaGenerationRow:
        with self.factory() as s:
            return self.ca(s).generation(kind, n)

    def ca_cert(self, kind: str = SIGN, n: int = 1) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.generation(kind, n).certificate_der)

    def issue(
        self,
        kind: str = SIGN,
        who: HolderInfo | None = None,
        *,
        card_id: str = "card-1",
        holder_kind: str = CARD,
        profile: CardProfile = CURRENT,
        key_index: int = 0,
    ) -> CertificateRow:
        who = who or holder()
        key = key_pool(profile.algorithm)[key_index % 3]
        with transaction(self.factory) as s:
            row = self.ca(s).issue(
                kind,
                key.public_key(),
                who,
                card_id=card_id,
                holder_kind=holder_kind,
                card_expires_on=self.clock.today() + dt.timedelta(days=3650),
                profile=profile,
            )
            s.flush()
            s.expunge(row)
        return row

    def card(
        self, who: HolderInfo | None = None, card_id: str = "card-1"
    ) -> tuple[CertificateRow, CertificateRow]:
        """A card's pair: (signing, authentication)."""
        who = who or holder()
        return self.issue(SIGN, who, card_id=card_id), self.issue(AUTH, who, card_id=card_id, key_index=1)

    def row(self, certificate_id: int) -> CertificateRow:
        with self.factory() as s:
            row = s.get(CertificateRow, certificate_id)
            assert row is not None
            return row

    def statuses(self) -> dict[str, str]:
        with self.factory() as s:
            return {
                serial: status
                for serial, status in s.execute(select(CertificateRow.serial, CertificateRow.status))
            }

    def crls(self) -> CrlPublisher:
        return CrlPublisher(self.factory, self.clock, self.signer_for, BASE_URL)

    def key_for(
        self, row: CertificateRow, key_index: int = 0, alg: Algorithm = Algorithm.RSA2048_SHA256
    ) -> object:
        return key_pool(alg)[key_index % 3]


# ----------------------------------------------------------------------------------- the web face


class JpkiWeb:
    """The app with the revocation routes and pages (as the lead wires them), on the test's database,
    with the test CA's key store, a TestClient and registered verifiers of each role."""

    def __init__(self, pki: Pki, container: Container, app: FastAPI, client: TestClient) -> None:
        self.pki = pki
        self.container = container
        self.app = app
        self.client = client
        self._tokens: dict[str, str] = {}

    @classmethod
    @contextmanager
    def start(cls, factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[JpkiWeb]:
        from jlis.auth import passwords
        from jlis.jpki import api as jpki_api
        from jlis.jpki import pages as jpki_pages
        from jlis.web import create_app, templating
        from jlis.web.deps import check_route_guards, iter_api_routes

        from ..web.support import FAST_HASHER, make_container, world_users

        previous = passwords.use_hasher(FAST_HASHER)
        added = "jpki" not in templating.TEMPLATE_DIRS
        templating.TEMPLATE_DIRS.setdefault("jpki", jpki_pages.TEMPLATE_DIR)
        try:
            pki = Pki(factory, clock, tmp_path / "keys")
            container = make_container(factory, clock, tmp_path)
            world_users(container)
            app = create_app(container)
            mounted = {getattr(r, "path", "") for r in iter_api_routes(app.routes)}
            if "/jpki/ocsp/{ca_kind}" not in mounted:  # until the lead wires the routes into create_app
                for router in (jpki_api.router, jpki_api.api_router, jpki_pages.router):
                    app.include_router(router)
            check_route_guards(app.routes)
            services = jpki_api.RevocationServices(container, keystore=pki.keystore)
            services.start()
            app.state.jpki_revocation = services
            with TestClient(app, base_url="https://testserver") as client:
                web = cls(pki, container, app, client)
                web.register_verifiers()
                yield web
            jpki_api.stop_services(app)
        finally:
            passwords.use_hasher(previous)
            if added:
                templating.TEMPLATE_DIRS.pop("jpki", None)

    def register_verifiers(self) -> None:
        from jlis.jpki.verifiers import VerifierRegistry

        with transaction(self.container.factory) as s:
            reg = VerifierRegistry(s, self.container.clock, actor="jlis-operator")
            for vid, sig, user in (
                ("bank-a", True, False),
                ("login-co", False, True),
                ("both-co", True, True),
            ):
                reg.register(
                    verifier_id=vid,
                    name=vid,
                    signature_verifier=sig,
                    user_verifier=user,
                    basis="主務大臣認定事業者",
                    agreement_no=f"A-{vid}",
                    agreement_date=dt.date(2026, 4, 1),
                    username=f"{vid}-api",
                    password=PASSWORD,
                )

    def token(self, username: str) -> str:
        if username not in self._tokens:
            r = self.client.post("/api/v1/token", json={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self._tokens[username] = r.json()["access_token"]
        return self._tokens[username]

    def headers(self, username: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}", **extra}

    def services(self) -> Any:
        return self.app.state.jpki_revocation

    def login(self, username: str) -> TestClient:
        from ..web.support import csrf_of

        c = self.client
        c.cookies.clear()
        token = csrf_of(c.get("/login").text)
        r = c.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return c
