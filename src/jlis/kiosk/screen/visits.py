"""The kiosk's memory of the resident in front of it: one :class:`Visit` from 行政サービス to
"カードをお取りください", kept in this process only (the copier's own memory, not a database).

A visit holds the card on the reader, the center's challenge and session, the menu, the quote and,
after printing, the PDF until the visit ends. It ends when the resident finishes, when it is left
idle for :data:`IDLE_TIMEOUT` (the next look-up sweeps it), or when the center ends it; ending it
ejects the card (an uploaded card file is deleted) and drops the PDF: "the kiosk prints and deletes
the data at once" (facts §6.1 step 8).

The browser holds only the visit's random token (a cookie); every form carries a CSRF token
derived from it.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from jlis.clock import Clock
from jlis.errors import RuleViolation
from jlis.kiosk.screen.port import CenterVisit, Menu, Printout, Quote
from jlis.kiosk.screen.reader import CardSlot

IDLE_TIMEOUT = dt.timedelta(minutes=5)
MAX_VISITS = 1_000  # a kiosk has one screen; the cap keeps a flood of new visits from eating memory


class Step(enum.StrEnum):
    CARD = "card"  # set a card on the reader
    PIN = "pin"  # the 4-digit PIN
    MENU = "menu"  # choose a certificate
    FEE = "fee"  # the quote: pay or go back
    PRINTED = "printed"  # the certificate is out


@dataclass
class Visit:
    token: str
    started_at: dt.datetime
    seen_at: dt.datetime
    step: Step = Step.CARD
    slot: CardSlot | None = None
    challenge: object | None = None
    challenge_text: str = ""
    center: CenterVisit | None = None
    menu: Menu | None = None
    quote: Quote | None = None
    printout: Printout | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def csrf(self) -> str:
        return csrf_for(self.token)

    def release(self) -> None:
        """Give the card back and forget the documents."""
        if self.slot is not None:
            self.slot.eject()
            self.slot = None
        self.printout = None
        self.challenge = None
        self.center = None


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"jlis-kiosk-csrf", hashlib.sha256).hexdigest()


class Visits:
    """The visits of this kiosk, by token. Thread-safe; expired visits are swept on each call."""

    def __init__(
        self,
        clock: Clock,
        *,
        new_token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        on_end: Callable[[Visit], None] | None = None,
    ) -> None:
        self.clock = clock
        self._new_token = new_token
        self._on_end = on_end
        self._visits: dict[str, Visit] = {}
        self._lock = threading.Lock()

    def start(self) -> Visit:
        now = self.clock.now()
        expired = self._sweep(now)
        with self._lock:
            if len(self._visits) >= MAX_VISITS:
                full = True
            else:
                full = False
                visit = Visit(token=self._new_token(), started_at=now, seen_at=now)
                self._visits[visit.token] = visit
        self._finish(expired)
        if full:
            raise RuleViolation("端末", "too many visits in progress; try again in a few minutes")
        return visit

    def get(self, token: str | None) -> Visit | None:
        """The visit of ``token`` (its idle time restarts), or None when unknown or expired."""
        now = self.clock.now()
        expired = self._sweep(now)
        with self._lock:
            visit = self._visits.get(token) if token else None
            if visit is not None:
                visit.seen_at = now
        self._finish(expired)
        return visit

    def end(self, visit: Visit) -> None:
        with self._lock:
            self._visits.pop(visit.token, None)
        self._finish([visit])

    def __len__(self) -> int:
        with self._lock:
            return len(self._visits)

    def _sweep(self, now: dt.datetime) -> list[Visit]:
        with self._lock:
            gone = [v for v in self._visits.values() if now - v.seen_at > IDLE_TIMEOUT]
            for v in gone:
                del self._visits[v.token]
        return gone

    def _finish(self, visits: list[Visit]) -> None:
        for visit in visits:
            if self._on_end is not None:
                self._on_end(visit)
            visit.release()
