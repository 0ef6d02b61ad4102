"""マイナポータル (情報提供等記録開示システム): the resident's own view, signed in with the card.

How a person is known here (facts §5.2, §5.4; issue 5 §7):

1. **Sign-in** (no password): the portal issues a challenge (:mod:`jlis.jpki.rp.login`), the user's
   software has the card sign it after the 4-digit PIN, and the portal verifies the signature, the
   chain to this instance's authentication CA and the certificate's status. The result is the
   certificate's generation and serial (発行番号), nothing personal.
2. **Identification**: J-LIS resolves the certificate to its holder (:mod:`jlis.jpki.holders`, as the
   resident themself, audited) and the linkage chain turns the holder's 住民票コード into the portal's
   own 機関別符号 (:func:`jlis.linkage.hub.codes.acquire_code`). The portal keeps the code and the
   certificate reference in its session; the 住民票コード is never stored or shown by the portal.
3. **Every view** is then asked for with one of those two keys: the exchange history and 自己情報 by
   the portal's code through the hub (jlis.linkage.exchange), the 本人確認情報 and the 住基ネット
   provision log from J-LIS by the certificate (authorised as that certificate's holder only).

Also: お知らせ that linkage members post by their own code, an online 転出届 that the municipality
of the 住民票 accepts (starting the 転入届の特例 flow: 転出証明書情報 to the destination) or rejects,
and consents to the latest-基本4情報 provision that a 署名検証者 collects.

Everything here works in the caller's session (the caller commits); times come from the clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.auth.models import Principal
from jlis.clock import JST, Clock
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.jpki.basic4 import MAX_CONSENT_VALIDITY, parse_consent, parse_terms
from jlis.jpki.holders import (
    CertificateRef,
    HolderLookup,
    IdentityView,
    ProvisionDisclosure,
    resident_principal,
)
from jlis.jpki.rp.login import LoginResult
from jlis.jpki.tables import SIGN
from jlis.jpki.verifiers import Verifier, VerifierRegistry
from jlis.linkage.hub.members import PORTAL_ID, Member, MemberService
from jlis.linkage.portal.tables import (
    ACCEPTED,
    REJECTED,
    SUBMITTED,
    WITHDRAWN,
    PortalConsentRow,
    PortalMoveOutRow,
    PortalNoticeRow,
    PortalSessionRow,
)
from jlis.masters import Geography
from jlis.registry import RegistryService

PORTAL_LOG = AuditLog("linkage.portal")
SESSION_TTL = dt.timedelta(minutes=30)
MAX_TITLE = 100
MAX_BODY = 4000
MAX_DESTINATION = 200
MAX_REASON = 200
MOVE_OUT_ADVANCE_DAYS = 30  # a 転出届 may name a planned date up to this far ahead (as the counter)
MOVE_OUT_LATE_DAYS = 14  # and this far back (a move already made: 住基法 §24 allows it)
MAX_PURPOSE = 120
DEFAULT_CONSENT_DAYS = 365

STATUS_LABELS = {SUBMITTED: "届出済 (審査中)", ACCEPTED: "受理", REJECTED: "不受理", WITHDRAWN: "取下げ"}

RegisterFactory = Callable[[Session, str, str], RegistryService]
TokenSource = Callable[[], str]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utc(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC) if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _text(field: str, value: str | None, max_len: int, *, multiline: bool = False) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > max_len:
        raise InvalidInput(field, f"at most {max_len} characters")
    allowed = "\n\r\t" if multiline else ""
    if any(ord(c) < 0x20 and c not in allowed for c in value):
        raise InvalidInput(field, "no control characters")
    return value


# ----------------------------------------------------------------------------------------- views


@dataclass(frozen=True)
class PortalUser:
    """A signed-in card holder: the certificate they signed in with and the portal's code for them."""

    certificate: CertificateRef
    portal_code: str
    expires_at: dt.datetime

    @property
    def principal(self) -> Principal:
        return resident_principal(self.certificate)


