"""Wiring the network: one relay with a handler per node kind, and a worker thread that drains it.

The relay (jlis.messaging) delivers each outbox message to the handler of its destination's kind,
at least once and in sequence order; the handlers (nodes.py, fuhyo.py) make a repeat harmless.
Run one relay per database: two would both deliver the same messages (harmless, thanks to the
inbox, but wasted work and conflicting transactions).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import Clock
from jlis.juki.fuhyo import FuhyoNationalNode, FuhyoPrefNode, HonsekiNode
from jlis.juki.models import CS, FUHYO_NATIONAL, FUHYO_PREF, HONSEKI, NATIONAL, PREF
from jlis.juki.nodes import CsNode, NationalNode, PrefNode
from jlis.masters import Geography
from jlis.messaging import Message, Relay
from jlis.messaging.relay import Handler, Kinds
from jlis.registry.events import TOPIC_FUHYO, TOPIC_FUHYO_IDENTITY, TOPIC_IDENTITY

log = logging.getLogger(__name__)

# Messages per relay round: a round's fixed cost (a dozen statements, a commit) is spread over more
# messages the larger it is. A counter stream of ~1,500 changes/s makes ~3,000 messages/s, which
# rounds of 5,000 keep up with. A full round still follows the forwards it makes to destinations and
# keys that nothing left waiting is for (Relay._follow).
BATCH = 5000
GATHER = 0.05  # seconds between a small round and the next (see RelayWorker)
# A round of at least this many messages already spreads its fixed cost: the next one starts at once.
GATHER_BELOW = 1000

# What the relay may plan outside SQLite's write lock (jlis.planned): 本人確認情報 and 附票 records
# between the network's own nodes, whose handlers read and write only the nodes' tables, which
# nobody but the relay writes. A CS handing a 転出証明書 or a 転入通知 to its register writes the
# register, which the counters write too; the subscribers' handlers write their services' tables.
_PLANNABLE = {
    (CS, TOPIC_IDENTITY),
    (PREF, TOPIC_IDENTITY),
    (NATIONAL, TOPIC_IDENTITY),
    (HONSEKI, TOPIC_FUHYO),
    (FUHYO_PREF, TOPIC_FUHYO_IDENTITY),
    (FUHYO_NATIONAL, TOPIC_FUHYO_IDENTITY),
}


def plannable(m: Message) -> bool:
    return (m.destination.split(":", 1)[0], m.topic) in _PLANNABLE


# Parts of the network one relay process each can carry (``jlis juki relay --part``): the 附票連携
# システム's nodes, and the rest (住基ネット with the national change stream's subscribers). Forwards
# stay within their part, so each relay's rounds still follow them; a message that a handler of one
# part publishes to the other (a register handed a 転入通知 may notify its 本籍地) waits in the
# outbox, in sequence order, for that part's relay.
_FUHYO_KINDS = frozenset({HONSEKI, FUHYO_PREF, FUHYO_NATIONAL})
PARTS = {"juki": Kinds(_FUHYO_KINDS, others=True), "fuhyo": Kinds(_FUHYO_KINDS)}


def handlers(
    clock: Clock,
    geography: Geography,
    *,
    subscribers: Sequence[str] = (),
    extra_handlers: Mapping[str, Handler] | None = None,
) -> dict[str, Handler]:
    """The handler of each node kind of 住基ネット and the 附票連携システム, plus ``extra_handlers``
    (node kind → handler): the packages that subscribe to the national change stream (JPKI, the
    card system) bring their own. An extra handler may not replace a network node's handler."""
    out: dict[str, Handler] = {
        CS: CsNode(clock, geography),
        PREF: PrefNode(clock, geography),
        NATIONAL: NationalNode(clock, subscribers),
        HONSEKI: HonsekiNode(clock, geography),
        FUHYO_PREF: FuhyoPrefNode(clock, geography),
        FUHYO_NATIONAL: FuhyoNationalNode(clock),
    }
    for kind, handler in (extra_handlers or {}).items():
        if kind in out:
            raise ValueError(f"node kind {kind!r} is a 住基ネット node; a subscriber needs its own kind")
        out[kind] = handler
    return out


def build_relay(
    factory: sessionmaker[Session],
    clock: Clock,
    geography: Geography,
    *,
    crash_hook: Callable[[str], None] | None = None,
    subscribers: Sequence[str] = (),
    extra_handlers: Mapping[str, Handler] | None = None,
    plan_rounds: bool = False,
    part: str | None = None,
) -> Relay:
    """A relay that delivers to every node of the network. ``crash_hook`` is the relay's test seam
    (called at "inside-apply", "after-apply-before-ack", "after-ack"); ``subscribers`` (destinations
    such as ``jpki`` or ``card:all``) get the national change stream, and ``extra_handlers`` (node
    kind → handler, e.g. ``{"jpki": handler}``) apply it: each is called like a node's handler, in
    the relay's round transaction, with ``apply_groups(session, groups)`` when it has one.

    ``plan_rounds``: on SQLite, plan the rounds of the network's own messages outside the write
    lock (see :data:`_PLANNABLE` and ``Relay._planned_round``). That pays when the relay runs in a
    process of its own (``jlis juki relay`` beside ``jlis serve --no-relay``): it then holds the
    write lock a fraction of its time and the counters write meanwhile (propagation bench on SQLite:
    ~1,000 → ~1,300 changes/s). In the serving process itself it only adds work: the process's
    threads share one interpreter lock.

    ``part`` (a key of :data:`PARTS`): deliver only to that part's nodes, beside a relay for the
    other part (two processes, so two cores, carry the network)."""
    if part is not None and part not in PARTS:
        raise ValueError(f"part must be one of {sorted(PARTS)}, not {part!r}")
    return Relay(
        factory,
        clock,
        handlers(clock, geography, subscribers=subscribers, extra_handlers=extra_handlers),
        crash_hook=crash_hook,
        plannable=plannable if plan_rounds else None,
        kinds=None if part is None else PARTS[part],
    )


class RelayWorker(threading.Thread):
    """Drains the relay in the background: a round at once after a large one (``GATHER_BELOW``
    messages or more), ``gather`` seconds after a smaller one, and otherwise when poked or every
    ``interval`` seconds. An error is logged and the next round tries again (the outbox keeps
    everything), so the worker never dies of one bad round.

    The pause after a small round lets a steady stream of changes (clerks at many counters)
    gather into rounds of hundreds: a round costs a fixed dozen statements and a commit whatever its
    size, so chasing every change with a round of its own spent more on rounds than on the changes
    (propagation bench: CPU per change 1.07 ms → see bench/RESULTS.md). After a large round a pause
    would only let the relay fall behind. A lone change still leaves at once: the poke starts a
    round right away when the worker is idle."""

    def __init__(
        self, relay: Relay, *, interval: float = 0.5, batch: int = BATCH, gather: float = GATHER
    ) -> None:
        super().__init__(name="juki-relay", daemon=True)
        self.relay = relay
        self.interval = interval
        self.batch = batch
        self.gather = gather
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self.rounds = 0

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                handled = self.relay.run_once(self.batch)
            except Exception:
                log.exception("relay round failed; retrying in %.1f s", self.interval)
                handled = 0
            self.rounds += 1
            if handled == 0:
                self._wake.wait(self.interval)
                self._wake.clear()
            elif handled < min(self.batch, GATHER_BELOW):
                self._stop_event.wait(self.gather)

    def poke(self) -> None:
        """Run the next round now (e.g. right after a counter action published something)."""
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop_event.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)
