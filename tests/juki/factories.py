"""Builders for the network tests: a small world of municipalities with counters and one relay.

People are made the way a register makes them: a 転入 with a paper 転出証明書 from another
municipality. Their numbers are issued by the NumberAuthority first, as J-LIS would have issued them,
so that a later 住民票コード変更 can retire them.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.codes import NumberAuthority
from jlis.juki import build_relay
from jlis.masters import Geography
from jlis.messaging import Relay
from jlis.registry import MoveOutCertificate, PersonName, Placement, RegistryService, ResidentView, Sex

SECRET = b"juki-test-secret-0123456789abcdef"
CHIYODA = "131016"  # 東京都千代田区
SHINJUKU = "131041"  # 東京都新宿区
HACHIOJI = "132012"  # 東京都八王子市: where paper certificates come from
TSURUMI = "141011"  # 神奈川県横浜市鶴見区


class World:
    """Registers of several municipalities, one clock, one relay over the whole network."""

    def __init__(self, factory: sessionmaker[Session], clock: FixedClock, geo: Geography) -> None:
        self.factory, self.clock, self.geo = factory, clock, geo
        self.rng = random.Random(20261126)
        self.relay: Relay = build_relay(factory, clock, geo)
        self._names = 0

    @contextmanager
    def register(self, lg_code: str) -> Iterator[RegistryService]:
        """One counter action: a transaction committed when the block ends."""
        with self.factory() as s, s.begin():
            yield RegistryService(
                s,
                lg_code=lg_code,
                clock=self.clock,
                geography=self.geo,
                numbers=NumberAuthority(s, SECRET, self.clock),
                rng=self.rng,
                staff="staff-test",
            )

    def town(self, lg_code: str, index: int = 0) -> str:
        return self.geo.towns(lg_code)[index].town_id

    def certificate(
        self,
        s: Session,
        *,
        family: str = "山田",
        given: str = "太郎",
        family_kana: str = "ヤマダ",
        given_kana: str = "タロウ",
        birth: dt.date = dt.date(1980, 4, 1),
        sex: Sex = Sex.MALE,
        from_lg: str = HACHIOJI,
        honseki_lg: str | None = None,
    ) -> MoveOutCertificate:
        numbers = NumberAuthority(s, SECRET, self.clock)
        code = numbers.new_resident_code(self.rng, from_lg)
        self._names += 1
        return MoveOutCertificate(
            certificate_no=f"P-{code}",
            from_lg_code=from_lg,
            resident_code=code,
            my_number=numbers.my_number_for(code),
            name=PersonName(family, given, family_kana, given_kana),
            birth_date=birth,
            sex=sex,
            previous_address="東京都八王子市元本郷町三丁目24番1号",
            planned_date=self.clock.today() - dt.timedelta(days=3),
            honseki=self.geo.address_text(self.town(honseki_lg), "1番地") if honseki_lg else None,
            honseki_lg_code=honseki_lg,
        )

    def person(self, lg_code: str = CHIYODA, *, banchi: str = "1番1号", **kwargs: Any) -> ResidentView:
        """A person who moved in today with a paper certificate."""
        with self.register(lg_code) as reg:
            cert = self.certificate(reg.s, **kwargs)
            return reg.record_move_in(
                cert, Placement(self.town(lg_code), banchi), moved_on=self.clock.today()
            )

    def drain(self) -> int:
        return self.relay.drain()

    def count(self, table: Any, **where: Any) -> int:
        with self.factory() as s:
            stmt = select(func.count()).select_from(table)
            for col, value in where.items():
                stmt = stmt.where(table.c[col] == value)
            return int(s.execute(stmt).scalar_one())

    def row(self, table: Any, **where: Any) -> Any:
        with self.factory() as s:
            stmt = select(table)
            for col, value in where.items():
                stmt = stmt.where(table.c[col] == value)
            return s.execute(stmt).first()
