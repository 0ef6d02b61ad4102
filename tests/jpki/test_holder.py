"""The holder's data in the SubjectAltName otherNames (facts §3.3) and the romaji of their place."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jlis.errors import InvalidInput
from jlis.jpki import holder as h
from jlis.jpki.holder import HolderInfo, birth_value, era_code, san_values, sex_code
from jlis.registry.events import IdentityRecord
from jlis.registry.models import Address, ChangeReason, PersonName, Sex

D = dt.date


@pytest.mark.parametrize(
    ("day", "code"),
    [
        (D(1868, 1, 24), "0"),
        (D(1868, 1, 25), "1"),  # 明治 (from 慶応4年1月1日)
        (D(1912, 7, 29), "1"),
        (D(1912, 7, 30), "2"),  # 大正
        (D(1926, 12, 24), "2"),
        (D(1926, 12, 25), "3"),  # 昭和
        (D(1989, 1, 7), "3"),
        (D(1989, 1, 8), "4"),  # 平成
        (D(2019, 4, 30), "4"),
        (D(2019, 5, 1), "5"),  # 令和
    ],
)
def test_era_boundaries(day: dt.date, code: str) -> None:
    assert era_code(day) == code


def test_birth_value_uses_the_western_year() -> None:
    assert birth_value(D(1990, 1, 2)) == "419900102"  # the example of facts §3.3
    assert birth_value(D(2020, 12, 31)) == "520201231"


def test_sex_codes_are_not_iso_5218() -> None:
    assert sex_code("male") == "1"
    assert sex_code(Sex.FEMALE) == "2"
    assert sex_code("") == "3"
    assert sex_code("9") == "3"


def test_san_values(jpki_holder: HolderInfo) -> None:
    values = san_values(jpki_holder)
    assert list(values) == list(h.SAN_OIDS)
    assert values[h.OID_NAME] == "高橋\u3000吉郎"
    assert values[h.OID_NAME_MAP] == "10010"
    assert values[h.OID_SEX] == "1"
    assert values[h.OID_BIRTH] == "419900217"
    assert values[h.OID_ADDRESS] == "東京都清瀬市松山１丁目２番３号"
    assert values[h.OID_ADDRESS_MAP] == "0" * len(values[h.OID_ADDRESS])


def test_single_name_has_no_space(jpki_holder: HolderInfo) -> None:
    from dataclasses import replace

    values = san_values(replace(jpki_holder, family_name="GARCIA", given_name=""))
    assert values[h.OID_NAME] == "ＧＡＲＣＩＡ" and values[h.OID_NAME_MAP] == "000000"


def test_address_longer_than_200_is_refused(jpki_holder: HolderInfo) -> None:
    from dataclasses import replace

    san_values(replace(jpki_holder, address="東" * 200))
    with pytest.raises(InvalidInput) as err:
        san_values(replace(jpki_holder, address="東" * 201))
    assert (err.value.field, err.value.rule) == ("住所", "at most 200 characters")
    with pytest.raises(InvalidInput):
        san_values(replace(jpki_holder, address=" "))


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300))
def test_utf8string_der_round_trip(text: str) -> None:
    der = h.der_utf8string(text)
    assert der[0] == 0x0C
    assert h.parse_der_utf8string(der) == text


def test_from_identity_record() -> None:
    record = IdentityRecord(
        resident_code="12345678901",
        my_number="123456789018",
        lg_code="132217",
        family_name="山田",
        given_name="花子",
        family_kana="ヤマダ",
        given_kana="ハナコ",
        alias=None,
        former_surname=None,
        birth_date=D(1985, 3, 3),
        sex="female",
        address="東京都清瀬市松山1丁目1番1号",
        status="active",
        reason=ChangeReason.INITIAL,
        change_date=D(2026, 1, 1),
        recorded_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    info = h.from_resident(record)
    assert info == HolderInfo(
        "12345678901", "132217", "山田", "花子", "female", D(1985, 3, 3), record.address
    )
    assert info.name == "山田\u3000花子"


def test_from_resident_view_and_row_shapes() -> None:
    view = SimpleNamespace(
        resident_code="12345678901",
        lg_code="131016",
        name=PersonName("佐藤", "一郎", "サトウ", "イチロウ"),
        sex=Sex.MALE,
        birth_date=D(1970, 5, 5),
        address=Address("131016", "131016100000101", "1番1号", "東京都千代田区千代田1番1号"),
    )
    assert h.from_resident(view).address == "東京都千代田区千代田1番1号"
    assert h.from_resident(view).sex == "male"
    row = SimpleNamespace(
        resident_code="12345678901",
        lg_code="131016",
        family_name="佐藤",
        given_name="一郎",
        sex="male",
        birth_date=D(1970, 5, 5),
        address_text="東京都千代田区千代田1番1号",
    )
    assert h.from_resident(row) == h.from_resident(view)


@pytest.mark.parametrize(
    ("lg_code", "pref", "muni"),
    [
        ("132217", "Tokyo", "Kiyose-shi"),
        ("131016", "Tokyo", "Chiyoda-ku"),
        ("011011", "Hokkaido", "Sapporo-shi Chuo-ku"),
        ("271004", "Osaka", "Osaka-shi"),
        ("374067", "Kagawa", "Manno-cho"),
        ("105236", "Gunma", "Chiyoda-machi"),
        ("203076", "Nagano", "Kitaaiki-mura"),
    ],
)
def test_locality_romaji(lg_code: str, pref: str, muni: str) -> None:
    place = h.locality(lg_code)
    assert (place.prefecture, place.municipality) == (pref, muni)


def test_unknown_municipality_is_refused() -> None:
    with pytest.raises(InvalidInput):
        h.locality("999999")


def test_romaji_suffixes() -> None:
    assert h.municipality_romaji("大和村", "ヤマトソン") == "Yamato-son"
    assert h.prefecture_romaji("京都府", "キョウトフ") == "Kyoto"
    assert h.prefecture_romaji("愛知県", "アイチケン") == "Aichi"
