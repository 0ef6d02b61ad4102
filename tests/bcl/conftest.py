"""Fixtures of the BCL tests: a ``bcl_world`` with residents made through the real register (a 転入
with a paper certificate, 30 days before the test's clock), principals of each kind, and, for the
card tests, a small JPKI (``bcl_pki``) whose CA keys come from the session's key pool.

Names start with ``bcl_`` so as not to shadow fixtures of other directories."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth.models import Principal, PrincipalKind
from jlis.bcl.disasters import DisasterService
from jlis.clock import FixedClock
from jlis.codes import NumberAuthority
from jlis.db import transaction
from jlis.jpki.holder import HolderInfo
from jlis.jpki.profile import Algorithm
from jlis.jpki.tables import AUTH, CertificateRow
from jlis.masters import Geography, load_geography
from jlis.registry import MoveOutCertificate, PersonName, Placement, RegistryService, ResidentView, Sex

from ..jpki.revocation_fixtures import Pki, key_pool

SECRET = b"bcl-test-secret-0123456789abcdef"
CHIYODA = "131016"  # 東京都千代田区
SHINJUKU = "131041"  # 東京都新宿区
HACHIOJI = "132012"  # where paper certificates come from


@functools.cache
def geography() -> Geography:
    return load_geography()


def staff(lg_code: str = CHIYODA) -> Principal:
    return Principal(
        id=1,
        username=f"staff-{lg_code}",
        kind=PrincipalKind.MUNICIPAL_STAFF,
        display_name="窓口",
        lg_code=lg_code,
    )


OPERATOR = Principal(id=3, username="jlis-operator", kind=PrincipalKind.JLIS_OPERATOR, display_name="J-LIS")
AGENCY = Principal(
    id=4, username="agency-nenkin", kind=PrincipalKind.AGENCY, display_name="年金", agency_id="nenkin"
)

_KANA = ["ヤマダ", "タナカ", "スズキ", "サトウ", "イトウ", "ワタナベ", "ナカムラ", "コバヤシ"]
_KANJI = ["山田", "田中", "鈴木", "佐藤", "伊藤", "渡辺", "中村", "小林"]


class BclWorld:
    """Registers of a few municipalities, one clock, and the BCL services on the same database."""

    def __init__(self, factory: sessionmaker[Session], clock: FixedClock) -> None:
        self.factory, self.clock, self.geo = factory, clock, geography()
        self.rng = random.Random(20261126)
        self._n = itertools.count()

    @contextmanager
    def register(self, lg_code: str = CHIYODA) -> Iterator[RegistryService]:
        with transaction(self.factory) as s:
            yield RegistryService(
                s,
                lg_code=lg_code,
                clock=self.clock,
                geography=self.geo,
                numbers=NumberAuthority(s, SECRET, self.clock),
                rng=self.rng,
                staff="staff-test",
            )

    def town(self, lg_code: str = CHIYODA, index: int = 0) -> str:
        return self.geo.towns(lg_code)[index].town_id

    def person(
        self,
        lg_code: str = CHIYODA,
        *,
        town: int = 0,
        banchi: str = "1番1号",
        household_id: int | None = None,
        relationship: str = "世帯主",
        days_ago: int = 30,
        given: str = "太郎",
        given_kana: str = "タロウ",
        birth: dt.date = dt.date(1980, 4, 1),
    ) -> ResidentView:
        """A person who moved in ``days_ago`` days before the clock, with a paper certificate."""
        n = next(self._n)
        with self.register(lg_code) as reg:
            numbers = NumberAuthority(reg.s, SECRET, self.clock)
            code = numbers.new_resident_code(self.rng, HACHIOJI)
            cert = MoveOutCertificate(
                certificate_no=f"P-{code}",
                from_lg_code=HACHIOJI,
                resident_code=code,
                my_number=numbers.my_number_for(code),
                name=PersonName(_KANJI[n % 8], given, _KANA[n % 8], given_kana),
                birth_date=birth,
                sex=Sex.MALE,
                previous_address="東京都八王子市元本郷町三丁目24番1号",
                planned_date=self.clock.today() - dt.timedelta(days=days_ago + 1),
            )
            return reg.record_move_in(
                cert,
                Placement(self.town(lg_code, town), banchi, household_id, relationship),
                moved_on=self.clock.today() - dt.timedelta(days=days_ago),
            )

    @contextmanager
    def disasters(
        self, principal: Principal | None = None, lg_code: str = CHIYODA
    ) -> Iterator[DisasterService]:
        with transaction(self.factory) as s:
            yield DisasterService(s, self.clock, self.geo, principal or staff(lg_code))

    def declare(self, lg_code: str = CHIYODA, *, towns: tuple[str, ...] = (), days_ago: int = 2) -> str:
        from jlis.bcl.models import AreaPart

        with self.disasters(staff(lg_code)) as svc:
            view = svc.declare(
                name="令和8年11月豪雨",
                cause="heavy_rain",
                occurred_on=self.clock.today() - dt.timedelta(days=days_ago),
                area=[AreaPart(lg_code, towns)],
            )
        return view.id


@pytest.fixture
def bcl_world(factory: sessionmaker[Session], clock: FixedClock) -> BclWorld:
    return BclWorld(factory, clock)


class BclPki:
    """The JPKI CAs of the test database, issuing authentication certificates to register residents."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki

    def auth_certificate(self, resident: ResidentView, card_id: str = "card-1") -> CertificateRow:
        who = HolderInfo(
            resident.resident_code,
            resident.lg_code,
            resident.name.family,
            resident.name.given,
            resident.sex.value,
            resident.birth_date,
            resident.address.text,
        )
        return self.pki.issue(AUTH, who, card_id=card_id, key_index=1)


@pytest.fixture
def bcl_pki(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> BclPki:
    ca_keys = itertools.cycle(key_pool(Algorithm.RSA2048_SHA256))

    def pooled(alg: Any) -> Any:
        return next(ca_keys)

    monkeypatch.setattr("jlis.jpki.keystore.generate_private_key", pooled)
    return BclPki(Pki(factory, clock, tmp_path / "keys"))
