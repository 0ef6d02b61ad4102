"""The message contracts: a record's payload made in one encoding equals the Python route's."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given
from hypothesis import strategies as st

from jlis.clock import JST
from jlis.registry.events import FuhyoNotice, IdentityRecord, encoded, to_payload
from jlis.registry.models import ChangeReason

text = st.text(max_size=12)
maybe = st.none() | text
dates = st.dates(min_value=dt.date(1, 1, 1))
zones = st.sampled_from([dt.UTC, JST, dt.timezone(-dt.timedelta(hours=3, minutes=30))])
times = st.datetimes(timezones=zones)
reasons = st.sampled_from(list(ChangeReason))

identities = st.builds(
    IdentityRecord,
    **{f: text for f in ("resident_code", "my_number", "lg_code", "family_name", "given_name")},
    **{f: text for f in ("family_kana", "given_kana", "sex", "address", "status")},
    alias=maybe,
    former_surname=maybe,
    birth_date=dates,
    reason=reasons,
    change_date=dates,
    recorded_at=times,
    previous_resident_code=maybe,
)
notices = st.builds(
    FuhyoNotice,
    **{f: text for f in ("resident_code", "honseki_lg_code", "honseki", "family_name", "given_name")},
    sex=text,
    address=text,
    address_lg_code=maybe,
    birth_date=dates,
    address_since=dates,
    reason=reasons,
    change_date=dates,
    recorded_at=times,
    previous_resident_code=maybe,
)


@given(identities | notices)
def test_encoded_gives_the_payload_and_the_text_of_to_payload(record: IdentityRecord | FuhyoNotice) -> None:
    payload, raw = encoded(record)
    expected = to_payload(record)
    assert payload == json.loads(json.dumps(expected, ensure_ascii=False))  # the enum as its value
    assert raw == json.dumps(expected, ensure_ascii=False, separators=(",", ":"))
    assert type(record).from_payload(payload) == record
