from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jlis.card.chip import apdu as A
from jlis.card.chip.apdu import ApduError, Command, Response


def test_builders_match_the_documented_bytes() -> None:
    assert (
        A.select_df(bytes.fromhex("D392F000260100000001")).hex().upper() == "00A4040C0AD392F000260100000001"
    )
    assert A.select_ef(0x001B).hex().upper() == "00A4020C02001B"
    assert A.read_binary(0x0123, 256).hex().upper() == "00B0012300"
    assert A.verify(None).hex().upper() == "00200080"
    assert A.verify(b"1234").hex().upper() == "002000800431323334"
    assert A.change_reference_data(b"9876").hex().upper() == "002401800439383736"
    assert A.compute_digital_signature(b"\x01\x02").hex().upper() == "802A0080020102" + "00"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("00B00000", Command(0, 0xB0, 0, 0)),
        ("00B0000010", Command(0, 0xB0, 0, 0, le=16)),
        ("00B0000000", Command(0, 0xB0, 0, 0, le=256)),
        ("0020008002AABB", Command(0, 0x20, 0, 0x80, b"\xaa\xbb")),
        ("802A008001AA00", Command(0x80, 0x2A, 0, 0x80, b"\xaa", 256)),
    ],
)
def test_parse_cases(raw: str, expected: Command) -> None:
    assert Command.parse(bytes.fromhex(raw)) == expected


@given(
    cla=st.integers(0, 255),
    ins=st.integers(0, 255),
    p1=st.integers(0, 255),
    p2=st.integers(0, 255),
    data=st.binary(max_size=255),
    le=st.none() | st.integers(1, 256),
)
def test_round_trip(cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None) -> None:
    cmd = Command(cla, ins, p1, p2, data, le)
    assert Command.parse(cmd.to_bytes()) == cmd


@given(st.binary(max_size=300))
def test_parse_never_crashes(raw: bytes) -> None:
    try:
        Command.parse(raw)
    except ApduError as exc:
        assert exc.sw == 0x6700


def test_builder_limits() -> None:
    with pytest.raises(ValueError):
        A.read_binary(0x8000, 1)
    with pytest.raises(ValueError):
        Command(0, 0, 0, 0, bytes(256)).to_bytes()
    with pytest.raises(ValueError):
        Command(0, 0, 0, 0, le=257).to_bytes()


def test_response() -> None:
    r = Response.parse(b"\x01\x02\x63\xc2")
    assert r.data == b"\x01\x02" and r.sw == 0x63C2 and not r.ok
    assert A.is_retries_sw(r.sw) and not A.is_retries_sw(0x6983)
    assert Response(b"", 0x9000).to_bytes() == b"\x90\x00"
    assert A.retries_sw(3) == 0x63C3
    with pytest.raises(ValueError):
        Response.parse(b"\x90")
