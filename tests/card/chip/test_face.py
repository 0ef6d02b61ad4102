from __future__ import annotations

import datetime as dt
import struct
import zlib

import pytest

from jlis.card.chip import face as F
from jlis.errors import InvalidInput


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (dt.date(2020, 2, 24), "020224"),  # 令和2年 (the example of the open-source readers)
        (dt.date(2019, 5, 1), "010501"),  # 令和元年, first day
        (dt.date(2019, 4, 30), "310430"),  # 平成31年, last day
        (dt.date(1989, 1, 8), "010108"),  # 平成元年
        (dt.date(1989, 1, 7), "640107"),  # 昭和64年
        (dt.date(1926, 12, 25), "011225"),  # 昭和元年
        (dt.date(1926, 12, 24), "151224"),  # 大正15年
        (dt.date(1912, 7, 29), "450729"),  # 明治45年
    ],
)
def test_era(day: dt.date, expected: str) -> None:
    assert F.era_yymmdd(day) == expected


def test_verification_number_b(kit: type) -> None:
    face = kit.make_face(
        birth_date=dt.date(2020, 2, 24), expires_on=dt.date(2025, 2, 24), security_code="0042"
    )
    assert F.verification_number_b(face) == "02022420250042"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"my_number": "123456789012"}, "個人番号"),
        ({"name": " "}, "name"),
        ({"address": ""}, "address"),
        ({"sex": 0}, "sex"),
        ({"security_code": "12a4"}, "security_code"),
        ({"expires_on": dt.date(1980, 1, 1)}, "expires_on"),
        ({"birth_date": dt.date(1850, 1, 1), "expires_on": dt.date(1900, 1, 1)}, "birth_date"),
        ({"resident_code": "123"}, "resident_code"),
        ({"photo": bytes(20001)}, "photo"),
    ],
)
def test_face_validation(kit: type, change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        kit.make_face(**change)
    assert err.value.field == field


def test_text_encodings(kit: type) -> None:
    face = kit.make_face(name_kana="ヤマダ ハナコ", former_surname="田中", alias=None)
    assert F.my_number_ef(face.my_number) == b"\xd0\x0c123456789018\xff\xff\xff"
    assert F.parse_my_number(F.my_number_ef(face.my_number)) == "123456789018"
    attributes = F.parse_text_attributes(F.text_attributes_ef(face))
    assert attributes == F.TextAttributes(
        name="山田 花子",
        address="東京都千代田区霞が関二丁目1番2号",
        birth_date=dt.date(1990, 4, 1),
        sex=2,
        name_kana="ヤマダ ハナコ",
        former_surname="田中",
    )
    moved = F.parse_text_attributes(F.replace_address(F.text_attributes_ef(face), "新住所"))
    assert moved.address == "新住所" and moved.name_kana == "ヤマダ ハナコ"
    with pytest.raises(ValueError):
        F.parse_my_number(b"\xd0\x0212")


def test_signature_block(kit: type) -> None:
    face = kit.make_face()
    mn = F.my_number_ef(face.my_number)
    attributes = F.text_attributes_ef(face)
    key = kit.ISSUER_KEY
    block = F.text_signature_ef(mn, attributes, key)
    assert block.startswith(b"\xff\x30")
    assert F.check_text_signature(mn, attributes, block, key.public_key())
    other = F.text_attributes_ef(kit.make_face(name="別人"))
    assert not F.check_text_signature(mn, other, block, key.public_key())
    assert not F.check_text_signature(mn, attributes, block[:-1] + bytes([block[-1] ^ 1]), key.public_key())
    assert not F.check_text_signature(mn, attributes, b"garbage", key.public_key())
    unsigned = F.text_signature_ef(mn, attributes, None)
    assert not F.check_text_signature(mn, attributes, unsigned, key.public_key())


def test_visual_face_is_signed(kit: type) -> None:
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    face = kit.make_face(photo=b"\x89PNG fake")
    visual = F.parse_visual_face(F.visual_face_ef(face, kit.ISSUER_KEY))
    assert visual.photo == b"\x89PNG fake"
    public = load_der_public_key(visual.issuer_public_key)
    assert F.verify_issuer_signature(public, visual.signature, visual.signed_data)  # type: ignore[arg-type]
    assert not F.verify_issuer_signature(public, visual.signature, visual.signed_data + b"x")  # type: ignore[arg-type]


def test_placeholder_png_is_valid_and_deterministic() -> None:
    png = F.placeholder_png("name:山田", 8, 4)
    assert png == F.placeholder_png("name:山田", 8, 4)
    assert png != F.placeholder_png("name:田中", 8, 4)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # Walk the chunks: lengths, CRCs, and the image data inflates to height × (1 + width) bytes.
    i, chunks = 8, {}
    while i < len(png):
        (length,) = struct.unpack(">I", png[i : i + 4])
        kind, data = png[i + 4 : i + 8], png[i + 8 : i + 8 + length]
        (crc,) = struct.unpack(">I", png[i + 8 + length : i + 12 + length])
        assert crc == zlib.crc32(kind + data)
        chunks[kind] = data
        i += 12 + length
    assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (8, 4)
    assert len(zlib.decompress(chunks[b"IDAT"])) == 4 * 9
