from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jlis.card.chip import tlv


def test_private_tags() -> None:
    assert tlv.private_tag(16) == b"\xd0"
    assert tlv.private_tag(32, constructed=True) == b"\xff\x20"
    assert tlv.private_tag(33) == b"\xdf\x21"
    with pytest.raises(ValueError):
        tlv.private_tag(200)


@given(st.lists(st.tuples(st.integers(31, 127), st.binary(max_size=600)), max_size=6))
def test_round_trip(items: list[tuple[int, bytes]]) -> None:
    encoded = b"".join(tlv.encode(tlv.private_tag(n), v) for n, v in items)
    assert list(tlv.iter_tlv(encoded + b"\xff\xff")) == [(tlv.private_tag(n), v) for n, v in items]
    for n, v in items:
        element = tlv.encode(tlv.private_tag(n), v)
        assert tlv.total_length(element[:7]) == len(element)


def test_truncated() -> None:
    with pytest.raises(ValueError):
        list(tlv.iter_tlv(b"\xdf\x21\x05ab"))
    with pytest.raises(ValueError):
        list(tlv.iter_tlv(b"\xdf\x21\x85\x00"))
    assert tlv.total_length(b"\x30") is None
    assert tlv.total_length(b"\x30\x82\x01") is None
    assert tlv.total_length(b"\x30\x82\x01\x00") == 260
