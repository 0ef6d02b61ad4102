"""Wiring: builds the long-lived parts of a running jlis (engine, clock, masters, secrets) from
settings, and hands out services bound to a session. The CLI, the web app, the demo and the
benchmarks all start here, so they run the same code."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import Clock, SystemClock
from jlis.codes import NumberAuthority, load_or_create_secret
from jlis.db import make_engine, make_session_factory
from jlis.masters import Geography, ProvisionTable, load_geography, load_provision_table
from jlis.registry import RegistryService
from jlis.settings import Settings

if TYPE_CHECKING:
    from jlis.jpki.keystore import KeyStore


@dataclass
class Container:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.SystemRandom)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.resolved_database_url)

    @cached_property
    def factory(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def geography(self) -> Geography:
        return load_geography()

    @cached_property
    def provision_table(self) -> ProvisionTable:
        return load_provision_table()

    @cached_property
    def secret(self) -> bytes:
        return load_or_create_secret(self.settings.resolved_key_dir / self.settings.secret_file)

    @cached_property
    def keystore(self) -> KeyStore:
        """Where the CA and OCSP responder keys live: encrypted files, or a PKCS#11 token."""
        from jlis.jpki.keystore import keystore_from_settings

        return keystore_from_settings(self.settings)

    def numbers(self, session: Session) -> NumberAuthority:
        return NumberAuthority(session, self.secret, self.clock)

    def registry(self, session: Session, lg_code: str, staff: str) -> RegistryService:
        return RegistryService(
            session,
            lg_code=lg_code,
            clock=self.clock,
            geography=self.geography,
            numbers=self.numbers(session),
            rng=self.rng,
            staff=staff,
        )
