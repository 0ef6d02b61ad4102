import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jlis import jsontext

# What payloads and snapshots hold: text (Japanese included), whole numbers, flags, nothing, and
# lists and objects of those.
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
)


@given(st.dictionaries(st.text(), values, max_size=8))
def test_the_text_is_what_json_writes_compact_and_unescaped(payload: dict[str, object]) -> None:
    text = jsontext.dumps(payload)
    assert text == json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    assert jsontext.loads(text) == payload == json.loads(text)


def test_japanese_text_stays_as_it_is() -> None:
    assert jsontext.dumps({"氏名": "高橋 桃子"}) == '{"氏名":"高橋 桃子"}'


def test_dates_and_aware_times_are_written_in_iso_form() -> None:
    at = dt.datetime(2026, 11, 27, 6, 2, 59, 566265, tzinfo=dt.UTC)
    assert jsontext.dumps([dt.date(2026, 11, 27), at]) == f'["2026-11-27","{at.isoformat()}"]'


def test_what_json_cannot_hold_is_refused() -> None:
    with pytest.raises(TypeError):
        jsontext.dumps({"amount": Decimal("1.5")})
    with pytest.raises(TypeError):
        jsontext.dumps({1: "a key that is not text"})
    with pytest.raises(TypeError):
        jsontext.dumps({"n": 2**64})
