"""Message: a frozen value whose equality is its fields, not the text or parse it carries."""

from __future__ import annotations

import dataclasses

import pytest

from jlis.messaging import Message


def test_a_message_is_frozen_and_equal_by_its_fields() -> None:
    m = Message("id-1", "registry:131016", "cs:131016", "identity.changed", "k", {"a": 1}, 7, raw='{"a":1}')
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.seq = 8  # type: ignore[misc]
    same = Message("id-1", "registry:131016", "cs:131016", "identity.changed", "k", {"a": 1}, 7)
    assert m == same  # raw and parsed are not compared
    assert m != dataclasses.replace(m, key="other")
    moved = dataclasses.replace(m, seq=9)
    assert (moved.seq, moved.raw, moved.payload, moved.parsed) == (9, '{"a":1}', {"a": 1}, None)
    assert "raw" not in repr(m)
