"""Python's cyclic garbage collector held off for a burst of work that keeps what it allocates.

A relay round builds ~100,000 rows, messages and tuples and keeps them to its end: every young
collection of the collector scans the survivors again, and the older generations fill up and are
scanned in turn, for ~4 % of the round's instructions (callgrind, bench.propagation_cost) and not
one object freed. Reference counting still frees everything acyclic while the collector is held
off; cycles wait for its next run, right after.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_restore = False  # whether the collector was enabled when the first holder came


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the collector off while the block runs. The collector is one per process, so this holds
    it off in every thread; it is restored as it was when the last of overlapping holders leaves."""
    global _holders, _restore
    with _lock:
        if _holders == 0:
            _restore = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _restore:
                gc.enable()
