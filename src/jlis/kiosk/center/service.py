"""The issuance center (証明書交付センター, facts §6.1): a J-LIS service between the kiosks and the
municipal certificate servers.

1. :meth:`IssuanceCenter.open_session` — a login challenge for the card at a kiosk (the center's
   own login desk; the audience names the center and the kiosk);
2. :meth:`~IssuanceCenter.authenticate` — the card's signature, the chain to an authentication
   root, and the certificate's status **by OCSP as the registered 利用者証明検証者** ``kiosk-center``
   (the in-process responder, or over HTTP with the verifier's token; each query is in
   ``jpki_status_queries`` with purpose コンビニ交付);
   then J-LIS's look-up of the holder (``jlis.jpki.holders``) gives the municipality of residence;
3. :meth:`~IssuanceCenter.menu` — what that municipality offers, with fees and 罹災証明書;
4. :meth:`~IssuanceCenter.request` → :class:`Quote` (a request id made here), :meth:`~IssuanceCenter.pay`
   (simulated, held) → :meth:`~IssuanceCenter.issue`: routed to the municipality of residence (or of
   the 本籍 for 戸籍/附票), through its own certificate server or the BCL's; the content is built
   (``CertificateServer.issue_content``), bound (``verify_binding``), rendered, signed and registered
   (``jlis.kiosk.pdf``) and bound again (``check_binding`` on the PDF, at the server and here);
5. the PDF and its verification data go back to the kiosk; a row of ``kiosk_center_log`` records
   the outcome (never the PDF, never personal data). A refusal at any step is a
   :class:`CenterRefused` (stable code, Japanese message), logged, and charges nothing.

Sessions, quotes, payments and receipts are kept in the database (``kiosk_center_sessions``,
``kiosk_center_quotes``; the session token only as its SHA-256), so every worker process of the
web app serves every kiosk: a session opened through one process is used through another. Each
step that must happen once (pay a quote, use a receipt) is a conditional UPDATE on the quote's
state, so of two processes racing exactly one succeeds. Write transactions stay short (SQLite has
one writer): none is held across the OCSP call or the rendering and signing of the PDF.

A certificate number committed by the certificate server whose document then fails is voided
(``jlis.kiosk.issuer.server.void_issuance``, in its own transaction) and the refusal logged with
the number; rows left numbered past a timeout are settled by :meth:`IssuanceCenter.sweep`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote, urlparse

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.auth.models import Principal, PrincipalKind
from jlis.card.chip.errors import PinBlocked, WrongPin
from jlis.clock import Clock
from jlis.db import read_only, transaction
from jlis.errors import Forbidden, InvalidInput, JlisError, NotFound, RuleViolation
from jlis.jpki.holders import CertificateRef, HolderLookup
from jlis.jpki.ocsp import Answer
from jlis.jpki.rp.errors import (
    BadSignature,
    CertificateNotValid,
    CertificateRevoked,
    LoginRefused,
    MalformedMessage,
    RevocationCheckFailed,
    RevocationUnknown,
    UntrustedCertificate,
)
from jlis.jpki.rp.http import Fetcher, HttpReply
from jlis.jpki.rp.login import LoginResponse, verify_login
from jlis.jpki.rp.server import LoginDesk, NonceLedger, auth_trust_store
from jlis.jpki.rp.status import OcspChecker
from jlis.jpki.rp.trust import TrustStore
from jlis.jpki.tables import AUTH
from jlis.jpki.verifiers import PURPOSE_HEADER, QueryRecord, VerifierRegistry
from jlis.kiosk.center.errors import CenterReason, CenterRefused
from jlis.kiosk.center.models import (
    CenterSession,
    HonsekiApplied,
    IssuedCertificate,
    KioskChallenge,
    Menu,
    MenuItem,
    Quote,
    Receipt,
    Server,
    Stage,
    check_copies,
    check_kiosk_id,
    options_for,
)
from jlis.kiosk.center.routes import RouteBook, load_routes
from jlis.kiosk.center.tables import (
    PAID,
    QUOTED,
    USED,
    CenterLogRow,
    CenterQuoteRow,
    CenterSessionRow,
    KioskRow,
)
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.fees import FeeTable, load_fees
from jlis.kiosk.issuer.errors import IssuanceRefused
from jlis.kiosk.issuer.koseki import KosekiBook
from jlis.kiosk.issuer.models import IssueOptions
from jlis.kiosk.issuer.policy import PolicyBook, load_policies
from jlis.kiosk.issuer.rules import HONSEKI_KINDS
from jlis.kiosk.issuer.server import (
    UNDELIVERED_AFTER,
    CertificateServer,
    mark_issued,
    sweep_undelivered,
    verify_binding,
    void_issuance,
)
from jlis.kiosk.pdf import render as render_mod
from jlis.kiosk.pdf.service import CertificateDocuments, PreparedDocument, new_code
from jlis.kiosk.pdf.signing import sign_pdf, signer_for_role
from jlis.lgwan.ca import OrganisationCA
from jlis.masters.geography import lg_check_digit

if TYPE_CHECKING:
    from jlis.container import Container
    from jlis.jpki.api import RevocationServices

CENTER_ID = "kiosk-center"  # the registered 利用者証明検証者 and the actor of every read
PURPOSE = "コンビニ交付"
PATH = "/api/v1/kiosk/center"
CENTER_PRINCIPAL = Principal(
    id=0, username=CENTER_ID, kind=PrincipalKind.JLIS_OPERATOR, display_name="証明書交付センター"
)
# The BCL's 職責証明書 is issued by the organisation CA under a reserved code outside the 団体コード
# ranges (99999 + check digit): the BCL is not a 地方公共団体, and a code of its own keeps its key
# apart from every municipality's (``OrganisationCA.role_for(<municipality>)`` never returns it).
BCL_ROLE_CODE = "99999" + lg_check_digit("99999")
BCL_TITLE = "自治体基盤クラウド 証明発行サーバ"
CENTER_LOG = AuditLog("kiosk.center")
SESSION_TTL = dt.timedelta(minutes=10)
CACHE_SECONDS = 5.0
_T = TypeVar("_T")
CHALLENGE_TTL = dt.timedelta(minutes=3)
SWEEP_BATCH = 100  # expired sessions and quotes deleted per login (and per sweep)
SWEEP_SECONDS = 60.0  # a process settles undelivered issuance rows at most this often
# A paid (held) or used receipt outlives its quote's expiry by this much (a payment is a money
# matter: what became of it stays answerable for a day); an unpaid quote goes at its expiry.
RECEIPT_RETENTION = dt.timedelta(days=1)
LOG = logging.getLogger(__name__)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _token_hash(token: object) -> str | None:
    """The SHA-256 a session token is kept as (None for what cannot be a token)."""
    if not isinstance(token, str) or not token or len(token) > 200:
        return None
    return _sha256(token)


def _options_json(options: IssueOptions) -> str:
    return json.dumps(asdict(options), sort_keys=True, separators=(",", ":"))


def _options_of(text: str) -> IssueOptions:
    data = json.loads(text)
    data["items"] = tuple(data["items"])
    return IssueOptions(**data)


def _session_of(row: CenterSessionRow, token: str) -> CenterSession:
    return CenterSession(token, row.kiosk_id, row.lg_code, row.municipality, row.expires_at)


def _quote_of(row: CenterQuoteRow, token: str) -> Quote:
    """The quote as the center accepted it; ``token`` is the caller's (the row keeps its hash), or ""
    when it does not match, so the quote then differs from the caller's."""
    return Quote(
        row.request_id,
        token if _token_hash(token) == row.token_sha256 else "",
        row.kiosk_id,
        CertificateKind(row.kind),
        _options_of(row.options),
        row.copies,
        row.fee,
        row.lg_code,
        Server(row.server),
        row.expires_at,
    )


