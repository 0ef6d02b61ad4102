"""The JSON text the stores keep for payloads and snapshots: compact, UTF-8 as it is (no ``\\u``
escapes), keys in their order — what ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``
writes, made by orjson (C) at a sixth of the cost: every change encodes its messages and its
history snapshot, and the relay decodes each message it reads (bench/RESULTS.md, Propagation).

orjson also writes ``date`` and aware ``datetime`` values (ISO 8601, as ``isoformat`` does) where
the ``json`` module would refuse them; everything else is refused the same way (``TypeError``).
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    return orjson.dumps(value).decode()


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)
