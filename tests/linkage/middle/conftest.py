"""Fixtures of the middle-server tests: a small seeded population of 千代田区 (register, national
copy), the linkage members, and a way to open a middle server or the register in one transaction."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.codes import NumberAuthority
from jlis.db import transaction
from jlis.linkage.hub.members import MemberKind, MemberService
from jlis.linkage.middle.service import MiddleServer
from jlis.masters import Geography, load_geography
from jlis.registry import RegistryService
from jlis.registry.service import active_codes
from jlis.seed import Seeder

SECRET = b"middle-test-secret-0123456789abcdef"
CHIYODA = "131016"
SHINJUKU = "131041"
LG = f"lg-{CHIYODA}"


@pytest.fixture(scope="session")
def geo() -> Geography:
    return load_geography()


@dataclass
class World:
    factory: sessionmaker[Session]
    clock: FixedClock
    geo: Geography
    key_dir: Path

    @contextmanager
    def middle(self, member_id: str = LG, **kwargs: object) -> Iterator[MiddleServer]:
        with transaction(self.factory) as s:
            yield MiddleServer(s, self.clock, member_id, actor="staff-test", **kwargs)  # type: ignore[arg-type]

    @contextmanager
    def registry(self, lg_code: str = CHIYODA, staff: str = "middle-sync") -> Iterator[RegistryService]:
        with transaction(self.factory) as s:
            yield RegistryService(
                s,
                lg_code=lg_code,
                clock=self.clock,
                geography=self.geo,
                numbers=NumberAuthority(s, SECRET, self.clock),
                rng=random.Random(3),
                staff=staff,
            )

    def residents(self, lg_code: str = CHIYODA) -> list[str]:
        with self.factory() as s:
            return sorted(active_codes(s, lg_code))

    def register_members(self) -> None:
        with transaction(self.factory) as s:
            svc = MemberService(s, self.clock, actor="op-test", key_dir=self.key_dir)
            svc.register(LG, "千代田区", MemberKind.MUNICIPALITY)
            svc.register(f"lg-{SHINJUKU}", "新宿区", MemberKind.MUNICIPALITY)
            svc.register("nenkin", "日本年金機構", MemberKind.AGENCY)


@pytest.fixture
def world(factory: sessionmaker[Session], clock: FixedClock, geo: Geography, tmp_path: Path) -> World:
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    return World(factory, clock, geo, key_dir)


@pytest.fixture
def populated(world: World) -> World:
    """40 residents of 千代田区 in the register and in the national copy."""
    Seeder(world.factory, clock=world.clock, geography=world.geo, secret=SECRET).run([CHIYODA], 40, seed=4)
    return world
