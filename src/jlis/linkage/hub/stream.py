"""J-LIS code generation's subscriber to the national change stream (node kind ``linkage``).

Only one kind of change matters to the 機関別符号: a 住民票コード変更 (``reason`` = ``code_change``
with ``previous_resident_code`` set). The new code must keep the person's value for code
generation, so that every member's code for the person stays the same
(:meth:`CodeGeneration.record_code_change`). Every other record is ignored: the codes do not depend
on names, addresses or the state of the 住民票.

The lead wires it: ``NationalNode(subscribers=[..., "linkage"])`` and
``build_relay(..., extra_handlers={"linkage": LinkageStreamNode(container.secret, container.clock)})``.
It runs in the relay's round transaction. Idempotent: recording the same change twice changes
nothing, so a redelivered message is harmless even without the relay's inbox.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from jlis.clock import Clock
from jlis.juki.errors import MessageRefused
from jlis.juki.models import NATIONAL
from jlis.linkage.hub.codes import CodeGeneration
from jlis.messaging import Message
from jlis.registry.events import TOPIC_IDENTITY
from jlis.registry.models import ChangeReason

NODE_KIND = "linkage"
DESTINATION = "linkage"


class LinkageStreamNode:
    def __init__(self, secret: bytes, clock: Clock) -> None:
        self.secret = secret
        self.clock = clock

    def __call__(self, session: Session, node: str, messages: list[Message]) -> None:
        self.apply_groups(session, [(node, messages)])

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]]) -> int:
        """Apply a relay round; returns the number of code changes recorded."""
        changes: list[tuple[str, str]] = []
        for node, messages in groups:
            for m in messages:
                # Fails closed: anything but the national server's identity records is refused
                # (the relay parks it with the error) and nothing of the round is applied.
                if m.topic != TOPIC_IDENTITY:
                    raise MessageRefused(node, m.source, m.topic, "the linkage takes identity records only")
                if m.source != NATIONAL:
                    raise MessageRefused(node, m.source, m.topic, "only the national server's change stream")
                previous = m.payload.get("previous_resident_code")
                if m.payload.get("reason") == ChangeReason.CODE_CHANGE.value and previous:
                    changes.append((str(previous), str(m.payload["resident_code"])))
        if changes:
            gen = CodeGeneration(session, self.secret, self.clock)
            for old, new in changes:
                gen.record_code_change(old, new)
        return len(changes)