@dataclass(frozen=True)
class SignedIn:
    token: str
    user: PortalUser


@dataclass(frozen=True)
class Notice:
    id: int
    sender_id: str
    sender_name: str
    title: str
    body: str
    posted_at: dt.datetime
    read_at: dt.datetime | None

    @classmethod
    def of(cls, row: PortalNoticeRow) -> Notice:
        return cls(row.id, row.sender_id, row.sender_name, row.title, row.body, row.posted_at, row.read_at)


@dataclass(frozen=True)
class MoveOutView:
    id: int
    request_no: str
    lg_code: str
    destination: str
    destination_lg_code: str
    planned_date: dt.date
    status: str
    filed_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: str | None
    certificate_no: str | None
    reason: str | None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @classmethod
    def of(cls, row: PortalMoveOutRow) -> MoveOutView:
        return cls(
            row.id,
            row.request_no,
            row.lg_code,
            row.destination,
            row.destination_lg_code,
            row.planned_date,
            row.status,
            row.filed_at,
            row.decided_at,
            row.decided_by,
            row.certificate_no,
            row.reason,
        )


@dataclass(frozen=True)
class ConsentView:
    id: int
    verifier_id: str
    purpose: str
    certificate_serial: str
    issued_at: dt.datetime
    valid_until: dt.datetime
    withdrawn_at: dt.datetime | None

    @classmethod
    def of(cls, row: PortalConsentRow) -> ConsentView:
        return cls(
            row.id,
            row.verifier_id,
            row.purpose,
            row.certificate_serial,
            row.issued_at,
            row.valid_until,
            row.withdrawn_at,
        )


@dataclass(frozen=True)
class ConsentRequest:
    """What the portal asks the user's software to sign (jlis.jpki.basic4.consent_content), except
    the signing certificate's serial, which the software reads from the card."""

    verifier_id: str
    verifier_name: str
    purpose: str
    nonce: str
    issued_at: dt.datetime
    valid_until: dt.datetime


@dataclass(frozen=True)
class SelfInfoTopic:
    """A category of 自己情報表示 as the exchange table allows it to the portal."""

    category: str
    label: str
    affair: str
    provider: str  # a member id, or the keyword ``residence`` / ``municipality``
    items: tuple[str, ...]


@dataclass(frozen=True)
class SelfInfoResult:
    topic: SelfInfoTopic
    provider_id: str
    answer: Any  # jlis.linkage.exchange.models.QueryAnswer

    @property
    def rows(self) -> list[tuple[str, str]]:
        """(label, shown value) of each item answered, in the table's order."""
        from jlis.linkage.middle.schemas import load_replica_schemas

        schema = load_replica_schemas().get(self.topic.category)
        data = dict(self.answer.data)
        out = []
        for name in self.topic.items:
            if name not in data:
                continue
            spec = schema.items.get(name) if schema is not None else None
            value = data[name]
            out.append((spec.label if spec else name, spec.display(value) if spec else str(value)))
        return out


# ----------------------------------------------------------------------------------------- service


@dataclass(frozen=True)
class PortalDeps:
    """The long-lived parts the portal needs (see :func:`jlis.linkage.portal.api.deps_of`)."""

    clock: Clock
    secret: bytes  # the installation secret (the linkage chain derives its own keys from it)
    key_dir: Path  # where the members' request keys are sealed
    geography: Geography
    provision_table: Any  # jlis.masters.ProvisionTable (the 住基ネット provision log's names)
    registry: RegisterFactory
    new_token: TokenSource = lambda: secrets.token_urlsafe(32)
    new_nonce: TokenSource = lambda: secrets.token_hex(16)


