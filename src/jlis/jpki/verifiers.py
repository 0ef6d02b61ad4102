"""Registered verifiers (署名検証者 / 利用者証明検証者, facts §3.5) and the log of their status queries.

Only a registered, active verifier receives revocation information, and only for the hierarchy it is
registered for: a 署名検証者 (公的個人認証法 §17) the signing CA's, a 利用者証明検証者 (§36) the
authentication CA's. A verifier calls with a bearer token of its own principal (kind ``verifier``,
created with the registration; ``POST /api/v1/token``). Registration, activation and deactivation
are J-LIS operator acts, recorded in the ``jpki.verifiers`` audit chain.

Every status query — OCSP, CRL download, latest 基本4情報 — is a row of ``jpki_status_queries`` with
the verifier, its stated purpose, the channel, the certificate asked about and the answer.
:class:`StatusQueryLog` writes them in batches from a background thread; see there for its two
modes and the crash window of the fast one. If the log cannot be written, the caller answers
``tryLater`` (fails closed).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.auth import service as auth
from jlis.auth.models import Principal, PrincipalKind
from jlis.auth.tables import PrincipalRow
from jlis.bulk import bulk_insert
from jlis.clock import Clock
from jlis.db import read_only, transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation, Unauthenticated
from jlis.jpki.tables import AUTH, SIGN, StatusQueryRow, VerifierRow

log = logging.getLogger(__name__)

VERIFIER_LOG = AuditLog("jpki.verifiers")
VERIFIER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}[a-z0-9]$")
MAX_PURPOSE_LENGTH = 120
DEFAULT_PURPOSE = "unspecified"
PURPOSE_HEADER = "X-JPKI-Purpose"
CHANNELS = ("ocsp", "crl", "basic4")

ROLE_LABELS = {SIGN: "署名検証者", AUTH: "利用者証明検証者"}


@dataclass(frozen=True)
class Verifier:
    id: str
    name: str
    signature_verifier: bool  # 署名検証者: signing-certificate status
    user_verifier: bool  # 利用者証明検証者: authentication-certificate status
    basis: str
    agreement_no: str
    agreement_date: dt.date
    active: bool
    username: str | None
    created_at: dt.datetime

    def may_query(self, ca_kind: str) -> bool:
        return self.active and (self.signature_verifier if ca_kind == SIGN else self.user_verifier)

    def require_role(self, ca_kind: str) -> None:
        """Deny by default: an inactive verifier, or one not registered for this hierarchy, gets
        nothing (the two trust hierarchies are kept apart, facts §3.1)."""
        if not self.active:
            raise Forbidden(
                f"verifier {self.id} is not active", field="verifier", rule="must be an active verifier"
            )
        if ca_kind not in (SIGN, AUTH):
            raise InvalidInput("ca_kind", "must be sign or auth")
        if not self.may_query(ca_kind):
            role = ROLE_LABELS[ca_kind]
            raise Forbidden(
                f"verifier {self.id} is not a registered {role}",
                field="verifier",
                rule=f"must be a registered {role} ({'signature' if ca_kind == SIGN else 'user'} verifier)",
            )

    @property
    def roles(self) -> list[str]:
        return [
            ROLE_LABELS[k] for k, on in ((SIGN, self.signature_verifier), (AUTH, self.user_verifier)) if on
        ]


def _verifier(row: VerifierRow, username: str | None) -> Verifier:
    return Verifier(
        id=row.id,
        name=row.name,
        signature_verifier=row.signature_verifier,
        user_verifier=row.user_verifier,
        basis=row.basis,
        agreement_no=row.agreement_no,
        agreement_date=row.agreement_date,
        active=row.active,
        username=username,
        created_at=row.created_at,
    )


def check_verifier_id(value: str) -> str:
    value = (value or "").strip()
    if not VERIFIER_ID_RE.match(value):
        raise InvalidInput(
            "verifier_id",
            "3-64 characters: lower-case letters, digits, '.', '_' or '-', alphanumeric at both ends",
        )
    return value


def _text(field: str, value: str, max_len: int) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > max_len:
        raise InvalidInput(field, f"at most {max_len} characters")
    if any(ord(c) < 0x20 for c in value):
        raise InvalidInput(field, "no control characters")
    return value


def check_purpose(value: str | None) -> str:
    """The purpose a verifier states for a query (free text, e.g. 口座開設の本人確認)."""
    if value is None or not value.strip():
        return DEFAULT_PURPOSE
    return _text("purpose", value, MAX_PURPOSE_LENGTH)


class VerifierRegistry:
    """Registration of verifiers, in the caller's session (the caller commits). ``actor`` is the
    operator acting, for the audit chain."""

    def __init__(self, session: Session, clock: Clock, *, actor: str) -> None:
        self.s = session
        self.clock = clock
        self.actor = actor

    def register(
        self,
        *,
        verifier_id: str,
        name: str,
        signature_verifier: bool,
        user_verifier: bool,
        basis: str,
        agreement_no: str,
        agreement_date: dt.date,
        username: str,
        password: str,
    ) -> Verifier:
        """Register a verifier with its agreement record and create its API principal."""
        vid = check_verifier_id(verifier_id)
        name = _text("name", name, 200)
        basis = _text("basis", basis, 200)
        agreement_no = _text("agreement_no", agreement_no, 64)
        if not isinstance(agreement_date, dt.date) or isinstance(agreement_date, dt.datetime):
            raise InvalidInput("agreement_date", "must be a date")
        if agreement_date > self.clock.today():
            raise InvalidInput("agreement_date", "must not be in the future")
        if not (signature_verifier or user_verifier):
            raise InvalidInput("roles", "must be a signature verifier, a user verifier or both")
        if self.s.get(VerifierRow, vid) is not None:
            raise RuleViolation("verifier_id", "must be unique", f"verifier {vid!r} already exists")
        now = self.clock.now()
        principal = auth.create_principal(
            self.s,
            username=username,
            password=password,
            kind=PrincipalKind.VERIFIER,
            display_name=name[:100],
            now=now,
        )
        row = VerifierRow(
            id=vid,
            name=name,
            signature_verifier=bool(signature_verifier),
            user_verifier=bool(user_verifier),
            basis=basis,
            agreement_no=agreement_no,
            agreement_date=agreement_date,
            principal_id=principal.id,
            active=True,
            created_at=now,
        )
        self.s.add(row)
        self.s.flush()
        self._audit("register", row, username=principal.username)
        return _verifier(row, principal.username)

    def set_active(self, verifier_id: str, active: bool) -> Verifier:
        """Deactivation also disables the principal, which ends its tokens (an OCSP process that
        cached the token drops it within :data:`TOKEN_CACHE_SECONDS`)."""
        row = self._row(verifier_id)
        username = self._username(row)
        if row.active == active:
            return _verifier(row, username)
        row.active = active
        if username is not None:
            auth.set_disabled(self.s, username, not active)
        self.s.flush()
        self._audit("activate" if active else "deactivate", row)
        return _verifier(row, username)

    def get(self, verifier_id: str) -> Verifier:
        row = self._row(verifier_id)
        return _verifier(row, self._username(row))

    def list(self) -> list[Verifier]:
        rows = self.s.execute(
            select(VerifierRow, PrincipalRow.username)
            .outerjoin(PrincipalRow, PrincipalRow.id == VerifierRow.principal_id)
            .order_by(VerifierRow.id)
        ).all()
        return [_verifier(r, u) for r, u in rows]

    def _row(self, verifier_id: str) -> VerifierRow:
        row = self.s.get(VerifierRow, (verifier_id or "").strip())
        if row is None:
            raise NotFound("verifier_id", verifier_id)
        return row

    def _username(self, row: VerifierRow) -> str | None:
        if row.principal_id is None:
            return None
        return self.s.execute(
            select(PrincipalRow.username).where(PrincipalRow.id == row.principal_id)
        ).scalar()

    def _audit(self, action: str, row: VerifierRow, **extra: Any) -> None:
        VERIFIER_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=self.actor,
            action=action,
            subject=row.id,
            details={
                "name": row.name,
                "signature_verifier": row.signature_verifier,
                "user_verifier": row.user_verifier,
                "basis": row.basis,
                "agreement_no": row.agreement_no,
                "agreement_date": row.agreement_date.isoformat(),
                "active": row.active,
                **extra,
            },
        )


def verifier_of(session: Session, principal: Principal) -> Verifier:
    """The registered verifier a principal acts for. Fails closed: any other principal, an
    unregistered or an inactive verifier is refused."""
    principal.require_kind(PrincipalKind.VERIFIER)
    row = session.execute(
        select(VerifierRow).where(VerifierRow.principal_id == principal.id)
    ).scalar_one_or_none()
    if row is None:
        raise Forbidden(
            "this principal is not a registered verifier",
            field="verifier",
            rule="must be a registered verifier",
        )
    v = _verifier(row, principal.username)
    if not v.active:
        raise Forbidden(f"verifier {v.id} is not active", field="verifier", rule="must be an active verifier")
    return v


# ------------------------------------------------------------------------------------- token cache

TOKEN_CACHE_SECONDS = 5.0  # a revoked token or deactivated verifier is refused at most this late
TOKEN_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class CallerCheck:
    """The outcome of authenticating a status query: the verifier, or the refusal to answer."""

    verifier: Verifier | None
    refusal: Unauthenticated | Forbidden | None = None


_NO_TOKEN = CallerCheck(
    None,
    Unauthenticated(
        "a registered verifier's bearer token is required (POST /api/v1/token)",
        field="Authorization",
        rule="must be 'Bearer <token>'",
    ),
)
_BAD_TOKEN = CallerCheck(
    None,
    Unauthenticated(
        "the token is unknown, expired or revoked",
        field="Authorization",
        rule="must be a valid, unexpired token",
    ),
)


class VerifierAuth:
    """Bearer token → verifier, cached for a few seconds so that the OCSP hot path does not read the
    database on every query. Only the SHA-256 of a token is kept."""

    def __init__(
        self, factory: sessionmaker[Session], clock: Clock, *, ttl: float = TOKEN_CACHE_SECONDS
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.ttl = ttl
        self._cache: dict[bytes, tuple[float, CallerCheck]] = {}
        self._inflight: dict[bytes, threading.Lock] = {}
        self._lock = threading.Lock()

    def cached(self, authorization: str | None) -> CallerCheck | None:
        """From memory, or None when the database must be asked (:meth:`check`)."""
        token = _bearer(authorization)
        if token is None:
            return _NO_TOKEN
        hit = self._cache.get(hashlib.sha256(token.encode()).digest())
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def check(self, authorization: str | None) -> CallerCheck:
        token = _bearer(authorization)
        if token is None:
            return _NO_TOKEN
        key = hashlib.sha256(token.encode()).digest()
        # One database read per token however many queries arrive with it at once.
        with self._lock:
            lock = self._inflight.setdefault(key, threading.Lock())
        with lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            with self.factory() as s:
                read_only(s)
                principal = auth.principal_for_token(s, token, now=self.clock.now())
                if principal is None:
                    result = _BAD_TOKEN
                else:
                    try:
                        result = CallerCheck(verifier_of(s, principal))
                    except Forbidden as exc:
                        result = CallerCheck(None, exc)
            if len(self._cache) >= TOKEN_CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + self.ttl, result)
        with self._lock:
            self._inflight.pop(key, None)
        return result

    def forget(self) -> None:
        self._cache.clear()


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        return None
    return token


# ------------------------------------------------------------------------------------- query log

_Q = cast(Table, StatusQueryRow.__table__)


@dataclass(frozen=True)
class QueryRecord:
    at: dt.datetime
    verifier_id: str | None
    purpose: str
    channel: str
    ca_kind: str | None
    serial: str | None
    result: str

    def row(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "verifier_id": self.verifier_id,
            "purpose": self.purpose[:MAX_PURPOSE_LENGTH],
            "channel": self.channel,
            "ca_kind": self.ca_kind,
            "serial": self.serial[:40] if self.serial else None,
            "result": self.result[:32],
        }


def write_records(session: Session, records: Sequence[QueryRecord]) -> None:
    """Synchronously, in the caller's transaction (the 基本4情報 service records its answer with it)."""
    if records:
        bulk_insert(session, _Q, [r.row() for r in records])  # COPY on PostgreSQL


