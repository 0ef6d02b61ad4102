"""The JSON text the stores keep for payloads and snapshots: compact, UTF-8 as it is (no ``\\u``
escapes), keys in their order — what ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``
writes, made by orjson (C) at a sixth of the cost: every change encodes its messages and its
history snapshot, and the relay decodes each message it reads (bench/RESULTS.md, Propagation).

Where the two differ: orjson writes ``date`` and aware ``datetime`` values (ISO 8601, as
``isoformat`` does) where the ``json`` module refuses them, and refuses integers beyond 64 bits and
keys that are not text, which it would write; what neither can hold raises ``TypeError``.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    return orjson.dumps(value).decode()


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)