class PortalService:
    def __init__(self, session: Session, deps: PortalDeps) -> None:
        self.s = session
        self.deps = deps
        self.clock = deps.clock

    # -- the portal as a member ------------------------------------------------------------------------

    def member(self) -> Member:
        member = MemberService(self.s, self.clock, actor=PORTAL_ID, key_dir=self.deps.key_dir).get(PORTAL_ID)
        member.require_active()
        return member

    # -- sign-in -------------------------------------------------------------------------------------

    def sign_in(self, result: LoginResult) -> SignedIn:
        """After :func:`jlis.jpki.rp.login.verify_login` passed: identify the holder and open a session."""
        from jlis.linkage.hub.codes import acquire_code

        ref = CertificateRef.parse(result.generation, result.serial)
        member = self.member()
        holder = HolderLookup(self.s, self.clock, resident_principal(ref)).holder(
            ref, purpose="マイナポータルへのログイン"
        )
        code = acquire_code(self.s, self.clock, self.deps.secret, member, holder.resident_code)
        now = _utc(self.clock.now())
        self.s.execute(delete(PortalSessionRow).where(PortalSessionRow.expires_at <= now))
        token = self.deps.new_token()
        expires = min(now + SESSION_TTL, _utc(holder.not_after))
        self.s.add(
            PortalSessionRow(
                token_hash=_token_hash(token),
                cert_generation=ref.generation,
                cert_serial=ref.serial,
                portal_code=code,
                created_at=now,
                expires_at=expires,
            )
        )
        self.s.flush()
        self._log("sign_in", code, certificate=ref.label)
        return SignedIn(token, PortalUser(ref, code, expires))

    def user_for(self, token: str | None) -> PortalUser | None:
        """The signed-in holder of a session token, or None (missing, unknown or expired)."""
        if not token or len(token) > 200:
            return None
        row = self.s.execute(
            select(PortalSessionRow).where(
                PortalSessionRow.token_hash == _token_hash(token),
                PortalSessionRow.expires_at > _utc(self.clock.now()),
            )
        ).scalar_one_or_none()
        if row is None:
            return None
        return PortalUser(
            CertificateRef(row.cert_generation, row.cert_serial), row.portal_code, row.expires_at
        )

    def sign_out(self, token: str | None) -> None:
        if token:
            self.s.execute(delete(PortalSessionRow).where(PortalSessionRow.token_hash == _token_hash(token)))

    # -- J-LIS views for the holder --------------------------------------------------------------------

    def identity(self, user: PortalUser) -> IdentityView:
        """本人確認情報 (the national copy), read by J-LIS for the certificate's holder."""
        return HolderLookup(self.s, self.clock, user.principal).identity(user.certificate)

    def provision_log(self, user: PortalUser) -> list[ProvisionDisclosure]:
        """The 住基ネット provision log about the holder (facts §4.6), newest first."""
        return HolderLookup(self.s, self.clock, user.principal).provision_log(
            user.certificate, self.deps.provision_table
        )

    # -- 自己情報 and やりとり履歴 (through the hub, by the portal's own code) ---------------------------

    def _hub(self) -> Any:
        from jlis.linkage.exchange.service import ExchangeHub

        return ExchangeHub(self.s, self.clock, self.deps.secret, key_dir=self.deps.key_dir)

    def history(self, user: PortalUser) -> list[Any]:
        """やりとり履歴: the exchange records about the person (jlis.linkage.exchange
        ``ExchangeView``), newest first, each under its disclosure policy."""
        return list(self._hub().history_for(self.member(), user.portal_code, self.clock.now()))

    def self_information_topics(self) -> list[SelfInfoTopic]:
        """The categories the exchange table lets the portal ask about for the person (自己情報表示)."""
        from jlis.masters.exchange_table import load_exchange_table

        table = load_exchange_table()
        return [
            SelfInfoTopic(
                r.category, table.category_label(r.category) or r.category, r.affair, r.provider, r.items
            )
            for r in table.rules_for(PORTAL_ID, municipality=False)
        ]

    def self_information(self, user: PortalUser, category: str) -> SelfInfoResult:
        """One lawful self-information query (自己情報表示) through the hub: the portal asks, with its
        own code for the person and its MAC key, the provider the table names (the person's
        municipality for municipal categories, found through J-LIS from the certificate). Recorded
        at the hub, the portal and the provider like any exchange; a refusal is an answer here."""
        from jlis.linkage.exchange.models import sign_request
        from jlis.masters.exchange_table import MUNICIPALITY, RESIDENCE

        topic = next((t for t in self.self_information_topics() if t.category == category), None)
        if topic is None:
            raise InvalidInput("category", "must be a category of 自己情報表示 in the exchange table")
        if topic.provider in (MUNICIPALITY, RESIDENCE):
            holder = HolderLookup(self.s, self.clock, user.principal).holder(
                user.certificate, purpose="自己情報表示 (住所地の市区町村)"
            )
            provider_id = f"lg-{holder.lg_code}"
        else:
            provider_id = topic.provider
        member = self.member()
        key = MemberService(self.s, self.clock, actor=PORTAL_ID, key_dir=self.deps.key_dir).request_key(
            PORTAL_ID
        )
        request = sign_request(
            key,
            PORTAL_ID,
            request_id=f"portal-{self.deps.new_nonce()}",
            requester_code=user.portal_code,
            affair=topic.affair,
            provider_id=provider_id,
            category=topic.category,
            items=topic.items,
            sent_at=self.clock.now(),
        )
        answer = self._hub().query(member, request)
        return SelfInfoResult(topic, provider_id, answer)

    # -- お知らせ ----------------------------------------------------------------------------------------

    def post_notice(self, sender: Member, code: str, title: str, body: str) -> Notice:
        """A member posts a notice to a person it knows by **its own** code; the hub translates it to
        the portal's code (UnknownCode if the code is not the sender's)."""
        from jlis.linkage.hub.codes import Hub

        sender.require_active()
        title = _text("title", title, MAX_TITLE)
        body = _text("body", body, MAX_BODY, multiline=True)
        if not isinstance(code, str) or not code.strip() or len(code) > 128:
            raise InvalidInput("code", "must be the sender's 機関別符号 for the person")
        portal_code = Hub(self.s, self.deps.secret, self.clock).translate(sender.id, code.strip(), PORTAL_ID)
        return self._add_notice(portal_code, sender.id, sender.name, title, body)

    def _add_notice(
        self, portal_code: str, sender_id: str, sender_name: str, title: str, body: str
    ) -> Notice:
        row = PortalNoticeRow(
            portal_code=portal_code,
            sender_id=sender_id,
            sender_name=sender_name,
            title=title,
            body=body,
            posted_at=self.clock.now(),
        )
        self.s.add(row)
        self.s.flush()
        self._log("notice", portal_code, sender=sender_id, notice=row.id)
        return Notice.of(row)

    def notices(self, user: PortalUser) -> list[Notice]:
        rows = self.s.scalars(
            select(PortalNoticeRow)
            .where(PortalNoticeRow.portal_code == user.portal_code)
            .order_by(PortalNoticeRow.posted_at.desc(), PortalNoticeRow.id.desc())
        )
        return [Notice.of(r) for r in rows]

    def unread_count(self, user: PortalUser) -> int:
        return int(
            self.s.execute(
                select(func.count())
                .select_from(PortalNoticeRow)
                .where(PortalNoticeRow.portal_code == user.portal_code, PortalNoticeRow.read_at.is_(None))
            ).scalar_one()
        )

    def mark_read(self, user: PortalUser, notice_id: int) -> Notice:
        row = self.s.get(PortalNoticeRow, notice_id)
        if row is None or row.portal_code != user.portal_code:  # another person's: as if absent
            raise NotFound("お知らせ", str(notice_id))
        if row.read_at is None:
            row.read_at = self.clock.now()
            self.s.flush()
        return Notice.of(row)

    # -- 転出届 (引越しワンストップ) ------------------------------------------------------------------

    def file_move_out(
        self, user: PortalUser, *, destination: str, destination_lg_code: str, planned_date: dt.date
    ) -> MoveOutView:
        """An online 転出届 to the municipality of the holder's 住民票. A card holder's move always
        uses the 転入届の特例: no paper certificate, the 転出証明書情報 goes to the destination."""
        destination = _text("転出先", destination, MAX_DESTINATION)
        dest = self.deps.geography.municipality(str(destination_lg_code or "").strip())
        if not dest.hosts_register:
            raise InvalidInput("転出先 地方公共団体コード", "must be a municipality that keeps a register")
        today = self.clock.today()
        if not isinstance(planned_date, dt.date):
            raise InvalidInput("転出予定日", "must be a real date (YYYY-MM-DD)")
        if planned_date > today + dt.timedelta(days=MOVE_OUT_ADVANCE_DAYS):
            raise InvalidInput("転出予定日", f"must be within {MOVE_OUT_ADVANCE_DAYS} days from today")
        if planned_date < today - dt.timedelta(days=MOVE_OUT_LATE_DAYS):
            raise InvalidInput("転出予定日", f"must not be more than {MOVE_OUT_LATE_DAYS} days ago")
        holder = HolderLookup(self.s, self.clock, user.principal).holder(
            user.certificate, purpose="転出届の提出"
        )
        if holder.lg_code == dest.lg_code:
            raise RuleViolation("転出先 地方公共団体コード", "a move within one municipality is a 転居")
        pending = self.s.execute(
            select(PortalMoveOutRow.id).where(
                PortalMoveOutRow.portal_code == user.portal_code, PortalMoveOutRow.status == SUBMITTED
            )
        ).first()
        if pending is not None:
            raise RuleViolation("転出届", "must not be filed while another one is waiting")
        now = self.clock.now()
        row = PortalMoveOutRow(
            request_no=f"MP{now.astimezone(JST):%Y%m%d}{self.deps.new_nonce()[-12:].upper()}",
            portal_code=user.portal_code,
            cert_generation=user.certificate.generation,
            cert_serial=user.certificate.serial,
            lg_code=holder.lg_code,
            destination=destination,
            destination_lg_code=dest.lg_code,
            planned_date=planned_date,
            status=SUBMITTED,
            filed_at=now,
        )
        self.s.add(row)
        self.s.flush()
        self._log("move_out_filed", user.portal_code, request=row.request_no, lg_code=holder.lg_code)
        return MoveOutView.of(row)

    def move_outs(self, user: PortalUser) -> list[MoveOutView]:
        rows = self.s.scalars(
            select(PortalMoveOutRow)
            .where(PortalMoveOutRow.portal_code == user.portal_code)
            .order_by(PortalMoveOutRow.id.desc())
        )
        return [MoveOutView.of(r) for r in rows]

    def withdraw_move_out(self, user: PortalUser, request_id: int) -> MoveOutView:
        row = self.s.get(PortalMoveOutRow, request_id)
        if row is None or row.portal_code != user.portal_code:
            raise NotFound("転出届", str(request_id))
        if row.status != SUBMITTED:
            raise RuleViolation("転出届", "only a request still waiting can be withdrawn")
        row.status, row.decided_at, row.decided_by = WITHDRAWN, self.clock.now(), "本人"
        self.s.flush()
        self._log("move_out_withdrawn", user.portal_code, request=row.request_no)
        return MoveOutView.of(row)

    # The municipality's side: its staff see the requests made to their 団体 and decide.

    def requests_for(
        self, staff: Principal, lg_code: str, *, status: str | None = SUBMITTED
    ) -> list[MoveOutView]:
        staff.require_staff_of(lg_code)
        stmt = select(PortalMoveOutRow).where(PortalMoveOutRow.lg_code == lg_code)
        if status is not None:
            if status not in STATUS_LABELS:
                raise InvalidInput("status", f"must be one of {', '.join(STATUS_LABELS)}")
            stmt = stmt.where(PortalMoveOutRow.status == status)
        return [MoveOutView.of(r) for r in self.s.scalars(stmt.order_by(PortalMoveOutRow.id))]

    def accept_move_out(self, staff: Principal, lg_code: str, request_id: int) -> MoveOutView:
        """受理: J-LIS finds the holder (only if their 住民票 is in this 団体), and the register records
        the 転出 with the 特例 (転出証明書情報 to the destination's CS), notified on the filing day."""
        row = self._request(staff, lg_code, request_id)
        holder = HolderLookup(self.s, self.clock, staff).holder(
            CertificateRef(row.cert_generation, row.cert_serial), purpose="転出届 (マイナポータル) の受理"
        )
        registry = self.deps.registry(self.s, lg_code, staff.actor)
        resident = registry.find_by_code(holder.resident_code)
        filed_on = row.filed_at.astimezone(JST).date()
        _view, cert = registry.record_move_out(
            resident.id,
            planned_date=row.planned_date,
            destination=row.destination,
            destination_lg_code=row.destination_lg_code,
            special=True,
            notified_on=min(filed_on, self.clock.today()),
        )
        row.status, row.decided_at, row.decided_by = ACCEPTED, self.clock.now(), staff.actor
        row.certificate_no = cert.certificate_no
        self.s.flush()
        self._add_notice(
            row.portal_code,
            f"lg-{lg_code}",
            self.deps.geography.municipality(lg_code).name,
            "転出届を受理しました",
            f"転出届 (受付番号 {row.request_no}) を受理しました。転出予定日: {row.planned_date:%Y-%m-%d}。\n"
            "転入先の市区町村の窓口で、マイナンバーカードを提示して転入届 (特例転入) をしてください。"
            "転入した日から14日以内に手続きが必要です。",
        )
        self._log("move_out_accepted", row.portal_code, request=row.request_no, staff=staff.actor)
        return MoveOutView.of(row)

    def reject_move_out(self, staff: Principal, lg_code: str, request_id: int, reason: str) -> MoveOutView:
        row = self._request(staff, lg_code, request_id)
        reason = _text("reason", reason, MAX_REASON)
        row.status, row.decided_at, row.decided_by, row.reason = (
            REJECTED,
            self.clock.now(),
            staff.actor,
            reason,
        )
        self.s.flush()
        self._add_notice(
            row.portal_code,
            f"lg-{lg_code}",
            self.deps.geography.municipality(lg_code).name,
            "転出届を受理できませんでした",
            f"転出届 (受付番号 {row.request_no}) を受理できませんでした。理由: {reason}",
        )
        self._log("move_out_rejected", row.portal_code, request=row.request_no, staff=staff.actor)
        return MoveOutView.of(row)

    def _request(self, staff: Principal, lg_code: str, request_id: int) -> PortalMoveOutRow:
        staff.require_staff_of(lg_code)
        row = self.s.get(PortalMoveOutRow, request_id)
        if row is None or row.lg_code != lg_code:
            raise NotFound("転出届", str(request_id))
        if row.status != SUBMITTED:
            raise RuleViolation("転出届", f"is already decided ({STATUS_LABELS[row.status]})")
        return row

    # -- 基本4情報の提供への同意 -------------------------------------------------------------------

    def consent_verifiers(self) -> list[Verifier]:
        """The active 署名検証者: the ones a consent to the latest 基本4情報 can name."""
        registry = VerifierRegistry(self.s, self.clock, actor=PORTAL_ID)
        return [v for v in registry.list() if v.active and v.may_query(SIGN)]

    def consent_request(
        self, verifier_id: str, purpose: str, *, days: int = DEFAULT_CONSENT_DAYS
    ) -> ConsentRequest:
        """The terms to sign, for an active 署名検証者; ``days`` of validity (1 to a year)."""
        verifier = next((v for v in self.consent_verifiers() if v.id == verifier_id), None)
        if verifier is None:
            raise InvalidInput("verifier_id", "must be an active 署名検証者")
        purpose = _text("purpose", purpose, MAX_PURPOSE)
        if not isinstance(days, int) or not 1 <= days <= MAX_CONSENT_VALIDITY.days - 1:
            raise InvalidInput("days", f"must be 1 to {MAX_CONSENT_VALIDITY.days - 1}")
        now = self.clock.now().replace(microsecond=0)
        return ConsentRequest(
            verifier.id, verifier.name, purpose, self.deps.new_nonce(), now, now + dt.timedelta(days=days)
        )

    def record_consent(self, user: PortalUser, document: bytes) -> ConsentView:
        """Keep a consent the user's card signed, after checking it as J-LIS will: the signature,
        the terms, an active 署名検証者, and that the signing certificate is the signed-in holder's."""
        doc = parse_consent(document)
        terms = parse_terms(doc.content)
        if not any(v.id == terms.verifier_id for v in self.consent_verifiers()):
            raise InvalidInput("consent.verifier_id", "must be an active 署名検証者")
        serial = HolderLookup(self.s, self.clock, user.principal).signing_certificate(
            user.certificate, doc.signer.public_bytes(Encoding.DER)
        )
        if terms.certificate_serial.removeprefix("0x").lstrip("0") != serial:
            raise InvalidInput("consent.certificate_serial", "must be the serial of the signing certificate")
        now = self.clock.now()
        if terms.valid_until <= now or terms.valid_until - terms.issued_at > MAX_CONSENT_VALIDITY:
            raise InvalidInput("consent.valid_until", "must be in the future and within a year of issued_at")
        if self.s.execute(select(PortalConsentRow.id).where(PortalConsentRow.nonce == terms.nonce)).first():
            raise RuleViolation("consent.nonce", "must not be a consent already recorded")
        row = PortalConsentRow(
            portal_code=user.portal_code,
            verifier_id=terms.verifier_id,
            purpose=terms.purpose[:MAX_PURPOSE],
            certificate_serial=serial,
            nonce=terms.nonce[:64],
            document=bytes(document),
            issued_at=terms.issued_at,
            valid_until=terms.valid_until,
        )
        self.s.add(row)
        self.s.flush()
        self._log("consent", user.portal_code, verifier=terms.verifier_id, consent=row.id)
        return ConsentView.of(row)

    def consents(self, user: PortalUser) -> list[ConsentView]:
        rows = self.s.scalars(
            select(PortalConsentRow)
            .where(PortalConsentRow.portal_code == user.portal_code)
            .order_by(PortalConsentRow.id.desc())
        )
        return [ConsentView.of(r) for r in rows]

    def withdraw_consent(self, user: PortalUser, consent_id: int) -> ConsentView:
        row = self.s.get(PortalConsentRow, consent_id)
        if row is None or row.portal_code != user.portal_code:
            raise NotFound("同意", str(consent_id))
        if row.withdrawn_at is None:
            row.withdrawn_at = self.clock.now()
            self.s.flush()
            self._log("consent_withdrawn", user.portal_code, verifier=row.verifier_id, consent=row.id)
        return ConsentView.of(row)

    def consents_for_verifier(self, verifier: Verifier) -> list[tuple[ConsentView, bytes]]:
        """The consents naming this verifier that are neither withdrawn nor expired, with their
        signed documents (what the verifier sends to POST /api/v1/jpki/basic4)."""
        if not verifier.active:
            raise Forbidden(f"verifier {verifier.id} is not active", field="verifier", rule="must be active")
        rows = self.s.scalars(
            select(PortalConsentRow)
            .where(
                PortalConsentRow.verifier_id == verifier.id,
                PortalConsentRow.withdrawn_at.is_(None),
                PortalConsentRow.valid_until > _utc(self.clock.now()),
            )
            .order_by(PortalConsentRow.id)
        )
        return [(ConsentView.of(r), r.document) for r in rows]

    # -- records -----------------------------------------------------------------------------------

    def _log(self, action: str, portal_code: str, **details: Any) -> None:
        """The portal's own record of what happened for whom (by the portal's code only)."""
        PORTAL_LOG.append(
            self.s, at=self.clock.now(), actor=PORTAL_ID, action=action, subject=portal_code, details=details
        )
