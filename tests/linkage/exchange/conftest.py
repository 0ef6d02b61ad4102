"""Fixtures of the exchange tests: a small linkage world built through the real parts — people in the
national copy, members with request keys, codes acquired through J-LIS and the hub, and replicas
registered at the providers' middle servers."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth import passwords
from jlis.clock import FixedClock
from jlis.codes import random_resident_code
from jlis.db import transaction
from jlis.juki import bulk_load_national
from jlis.linkage.exchange.models import DisclosurePolicy, QueryRequest, sign_request
from jlis.linkage.exchange.service import ExchangeHub
from jlis.linkage.hub.codes import acquire_code
from jlis.linkage.hub.members import Member, MemberKind, MemberService
from jlis.linkage.middle.service import MiddleServer
from jlis.registry import ChangeReason, IdentityRecord

SECRET = b"exchange-test-secret-0123456789abcdef"
CHIYODA = "lg-131016"
SHINJUKU = "lg-131041"

MEMBERS = (
    ("nenkin", "日本年金機構", MemberKind.AGENCY),
    ("kyokai", "全国健康保険協会", MemberKind.AGENCY),
    ("jasso", "日本学生支援機構", MemberKind.AGENCY),
    (CHIYODA, "千代田区", MemberKind.MUNICIPALITY),
    (SHINJUKU, "新宿区", MemberKind.MUNICIPALITY),
    ("myna-portal", "マイナポータル", MemberKind.PORTAL),
)

TAX = {
    "tax_year": 2026,
    "total_income": 3_200_000,
    "taxable_income": 2_100_000,
    "income_levy": 210_000,
    "per_capita_levy": 5_000,
    "tax_exempt": False,
    "dependents": 1,
}
PENSION = {"pension_kind": "old_age_basic", "receiving": True, "annual_amount": 816_000}


def identity(code: str, at: dt.datetime) -> IdentityRecord:
    return IdentityRecord(
        resident_code=code,
        my_number="123456789018",
        lg_code="131016",
        family_name="山田",
        given_name="花子",
        family_kana="ヤマダ",
        given_kana="ハナコ",
        alias=None,
        former_surname=None,
        birth_date=dt.date(1960, 1, 1),
        sex="female",
        address="東京都千代田区千代田1番1号",
        status="active",
        reason=ChangeReason.INITIAL,
        change_date=dt.date(2026, 11, 1),
        recorded_at=at,
    )


@dataclass
class World:
    factory: sessionmaker[Session]
    clock: FixedClock
    key_dir: Path
    people: list[str]  # 住民票コード (J-LIS and the municipality only)
    members: dict[str, Member]
    keys: dict[str, bytes]
    codes: dict[tuple[str, str], str] = field(default_factory=dict)  # (member, 住民票コード) -> 符号
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def code(self, member_id: str, person: str) -> str:
        """The member's code for a person, acquired through the real chain on first use."""
        key = (member_id, person)
        if key not in self.codes:
            with transaction(self.factory) as s:
                self.codes[key] = acquire_code(s, self.clock, SECRET, self.members[member_id], person)
        return self.codes[key]

    def replica(self, provider: str, person: str, category: str, data: dict[str, object]) -> None:
        """Register a replica at the provider's middle server, linking the person there first."""
        code = self.code(provider, person)
        with transaction(self.factory) as s:
            middle = MiddleServer(s, self.clock, provider, actor="business-system")
            lid = middle.local_id_for(person)
            if middle.code_for(lid) is None:
                middle.store_code(lid, code)
            middle.register_replica(lid, category, data)

    def request(
        self,
        requester: str,
        person: str | None,
        *,
        affair: str,
        provider: str,
        category: str,
        items: Sequence[str],
        request_id: str | None = None,
        code: str | None = None,
        sent_at: dt.datetime | None = None,
        disclosure: DisclosurePolicy = DisclosurePolicy.IMMEDIATE,
        disclose_after: dt.date | None = None,
        key: bytes | None = None,
    ) -> QueryRequest:
        if code is None:
            assert person is not None
            code = self.code(requester, person)
        return sign_request(
            key if key is not None else self.keys[requester],
            requester,
            request_id=request_id or f"req-{next(self._ids):06d}",
            requester_code=code,
            affair=affair,
            provider_id=provider,
            category=category,
            items=items,
            sent_at=sent_at or self.clock.now(),
            disclosure=disclosure,
            disclose_after=disclose_after,
        )

    def hub(self, s: Session) -> ExchangeHub:
        return ExchangeHub(s, self.clock, SECRET, key_dir=self.key_dir)


@pytest.fixture(autouse=True)
def fast_passwords() -> Iterator[None]:
    previous = passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    passwords.use_hasher(previous)


@pytest.fixture
def world(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> World:
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    rng = random.Random(11)
    people: list[str] = []
    while len(people) < 4:
        code = str(random_resident_code(rng))
        if code not in people:
            people.append(code)
    with transaction(factory) as s:
        bulk_load_national(s, [identity(c, clock.now()) for c in people])
    members: dict[str, Member] = {}
    keys: dict[str, bytes] = {}
    with transaction(factory) as s:
        svc = MemberService(s, clock, actor="op-test", key_dir=key_dir)
        for mid, name, kind in MEMBERS:
            members[mid], keys[mid] = svc.register(mid, name, kind)
    return World(factory, clock, key_dir, people, members, keys)
