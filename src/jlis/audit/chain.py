"""The hash chain, pure: canonical bytes, the entry hash and verification. No database, no clock.

Entry ``n`` stores ``hash_n = sha256(prev_hash_n || canonical_bytes(fields_n))`` with
``prev_hash_n = hash_(n-1)`` (``GENESIS`` for the first entry, or the anchor after a retention
purge). ``fields_n`` includes the chain name and ``seq``, so an entry can be neither moved to
another chain nor renumbered without breaking its own hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
"""``prev_hash`` of the first entry of every chain (and the anchor of a chain never purged)."""


def _json_default(value: object) -> str:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable in an audit record")


def canonical_json(fields: Mapping[str, Any]) -> str:
    """Canonical JSON text: sorted keys, no whitespace, UTF-8 characters kept, datetimes as ISO-8601.

    NaN and infinities are refused: they are not JSON and would not survive a round trip.
    """
    return json.dumps(
        fields,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    return canonical_json(fields).encode("utf-8")


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """sha256 hex of the previous hash (its 64 ASCII hex characters) followed by the canonical bytes."""
    h = hashlib.sha256(prev_hash.encode("ascii"))
    h.update(canonical_bytes(fields))
    return h.hexdigest()


@dataclass(frozen=True)
class Link:
    """One stored entry as the verifier sees it: position, stored hashes and the hashed fields."""

    seq: int
    prev_hash: str
    hash: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


class ChainVerifier:
    """Incremental verifier: feed links in stored order, then ask for the result.

    ``first_bad_seq`` is the position where the chain breaks: the entry changed, or the one missing.

    Incremental so that a caller can stream millions of rows through it, or stop early (the retention
    purge checks only the prefix it is about to delete). After the first fault it ignores the rest.
    """

    def __init__(self, anchor_hash: str = GENESIS, anchor_seq: int = 0) -> None:
        self.anchor_seq = anchor_seq
        self.last_seq = anchor_seq
        self.last_hash = anchor_hash
        self.checked = 0
        self.first_bad_seq: int | None = None
        self.reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def _fail(self, seq: int, reason: str) -> bool:
        self.first_bad_seq, self.reason = seq, reason
        return False

    def feed(self, link: Link) -> bool:
        """Check the next link; return False once the chain is broken."""
        if not self.ok:
            return False
        expected = self.last_seq + 1
        if link.seq != expected:
            if link.seq > expected:
                return self._fail(expected, f"entry missing (next present entry is seq {link.seq})")
            return self._fail(
                expected, f"found seq {link.seq} where seq {expected} belongs (reordered or duplicated)"
            )
        if link.prev_hash != self.last_hash:
            before = "the anchor" if expected == self.anchor_seq + 1 else f"entry seq {self.last_seq}"
            return self._fail(link.seq, f"prev_hash does not match the hash of {before}")
        try:
            recomputed = entry_hash(link.prev_hash, link.fields)
        except (TypeError, ValueError):  # a stored value no append could have written
            return self._fail(link.seq, "entry content cannot be hashed (entry modified)")
        if recomputed != link.hash:
            return self._fail(link.seq, "hash does not match the entry's content (entry modified)")
        self.last_seq, self.last_hash = link.seq, link.hash
        self.checked += 1
        return True

    def finish(self, head: tuple[int, str] | None = None) -> VerifyResult:
        """The verdict. ``head`` is the stored (last_seq, last_hash): it catches a removed tail."""
        if self.ok and head is not None:
            head_seq, head_hash = head
            if self.last_seq < head_seq:
                self._fail(self.last_seq + 1, f"entries missing at the end (the head says seq {head_seq})")
            elif self.last_seq > head_seq:
                self._fail(head_seq + 1, f"entry beyond the chain head (head says seq {head_seq})")
            elif self.last_hash != head_hash:
                self._fail(head_seq, "hash does not match the chain head")
        return VerifyResult(self.ok, self.checked, self.first_bad_seq, self.reason)


def verify_entries(
    entries: Iterable[Link],
    anchor_hash: str = GENESIS,
    *,
    anchor_seq: int = 0,
    head: tuple[int, str] | None = None,
) -> VerifyResult:
    """Verify links in stored order, starting after the anchor (``anchor_seq`` 0 = never purged).

    Detects a modified entry (its hash), a deleted entry (a gap in ``seq``), a reordered or inserted
    entry (``seq`` or ``prev_hash`` out of line) and, given ``head``, a removed or added tail.
    """
    verifier = ChainVerifier(anchor_hash, anchor_seq)
    for link in entries:
        if not verifier.feed(link):
            break
    return verifier.finish(head)
