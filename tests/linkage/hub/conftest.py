"""Fixtures of the hub tests: the installation secret, a key directory, people in the national copy
(loaded the way the 初期移行 loads them) and the standard members."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth import passwords
from jlis.clock import FixedClock
from jlis.codes import random_resident_code
from jlis.db import transaction
from jlis.juki import bulk_load_national
from jlis.linkage.hub.members import Member, MemberKind, MemberService
from jlis.registry import ChangeReason, IdentityRecord

SECRET = b"linkage-test-secret-0123456789abcdef"
CHIYODA = "131016"
SHINJUKU = "131041"


def identity(code: str, at: dt.datetime, lg: str = CHIYODA, **extra: object) -> IdentityRecord:
    values: dict[str, object] = {
        "resident_code": code,
        "my_number": "123456789018",
        "lg_code": lg,
        "family_name": "山田",
        "given_name": "花子",
        "family_kana": "ヤマダ",
        "given_kana": "ハナコ",
        "alias": None,
        "former_surname": None,
        "birth_date": dt.date(1990, 1, 1),
        "sex": "female",
        "address": "東京都千代田区千代田1番1号",
        "status": "active",
        "reason": ChangeReason.INITIAL,
        "change_date": dt.date(2026, 11, 1),
        "recorded_at": at,
    }
    return IdentityRecord(**(values | extra))  # type: ignore[arg-type]


def resident_codes(n: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        out[str(random_resident_code(rng))] = None
    return list(out)


def load_national(factory: sessionmaker[Session], clock: FixedClock, codes: list[str]) -> None:
    with transaction(factory) as s:
        bulk_load_national(s, [identity(c, clock.now()) for c in codes])


@dataclass
class Linkage:
    factory: sessionmaker[Session]
    clock: FixedClock
    key_dir: Path
    people: list[str]
    nenkin: Member
    chiyoda: Member
    shinjuku: Member
    portal: Member
    keys: dict[str, bytes]

    def members(self, s: Session) -> MemberService:
        return MemberService(s, self.clock, actor="op-test", key_dir=self.key_dir)


@pytest.fixture(autouse=True)
def fast_passwords() -> Iterator[None]:
    # Cheap argon2 parameters: the tests make and sign in principals; production keeps the defaults.
    previous = passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    passwords.use_hasher(previous)


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    d = tmp_path / "keys"
    d.mkdir()
    return d


@pytest.fixture
def linkage(factory: sessionmaker[Session], clock: FixedClock, key_dir: Path) -> Iterator[Linkage]:
    people = resident_codes(20)
    load_national(factory, clock, people)
    keys: dict[str, bytes] = {}
    with transaction(factory) as s:
        svc = MemberService(s, clock, actor="op-test", key_dir=key_dir)
        made = {}
        for mid, name, kind in (
            ("nenkin", "日本年金機構", MemberKind.AGENCY),
            (f"lg-{CHIYODA}", "千代田区", MemberKind.MUNICIPALITY),
            (f"lg-{SHINJUKU}", "新宿区", MemberKind.MUNICIPALITY),
            ("myna-portal", "マイナポータル", MemberKind.PORTAL),
        ):
            made[mid], keys[mid] = svc.register(mid, name, kind)
    yield Linkage(
        factory,
        clock,
        key_dir,
        people,
        made["nenkin"],
        made[f"lg-{CHIYODA}"],
        made[f"lg-{SHINJUKU}"],
        made["myna-portal"],
        keys,
    )
