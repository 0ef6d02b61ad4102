"""Errors of the network. The shared kinds come from :mod:`jlis.errors`; the one of our own is a
message a node refuses to apply."""

from __future__ import annotations

from jlis.errors import Forbidden, InvalidInput, JlisError, NotFound


class MessageRefused(JlisError):
    """A node got a message it must not apply (unknown topic, or a source that may not send it).

    Raised inside the relay's transaction, so nothing of the batch is applied; the relay then
    retries message by message, and the refused one stays in the outbox with its error and blocks
    only its own key (fails closed: a misrouted record is never stored)."""

    http_status = 500
    kind = "message_refused"

    def __init__(self, node: str, source: str, topic: str, rule: str) -> None:
        super().__init__(
            f"{node} refuses {topic} from {source}: {rule}", node=node, source=source, topic=topic, rule=rule
        )
        self.node = node
        self.source = source
        self.topic = topic
        self.rule = rule


__all__ = ["Forbidden", "InvalidInput", "MessageRefused", "NotFound"]
