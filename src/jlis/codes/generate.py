"""Random valid numbers, for test data and seeding. The caller injects the randomness, so a seeded
``random.Random`` gives a reproducible sequence.

A 住民票コード is random by law (10 random digits); a real 個人番号 is not (it is derived, see
:mod:`jlis.codes.derivation`), so :func:`random_my_number` is for test data only.
"""

from __future__ import annotations

import random

from jlis.codes.checkdigits import (
    corporate_number_check_digit,
    lg_code_check_digit,
    mynumber_check_digit,
    resident_code_check_digit,
)
from jlis.codes.models import CorporateNumber, LgCode, MyNumber, ResidentCode


def random_my_number(rng: random.Random) -> MyNumber:
    body = f"{rng.randrange(10**11):011d}"
    return MyNumber._trusted(f"{body}{mynumber_check_digit(body)}")


def random_resident_code(rng: random.Random) -> ResidentCode:
    body = f"{rng.randrange(10**10):010d}"
    return ResidentCode._trusted(f"{body}{resident_code_check_digit(body)}")


def random_lg_code(rng: random.Random) -> LgCode:
    """A well-formed code of a random prefecture (01-47); not necessarily a municipality that exists."""
    body = f"{rng.randint(1, 47):02d}{rng.randrange(1000):03d}"
    return LgCode._trusted(f"{body}{lg_code_check_digit(body)}")


def random_corporate_number(rng: random.Random) -> CorporateNumber:
    body = f"{rng.randrange(10**12):012d}"
    return CorporateNumber._trusted(f"{corporate_number_check_digit(body)}{body}")
