"""A running web face for tests: a Container on the test's database, the app, a TestClient, the
users of each kind and a few residents created through the register itself.

Imported by the web, registry and juki HTTP tests; each module wraps :meth:`WebWorld.start` in a
small fixture (fixtures imported across directories would be shadowed names to the linter).
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth import passwords
from jlis.auth import service as auth
from jlis.auth.models import PrincipalKind
from jlis.clock import FixedClock
from jlis.container import Container
from jlis.db import transaction
from jlis.messaging.tables import OutboxRow
from jlis.registry import MoveOutCertificate, PersonName, Placement, ResidentView, Sex
from jlis.registry.tables import HistoryRow, ResidentRow
from jlis.settings import Settings
from jlis.web import create_app

CHIYODA, SHINJUKU, YOKOHAMA_TSURUMI = "131016", "131041", "141011"
PASSWORD = "correct horse battery"
STAFF_A, STAFF_B, OPERATOR, AGENCY = "staff-131016", "staff-131041", "jlis-operator", "agency-nenkin"

# Cheap parameters: the tests sign in hundreds of times; production keeps argon2-cffi's defaults.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def make_container(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Container:
    """A Container whose engine and session factory are the test's (cached_property overrides)."""
    container = Container(Settings(data_dir=tmp_path / "jlis-data"), clock=clock, rng=random.Random(7))
    container.__dict__["engine"] = factory.kw["bind"]
    container.__dict__["factory"] = factory
    return container


class Residents:
    """Residents and certificates made through the register, as a counter would make them."""

    def __init__(self, container: Container, seed: int = 11) -> None:
        self.container = container
        self.factory = container.factory
        self.clock: FixedClock = container.clock  # type: ignore[assignment]
        self._rng = random.Random(seed)

    # -------------------------------------------------------------------------------- data helpers

    def town(self, lg_code: str = CHIYODA, index: int = 0) -> str:
        return self.container.geography.towns(lg_code)[index].town_id

    def certificate(
        self,
        *,
        family: str = "山田",
        given: str = "太郎",
        family_kana: str = "ヤマダ",
        given_kana: str = "タロウ",
        from_lg: str = SHINJUKU,
        birth: dt.date = dt.date(1980, 4, 1),
        sex: Sex = Sex.MALE,
    ) -> MoveOutCertificate:
        # Numbers come from the one national numbering (as they would have at birth elsewhere), so
        # a later 住民票コード変更 can retire them.
        with transaction(self.factory) as s:
            numbers = self.container.numbers(s)
            code = numbers.new_resident_code(self._rng, from_lg)
            my_number = numbers.my_number_for(code)
        return MoveOutCertificate(
            certificate_no=f"P-{code}",
            from_lg_code=from_lg,
            resident_code=code,
            my_number=my_number,
            name=PersonName(family, given, family_kana, given_kana),
            birth_date=birth,
            sex=sex,
            previous_address="東京都新宿区西新宿2丁目8番1号",
            planned_date=self.clock.today() - dt.timedelta(days=3),
        )

    def resident(
        self,
        lg_code: str = CHIYODA,
        *,
        household_id: int | None = None,
        relationship: str = "世帯主",
        **kwargs: Any,
    ) -> ResidentView:
        """A resident created the way a counter would: a 転入 with a paper 転出証明書."""
        from_lg = kwargs.pop("from_lg", SHINJUKU if lg_code != SHINJUKU else CHIYODA)
        cert = self.certificate(from_lg=from_lg, **kwargs)
        with transaction(self.factory) as s:
            svc = self.container.registry(s, lg_code, "seed")
            return svc.record_move_in(
                cert,
                Placement(self.town(lg_code), "1番1号", household_id, relationship),
                moved_on=self.clock.today() - dt.timedelta(days=10),
            )

    def counts(self) -> dict[str, int]:
        """Rows that a change writes: the register, its history and the outbox."""
        with self.factory() as s:
            return {
                t.__tablename__: s.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (ResidentRow, HistoryRow, OutboxRow)
            }

    def get_resident(self, resident_id: int) -> ResidentRow:
        with self.factory() as s:
            row = s.get(ResidentRow, resident_id)
            assert row is not None
            return row


class WebWorld(Residents):
    """The app on the test's database, with a TestClient and the users of :func:`world_users`."""

    def __init__(self, container: Container, client: TestClient) -> None:
        super().__init__(container)
        self.client = client
        self._tokens: dict[str, str] = {}

    @classmethod
    @contextmanager
    def start(
        cls, factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, **app_kwargs: Any
    ) -> Iterator[WebWorld]:
        previous = passwords.use_hasher(FAST_HASHER)
        try:
            container = make_container(factory, clock, tmp_path)
            world_users(container)
            # base_url https: the session cookie is Secure there, as it must be in production.
            with TestClient(create_app(container, **app_kwargs), base_url="https://testserver") as client:
                yield cls(container, client)
        finally:
            passwords.use_hasher(previous)

    # -------------------------------------------------------------------------------- API helpers

    def token(self, username: str) -> str:
        if username not in self._tokens:
            r = self.client.post("/api/v1/token", json={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self._tokens[username] = r.json()["access_token"]
        return self._tokens[username]

    def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}

    # -------------------------------------------------------------------------------- page helpers

    def login(self, username: str, client: TestClient | None = None) -> TestClient:
        c = client or self.client
        c.cookies.clear()
        page = c.get("/login")
        token = csrf_of(page.text)
        r = c.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return c

    def page_csrf(self, path: str) -> str:
        r = self.client.get(path)
        assert r.status_code == 200, r.text
        return csrf_of(r.text)


def world_users(container: Container) -> None:
    """One user of each kind (two staff, of two municipalities), all with :data:`PASSWORD`."""
    now = container.clock.now()
    with transaction(container.factory) as s:
        for username, kind, lg, agency in (
            (STAFF_A, PrincipalKind.MUNICIPAL_STAFF, CHIYODA, None),
            (STAFF_B, PrincipalKind.MUNICIPAL_STAFF, SHINJUKU, None),
            (OPERATOR, PrincipalKind.JLIS_OPERATOR, None, None),
            (AGENCY, PrincipalKind.AGENCY, None, "nenkin"),
        ):
            auth.create_principal(
                s,
                username=username,
                password=PASSWORD,
                kind=kind,
                display_name=username,
                now=now,
                lg_code=lg,
                agency_id=agency,
            )


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def assert_error(response: Any, status: int, field: str, rule: str | None = None) -> dict[str, Any]:
    """A 4xx JSON answer in the house format that names ``field`` (and ``rule`` when given)."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= {"error", "message", "field", "rule"}, body
    assert body["field"] == field, body
    if rule is not None:
        assert rule in body["rule"], body
    return body