def _receipt_of(row: CenterQuoteRow) -> Receipt:
    assert row.paid_amount is not None and row.paid_at is not None
    return Receipt(row.request_id, row.paid_amount, row.paid_at)


# ------------------------------------------------------------------------------------- set-up


@dataclass(frozen=True)
class CenterSetup:
    verifier_id: str
    kiosk_tokens: Mapping[str, str]  # kiosk id -> bearer token, for kiosks registered by this call
    bcl_role_serial: str


def register_kiosk(
    session: Session,
    clock: Clock,
    kiosk_id: str,
    name: str,
    *,
    actor: str,
    token_source: Callable[[], str] = lambda: secrets.token_urlsafe(32),
) -> str:
    """Register a kiosk and return its bearer token (shown once; the table keeps its SHA-256)."""
    kid = check_kiosk_id(kiosk_id)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("name", "1-100 characters")
    if session.get(KioskRow, kid) is not None:
        raise RuleViolation("kiosk_id", "must be unique", f"kiosk {kid!r} already exists")
    token = token_source()
    if len(token) < 32:
        raise InvalidInput("token", "must be at least 32 characters")
    now = clock.now()
    session.add(KioskRow(id=kid, name=name, token_sha256=_sha256(token), active=True, created_at=now))
    session.flush()
    CENTER_LOG.append(
        session, at=now, actor=actor, action="kiosk.register", subject=kid, details={"name": name}
    )
    return token


def set_kiosk_active(session: Session, clock: Clock, kiosk_id: str, active: bool, *, actor: str) -> None:
    row = session.get(KioskRow, check_kiosk_id(kiosk_id))
    if row is None:
        raise NotFound("kiosk", kiosk_id)
    row.active = active
    session.flush()
    CENTER_LOG.append(
        session,
        at=clock.now(),
        actor=actor,
        action="kiosk.activate" if active else "kiosk.deactivate",
        subject=row.id,
        details={},
    )


def kiosk_for_token(session: Session, token: str | None) -> str:
    """The active kiosk whose bearer token this is (CenterRefused ``unknown_kiosk`` otherwise)."""
    if not token or len(token) > 200:
        raise CenterRefused.of(CenterReason.UNKNOWN_KIOSK, "no kiosk token", field="Authorization")
    row = session.scalars(select(KioskRow).where(KioskRow.token_sha256 == _sha256(token))).first()
    if row is None or not row.active:
        raise CenterRefused.of(
            CenterReason.UNKNOWN_KIOSK, "unknown or inactive kiosk token", field="Authorization"
        )
    return row.id


def ensure_center(
    session: Session,
    clock: Clock,
    container: Container,
    *,
    kiosks: Mapping[str, str] | None = None,
    verifier_password: str | None = None,
    actor: str = "setup",
    token_source: Callable[[], str] | None = None,
) -> CenterSetup:
    """Idempotent set-up: the center as a registered 利用者証明検証者 (``kiosk-center``, with its
    principal), the kiosks named in ``kiosks`` (id -> name; tokens returned for new ones only), and
    the BCL's 職責証明書 from the organisation CA."""
    registry = VerifierRegistry(session, clock, actor=actor)
    try:
        registry.get(CENTER_ID)
    except NotFound:
        registry.register(
            verifier_id=CENTER_ID,
            name="地方公共団体情報システム機構 証明書交付センター",
            signature_verifier=False,
            user_verifier=True,
            basis="電子署名等に係る地方公共団体情報システム機構の認証業務に関する法律 第36条 (コンビニ交付)",
            agreement_no="JLIS-KIOSK-CENTER-0001",
            agreement_date=clock.today(),
            username=CENTER_ID,
            password=verifier_password or secrets.token_urlsafe(24),
        )
    tokens: dict[str, str] = {}
    for kiosk_id, name in (kiosks or {}).items():
        if session.get(KioskRow, check_kiosk_id(kiosk_id)) is None:
            kw = {"token_source": token_source} if token_source else {}
            tokens[kiosk_id] = register_kiosk(session, clock, kiosk_id, name, actor=actor, **kw)
    ca = OrganisationCA(
        session, clock, container.keystore, container.settings.resolved_public_url, rng=container.rng
    )
    ca.ensure(actor=actor)
    role = ca.ensure_role(BCL_ROLE_CODE, BCL_TITLE, actor=actor)
    return CenterSetup(CENTER_ID, tokens, role.serial)


def sweep_expired(s: Session, now: dt.datetime) -> None:
    """Delete a batch of expired sessions, of expired unpaid quotes, and of paid or used
    receipts :data:`RECEIPT_RETENTION` after their expiry, in the caller's transaction. On
    PostgreSQL rows another process is deleting are skipped, so concurrent logins never wait
    for (or deadlock on) each other's sweep."""
    postgres = s.get_bind().dialect.name == "postgresql"
    q = CenterQuoteRow
    for key, expired_rows in (
        (CenterSessionRow.token_sha256, CenterSessionRow.expires_at < now),
        (
            q.request_id,
            or_(
                and_(q.state == QUOTED, q.expires_at < now),
                and_(q.state != QUOTED, q.expires_at < now - RECEIPT_RETENTION),
            ),
        ),
    ):
        expired = select(key).where(expired_rows).limit(SWEEP_BATCH)
        if postgres:
            expired = expired.with_for_update(skip_locked=True)
        s.execute(delete(key.class_).where(key.in_(expired.scalar_subquery())))


