"""Fixtures of the certificate-server tests: residents made through the real register (a 転入 with
a paper 転出証明書, 本籍 included), the real juki relay for the 戸籍の附票, and the server acting as
the issuance center (a J-LIS principal) or as municipal staff.

A resident made today is refused at the kiosk (the day of a 転入): :meth:`IssuerWorld.next_day`
moves the clock on, as the tests that expect an issuance do after making their residents.
"""

from __future__ import annotations

import datetime as dt
import itertools
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth.models import Principal, PrincipalKind
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.juki.network import build_relay
from jlis.kiosk.content import CertificateContent, CertificateKind
from jlis.kiosk.issuer.koseki import KosekiBook, NewMember
from jlis.kiosk.issuer.models import IssueOptions, KosekiEvent
from jlis.kiosk.issuer.seals import SealRegister
from jlis.kiosk.issuer.server import CertificateServer
from jlis.registry import MoveOutCertificate, PersonName, Placement, ResidentView, Sex

from ...web.support import CHIYODA, SHINJUKU, YOKOHAMA_TSURUMI, Residents, make_container

__all__ = ["CENTER", "CHIYODA", "SHINJUKU", "YOKOHAMA_TSURUMI", "IssuerWorld", "png", "staff"]

CENTER = Principal(
    id=0, username="kiosk-center", kind=PrincipalKind.JLIS_OPERATOR, display_name="証明書交付センター"
)
HONSEKI_CHIYODA = "東京都千代田区千代田1番地"


def staff(lg_code: str = CHIYODA) -> Principal:
    return Principal(
        id=1,
        username=f"staff-{lg_code}",
        kind=PrincipalKind.MUNICIPAL_STAFF,
        display_name="窓口",
        lg_code=lg_code,
    )


def png(width: int = 128, height: int = 128, *, gray: int = 200) -> bytes:
    """A real grayscale PNG made with the standard library (no image library in the test)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + bytes([gray]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


class IssuerWorld(Residents):
    def __init__(self, container: Any) -> None:
        super().__init__(container)
        self._ids = itertools.count(1)

    def next_day(self, days: int = 1) -> None:
        self.clock.advance(days=days)

    def person(
        self,
        lg_code: str = CHIYODA,
        *,
        family: str = "山田",
        given: str = "太郎",
        family_kana: str = "ヤマダ",
        given_kana: str = "タロウ",
        birth: dt.date = dt.date(1980, 4, 1),
        sex: Sex = Sex.MALE,
        honseki_lg: str | None = None,
        honseki: str = HONSEKI_CHIYODA,
        household_id: int | None = None,
        relationship: str = "世帯主",
        banchi: str = "1番1号",
    ) -> ResidentView:
        """A resident made by a 転入 today (with a 本籍 when ``honseki_lg`` is given)."""
        from_lg = SHINJUKU if lg_code != SHINJUKU else CHIYODA
        with transaction(self.factory) as s:
            numbers = self.container.numbers(s)
            code = numbers.new_resident_code(self._rng, from_lg)
            my_number = numbers.my_number_for(code)
        cert = MoveOutCertificate(
            certificate_no=f"P-{code}",
            from_lg_code=from_lg,
            resident_code=code,
            my_number=my_number,
            name=PersonName(family, given, family_kana, given_kana),
            birth_date=birth,
            sex=sex,
            previous_address="東京都新宿区西新宿2丁目8番1号",
            planned_date=self.clock.today() - dt.timedelta(days=3),
            honseki=honseki if honseki_lg else None,
            honseki_lg_code=honseki_lg,
        )
        with transaction(self.factory) as s:
            return self.container.registry(s, lg_code, "seed").record_move_in(
                cert,
                Placement(self.town(lg_code), banchi, household_id, relationship),
                moved_on=self.clock.today() - dt.timedelta(days=2),
            )

    def drain(self) -> int:
        """Deliver the outbox through the juki network (the 附票 reaches the 本籍地)."""
        return build_relay(self.factory, self.clock, self.container.geography).drain()

    def registry_factory(self) -> Any:
        return self.container.registry

    def server(
        self, s: Session, lg_code: str = CHIYODA, principal: Principal = CENTER, **kw: Any
    ) -> CertificateServer:
        return CertificateServer(
            s,
            self.clock,
            lg_code,
            principal=principal,
            registry=self.container.registry,
            geography=self.container.geography,
            **kw,
        )

    def request_id(self) -> str:
        return f"req-{next(self._ids):08d}"

    def issue(
        self,
        resident: ResidentView | str,
        kind: CertificateKind,
        options: IssueOptions | None = None,
        *,
        lg_code: str | None = None,
        request_id: str | None = None,
        principal: Principal = CENTER,
        now: dt.datetime | None = None,
    ) -> CertificateContent:
        code = resident if isinstance(resident, str) else resident.resident_code
        lg = lg_code or (CHIYODA if isinstance(resident, str) else resident.lg_code)
        with transaction(self.factory) as s:
            return self.server(s, lg, principal).issue_content(
                code,
                kind,
                options or IssueOptions(),
                request_id or self.request_id(),
                now or self.clock.now(),
            )

    def register_seal(self, resident: ResidentView, image: bytes | None = None) -> str:
        with transaction(self.factory) as s:
            reg = SealRegister(
                s, self.clock, resident.lg_code, staff(resident.lg_code), self.container.registry
            )
            return reg.register(resident.resident_code, image or png()).registration_no

    def koseki_for(
        self, *people: ResidentView, lg_code: str = CHIYODA, honseki: str = HONSEKI_CHIYODA
    ) -> int:
        """A 戸籍 at ``lg_code`` with ``people`` (the first is the 筆頭者)."""
        members = [
            NewMember(
                p.name.family,
                p.name.given,
                p.birth_date,
                p.sex,
                "山田\u3000一郎",
                "山田\u3000花子",
                "長男" if p.sex is Sex.MALE else "長女",
                p.resident_code,
                (KosekiEvent(p.birth_date, "出生", "【出生地】東京都千代田区"),),
            )
            for p in people
        ]
        with transaction(self.factory) as s:
            book = KosekiBook(s, self.clock, lg_code, staff(lg_code))
            return book.create(honseki, made_on=dt.date(2005, 5, 5), made_reason="婚姻", members=members).id

    def count(self, table: type) -> int:
        with self.factory() as s:
            return s.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.fixture
def world(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[IssuerWorld]:
    container = make_container(factory, clock, tmp_path)
    yield IssuerWorld(container)


@contextmanager
def session_of(world: IssuerWorld) -> Iterator[Session]:
    with transaction(world.factory) as s:
        yield s
