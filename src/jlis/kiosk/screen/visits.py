"""The kiosk's memory of the resident in front of it: one :class:`Visit` from 行政サービス to
"カードをお取りください".

A visit holds the card on the reader, the center's challenge and session, the menu, the quote and,
after printing, the PDF until the visit ends. It ends when the resident finishes, when it is left
idle for :data:`IDLE_TIMEOUT` (swept by the next request of any visit), or when the center ends it;
ending it gives the card back (an uploaded card file is deleted), closes the center's session and
drops the PDF: "the kiosk prints and deletes the data at once" (facts §6.1 step 8).

The copier's memory is a **table** (``kiosk_screen_visits``, :mod:`.tables`), not this process's
memory: ``jlis serve --workers N`` runs the screen in several worker processes, and a visit's
consecutive requests may reach any of them. So everything a visit keeps is plain data in its row —
the card as a :class:`~jlis.kiosk.screen.reader.CardRef` (a demo card's id, or the file name of the
uploaded copy under the data dir, which every worker reads), the challenge's text, the center's
session token, the menu, the quote, the printout and its PDF. The card's PIN counters stay on the
card file. The card's passphrase is stored sealed with a key derived from the visit token, which
only the resident's browser holds (the row keeps the token's SHA-256): the table alone opens no
card.

One step of a visit at a time, across processes: :meth:`Visits.run` claims the row with a
conditional UPDATE (``busy_until``/``claim``), reloads it, does the step's work with no database
transaction open (the center's calls, the PDF), and saves the outcome while releasing the claim. A
second submission of the same step (a double click on 支払う, maybe in another process) waits for
the first and then finds the visit moved on — one issue, one charge.

The browser holds only the visit's random token (a cookie); every form carries a CSRF token
derived from it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import CursorResult, Executable, Row, Table, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from jlis.card.chip.cardfile import CARD_SUFFIX
from jlis.clock import Clock
from jlis.db import read_only, transaction
from jlis.errors import InvalidInput, RuleViolation
from jlis.kiosk.screen.port import CenterVisit, Menu, Offer, Option, Printout, Quote
from jlis.kiosk.screen.reader import UPLOAD, CardRef, discard
from jlis.kiosk.screen.tables import VisitRow

IDLE_TIMEOUT = dt.timedelta(minutes=5)
MAX_VISITS = 1_000  # a kiosk has one screen; the cap keeps a flood of new visits from filling the table
LOCK_WAIT = 60.0  # seconds a second submission of the same visit waits for the first
CLAIM_TTL = dt.timedelta(minutes=2)  # a claim left by a crashed process lapses after this
POLL = 0.05  # seconds between two tries to claim a busy visit
SWEEP_EVERY = dt.timedelta(seconds=10)  # idle visits of others are looked for at most this often
SWEEP_BATCH = 100

_T = cast(Table, VisitRow.__table__)
_STATE = (
    _T.c.step,
    _T.c.started_at,
    _T.c.seen_at,
    _T.c.card,
    _T.c.card_secret,
    _T.c.challenge,
    _T.c.center,
    _T.c.menu,
    _T.c.quote,
    _T.c.printout,
)


class Step(enum.StrEnum):
    CARD = "card"  # set a card on the reader
    PIN = "pin"  # the 4-digit PIN
    MENU = "menu"  # choose a certificate
    FEE = "fee"  # the quote: pay or go back
    PRINTED = "printed"  # the certificate is out


class Outcome(enum.Enum):
    """What :meth:`Visits.run` did."""

    DONE = "done"  # the step's work ran (and its outcome was saved, even when it raised)
    MOVED = "moved"  # the visit is at another step now (``visit.step``): nothing ran
    GONE = "gone"  # the visit ended meanwhile: nothing ran


@dataclass
class Visit:
    """A visit as one request sees it: loaded from its row, changed by a step, saved by
    :meth:`Visits.run`. ``printout.pdf`` is empty unless the visit was loaded with ``pdf=True``."""

    token: str
    started_at: dt.datetime
    seen_at: dt.datetime
    step: Step = Step.CARD
    card: CardRef | None = None
    card_secret: bytes | None = field(default=None, repr=False)
    challenge_text: str = ""
    center: CenterVisit | None = None
    menu: Menu | None = None
    quote: Quote | None = None
    printout: Printout | None = None

    def csrf(self) -> str:
        return csrf_for(self.token)

    def set_card(self, card: CardRef, passphrase: str) -> None:
        """The card on the reader and its passphrase, sealed with the visit token's key."""
        self.card = card
        self.card_secret = _seal(self.token, passphrase)

    def passphrase(self) -> str:
        """The card's passphrase (only a request carrying the visit's token can unseal it)."""
        if self.card_secret is None:
            raise InvalidInput("カード", "must be set on the reader first")
        return _unseal(self.token, self.card_secret)

    def release(self) -> None:
        """Forget the card and the documents (the visit ended)."""
        self.card = None
        self.card_secret = None
        self.printout = None
        self.challenge_text = ""
        self.center = None


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"jlis-kiosk-csrf", hashlib.sha256).hexdigest()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _card_key(token: str) -> bytes:
    return hmac.new(token.encode(), b"jlis-kiosk-card-passphrase", hashlib.sha256).digest()


