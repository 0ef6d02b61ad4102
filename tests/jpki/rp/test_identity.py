from __future__ import annotations

import datetime as dt

import pytest

from jlis.jpki.rp.errors import MalformedMessage
from jlis.jpki.rp.identity import Era, basic4_from_certificate, decode_birth

from .conftest import Pki, default_holder


@pytest.mark.parametrize(
    ("raw", "era", "date"),
    [
        ("419900102", Era.HEISEI, dt.date(1990, 1, 2)),
        ("519900102", Era.REIWA, dt.date(1990, 1, 2)),  # the code is kept as given; the year is western
        ("319450815", Era.SHOWA, dt.date(1945, 8, 15)),
        ("119000000", Era.MEIJI, None),  # 不詳 month and day
        ("020010203", Era.UNKNOWN, dt.date(2001, 2, 3)),
    ],
)
def test_birth_date_with_era(raw: str, era: Era, date: dt.date | None) -> None:
    assert decode_birth(raw) == (era, date)


@pytest.mark.parametrize("raw", ["19900102", "619900102", "4199001O2", ""])
def test_bad_birth_dates(raw: str) -> None:
    with pytest.raises(MalformedMessage):
        decode_birth(raw)


def test_substitution_maps_are_returned(pki: Pki) -> None:
    holder = default_holder()
    holder["1.2.392.200149.8.5.5.2"] = "00100"
    holder["1.2.392.200149.8.5.5.3"] = "2"
    b4 = basic4_from_certificate(pki.leaf(pki.root("sign"), holder=holder).cert)
    assert b4.name_substitution == "00100" and b4.name_substituted
    assert not b4.address_substituted
    assert b4.sex == "female" and b4.sex_code == "2"
    assert b4.to_dict()["birth_era"] == "heisei"


def test_a_map_of_the_wrong_length_is_refused(pki: Pki) -> None:
    holder = default_holder()
    holder["1.2.392.200149.8.5.5.6"] = "0"
    with pytest.raises(MalformedMessage, match="one 0/1 per character"):
        basic4_from_certificate(pki.leaf(pki.root("sign"), holder=holder).cert)


def test_an_authentication_certificate_has_no_basic4(pki: Pki) -> None:
    with pytest.raises(MalformedMessage, match="only a signing certificate"):
        basic4_from_certificate(pki.leaf(pki.root("auth")).cert)
