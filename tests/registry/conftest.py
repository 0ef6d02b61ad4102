from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.codes import NumberAuthority
from jlis.codes.derivation import derive_my_number
from jlis.codes.generate import random_resident_code
from jlis.masters import Geography, load_geography
from jlis.registry import MoveOutCertificate, PersonName, Placement, RegistryService, ResidentView, Sex
from jlis.registry.tables import HistoryRow

SECRET = b"test-secret-0123456789abcdef0123"
CHIYODA, SHINJUKU, YOKOHAMA_TSURUMI = "131016", "131041", "141011"


@pytest.fixture(scope="session")
def geo() -> Geography:
    return load_geography()


class Counter:
    """A municipal counter for tests: one session per action, like a clerk pressing 登録."""

    def __init__(
        self, factory: sessionmaker[Session], clock: FixedClock, geo: Geography, lg_code: str
    ) -> None:
        self.factory, self.clock, self.geo, self.lg_code = factory, clock, geo, lg_code
        self.rng = random.Random(7)

    @contextmanager
    def service(self, lg_code: str | None = None) -> Iterator[RegistryService]:
        with self.factory() as s, s.begin():
            yield self.service_on(s, lg_code)

    def service_on(self, s: Session, lg_code: str | None = None) -> RegistryService:
        """The counter's service on a session the caller holds (a group commit's, say)."""
        return RegistryService(
            s,
            lg_code=lg_code or self.lg_code,
            clock=self.clock,
            geography=self.geo,
            numbers=NumberAuthority(s, SECRET, self.clock),
            rng=self.rng,
            staff="staff-test",
        )

    def town(self, lg_code: str | None = None, index: int = 0) -> str:
        return self.geo.towns(lg_code or self.lg_code)[index].town_id

    def paper_certificate(
        self,
        *,
        family: str = "山田",
        given: str = "太郎",
        family_kana: str = "ヤマダ",
        given_kana: str = "タロウ",
        birth: dt.date = dt.date(1980, 4, 1),
        sex: Sex = Sex.MALE,
        from_lg: str = SHINJUKU,
        honseki_lg: str | None = None,
        nationality: str = "JP",
    ) -> MoveOutCertificate:
        code = random_resident_code(self.rng)
        return MoveOutCertificate(
            certificate_no=f"P-{code}",
            from_lg_code=from_lg,
            resident_code=code,
            my_number=derive_my_number(b"another-municipality-secret", code),
            name=PersonName(family, given, family_kana, given_kana),
            birth_date=birth,
            sex=sex,
            previous_address="東京都新宿区西新宿2丁目8番1号",
            planned_date=self.clock.today() - dt.timedelta(days=3),
            nationality=nationality,
            honseki="東京都千代田区千代田1番地" if honseki_lg and nationality == "JP" else None,
            honseki_lg_code=honseki_lg if nationality == "JP" else None,
        )

    def move_in(self, **kwargs: object) -> ResidentView:
        household_id = kwargs.pop("household_id", None)
        relationship = kwargs.pop("relationship", "世帯主")
        cert = self.paper_certificate(**kwargs)  # type: ignore[arg-type]
        with self.service() as svc:
            return svc.record_move_in(
                cert,
                Placement(self.town(), "1番1号", household_id=household_id, relationship=relationship),  # type: ignore[arg-type]
                moved_on=self.clock.today() - dt.timedelta(days=1),
            )


@pytest.fixture
def counter(factory: sessionmaker[Session], clock: FixedClock, geo: Geography) -> Counter:
    return Counter(factory, clock, geo, CHIYODA)


def history_reasons(factory: sessionmaker[Session], resident_id: int) -> list[tuple[int, str]]:
    """(version, reason) of each history row of the resident, in the order they were written."""
    with factory() as s:
        rows = s.execute(
            select(HistoryRow.version, HistoryRow.reason)
            .where(HistoryRow.resident_id == resident_id)
            .order_by(HistoryRow.id)
        )
        return [(version, reason) for version, reason in rows]


def move_out_to_tsurumi(svc: RegistryService, resident_id: int, **options: object) -> object:
    """A 転出 to 横浜市鶴見区 planned for today (``options``: record_move_out's others)."""
    return svc.record_move_out(
        resident_id,
        planned_date=svc.clock.today(),
        destination="横浜市鶴見区",
        destination_lg_code=YOKOHAMA_TSURUMI,
        **options,  # type: ignore[arg-type]
    )