def _seal(token: str, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_card_key(token)).encrypt(nonce, secret.encode(), token_digest(token).encode())


def _unseal(token: str, sealed: bytes) -> str:
    try:
        plain = AESGCM(_card_key(token)).decrypt(sealed[:12], sealed[12:], token_digest(token).encode())
    except (InvalidTag, ValueError):
        raise InvalidInput("カード", "must be set on the reader again") from None
    return plain.decode()


class Visits:
    """The visits of this kiosk, in the database, by the SHA-256 of their tokens. Safe to share
    between threads and processes; idle visits are swept by the requests of any visit.

    ``close_center`` is called with the center's session of every visit that ends (its center
    session is closed); ``uploads_dir`` holds the uploaded card files (deleted as visits end)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        clock: Clock,
        *,
        uploads_dir: Path,
        new_token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        close_center: Callable[[CenterVisit], None] | None = None,
        wait: float = LOCK_WAIT,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.uploads_dir = uploads_dir
        self.wait = wait
        self._new_token = new_token
        self._close_center = close_center
        self._next_sweep: dt.datetime | None = None
        self._sweep_lock = threading.Lock()

    # -- a visit's life ----------------------------------------------------------------------------

    def start(self) -> Visit:
        now = self.clock.now()
        self._sweep(now)
        visit = Visit(token=self._new_token(), started_at=now, seen_at=now)
        if not self._insert(visit):
            self._sweep(now, force=True)  # the idle ones make room
            if not self._insert(visit):
                raise RuleViolation("端末", "too many visits in progress; try again in a few minutes")
        return visit

    def _insert(self, visit: Visit) -> bool:
        with transaction(self.factory) as s:
            if (s.scalar(select(func.count()).select_from(_T)) or 0) >= MAX_VISITS:
                return False
            s.execute(
                _T.insert().values(
                    token_sha256=token_digest(visit.token),
                    step=visit.step.value,
                    started_at=visit.started_at,
                    seen_at=visit.seen_at,
                )
            )
        return True

    def get(self, token: str | None, *, pdf: bool = False) -> Visit | None:
        """The visit of ``token`` (its idle time restarts), or None when unknown or expired.
        ``pdf``: with the printed PDF (only the document's page needs it)."""
        now = self.clock.now()
        self._sweep(now)
        if not token:
            return None
        digest = token_digest(token)
        with transaction(self.factory) as s:
            seen = _count(s, update(_T).where(_T.c.token_sha256 == digest, _live(now)).values(seen_at=now))
            row = _select(s, digest, pdf) if seen == 1 else None
        if row is None:
            self._take_and_finish(digest, expired_at=now)  # gone, or idle: ended here
            return None
        return _visit_of(token, row, pdf)

    def end(self, visit: Visit) -> None:
        """The visit ends: its row goes, the card is given back, the center's session is closed."""
        self._take_and_finish(token_digest(visit.token))
        visit.release()

    def run(self, visit: Visit, step: Step, work: Callable[[], None]) -> Outcome:
        """``work`` (which changes ``visit``) as the visit's one step in progress, if the visit is
        still at ``step``. Waits up to ``wait`` seconds for another step of the same visit to finish
        (InvalidInput ``操作`` after that). ``visit`` is reloaded first; the outcome is saved even
        when ``work`` raises (a wrong PIN's fresh challenge, a refused payment's way back to the
        menu), and the exception is re-raised."""
        digest = token_digest(visit.token)
        claim = secrets.token_hex(16)
        deadline = time.monotonic() + self.wait
        while True:
            now = self.clock.now()
            with transaction(self.factory) as s:
                taken = _count(
                    s,
                    update(_T)
                    .where(_T.c.token_sha256 == digest, _live(now), _free(now))
                    .values(busy_until=now + CLAIM_TTL, claim=claim, seen_at=now),
                )
                row = _select(s, digest, False) if taken == 1 else None
                state = None if row is not None else _state(s, digest, now)
            if row is not None:
                break
            if state == "free":
                continue  # released between the two statements: try again at once
            if state != "busy":
                if state == "expired":
                    self._take_and_finish(digest, expired_at=now)
                return Outcome.GONE
            if time.monotonic() >= deadline:
                raise InvalidInput("操作", "is already in progress")
            time.sleep(POLL)
        _reload(visit, row)
        before = (visit.card, visit.center)
        if visit.step is not step:
            self._save(digest, claim, visit, state_too=False)
            return Outcome.MOVED
        try:
            work()
        except BaseException:
            self._save_or_undo(digest, claim, visit, before)
            raise
        if not self._save_or_undo(digest, claim, visit, before):
            raise InvalidInput("操作", "was not kept: the visit ended or took too long")
        return Outcome.DONE

    def __len__(self) -> int:
        with self.factory() as s:
            read_only(s)
            return s.scalar(select(func.count()).select_from(_T)) or 0

    # -- helpers -----------------------------------------------------------------------------------

    def _save(self, digest: str, claim: str, visit: Visit, *, state_too: bool = True) -> bool:
        """Release the claim (with the visit's state): False when the claim was lost (the visit
        ended, or the claim lapsed and another step took it)."""
        values: dict[str, Any] = {"busy_until": None, "claim": None, "seen_at": self.clock.now()}
        if state_too:
            values |= _row_of(visit)
        with transaction(self.factory) as s:
            mine = update(_T).where(_T.c.token_sha256 == digest, _T.c.claim == claim)
            return _count(s, mine.values(values)) == 1

    def _save_or_undo(
        self, digest: str, claim: str, visit: Visit, before: tuple[CardRef | None, CenterVisit | None]
    ) -> bool:
        if self._save(digest, claim, visit):
            return True
        # Nobody will remember what this step set up: give it back.
        card, center = before
        self._finish(
            visit.card if visit.card != card else None,
            visit.center if visit.center != center else None,
        )
        return False

    def _take_and_finish(self, digest: str, *, expired_at: dt.datetime | None = None) -> None:
        """Delete the visit's row (only if idle and not busy, with ``expired_at``) and, if this
        call deleted it, give its card back and close its center session."""
        with transaction(self.factory) as s:
            cond = [_T.c.token_sha256 == digest]
            if expired_at is not None:
                cond.append(_idle(expired_at))
            found = s.execute(select(_T.c.card, _T.c.center).where(*cond)).first()
            if found is None:
                return
            taken = _count(s, delete(_T).where(*cond)) == 1
        if taken:
            self._finish(
                CardRef.from_json(found.card) if found.card else None,
                _center_of(found.center) if found.center else None,
            )

    def _finish(self, card: CardRef | None, center: CenterVisit | None) -> None:
        discard(card, self.uploads_dir)
        if center is not None and self._close_center is not None:
            with contextlib.suppress(Exception):  # best effort: the center forgets idle sessions too
                self._close_center(center)

    def _sweep(self, now: dt.datetime, *, force: bool = False) -> None:
        """End the idle visits (at most every SWEEP_EVERY per process, unless ``force``)."""
        with self._sweep_lock:
            if not force and self._next_sweep is not None and now < self._next_sweep:
                return
            self._next_sweep = now + SWEEP_EVERY
        with self.factory() as s:
            read_only(s)
            idle = list(s.scalars(select(_T.c.token_sha256).where(_idle(now)).limit(SWEEP_BATCH)))
        for digest in idle:
            self._take_and_finish(digest, expired_at=now)
        self._sweep_orphans()

    def _sweep_orphans(self) -> None:
        """Delete uploaded card files no visit names any more (a process killed between deleting
        a visit's row and its file), once they are older than any step could keep one unsaved."""
        try:
            files = [p for p in self.uploads_dir.iterdir() if p.suffix == CARD_SUFFIX]
        except FileNotFoundError:
            return
        cutoff = time.time() - (IDLE_TIMEOUT + CLAIM_TTL).total_seconds()
        old = {p.name: p for p in files if _mtime(p) < cutoff}
        if not old:
            return
        with self.factory() as s:
            read_only(s)
            cards = s.scalars(select(_T.c.card).where(_T.c.card.is_not(None)))
            named = {c.get("name") for c in cards if isinstance(c, dict) and c.get("source") == UPLOAD}
        for name, path in old.items():
            if name not in named:
                path.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()


def _count(s: Session, statement: Executable) -> int:
    """How many rows an UPDATE or DELETE changed."""
    return cast(CursorResult[Any], s.execute(statement)).rowcount


def _live(now: dt.datetime) -> Any:
    """Not idle: seen within IDLE_TIMEOUT, or a step in progress."""
    return or_(_T.c.seen_at >= now - IDLE_TIMEOUT, and_(_T.c.busy_until.is_not(None), _T.c.busy_until >= now))


def _idle(now: dt.datetime) -> Any:
    """Left alone for IDLE_TIMEOUT with no step in progress (spelt out: NULL is no answer in SQL)."""
    return and_(_T.c.seen_at < now - IDLE_TIMEOUT, _free(now))


def _free(now: dt.datetime) -> Any:
    """No step in progress (or one whose claim lapsed)."""
    return or_(_T.c.busy_until.is_(None), _T.c.busy_until < now)


def _select(s: Session, digest: str, pdf: bool) -> Row[Any] | None:
    columns = (*_STATE, _T.c.pdf) if pdf else _STATE
    return s.execute(select(*columns).where(_T.c.token_sha256 == digest)).first()


def _state(s: Session, digest: str, now: dt.datetime) -> str:
    found = s.execute(select(_T.c.seen_at, _T.c.busy_until).where(_T.c.token_sha256 == digest)).first()
    if found is None:
        return "gone"
    if found.busy_until is not None and found.busy_until >= now:
        return "busy"
    return "free" if found.seen_at >= now - IDLE_TIMEOUT else "expired"


# -- the row's JSON ------------------------------------------------------------------------------


def _visit_of(token: str, row: Row[Any], pdf: bool) -> Visit:
    visit = Visit(token=token, started_at=row.started_at, seen_at=row.seen_at)
    _reload(visit, row, getattr(row, "pdf", None) if pdf else None)
    return visit


def _reload(visit: Visit, row: Row[Any], pdf: bytes | None = None) -> None:
    visit.started_at, visit.seen_at = row.started_at, row.seen_at
    visit.step = Step(row.step)
    visit.card = CardRef.from_json(row.card) if row.card else None
    visit.card_secret = row.card_secret
    visit.challenge_text = row.challenge or ""
    visit.center = _center_of(row.center) if row.center else None
    visit.menu = _menu_of(row.menu) if row.menu else None
    visit.quote = _quote_of(row.quote) if row.quote else None
    visit.printout = _printout_of(row.printout, pdf or b"") if row.printout else None


def _row_of(visit: Visit) -> dict[str, Any]:
    values: dict[str, Any] = {
        "step": visit.step.value,
        "card": visit.card.to_json() if visit.card else None,
        "card_secret": visit.card_secret,
        "challenge": visit.challenge_text or None,
        "center": _center_json(visit.center) if visit.center else None,
        "menu": _menu_json(visit.menu) if visit.menu else None,
        "quote": _quote_json(visit.quote) if visit.quote else None,
        "printout": _printout_json(visit.printout) if visit.printout else None,
    }
    if visit.printout is None:
        values["pdf"] = None
    elif visit.printout.pdf:  # a new printout; else the stored PDF stays
        values["pdf"] = visit.printout.pdf
    return values


def _center_json(center: CenterVisit) -> dict[str, Any]:
    expires = center.expires_at.isoformat() if center.expires_at else None
    return {"handle": center.handle, "expires_at": expires}


def _center_of(data: Mapping[str, Any]) -> CenterVisit:
    expires = data.get("expires_at")
    return CenterVisit(str(data["handle"]), dt.datetime.fromisoformat(expires) if expires else None)


def _option_json(o: Option) -> dict[str, Any]:
    return {
        "name": o.name,
        "label": o.label,
        "choices": [list(c) for c in o.choices],
        "default": o.default,
        "group": o.group,
        "text": o.text,
        "place": o.place,
        "hint": o.hint,
    }


def _option_of(d: Mapping[str, Any]) -> Option:
    return Option(
        name=d["name"],
        label=d["label"],
        choices=tuple((str(v), str(label)) for v, label in d["choices"]),
        default=d["default"],
        group=d["group"],
        text=bool(d["text"]),
        place=bool(d.get("place", False)),
        hint=d["hint"],
    )


def _menu_json(menu: Menu) -> dict[str, Any]:
    offers = [
        {
            "kind": o.kind,
            "label": o.label,
            "fee": o.fee,
            "options": [_option_json(x) for x in o.options],
            "issuer_name": o.issuer_name,
        }
        for o in menu.offers
    ]
    return {
        "municipality": menu.municipality,
        "offers": offers,
        "max_copies": menu.max_copies,
        "honseki_elsewhere": menu.honseki_elsewhere,
    }


def _menu_of(d: Mapping[str, Any]) -> Menu:
    offers = tuple(
        Offer(
            kind=o["kind"],
            label=o["label"],
            fee=int(o["fee"]),
            options=tuple(_option_of(x) for x in o["options"]),
            issuer_name=o["issuer_name"],
        )
        for o in d["offers"]
    )
    return Menu(d["municipality"], offers, int(d["max_copies"]), bool(d.get("honseki_elsewhere", False)))


def _quote_json(q: Quote) -> dict[str, Any]:
    return {
        "quote_id": q.quote_id,
        "kind": q.kind,
        "label": q.label,
        "copies": q.copies,
        "fee": q.fee,
        "choices": list(q.choices),
    }


def _quote_of(d: Mapping[str, Any]) -> Quote:
    return Quote(
        quote_id=d["quote_id"],
        kind=d["kind"],
        label=d["label"],
        copies=int(d["copies"]),
        fee=int(d["fee"]),
        choices=tuple(d["choices"]),
    )


_PRINTOUT_FIELDS = (
    "certificate_number",
    "verification_code",
    "verify_url",
    "request_id",
    "kind",
    "label",
    "copies",
    "fee",
    "sha256",
)


def _printout_json(p: Printout) -> dict[str, Any]:
    return {**{name: getattr(p, name) for name in _PRINTOUT_FIELDS}, "extra": dict(p.extra)}


def _printout_of(d: Mapping[str, Any], pdf: bytes) -> Printout:
    return Printout(
        pdf=pdf,
        **{name: d[name] for name in _PRINTOUT_FIELDS},
        extra=dict(d.get("extra") or {}),
    )
