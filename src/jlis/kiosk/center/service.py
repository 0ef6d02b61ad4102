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

Sessions, quotes and payments are kept in this object's memory (one process, like the login
desks of ``jlis.jpki.rp.server``); the issuance log and everything the municipalities keep are in
the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote, urlparse

from sqlalchemy import select
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
from jlis.kiosk.center.tables import CenterLogRow, KioskRow
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.fees import FeeTable, load_fees
from jlis.kiosk.issuer.errors import IssuanceRefused
from jlis.kiosk.issuer.models import IssueOptions
from jlis.kiosk.issuer.policy import PolicyBook, load_policies
from jlis.kiosk.issuer.rules import HONSEKI_KINDS
from jlis.kiosk.issuer.server import CertificateServer, verify_binding
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


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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
    """The center of one process. Thread-safe: kiosks call it concurrently."""

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
        self._sessions: dict[str, _Live] = {}
        self._quotes: dict[str, Quote] = {}
        self._paid: dict[str, tuple[Quote, Receipt]] = {}
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, object]] = {}

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
        live = _Live(
            CenterSession(
                self.token_source(), challenge.kiosk_id, holder.lg_code, name, now + self.session_ttl
            ),
            ref,
        )
        with self._lock:
            self._expire(now)
            self._sessions[live.session.token] = live
        return live.session

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
            return Menu(lg, live.session.municipality, server, items, disasters, policy.my_number_allowed)
        except CenterRefused as exc:
            self._log_refusal(session.kiosk_id, Stage.REQUEST, exc, started)
            raise

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
            with self._lock:
                self._quotes[quote.request_id] = quote
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
            with self._lock:
                stored = self._quotes.get(getattr(quote, "request_id", ""))
                if stored is None or stored.expires_at < now:
                    raise CenterRefused.of(
                        CenterReason.QUOTE_UNKNOWN, "unknown or expired request id", field="要求番号"
                    )
                if stored != quote:
                    raise CenterRefused.of(
                        CenterReason.QUOTE_TAMPERED, "the quote differs from the center's", field="要求番号"
                    )
                if stored.token not in self._sessions:
                    raise CenterRefused.of(CenterReason.SESSION_UNKNOWN, "the session ended", field="session")
                paid = stored.fee if amount is None else amount
                if paid != stored.fee:
                    raise CenterRefused.of(
                        CenterReason.PAYMENT_MISMATCH, f"paid {paid}, fee {stored.fee}", field="手数料"
                    )
                del self._quotes[stored.request_id]
                receipt = Receipt(stored.request_id, paid, now)
                self._paid[stored.request_id] = (stored, receipt)
            return receipt
        except CenterRefused as exc:
            self._log_refusal(getattr(quote, "kiosk_id", "?")[:32], Stage.PAY, exc, started, quote=quote)
            raise

    def register_honseki_use(self, session: CenterSession, honseki_lg_code: str) -> None:
        """本籍地利用登録 at the kiosk (facts §6.3): the authenticated resident registers with their
        本籍 municipality, which must have them in one of its 戸籍. Idempotent for the resident (an
        existing registration is accepted); refusals as ``no_koseki``, logged."""
        from jlis.kiosk.issuer.errors import RefusalReason
        from jlis.kiosk.issuer.koseki import KosekiBook

        started = self.clock.now()
        try:
            live = self._live(session)
            lg = self._known_municipality(honseki_lg_code)
            with transaction(self.factory) as s:
                holder = HolderLookup(s, self.clock, CENTER_PRINCIPAL).holder(
                    live.certificate, purpose=PURPOSE
                )
                book = KosekiBook(s, self.clock, lg, CENTER_PRINCIPAL)
                if not book.use_registered(holder.resident_code):
                    try:
                        book.register_use(holder.resident_code)
                    except RuleViolation as exc:
                        reason = RefusalReason.NO_KOSEKI
                        raise CenterRefused(reason.value, reason.message, exc.message, field="戸籍") from exc
        except CenterRefused as exc:
            self._log_refusal(session.kiosk_id, Stage.REQUEST, exc, started)
            raise

    # -- step 5 -------------------------------------------------------------------------------------

    def issue(self, session: CenterSession, receipt: Receipt) -> IssuedCertificate:
        """Issue the paid request: route, build, bind, render, sign, register, bind again, log."""
        started = self.clock.now()
        with self._lock:
            entry = self._paid.pop(getattr(receipt, "request_id", ""), None)
        quote = entry[0] if entry else None
        try:
            if entry is None:
                raise CenterRefused.of(
                    CenterReason.NOT_PAID, "no payment for this request id", field="要求番号"
                )
            quote, held = entry
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
            self._log_refusal(getattr(session, "kiosk_id", "?")[:32], Stage.ISSUE, exc, started, quote=quote)
            raise

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
        # Render and sign outside any writing transaction (SQLite's one write lock), then register.
        try:
            with self.factory() as r:
                read_only(r)
                prepared = self._prepare(r, content, quote.server)
            render_mod.check_binding(
                prepared.pdf, certificate_number=content.certificate_number, request_id=rid
            )
            with transaction(self.factory) as s:
                verify_binding(s, content, resident_code)
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
        with self._lock:
            self._sessions.pop(session.token, None)
            for rid in [r for r, q in self._quotes.items() if q.token == session.token]:
                del self._quotes[rid]
            for rid in [r for r, (q, _) in self._paid.items() if q.token == session.token]:
                del self._paid[rid]

    # -- look-ups for the HTTP adapter (which holds only tokens and request ids) -----------------------

    def session_by_token(self, kiosk_id: str, token: str) -> CenterSession:
        """The live session ``token`` of ``kiosk_id`` (another kiosk's token is refused)."""
        with self._lock:
            live = self._sessions.get(token or "")
        if live is None or live.session.kiosk_id != kiosk_id:
            refusal = CenterRefused.of(CenterReason.SESSION_UNKNOWN, "unknown session token", field="session")
            self._log_refusal(kiosk_id, Stage.REQUEST, refusal, self.clock.now())
            raise refusal
        return live.session

    def quote_by_id(self, session: CenterSession, request_id: str) -> Quote:
        with self._lock:
            quote = self._quotes.get(request_id or "")
        if quote is None or quote.token != session.token:
            refusal = CenterRefused.of(CenterReason.QUOTE_UNKNOWN, "no such request here", field="要求番号")
            self._log_refusal(session.kiosk_id, Stage.PAY, refusal, self.clock.now())
            raise refusal
        return quote

    def receipt_by_id(self, session: CenterSession, request_id: str) -> Receipt:
        with self._lock:
            entry = self._paid.get(request_id or "")
        if entry is None or entry[0].token != session.token:
            refusal = CenterRefused.of(CenterReason.NOT_PAID, "no payment for the request", field="要求番号")
            self._log_refusal(session.kiosk_id, Stage.ISSUE, refusal, self.clock.now())
            raise refusal
        return entry[1]

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
        with self._lock:
            live = self._sessions.get(getattr(session, "token", ""))
            if live is not None and live.session.expires_at < now:
                del self._sessions[live.session.token]
                live = None
        if live is None or live.session != session:
            raise CenterRefused.of(
                CenterReason.SESSION_UNKNOWN, "unknown, expired or altered session", field="session"
            )
        return live

    def _expire(self, now: dt.datetime) -> None:
        for token in [t for t, live in self._sessions.items() if live.session.expires_at < now]:
            del self._sessions[token]
        for rid in [r for r, q in self._quotes.items() if q.expires_at < now]:
            del self._quotes[rid]

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
    ) -> None:
        """A refusal in the issuance log, in its own transaction (the request's was rolled back)."""
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
                    certificate_number=None,
                    document_sha256=None,
                    signer_serial=None,
                    started_at=started,
                    finished_at=self.clock.now(),
                )
            )


_BINDING_RULES = ("must match", "this request", "this certificate", "must have been answered")


def _reason_for(exc: JlisError) -> CenterReason:
    """A failed hop: a binding check that did not hold, or any other failure of the server."""
    rule = str(exc.context.get("rule", ""))
    if any(marker in rule for marker in _BINDING_RULES):
        return CenterReason.BINDING_MISMATCH
    return CenterReason.ISSUER_FAILED
