"""Message ids: new ones sort by creation time, derived ones are fixed and sort with their origin."""

from __future__ import annotations

import os
import time
import uuid

from jlis.messaging.outbox import derived_message_id, new_message_id


def test_new_ids_are_uuid7_in_time_order() -> None:
    first = new_message_id()
    time.sleep(0.002)
    later = [new_message_id() for _ in range(1000)]
    assert len(set(later)) == 1000
    for mid in (first, *later):
        parsed = uuid.UUID(mid)
        assert str(parsed) == mid
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert all(first < mid for mid in later)  # a later millisecond sorts after, as text too
    stamp = int(first[:8] + first[9:13], 16) / 1000
    assert abs(stamp - time.time()) < 60


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    """The ids' random part comes from a pool refilled from the OS: a forked process (the bench's
    counters, a server's workers) must not hand out its parent's pool again."""
    new_message_id()  # the pool holds unused random bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, " ".join(new_message_id()[14:] for _ in range(5)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(write)
    theirs = set(os.read(read, 4096).decode().split())
    os.close(read)
    ours = {new_message_id()[14:] for _ in range(5)}
    assert len(theirs) == 5 and not theirs & ours


def test_derived_ids_are_fixed_distinct_and_keep_the_time_prefix() -> None:
    mid = new_message_id()
    a, b = derived_message_id(mid, "pref:13"), derived_message_id(mid, "national")
    assert a == derived_message_id(mid, "pref:13") and a != b
    assert a[:13] == b[:13] == mid[:13]
    assert uuid.UUID(a).version == 8
    assert derived_message_id(a, "national") != b  # a second hop differs from a first
