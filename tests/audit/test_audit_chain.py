"""The pure hash chain: canonical bytes, the entry hash and verification, without a database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jlis.audit.chain import GENESIS, Link, canonical_bytes, entry_hash, verify_entries
from jlis.clock import JST


def build(fields_list: list[dict[str, Any]], anchor_hash: str = GENESIS, anchor_seq: int = 0) -> list[Link]:
    links, prev = [], anchor_hash
    for offset, fields in enumerate(fields_list, start=1):
        seq = anchor_seq + offset
        full = {**fields, "seq": seq}
        digest = entry_hash(prev, full)
        links.append(Link(seq, prev, digest, full))
        prev = digest
    return links


def sample(n: int) -> list[Link]:
    return build(
        [
            {"chain": "t", "actor": f"a{i}", "action": "read", "subject": "12345678903", "details": {"i": i}}
            for i in range(n)
        ]
    )


def test_canonical_bytes_are_sorted_compact_utf8_with_iso_datetimes() -> None:
    at = dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST)
    out = canonical_bytes({"b": 1, "a": {"y": [1, 2], "x": "山田 太郎"}, "at": at, "d": dt.date(2020, 1, 2)})
    assert (
        out
        == (
            '{"a":{"x":"山田 太郎","y":[1,2]},"at":"2026-11-26T10:00:00+09:00","b":1,"d":"2020-01-02"}'
        ).encode()
    )


def test_canonical_bytes_refuse_what_json_cannot_round_trip() -> None:
    with pytest.raises(ValueError):
        canonical_bytes({"x": float("nan")})
    with pytest.raises(TypeError):
        canonical_bytes({"x": object()})


def test_entry_hash_is_sha256_of_prev_hash_then_canonical_bytes() -> None:
    fields = {"seq": 1, "actor": "x"}
    expected = hashlib.sha256(GENESIS.encode() + b'{"actor":"x","seq":1}').hexdigest()
    assert entry_hash(GENESIS, fields) == expected
    assert entry_hash("1" * 64, fields) != expected


def test_intact_chain_verifies() -> None:
    links = sample(5)
    result = verify_entries(links, GENESIS, head=(5, links[-1].hash))
    assert (result.ok, result.checked, result.first_bad_seq, result.reason) == (True, 5, None, None)
    assert verify_entries([], GENESIS).ok
    assert verify_entries([], GENESIS, head=(0, GENESIS)).ok


def test_modified_entry_is_named() -> None:
    links = sample(5)
    links[2] = dataclasses.replace(links[2], fields={**links[2].fields, "actor": "mallory"})
    result = verify_entries(links)
    assert not result.ok and result.first_bad_seq == 3 and result.checked == 2
    assert "modified" in (result.reason or "")


def test_rehashed_entry_breaks_the_next_link() -> None:
    links = sample(5)
    fields = {**links[2].fields, "actor": "mallory"}
    links[2] = dataclasses.replace(links[2], fields=fields, hash=entry_hash(links[2].prev_hash, fields))
    result = verify_entries(links)
    assert result.first_bad_seq == 4 and "prev_hash" in (result.reason or "")


def test_deleted_entry_is_named() -> None:
    links = sample(5)
    del links[1]
    result = verify_entries(links)
    assert result.first_bad_seq == 2 and "missing" in (result.reason or "")


def test_reordered_and_inserted_entries_are_detected() -> None:
    links = sample(5)
    swapped = [links[0], links[2], links[1], links[3], links[4]]
    assert verify_entries(swapped).first_bad_seq == 2
    forged = build([{"chain": "t", "actor": "m", "action": "read", "subject": None, "details": {}}])[0]
    inserted = [*links[:2], dataclasses.replace(forged, seq=3), *links[2:]]
    assert verify_entries(inserted).first_bad_seq == 3
    duplicated = [*links[:3], links[2], *links[3:]]
    assert verify_entries(duplicated).first_bad_seq == 4


def test_head_catches_a_removed_or_added_tail() -> None:
    links = sample(5)
    short = verify_entries(links[:3], head=(5, links[-1].hash))
    assert short.first_bad_seq == 4 and "end" in (short.reason or "")
    long = verify_entries(links, head=(4, links[3].hash))
    assert long.first_bad_seq == 5 and "beyond" in (long.reason or "")
    assert not verify_entries(links, head=(5, "f" * 64)).ok


def test_verification_starts_at_the_anchor() -> None:
    anchor = "a" * 64
    links = build([{"chain": "t", "n": i} for i in range(3)], anchor_hash=anchor, anchor_seq=10)
    assert verify_entries(links, anchor, anchor_seq=10).ok
    wrong_anchor = verify_entries(links, GENESIS, anchor_seq=10)
    assert wrong_anchor.first_bad_seq == 11 and "anchor" in (wrong_anchor.reason or "")
    assert verify_entries(links, anchor, anchor_seq=9).first_bad_seq == 10


# -- property: any single-field change at any position is detected, at that position ------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=8),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
entry_fields = st.fixed_dictionaries(
    {
        "chain": st.text(min_size=1, max_size=10),
        "at": st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat(timespec="microseconds")),
        "actor": st.text(min_size=1, max_size=10),
        "action": st.sampled_from(["provide", "refuse", "read"]),
        "subject": st.none() | st.text(min_size=11, max_size=11, alphabet="0123456789"),
        "details": st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    }
)
changed_attribute = st.sampled_from(
    ["seq", "prev_hash", "hash", "chain", "at", "actor", "action", "subject", "details"]
)


@given(
    chain=st.lists(entry_fields, min_size=1, max_size=8),
    data=st.data(),
    attribute=changed_attribute,
)
def test_any_single_field_change_is_detected_at_its_position(
    chain: list[dict[str, Any]], data: st.DataObject, attribute: str
) -> None:
    links = build(chain)
    assert verify_entries(links, head=(len(links), links[-1].hash)).ok
    i = data.draw(st.integers(0, len(links) - 1), label="position")
    link = links[i]
    if attribute == "seq":
        new_seq = data.draw(st.integers(-5, 20).filter(lambda s: s != link.seq), label="seq")
        links[i] = dataclasses.replace(link, seq=new_seq)
    elif attribute in ("prev_hash", "hash"):
        new = data.draw(
            st.text("0123456789abcdef", min_size=64, max_size=64).filter(
                lambda h: h != getattr(link, attribute)
            )
        )
        links[i] = dataclasses.replace(link, **{attribute: new})
    else:
        old = link.fields[attribute]
        new_value = data.draw(
            (json_values | entry_fields.map(lambda f: f[attribute])).filter(
                lambda v: canonical_bytes({"v": v}) != canonical_bytes({"v": old})
            ),
            label=attribute,
        )
        links[i] = dataclasses.replace(link, fields={**link.fields, attribute: new_value})
    result = verify_entries(links, head=(len(links), links[-1].hash))
    assert not result.ok
    assert result.first_bad_seq == i + 1, result