def sweep_center(
    session: Session, clock: Clock, *, undelivered_after: dt.timedelta = UNDELIVERED_AFTER
) -> tuple[int, int]:
    """The center's housekeeping in the caller's transaction (:meth:`IssuanceCenter.sweep`, ``jlis
    kiosk center sweep``): :func:`sweep_expired`, then a batch of issuance rows left numbered past
    ``undelivered_after`` settled (``issued`` if their document is registered, ``void``
    otherwise). Returns (issued, voided)."""
    sweep_expired(session, clock.now())
    return sweep_undelivered(session, clock, older_than=undelivered_after, actor=CENTER_ID)


# ------------------------------------------------------------------------------------- OCSP


class ResponderFetcher:
    """The SDK's :class:`~jlis.jpki.rp.http.Fetcher` over the in-process OCSP responder: a POST to
    ``…/jpki/ocsp/auth`` is answered by :class:`jlis.jpki.ocsp.OcspResponder` exactly as the HTTP
    route answers it, and recorded in the status-query log with the center as the verifier."""

    def __init__(self, services: RevocationServices, verifier_id: str, purpose: str, clock: Clock) -> None:
        self.services = services
        self.verifier_id = verifier_id
        self.purpose = purpose
        self.clock = clock

    def get(self, url: str, headers: Mapping[str, str]) -> HttpReply:
        return HttpReply(405, "text/plain", b"")

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpReply:
        kind = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]
        if kind != AUTH:
            return HttpReply(404, "text/plain", b"")
        responder = self.services.responder
        answer: Answer = responder.cached(kind, body) or responder.answer(kind, body)
        now = self.clock.now()
        serials = answer.serials or (None,)
        results = answer.results if len(answer.results) == len(serials) else (answer.result,) * len(serials)
        for serial, result in zip(serials, results, strict=True):
            record = QueryRecord(now, self.verifier_id, self.purpose, "ocsp", kind, serial, result)
            if self.services.durable_log:
                self.services.log.record(record).result(timeout=10)
            else:
                self.services.log.enqueue(record)
        return HttpReply(200, "application/ocsp-response", answer.der)


class _WithPurpose:
    """A :class:`Fetcher` that states the center's purpose (``X-JPKI-Purpose``) on every request."""

    def __init__(self, inner: Fetcher, purpose: str) -> None:
        self.inner = inner
        self.header = {PURPOSE_HEADER: quote(purpose)}

    def get(self, url: str, headers: Mapping[str, str]) -> HttpReply:
        return self.inner.get(url, {**headers, **self.header})

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpReply:
        return self.inner.post(url, body, {**headers, **self.header})


# ------------------------------------------------------------------------------------- the center


class _FirstUse:
    """verify_login's replay guard, deferred: it remembers the nonce verify_login consumes last
    (after every other check) and :meth:`commit` records it in the database ledger afterwards."""

    def __init__(self) -> None:
        self.seen: tuple[bytes, dt.datetime, dt.datetime] | None = None

    def consume(self, nonce: bytes, until: dt.datetime, now: dt.datetime) -> bool:
        self.seen = (nonce, until, now)
        return True

    def commit(self, ledger: NonceLedger) -> bool:
        return self.seen is not None and ledger.consume(*self.seen)


@dataclass
class _Live:
    """The center's side of a session: the certificate it authenticated and the residence."""

    session: CenterSession
    certificate: CertificateRef


