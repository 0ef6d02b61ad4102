"""Generated numbers are always valid, and reproducible from the injected randomness."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from jlis.codes.generate import (
    random_corporate_number,
    random_lg_code,
    random_my_number,
    random_resident_code,
)
from jlis.codes.models import CorporateNumber, LgCode, MyNumber, ResidentCode, identify

CASES = [
    (random_my_number, MyNumber),
    (random_resident_code, ResidentCode),
    (random_lg_code, LgCode),
    (random_corporate_number, CorporateNumber),
]


@given(st.randoms(use_true_random=False))
def test_every_generated_number_validates(rng: random.Random) -> None:
    for make, cls in CASES:
        number = make(rng)
        assert type(number) is cls
        assert cls.parse(number) == number  # type: ignore[attr-defined]
        result = identify(number)
        assert result.valid and result.kind is cls.kind


def test_same_seed_same_numbers() -> None:
    for make, _ in CASES:
        first, second = random.Random(42), random.Random(42)
        assert [make(first) for _ in range(20)] == [make(second) for _ in range(20)]


def test_generated_numbers_spread() -> None:
    rng = random.Random(1)
    assert len({random_my_number(rng) for _ in range(1000)}) == 1000
    prefectures = {random_lg_code(rng).pref_code for _ in range(2000)}
    assert prefectures == {f"{p:02d}" for p in range(1, 48)}
    assert {random_corporate_number(rng)[0] for _ in range(500)} == set("123456789")
