from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.masters import Geography, load_geography

from .factories import World


@pytest.fixture(scope="session")
def geo() -> Geography:
    return load_geography()


@pytest.fixture
def world(factory: sessionmaker[Session], clock: FixedClock, geo: Geography) -> World:
    return World(factory, clock, geo)