class IssuanceCenter:
    """The center as seen from one process: thread-safe (kiosks call it concurrently), and any
    number of instances — in one process or in several worker processes — share the same sessions,
    quotes and receipts through the database."""

    def __init__(
        self,
        container: Container,
        revocation: RevocationServices | None,
        *,
        ocsp: Fetcher | None = None,
        ocsp_token: str | None = None,
        ocsp_url: str | None = None,
        routes: RouteBook | None = None,
        policies: PolicyBook | None = None,
        fees: FeeTable | None = None,
        session_ttl: dt.timedelta = SESSION_TTL,
        token_source: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        request_id_source: Callable[[], str] = lambda: "K" + secrets.token_hex(15),
        undelivered_after: dt.timedelta = UNDELIVERED_AFTER,
    ) -> None:
        self.container = container
        self.clock = container.clock
        self.factory = container.factory
        self.revocation = revocation
        if revocation is None and ocsp is None:
            raise InvalidInput("ocsp", "the center needs the OCSP responder in process or over HTTP")
        # Over HTTP (a center on its own node): the SDK's checker with the verifier's bearer token
        # and the purpose header; in process: the responder of ``revocation`` (ResponderFetcher).
        self.ocsp = _WithPurpose(ocsp, PURPOSE) if ocsp is not None else None
        self.ocsp_token = ocsp_token
        self.routes = routes or load_routes()
        self.policies = policies or load_policies()
        self.fees = fees or load_fees()
        self.session_ttl = session_ttl
        self.token_source = token_source
        self.request_id_source = request_id_source
        self.base_url = container.settings.resolved_public_url.rstrip("/")
        self.ocsp_url = ocsp_url or f"{self.base_url}/jpki/ocsp/{AUTH}"
        self.desk = LoginDesk(
            hmac.new(container.secret, b"jlis-login-desk:kiosk_center", hashlib.sha256).digest()
        )
        self.undelivered_after = undelivered_after
        self._lock = threading.Lock()  # guards the cache and the sweep's schedule (no session state)
        self._cache: dict[str, tuple[float, object]] = {}
        self._next_sweep = 0.0

    # -- step 1 -------------------------------------------------------------------------------------

    def audience(self, kiosk_id: str) -> str:
        return f"{self.base_url}{PATH}/kiosks/{kiosk_id}"

    def open_session(self, kiosk_id: str) -> KioskChallenge:
        """A challenge for the card at ``kiosk_id`` (a registered, active kiosk)."""
        started = self.clock.now()
        try:
            try:
                kid = check_kiosk_id(kiosk_id)
            except InvalidInput as exc:
                raise CenterRefused.wrap(CenterReason.UNKNOWN_KIOSK, exc) from exc
            with self.factory() as s:
                read_only(s)
                row = s.get(KioskRow, kid)
                if row is None or not row.active:
                    raise CenterRefused.of(
                        CenterReason.UNKNOWN_KIOSK, f"kiosk {kid} is not registered and active"
                    )
            challenge = self.desk.issue(self.audience(kid), self.clock)
        except CenterRefused as exc:
            self._log_refusal(str(kiosk_id)[:32] or "?", Stage.AUTHENTICATE, exc, started)
            raise
        return KioskChallenge(kid, challenge.to_text(), challenge.expires_at)

    # -- step 2 -------------------------------------------------------------------------------------

    def card_refused(self, challenge: KioskChallenge, error: Exception) -> CenterRefused:
        """The kiosk's card reader failed before an answer reached the center (a wrong PIN — counted
        on the card —, a blocked PIN, an unreadable card): the challenge is withdrawn, the refusal
        logged, and returned for the kiosk to show."""
        started = self.clock.now()
        if isinstance(error, WrongPin):
            refusal = CenterRefused(
                CenterReason.WRONG_PIN.value,
                f"{CenterReason.WRONG_PIN.message}（残り{error.tries_left}回）",
                f"wrong PIN, {error.tries_left} tries left",
                field="暗証番号",
            )
        elif isinstance(error, PinBlocked):
            refusal = CenterRefused.of(CenterReason.PIN_BLOCKED, "PIN blocked", field="暗証番号")
        else:
            refusal = CenterRefused.of(CenterReason.CARD_UNREADABLE, type(error).__name__, field="カード")
        self._log_refusal(challenge.kiosk_id, Stage.AUTHENTICATE, refusal, started)
        return refusal

    def authenticate(self, challenge: KioskChallenge, response: LoginResponse) -> CenterSession:
        """The card's answer: signature, chain, OCSP status as the registered verifier, then the
        holder's municipality of residence from J-LIS. Refused: CARD_* / CHALLENGE_UNKNOWN codes."""
        started = self.clock.now()
        try:
            return self._authenticate(challenge, response)
        except CenterRefused as exc:
            self._log_refusal(challenge.kiosk_id, Stage.AUTHENTICATE, exc, started)
            raise

    def _authenticate(self, challenge: KioskChallenge, response: LoginResponse) -> CenterSession:
        try:
            issued = self.desk.take(challenge.text)
        except (LoginRefused, MalformedMessage) as exc:
            raise CenterRefused.wrap(CenterReason.CHALLENGE_UNKNOWN, exc) from exc
        audience = self.audience(challenge.kiosk_id)
        if issued.audience != audience:
            raise CenterRefused.of(
                CenterReason.CHALLENGE_UNKNOWN, "the challenge was issued to another kiosk", field="kiosk_id"
            )
        if not isinstance(response, LoginResponse):
            raise CenterRefused.of(CenterReason.CARD_UNREADABLE, "no card answer", field="response")
        if self.ocsp is not None:
            checker = OcspChecker(self.ocsp, url=self.ocsp_url, token=self.ocsp_token)
        else:
            assert self.revocation is not None
            fetcher = ResponderFetcher(self.revocation, CENTER_ID, PURPOSE, self.clock)
            checker = OcspChecker(fetcher, url=self.ocsp_url)
        # Checks that need no write (and the OCSP call) happen outside any writing transaction: on
        # SQLite a writer holds the database's one write lock from its start.
        trust = self._cached("trust", self._trust)
        once = _FirstUse()
        try:
            result = verify_login(
                issued, response, trust=trust, revocation=checker, clock=self.clock, replay=once,
                audience=audience,
            )  # fmt: skip
        except CertificateRevoked as exc:
            hold = exc.reason == "certificateHold"
            reason = CenterReason.CARD_ON_HOLD if hold else CenterReason.CARD_REVOKED
            raise CenterRefused.wrap(reason, exc) from exc
        except (RevocationUnknown, RevocationCheckFailed) as exc:
            raise CenterRefused.wrap(CenterReason.CARD_STATUS_UNKNOWN, exc) from exc
        except (LoginRefused, MalformedMessage) as exc:
            raise CenterRefused.wrap(CenterReason.CHALLENGE_UNKNOWN, exc) from exc
        except (BadSignature, UntrustedCertificate, CertificateNotValid, InvalidInput) as exc:
            raise CenterRefused.wrap(CenterReason.CARD_INVALID, exc) from exc
        ref = CertificateRef.parse(result.generation, result.serial)
        token = self.token_source()
        with transaction(self.factory) as s:
            # The nonce is used once across every process of the center (the database ledger).
            if not once.commit(NonceLedger(s)):
                raise CenterRefused.of(
                    CenterReason.CHALLENGE_UNKNOWN, "the card's answer was already used", field="challenge"
                )
            try:
                holder = HolderLookup(s, self.clock, CENTER_PRINCIPAL).holder(ref, purpose=PURPOSE)
            except (NotFound, RuleViolation) as exc:
                raise CenterRefused.wrap(CenterReason.HOLDER_UNKNOWN, exc) from exc
            name = self._municipality_name(holder.lg_code)
            now = self.clock.now()
            session = CenterSession(token, challenge.kiosk_id, holder.lg_code, name, now + self.session_ttl)
            sweep_expired(s, now)
            s.add(
                CenterSessionRow(
                    token_sha256=_sha256(token),
                    kiosk_id=session.kiosk_id,
                    lg_code=session.lg_code,
                    municipality=session.municipality,
                    cert_generation=ref.generation,
                    cert_serial=ref.serial,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )
        self._sweep_now_and_then()
        return session

    # -- step 3 -------------------------------------------------------------------------------------

    def menu(self, session: CenterSession) -> Menu:
        """What the municipality of residence offers: kinds, options, fees per copy, and the
        disasters for which the person can have a 罹災証明書 now."""
        started = self.clock.now()
        try:
            live = self._live(session)
            lg = live.session.lg_code
            server = self._server_for(lg)
            policy = self.policies.for_municipality(lg)
            schedule = self.fees.schedule(lg)
            disasters: tuple[tuple[str, str], ...] = ()
            if CertificateKind.DAMAGE in policy.offered:
                disasters = self._disasters(live)
            # 罹災証明書 is listed only for someone with an approved application (jlis.bcl).
            items = tuple(
                MenuItem(kind, kind.label, schedule[kind], options_for(kind), kind in HONSEKI_KINDS)
                for kind in CertificateKind
                if kind in policy.offered
                and kind in schedule
                and (kind is not CertificateKind.DAMAGE or disasters)
            )
            elsewhere = self._honseki_elsewhere(live)
            return Menu(
                lg, live.session.municipality, server, items, disasters, policy.my_number_allowed, elsewhere
            )
        except CenterRefused as exc:
            self._log_refusal(session.kiosk_id, Stage.REQUEST, exc, started)
            raise

    def _honseki_elsewhere(self, live: _Live) -> bool:
        """Whether the holder's 住民票 names a 本籍 in another municipality (read by the residence's
        certificate server; the register audits the read). Only a yes or no reaches the kiosk."""
        with transaction(self.factory) as s:
            try:
                holder = HolderLookup(s, self.clock, CENTER_PRINCIPAL).holder(
                    live.certificate, purpose=PURPOSE
                )
                server = CertificateServer(
                    s,
                    self.clock,
                    live.session.lg_code,
                    principal=CENTER_PRINCIPAL,
                    registry=self.container.registry,
                    geography=self.container.geography,
                    policies=self.policies,
                )
                return server.honseki_elsewhere(holder.resident_code)
            except (NotFound, RuleViolation):
                return False

    def _disasters(self, live: _Live) -> tuple[tuple[str, str], ...]:
        from jlis.bcl.certificate import issuable_disasters
        from jlis.bcl.identity import card_holder

        with transaction(self.factory) as s:
            try:
                holder = card_holder(s, live.certificate.serial, self.clock.now())
            except JlisError:
                return ()  # not a card's certificate (e.g. a phone's): no 罹災証明書 at the kiosk
            return tuple(
                issuable_disasters(
                    s, caller=holder, lg_code=live.session.lg_code, resident_code=holder.resident_code
                )
            )

    # -- step 4 -------------------------------------------------------------------------------------

    def request(
        self,
        session: CenterSession,
        kind: CertificateKind | str,
        options: IssueOptions | None = None,
        copies: int = 1,
        *,
        honseki_lg_code: str | None = None,
    ) -> Quote:
        """Accept a request and quote its fee. 戸籍/附票 go to ``honseki_lg_code`` (the 本籍
        municipality the resident names at the kiosk; the residence when None)."""
        started = self.clock.now()
        try:
            live = self._live(session)
            try:
                k = CertificateKind(kind)
                opts = options if options is not None else IssueOptions()
                if not isinstance(opts, IssueOptions):
                    raise InvalidInput("options", "must be IssueOptions")
                opts.check_for(k)
                n = check_copies(copies)
            except ValueError as exc:
                raise CenterRefused.of(CenterReason.INVALID_REQUEST, str(exc), field="証明書の種類") from exc
            except InvalidInput as exc:
                raise CenterRefused.wrap(CenterReason.INVALID_REQUEST, exc) from exc
            lg = live.session.lg_code
            if k in HONSEKI_KINDS and honseki_lg_code is not None:
                lg = self._known_municipality(honseki_lg_code)
            elif honseki_lg_code is not None:
                raise CenterRefused.of(
                    CenterReason.INVALID_REQUEST, "本籍地 applies to 戸籍/附票 only", field="本籍地"
                )
            server = self._server_for(lg)
            if k not in self.policies.for_municipality(lg).offered:
                raise CenterRefused.of(CenterReason.NOT_OFFERED, f"{k.value} at {lg}", field="証明書の種類")
            try:
                fee = self.fees.fee(lg, k, n)
            except InvalidInput as exc:
                raise CenterRefused.wrap(CenterReason.NOT_OFFERED, exc) from exc
            now = self.clock.now()
            quote = Quote(
                self.request_id_source(),
                session.token,
                session.kiosk_id,
                k,
                opts,
                n,
                fee,
                lg,
                server,
                min(now + self.session_ttl, live.session.expires_at),
            )
            with transaction(self.factory) as s:
                s.add(
                    CenterQuoteRow(
                        request_id=quote.request_id,
                        token_sha256=_sha256(live.session.token),
                        kiosk_id=quote.kiosk_id,
                        kind=quote.kind.value,
                        options=_options_json(quote.options),
                        copies=quote.copies,
                        fee=quote.fee,
                        lg_code=quote.lg_code,
                        server=quote.server.value,
                        created_at=now,
                        expires_at=quote.expires_at,
                        state=QUOTED,
                    )
                )
            return quote
        except CenterRefused as exc:
            self._log_refusal(session.kiosk_id, Stage.REQUEST, exc, started)
            raise

    def pay(self, quote: Quote, amount: int | None = None) -> Receipt:
        """The simulated payment of ``quote`` (the amount must be its fee). Held until the
        certificate is issued; released (nothing charged) when the issue is refused."""
        started = self.clock.now()
        try:
            now = self.clock.now()
            rid = getattr(quote, "request_id", "")
            with transaction(self.factory) as s:
                row = s.get(CenterQuoteRow, rid) if isinstance(rid, str) and rid else None
                if row is None or row.state != QUOTED or row.expires_at < now:
                    raise CenterRefused.of(
                        CenterReason.QUOTE_UNKNOWN, "unknown or expired request id", field="要求番号"
                    )
                stored = _quote_of(row, getattr(quote, "token", ""))
                if stored != quote:
                    raise CenterRefused.of(
                        CenterReason.QUOTE_TAMPERED, "the quote differs from the center's", field="要求番号"
                    )
                if s.get(CenterSessionRow, row.token_sha256) is None:
                    raise CenterRefused.of(CenterReason.SESSION_UNKNOWN, "the session ended", field="session")
                paid = stored.fee if amount is None else amount
                if paid != stored.fee:
                    raise CenterRefused.of(
                        CenterReason.PAYMENT_MISMATCH, f"paid {paid}, fee {stored.fee}", field="手数料"
                    )
                # Paid once: of two processes paying the same quote, the second updates nothing.
                done = s.execute(
                    update(CenterQuoteRow)
                    .where(CenterQuoteRow.request_id == rid, CenterQuoteRow.state == QUOTED)
                    .values(state=PAID, paid_amount=paid, paid_at=now)
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    raise CenterRefused.of(
                        CenterReason.QUOTE_UNKNOWN, "the request was paid meanwhile", field="要求番号"
                    )
            return Receipt(stored.request_id, paid, now)
        except CenterRefused as exc:
            self._log_refusal(getattr(quote, "kiosk_id", "?")[:32], Stage.PAY, exc, started, quote=quote)
            raise

    def apply_honseki_use(
        self, session: CenterSession, honseki_lg_code: str, head_family_name: str, head_given_name: str
    ) -> HonsekiApplied:
        """本籍地利用登録申請 at the kiosk (facts §6.3), with the card and PIN of the session: the
        application goes to the 本籍 municipality's certificate server, which records it pending
        until its staff check it against the 戸籍 (days later). Nothing is charged. Refusals
        (unknown or non-participating municipality, a bad 筆頭者 name, one already pending, already
        registered) are :class:`CenterRefused`, logged."""
        started = self.clock.now()
        try:
            live = self._live(session)
            lg = self._known_municipality(honseki_lg_code)
            self._server_for(lg)  # the 本籍 municipality takes part in コンビニ交付
            try:
                with transaction(self.factory) as s:
                    holder = HolderLookup(s, self.clock, CENTER_PRINCIPAL).holder(
                        live.certificate, purpose=PURPOSE
                    )
                    applied = KosekiBook(s, self.clock, lg, CENTER_PRINCIPAL).apply_use(
                        holder.resident_code, head_family_name, head_given_name, kiosk_id=session.kiosk_id
                    )
            except IssuanceRefused as exc:
                raise CenterRefused(exc.code, exc.message, exc.detail, field=exc.field) from exc
            except InvalidInput as exc:
                field = str(exc.context.get("field", "kiosk"))
                raise CenterRefused(
                    CenterReason.INVALID_REQUEST.value,
                    f"{field}を確認してください。",
                    f"{field}: {exc.context.get('rule', exc.message)}",
                    field=field,
                ) from exc
            except (NotFound, RuleViolation) as exc:
                raise CenterRefused.wrap(CenterReason.HOLDER_UNKNOWN, exc) from exc
            return HonsekiApplied(lg, self._municipality_name(lg), applied.applied_at)
        except CenterRefused as exc:
            self._log_refusal(session.kiosk_id, Stage.REQUEST, exc, started)
            raise

    # -- step 5 -------------------------------------------------------------------------------------

    def issue(self, session: CenterSession, receipt: Receipt) -> IssuedCertificate:
        """Issue the paid request: route, build, bind, render, sign, register, bind again, log."""
        started = self.clock.now()
        row = self._take_receipt(getattr(receipt, "request_id", ""))
        quote = _quote_of(row, getattr(session, "token", "")) if row is not None else None
        try:
            if row is None or quote is None:
                raise CenterRefused.of(
                    CenterReason.NOT_PAID, "no payment for this request id", field="要求番号"
                )
            held = _receipt_of(row)
            if held != receipt:
                raise CenterRefused.of(CenterReason.QUOTE_TAMPERED, "the receipt differs", field="要求番号")
            live = self._live(session)
            if quote.token != live.session.token or quote.kiosk_id != live.session.kiosk_id:
                raise CenterRefused.of(
                    CenterReason.QUOTE_TAMPERED, "the request belongs to another session", field="session"
                )
            try:
                return self._issue(live, quote, started)
            except CenterRefused:
                raise
            except Exception as exc:  # fails closed: an unexpected failure is a refusal, logged
                raise CenterRefused.of(
                    CenterReason.ISSUER_FAILED, type(exc).__name__, field="証明書"
                ) from exc
        except CenterRefused as exc:
            self._log_refusal(
                getattr(session, "kiosk_id", "?")[:32],
                Stage.ISSUE,
                exc,
                started,
                quote=quote,
                certificate_number=exc.certificate_number,
            )
            raise

    def _take_receipt(self, request_id: object) -> CenterQuoteRow | None:
        """The paid request ``request_id``, its receipt used up (state ``used``) in a short
        transaction of its own: a receipt is used once, whatever comes of the issue (a refusal
        charges nothing). Of two processes racing, the second updates nothing and gets None."""
        if not isinstance(request_id, str) or not request_id:
            return None
        with transaction(self.factory) as s:
            row = s.get(CenterQuoteRow, request_id)
            if row is None or row.state != PAID:
                return None
            done = s.execute(
                update(CenterQuoteRow)
                .where(CenterQuoteRow.request_id == request_id, CenterQuoteRow.state == PAID)
                .values(state=USED)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return None
            s.expunge(row)
        return row

    def _issue(self, live: _Live, quote: Quote, started: dt.datetime) -> IssuedCertificate:
        rid = quote.request_id
        now = self.clock.now()
        # The certificate server's step, in one transaction: holder → content → its issuance row.
        try:
            with transaction(self.factory) as s:
                holder = HolderLookup(s, self.clock, CENTER_PRINCIPAL).holder(
                    live.certificate, purpose=PURPOSE
                )
                if quote.kind not in HONSEKI_KINDS and holder.lg_code != quote.lg_code:
                    raise CenterRefused.of(
                        CenterReason.SESSION_UNKNOWN,
                        "the residence changed since authentication",
                        field="住民票",
                    )
                server = CertificateServer(
                    s,
                    self.clock,
                    quote.lg_code,
                    principal=CENTER_PRINCIPAL,
                    registry=self.container.registry,
                    geography=self.container.geography,
                    policies=self.policies,
                )
                content = server.issue_content(holder.resident_code, quote.kind, quote.options, rid, now)
                if (
                    content.request_id != rid
                    or content.lg_code != quote.lg_code
                    or content.kind is not quote.kind
                ):
                    raise CenterRefused.of(
                        CenterReason.BINDING_MISMATCH, "content of another request", field="要求番号"
                    )
                verify_binding(s, content, holder.resident_code)
                resident_code = holder.resident_code
        except IssuanceRefused as exc:
            raise CenterRefused(exc.code, exc.message, exc.detail, field=exc.field) from exc
        except CenterRefused:
            raise
        except JlisError as exc:
            raise CenterRefused.wrap(_reason_for(exc), exc) from exc
        # The number is committed. From here on a failure voids it (the row says why) before the
        # refusal goes back: the number never stays without a document and without saying so.
        try:
            doc = self._deliver(content, resident_code, quote, started)
        except Exception as exc:
            refusal = _as_refusal(exc)
            refusal.certificate_number = self._void(content, refusal)
            if refusal is exc:
                raise
            raise refusal from exc
        return IssuedCertificate(
            request_id=rid,
            kiosk_id=quote.kiosk_id,
            kind=quote.kind,
            lg_code=quote.lg_code,
            server=quote.server,
            copies=quote.copies,
            fee=quote.fee,
            certificate_number=doc.certificate_number,
            verification_code=doc.code,
            verify_url=f"{self.base_url}/verify?n={doc.certificate_number}&c={doc.code}",
            sha256=doc.sha256,
            signer_serial=doc.signer_serial,
            issued_at=doc.issued_at,
            pdf=doc.pdf,
        )

    def _deliver(self, content: Any, resident_code: str, quote: Quote, started: dt.datetime) -> Any:
        """Render and sign outside any writing transaction (SQLite's one write lock), then, in one
        short transaction: the binding again, the issuance row ``issued``, the register, the log."""
        rid = quote.request_id
        try:
            with self.factory() as r:
                read_only(r)
                prepared = self._prepare(r, content, quote.server)
            render_mod.check_binding(
                prepared.pdf, certificate_number=content.certificate_number, request_id=rid
            )
            with transaction(self.factory) as s:
                verify_binding(s, content, resident_code)
                mark_issued(s, content, prepared.sha256, self.clock.now())
                doc = self._documents(s).register(prepared, actor=CENTER_ID)
                render_mod.check_binding(
                    doc.pdf, certificate_number=content.certificate_number, request_id=rid
                )
                if doc.request_id != rid or doc.sha256 != hashlib.sha256(doc.pdf).hexdigest():
                    raise RuleViolation("要求番号", "must match what was issued for the request id")
                finished = self.clock.now()
                s.add(
                    CenterLogRow(
                        request_id=rid,
                        kiosk_id=quote.kiosk_id,
                        stage=Stage.ISSUE.value,
                        outcome="issued",
                        code=None,
                        lg_code=quote.lg_code,
                        server=quote.server.value,
                        kind=quote.kind.value,
                        copies=quote.copies,
                        fee=quote.fee,
                        charged=quote.fee,
                        certificate_number=doc.certificate_number,
                        document_sha256=doc.sha256,
                        signer_serial=doc.signer_serial,
                        started_at=started,
                        finished_at=finished,
                    )
                )
        except JlisError as exc:
            raise CenterRefused.wrap(_reason_for(exc), exc) from exc
        return doc

    def _void(self, content: Any, refusal: CenterRefused) -> str | None:
        """Void the issuance row of ``content`` (in its own transaction); the voided number, or None
        if it could not be voided now (then :meth:`sweep` voids it after ``undelivered_after``)."""
        reason = f"{refusal.code}: {refusal.detail}" if refusal.detail else refusal.code
        try:
            with transaction(self.factory) as s:
                return void_issuance(
                    s, self.clock, content.lg_code, content.request_id, reason, actor=CENTER_ID
                )
        except Exception:
            LOG.exception("could not void certificate %s; the sweep will", content.certificate_number)
            return None

    def _documents(self, s: Session) -> CertificateDocuments:
        ca = OrganisationCA(s, self.clock, self.container.keystore, self.base_url, rng=self.container.rng)
        return CertificateDocuments(s, self.clock, ca, base_url=self.base_url, rng=self.container.rng)

    def _prepare(self, s: Session, content: Any, server: Server) -> PreparedDocument:
        docs = self._documents(s)
        if server is Server.OWN:
            return docs.prepare(content)
        # The BCL's certificate server: the same rendering, signed with the BCL's 職責 key.
        role = docs.ca.role_for(BCL_ROLE_CODE)
        key = docs.ca.role_signer(role)
        code = new_code(docs.rng)
        now = self.clock.now()
        pdf, pages = render_mod.render_with_pages(
            content, verification=render_mod.Verification(self.base_url, code), fonts=docs.fonts
        )
        signed = sign_pdf(pdf, signer_for_role(role, key), at=now, location=BCL_TITLE)
        return PreparedDocument(
            content, code, signed, hashlib.sha256(signed).hexdigest(), pages, role.serial, now
        )

    # -- end ----------------------------------------------------------------------------------------

    def close(self, session: CenterSession) -> None:
        """The resident took the card: the session, its quotes and held payments end (released)."""
        digest = _token_hash(getattr(session, "token", None))
        if digest is None:
            return
        with transaction(self.factory) as s:
            s.execute(delete(CenterQuoteRow).where(CenterQuoteRow.token_sha256 == digest))
            s.execute(delete(CenterSessionRow).where(CenterSessionRow.token_sha256 == digest))

    def sweep(self) -> tuple[int, int]:
        """Housekeeping, in one short transaction: a batch of expired sessions and quotes deleted,
        and a batch of issuance rows left numbered past ``undelivered_after`` settled (``issued`` if
        their document is registered, ``void`` otherwise). Returns (issued, voided). Logins run it
        at most every :data:`SWEEP_SECONDS` per process; ``jlis kiosk center sweep`` runs it too."""
        with transaction(self.factory) as s:
            return sweep_center(s, self.clock, undelivered_after=self.undelivered_after)

    # -- look-ups for the HTTP adapter (which holds only tokens and request ids) -----------------------

    def session_by_token(self, kiosk_id: str, token: str) -> CenterSession:
        """The live session ``token`` of ``kiosk_id`` (another kiosk's token is refused)."""
        row = self._session_row(token)
        if row is None or row.kiosk_id != kiosk_id:
            refusal = CenterRefused.of(CenterReason.SESSION_UNKNOWN, "unknown session token", field="session")
            self._log_refusal(kiosk_id, Stage.REQUEST, refusal, self.clock.now())
            raise refusal
        return _session_of(row, token)

    def quote_by_id(self, session: CenterSession, request_id: str) -> Quote:
        row = self._quote_row(request_id, QUOTED)
        if row is None or _token_hash(session.token) != row.token_sha256:
            refusal = CenterRefused.of(CenterReason.QUOTE_UNKNOWN, "no such request here", field="要求番号")
            self._log_refusal(session.kiosk_id, Stage.PAY, refusal, self.clock.now())
            raise refusal
        return _quote_of(row, session.token)

    def receipt_by_id(self, session: CenterSession, request_id: str) -> Receipt:
        row = self._quote_row(request_id, PAID)
        if row is None or _token_hash(session.token) != row.token_sha256:
            refusal = CenterRefused.of(CenterReason.NOT_PAID, "no payment for the request", field="要求番号")
            self._log_refusal(session.kiosk_id, Stage.ISSUE, refusal, self.clock.now())
            raise refusal
        return _receipt_of(row)

    def log(self, *, limit: int = 100, kiosk_id: str | None = None) -> list[CenterLogRow]:
        with self.factory() as s:
            read_only(s)
            stmt = select(CenterLogRow).order_by(CenterLogRow.id.desc()).limit(limit)
            if kiosk_id is not None:
                stmt = stmt.where(CenterLogRow.kiosk_id == kiosk_id)
            rows = list(s.scalars(stmt))
            s.expunge_all()
            return rows

    # -- helpers ------------------------------------------------------------------------------------

    def _live(self, session: CenterSession) -> _Live:
        now = self.clock.now()
        token = getattr(session, "token", "")
        row = self._session_row(token)
        live = None
        if row is not None and row.expires_at >= now:
            live = _Live(_session_of(row, token), CertificateRef(row.cert_generation, row.cert_serial))
        if live is None or live.session != session:
            raise CenterRefused.of(
                CenterReason.SESSION_UNKNOWN, "unknown, expired or altered session", field="session"
            )
        return live

    def _session_row(self, token: object) -> CenterSessionRow | None:
        digest = _token_hash(token)
        if digest is None:
            return None
        with self.factory() as r:
            read_only(r)
            row = r.get(CenterSessionRow, digest)
            if row is not None:
                r.expunge(row)
            return row

    def _quote_row(self, request_id: object, state: str) -> CenterQuoteRow | None:
        if not isinstance(request_id, str) or not request_id or len(request_id) > 64:
            return None
        with self.factory() as r:
            read_only(r)
            row = r.get(CenterQuoteRow, request_id)
            if row is None or row.state != state:
                return None
            r.expunge(row)
            return row

    def _sweep_now_and_then(self) -> None:
        """:meth:`sweep` at most every :data:`SWEEP_SECONDS` in this process; a failure is logged and
        left to the next time (a login never fails because of housekeeping)."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_sweep:
                return
            self._next_sweep = now + SWEEP_SECONDS
        try:
            self.sweep()
        except Exception:
            LOG.exception("the issuance center's sweep failed; it runs again later")

    def _known_municipality(self, lg_code: str) -> str:
        try:
            from jlis.codes import LgCode

            code = str(LgCode.parse(lg_code))
            self.container.geography.municipality(code)
        except (InvalidInput, NotFound, KeyError) as exc:
            raise CenterRefused.of(
                CenterReason.UNKNOWN_MUNICIPALITY, f"{lg_code!r}", field="市区町村"
            ) from exc
        return code

    def _municipality_name(self, lg_code: str) -> str:
        geo = self.container.geography
        m = geo.municipality(lg_code)
        return f"{geo.prefecture(m.pref_code).name}{m.full_name}"

    def _server_for(self, lg_code: str) -> Server:
        """The route to ``lg_code``'s certificate server; a municipality with neither its own
        職責証明書 nor the BCL route does not take part in コンビニ交付."""
        server = self.routes.server_for(lg_code)
        if server is Server.BCL:
            return server
        if not self._cached(f"role:{lg_code}", lambda: self._has_role(lg_code)):
            raise CenterRefused.of(
                CenterReason.NOT_PARTICIPATING,
                f"{lg_code} has no 職責証明書 and no BCL route",
                field="市区町村",
            )
        return server

    def _has_role(self, lg_code: str) -> bool:
        with self.factory() as s:
            read_only(s)
            try:
                self._documents(s).ca.role_for(lg_code)
            except NotFound:
                return False
        return True

    def _trust(self) -> TrustStore:
        """The authentication CA generations, after checking that the center is still a registered,
        active 利用者証明検証者 (refused otherwise: no status query without the registration)."""
        with self.factory() as r:
            read_only(r)
            try:
                VerifierRegistry(r, self.clock, actor=CENTER_ID).get(CENTER_ID).require_role(AUTH)
            except (NotFound, Forbidden) as exc:
                raise CenterRefused.wrap(CenterReason.CARD_STATUS_UNKNOWN, exc) from exc
            return auth_trust_store(r)

    def _cached(self, key: str, load: Callable[[], _T]) -> _T:
        """``load()``, kept for :data:`CACHE_SECONDS` (the trust store and the registration, whether a
        municipality has a 職責証明書): read per login and request otherwise. Staleness fails closed:
        the OCSP responder refuses a revoked CA generation at once, and signing looks the 職責証明書
        up again."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return cast(_T, hit[1])
        value = load()
        with self._lock:
            self._cache[key] = (now + CACHE_SECONDS, value)
        return value

    def _log_refusal(
        self,
        kiosk_id: str,
        stage: Stage,
        refusal: CenterRefused,
        started: dt.datetime,
        *,
        quote: Any = None,
        certificate_number: str | None = None,
    ) -> None:
        """A refusal in the issuance log, in its own transaction (the request's was rolled back).
        ``certificate_number``: the number voided by this refusal, if one had been committed."""
        q = quote if isinstance(quote, Quote) else None
        with transaction(self.factory) as s:
            rid = q.request_id if q is not None else None
            s.add(
                CenterLogRow(
                    request_id=rid,
                    kiosk_id=kiosk_id or "?",
                    stage=stage.value,
                    outcome="refused",
                    code=refusal.code,
                    lg_code=q.lg_code if q else None,
                    server=q.server.value if q else None,
                    kind=q.kind.value if q else None,
                    copies=q.copies if q else None,
                    fee=q.fee if q else None,
                    charged=0,
                    certificate_number=certificate_number,
                    document_sha256=None,
                    signer_serial=None,
                    started_at=started,
                    finished_at=self.clock.now(),
                )
            )


def _as_refusal(exc: Exception) -> CenterRefused:
    if isinstance(exc, CenterRefused):
        return exc
    if isinstance(exc, JlisError):
        return CenterRefused.wrap(_reason_for(exc), exc)
    return CenterRefused.of(CenterReason.ISSUER_FAILED, type(exc).__name__, field="証明書")


_BINDING_RULES = ("must match", "this request", "this certificate", "must have been answered")


def _reason_for(exc: JlisError) -> CenterReason:
    """A failed hop: a binding check that did not hold, or any other failure of the server."""
    rule = str(exc.context.get("rule", ""))
    if any(marker in rule for marker in _BINDING_RULES):
        return CenterReason.BINDING_MISMATCH
    return CenterReason.ISSUER_FAILED
