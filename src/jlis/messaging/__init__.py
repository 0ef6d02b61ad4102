"""Durable messages between tiers: a transactional outbox, an idempotent inbox and a relay.

A tier writes the messages it must send in the same transaction as the change that causes them
(:func:`publish`). The relay delivers them at least once, in order of their sequence number, so
order per key holds; the receiver records each message id in its inbox in the same transaction as
its effect, so a repeat is ignored (a forward the relay delivers in the transaction that made it
never enters the outbox, so it can never repeat, and needs no inbox row). A crash at any
point therefore loses nothing and applies nothing twice. The tiers share one database in the
one-process demo, but never each other's tables: the relay is the only path between them, as LGWAN
would be between separate nodes.
"""

from jlis.messaging.outbox import Message, publish, publish_many
from jlis.messaging.relay import Relay, parked, pending_counts
from jlis.messaging.tables import MAX_ATTEMPTS

__all__ = [
    "MAX_ATTEMPTS",
    "Message",
    "Relay",
    "parked",
    "pending_counts",
    "publish",
    "publish_many",
]