WAIT_SECONDS = 10.0  # the longest a query waits for its record to be committed (durable mode)
GATHER_SECONDS = 0.002  # a batch with a caller waiting on it waits this long for company
FLUSH_SECONDS = 0.05  # queued records are written at least this often
MAX_QUEUE = 100_000  # beyond this many unwritten records, queries are answered tryLater
RETRY_SECONDS = 1.0  # after a failed write

_Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | concurrent.futures.Future[None] | None


class LogUnavailable(RuntimeError):
    """The status-query log cannot take a record now (the database is failing, or it is this far
    behind): the query must not be answered (fails closed)."""


class StatusQueryLog:
    """Status-query records written in batches by a background thread, in two ways:

    - :meth:`enqueue` (the OCSP hot path): the record is queued and the query answered at once; the
      writer commits the queue every :data:`FLUSH_SECONDS` or every ``max_batch`` records. A record
      whose write fails stays queued and is retried; while writes fail, or once :data:`MAX_QUEUE`
      records wait, :meth:`enqueue` raises :class:`LogUnavailable` and the caller answers tryLater.
      *Crash window*: a process killed outright (SIGKILL, power loss) loses the records of the
      queries it answered in the last flush interval (≈ 50 ms); a normal shutdown
      (:meth:`close`) writes everything first.
    - :meth:`record` / :meth:`record_async` (CRLs, 基本4情報, and OCSP in durable mode): the caller
      waits for the commit of its record (group commit) before it answers: no crash window, but
      under load a thread hand-off per answer (about half the OCSP throughput in one process).
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        max_batch: int = 2000,
        interval: float = FLUSH_SECONDS,
        gather: float = GATHER_SECONDS,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self.factory = factory
        self.max_batch = max_batch
        self.interval = interval
        self.gather = gather
        self.max_queue = max_queue
        self._pending: list[tuple[QueryRecord, _Waiter]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = False
        self._failing = False
        self._urgent = False  # a caller waits on a pending record
        self._force = False  # flush() asks for everything now
        self._first_at = 0.0
        self.written = 0
        self.failed = 0
        self.batches = 0

    def start(self) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._closed = False
                self._thread = threading.Thread(target=self._run, name="jpki-status-log", daemon=True)
                self._thread.start()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def enqueue(self, record: QueryRecord) -> None:
        """Queue a record without waiting for it. Raises :class:`LogUnavailable` (fail closed)."""
        if self._thread is None:
            self.start()
        with self._cond:
            if self._closed:
                raise LogUnavailable("the status-query log is closed")
            if self._failing or len(self._pending) >= self.max_queue:
                raise LogUnavailable("the status-query log cannot keep up; try again")
            if not self._pending:
                self._first_at = time.monotonic()
                self._pending.append((record, None))
                self._cond.notify_all()
            else:
                self._pending.append((record, None))
                if len(self._pending) >= self.max_batch:
                    self._cond.notify_all()

    def submit(self, record: QueryRecord, waiter: _Waiter) -> None:
        if self._thread is None:
            self.start()
        with self._cond:
            if self._closed:
                raise LogUnavailable("the status-query log is closed")
            if not self._pending:
                self._first_at = time.monotonic()
            self._pending.append((record, waiter))
            self._urgent = True
            self._cond.notify_all()

    def record(self, record: QueryRecord) -> concurrent.futures.Future[None]:
        """Queue a record; the future completes when it is committed (or fails)."""
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.submit(record, fut)
        return fut

    async def record_async(self, record: QueryRecord, timeout: float = WAIT_SECONDS) -> None:
        """Queue a record and wait for its commit without blocking the event loop (TimeoutError
        after ``timeout`` seconds: the caller then answers tryLater)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.submit(record, (loop, fut))
        # call_later rather than asyncio.wait_for: no extra task per query.
        timer = loop.call_later(timeout, _expire, fut)
        try:
            await fut
        finally:
            timer.cancel()

    def flush(self, timeout: float = 10.0) -> None:
        """Write everything queued so far now, and wait for it (pages, tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._force = True
            self._cond.notify_all()
            while (self._pending or self._busy) and time.monotonic() < deadline and not self._failing:
                self._cond.wait(0.01)
            self._force = False

    def close(self) -> None:
        self.flush(10.0)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait(0.5)
                if not self._pending and self._closed:
                    return
                # Wait for company (one commit for many answers): briefly when a caller waits on
                # its record, up to the flush interval otherwise.
                while len(self._pending) < self.max_batch and not (self._closed or self._force):
                    wait = self.gather if self._urgent else self.interval
                    remaining = self._first_at + wait - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                self._urgent = any(w is not None for _, w in self._pending)
                self._first_at = time.monotonic()
                self._busy = True
            error: BaseException | None = None
            try:
                with transaction(self.factory) as s:
                    write_records(s, [r for r, _ in batch])
                self.written += len(batch)
                self.batches += 1
            except Exception as exc:
                log.exception("writing %d status-query records failed", len(batch))
                self.failed += len(batch)
                error = exc
            try:
                # Waiting callers learn the outcome (and answer tryLater on a failure); records
                # already answered are kept and written again later: they must not be lost.
                _resolve([w for _, w in batch], error)
            except Exception:  # pragma: no cover - the writer must outlive any one batch
                log.exception("releasing the callers of a status-query batch failed")
            with self._cond:
                self._busy = False
                if error is None:
                    self._failing = False
                else:
                    self._failing = True
                    self._pending[:0] = [(r, None) for r, w in batch if w is None]
                    self._cond.notify_all()
                    self._cond.wait(RETRY_SECONDS if not self._closed else 0)
                    if self._closed:  # shutting down with the database gone: give up, loudly
                        log.error("%d status-query records could not be written", len(self._pending))
                        self._pending.clear()
                self._cond.notify_all()


def _resolve(waiters: list[_Waiter], error: BaseException | None) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for w in waiters:
        if w is None:
            continue
        if isinstance(w, concurrent.futures.Future):
            if w.done():  # cancelled by a caller that gave up
                continue
            if error is None:
                w.set_result(None)
            else:
                w.set_exception(error)
        else:
            by_loop.setdefault(w[0], []).append(w[1])
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle, futures, error)


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError("the status-query log did not commit in time"))


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for f in futures:
        if f.done():
            continue
        if error is None:
            f.set_result(None)
        else:
            f.set_exception(error)


def recent_queries(
    session: Session, *, verifier_id: str | None = None, channel: str | None = None, limit: int = 200
) -> list[StatusQueryRow]:
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit", "must be between 1 and 1000")
    if channel is not None and channel not in CHANNELS:
        raise InvalidInput("channel", f"must be one of {', '.join(CHANNELS)}")
    stmt = select(StatusQueryRow)
    if verifier_id:
        stmt = stmt.where(StatusQueryRow.verifier_id == verifier_id)
    if channel:
        stmt = stmt.where(StatusQueryRow.channel == channel)
    return list(session.scalars(stmt.order_by(StatusQueryRow.id.desc()).limit(limit)))
