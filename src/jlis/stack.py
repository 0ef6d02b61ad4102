"""The national stack wired together: the 住基ネット relay with the systems that consume the
national change stream (JPKI revokes signing certificates, the card system voids cards). The web
app, `jlis juki relay` and the demo all build their relay here, so they deliver to the same nodes."""

from __future__ import annotations

from collections.abc import Callable

from jlis.container import Container
from jlis.messaging import Relay

JPKI = "jpki"  # node kind and destination of the JPKI revocation handler
CARD = "card"  # node kind and destination of the card system's handler
SUBSCRIBERS = (JPKI, CARD)


def build_stack_relay(container: Container, *, crash_hook: Callable[[str], None] | None = None) -> Relay:
    from jlis.card.service import deps_from_container
    from jlis.card.stream import CardStreamNode
    from jlis.jpki.stream import JpkiStreamNode
    from jlis.juki.network import build_relay

    return build_relay(
        container.factory,
        container.clock,
        container.geography,
        crash_hook=crash_hook,
        subscribers=SUBSCRIBERS,
        extra_handlers={
            JPKI: JpkiStreamNode(container.clock),
            CARD: CardStreamNode(deps_from_container(container)),
        },
    )
