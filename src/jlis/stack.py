"""The national stack wired together: the 住基ネット relay with the systems that consume the
national change stream (JPKI revokes signing certificates, the card system voids cards, J-LIS keeps
a person's code-generation value across a 住民票コード変更, the middle servers update their
住民票関係情報 replicas). The web app, `jlis juki relay` and the demo all build their relay here, so
they deliver to the same nodes."""

from __future__ import annotations

from collections.abc import Callable

from jlis.container import Container
from jlis.messaging import Relay

JPKI = "jpki"  # node kind and destination of the JPKI revocation handler
CARD = "card"  # node kind and destination of the card system's handler
LINKAGE = "linkage"  # J-LIS's code-generation values follow a 住民票コード変更
MIDDLE = "middle"  # the middle servers keep their 住民票関係情報 replicas current
SUBSCRIBERS = (JPKI, CARD, LINKAGE, MIDDLE)


def build_stack_relay(
    container: Container,
    *,
    crash_hook: Callable[[str], None] | None = None,
    plan_rounds: bool = False,
    part: str | None = None,
) -> Relay:
    from jlis.card.service import deps_from_container
    from jlis.card.stream import CardStreamNode
    from jlis.jpki.stream import JpkiStreamNode
    from jlis.juki.network import build_relay
    from jlis.linkage.hub.stream import LinkageStreamNode
    from jlis.linkage.middle.stream import MiddleStreamNode

    return build_relay(
        container.factory,
        container.clock,
        container.geography,
        crash_hook=crash_hook,
        plan_rounds=plan_rounds,
        part=part,
        subscribers=SUBSCRIBERS,
        extra_handlers={
            JPKI: JpkiStreamNode(container.clock),
            CARD: CardStreamNode(deps_from_container(container)),
            LINKAGE: LinkageStreamNode(container.secret, container.clock),
            MIDDLE: MiddleStreamNode(container.clock),
        },
    )
