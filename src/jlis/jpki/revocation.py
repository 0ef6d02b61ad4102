"""Revocation of end-entity certificates and CA generations (facts §3.4).

Every change of a certificate's status goes through :class:`Revocations`, inside the caller's
transaction: the row is locked, the change decided by the pure :func:`transition`, and an entry is
appended to the ``jpki.revocation`` audit chain in the same transaction. That chain is also the
*change feed* of the revocation information: its entries carry the generation, serial, partition
and new status, so the OCSP responder and the CRL publisher of any process learn of a change by
reading the entries after the last sequence number they saw (:func:`changes_since`). In the process
that made the change they learn of it at once: after the transaction commits, every subscribed
listener gets the :class:`StatusChange` list (nothing is announced for a rolled-back change).

Rules (the same for every caller: the change stream, the hotline, the counter, the operator):

- ``revoke``: good or on hold → revoked. A revoked certificate stays as it is: a repeated event (the
  same cause, e.g. a redelivered message) or a second, different event changes nothing.
- ``hold`` (一時保留, CRL reason certificateHold): good → hold; anything else unchanged.
- ``release``: hold → good, only at the counter (a municipal staff member); a revoked certificate
  can never come back.

Expiry is not a revocation: an expired certificate keeps the status it had. The CRL drops an entry
one CRL period after the certificate expired (RFC 5280 §3.3), and the OCSP responder keeps answering
the recorded status for expired certificates (relying parties check the validity period themselves;
``jlis.jpki.rp`` does). See docs/jpki.md.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.audit.tables import AuditChainHead, AuditEntryRow
from jlis.auth.models import Principal, PrincipalKind
from jlis.clock import Clock
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.jpki.tables import AUTH, CARD, GOOD, HOLD, PHONE, REVOKED, SIGN, CaGenerationRow, CertificateRow

log = logging.getLogger(__name__)

REVOCATION_CHAIN = "jpki.revocation"
REVOCATION_LOG = AuditLog(REVOCATION_CHAIN)
MAX_CAUSE_LENGTH = 120


class Reason(enum.StrEnum):
    """RFC 5280 CRLReason, by the names cryptography's ``x509.ReasonFlags`` uses (stored as text)."""

    UNSPECIFIED = "unspecified"  # 本人の申請 and anything without a better reason (no reasonCode)
    KEY_COMPROMISE = "keyCompromise"  # 秘密鍵の危殆化 (lost card found misused, chip broken)
    CA_COMPROMISE = "cACompromise"  # for CA generations only (ARL)
    AFFILIATION_CHANGED = "affiliationChanged"  # 基本4情報の変更 (move, name change, correction)
    SUPERSEDED = "superseded"  # a new card or certificate replaces it
    CESSATION_OF_OPERATION = "cessationOfOperation"  # death, 国外転出, card returned or voided
    CERTIFICATE_HOLD = "certificateHold"  # 一時保留 (hotline); only through :meth:`Revocations.hold`
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"  # ex officio by J-LIS (記録誤り found later)

    @classmethod
    def parse(cls, value: str, field: str = "reason") -> Reason:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput(field, f"must be one of {', '.join(r.value for r in cls)}") from None

    @property
    def code(self) -> int:
        """The CRLReason enumeration value (RFC 5280 §5.3.1)."""
        return REASON_CODES[self]


REASON_CODES = {
    Reason.UNSPECIFIED: 0,
    Reason.KEY_COMPROMISE: 1,
    Reason.CA_COMPROMISE: 2,
    Reason.AFFILIATION_CHANGED: 3,
    Reason.SUPERSEDED: 4,
    Reason.CESSATION_OF_OPERATION: 5,
    Reason.CERTIFICATE_HOLD: 6,
    Reason.PRIVILEGE_WITHDRAWN: 9,
}
# An end-entity certificate is revoked for one of these; certificateHold has its own operation and
# cACompromise is for CA generations.
EE_REASONS = frozenset(REASON_CODES) - {Reason.CA_COMPROMISE, Reason.CERTIFICATE_HOLD}

REASON_LABELS = {
    Reason.UNSPECIFIED: "本人の申請ほか",
    Reason.KEY_COMPROMISE: "秘密鍵の危殆化",
    Reason.CA_COMPROMISE: "CA の危殆化",
    Reason.AFFILIATION_CHANGED: "基本4情報の変更",
    Reason.SUPERSEDED: "新しい証明書への切替",
    Reason.CESSATION_OF_OPERATION: "死亡・国外転出・カードの廃止",
    Reason.CERTIFICATE_HOLD: "一時保留",
    Reason.PRIVILEGE_WITHDRAWN: "職権による失効",
}


class Action(enum.StrEnum):
    REVOKE = "revoke"
    HOLD = "hold"
    RELEASE = "release"
    REVOKE_CA = "revoke_ca"


def transition(status: str, action: Action) -> str | None:
    """The status after ``action``, or None when the action changes nothing (pure).

    A release of a revoked certificate is refused (it can never come back); the other no-ops are
    silent so that a repeated or late event is harmless."""
    if action is Action.REVOKE:
        return REVOKED if status in (GOOD, HOLD) else None
    if action is Action.HOLD:
        return HOLD if status == GOOD else None
    if action is Action.RELEASE:
        if status == REVOKED:
            raise RuleViolation("status", "a revoked certificate cannot be restored")
        return GOOD if status == HOLD else None
    raise ValueError(f"not a certificate action: {action}")


@dataclass(frozen=True)
class StatusChange:
    """One change of revocation information, as the OCSP and CRL caches need it. ``seq`` is the
    entry of the ``jpki.revocation`` chain that recorded it."""

    seq: int
    action: Action
    ca_kind: str
    ca_generation_id: int
    serial: str  # lower-case hex
    lg_code: str | None  # the CRL partition (None for a CA generation)
    status: str
    revoked_at: dt.datetime | None
    reason: str | None

    def details(self, **extra: Any) -> dict[str, Any]:
        return {
            "ca_kind": self.ca_kind,
            "generation_id": self.ca_generation_id,
            "serial": self.serial,
            "lg_code": self.lg_code,
            "status": self.status,
            "revoked_at": self.revoked_at.astimezone(dt.UTC).isoformat() if self.revoked_at else None,
            "reason": self.reason,
            **extra,
        }

    @classmethod
    def from_entry(cls, seq: int, action: str, details: dict[str, Any]) -> StatusChange:
        at = details.get("revoked_at")
        return cls(
            seq=seq,
            action=Action(action),
            ca_kind=str(details["ca_kind"]),
            ca_generation_id=int(details["generation_id"]),
            serial=str(details["serial"]),
            lg_code=details.get("lg_code"),
            status=str(details["status"]),
            revoked_at=dt.datetime.fromisoformat(at) if at else None,
            reason=details.get("reason"),
        )


# ------------------------------------------------------------------------------------- listeners


class ChangeListener(Protocol):
    """An OCSP responder or CRL publisher of this process. ``engine`` says which database the
    changes were committed to (a process may serve several, e.g. in the tests)."""

    def status_changed(self, engine: Engine, changes: Sequence[StatusChange]) -> None: ...

    def issued(self, engine: Engine, certificates: Sequence[IssuedCertificate]) -> None: ...


_listeners: weakref.WeakSet[Any] = weakref.WeakSet()
_listeners_lock = threading.Lock()
_PENDING = "jlis.jpki.pending_changes"
_PENDING_ISSUED = "jlis.jpki.pending_issued"
_HOOKED = "jlis.jpki.hooked"


def subscribe(listener: ChangeListener) -> None:
    """Tell ``listener`` of every change committed in this process (held weakly)."""
    with _listeners_lock:
        _listeners.add(listener)


def unsubscribe(listener: ChangeListener) -> None:
    with _listeners_lock:
        _listeners.discard(listener)


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _after_commit(session: Session) -> None:
    changes = session.info.pop(_PENDING, [])
    issued = session.info.pop(_PENDING_ISSUED, [])
    if not changes and not issued:
        return
    engine = _engine_of(session)
    with _listeners_lock:
        targets = list(_listeners)
    for listener in targets:
        # A listener's failure must not undo or hide a committed revocation: the caches it keeps
        # also poll the change feed, which repairs anything missed here.
        try:
            if changes:
                listener.status_changed(engine, changes)
            if issued:
                listener.issued(engine, issued)
        except Exception:  # pragma: no cover - logged, and repaired by the poll
            log.exception("revocation listener failed")


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_PENDING_ISSUED, None)


def _hook(session: Session) -> None:
    if not session.info.get(_HOOKED):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
        session.info[_HOOKED] = True


def announce_after_commit(session: Session, changes: Sequence[StatusChange]) -> None:
    _hook(session)
    session.info.setdefault(_PENDING, []).extend(changes)


@dataclass(frozen=True)
class IssuedCertificate:
    """What a listener learns of a new certificate (a snapshot: the row may be expired by then)."""

    ca_generation_id: int
    serial: str
    status: str
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None


def notify_issued(session: Session, certificates: Sequence[CertificateRow]) -> None:
    """For the issuer (jlis.jpki.ca / jlis.card): after the commit, the OCSP responder of this
    process pre-signs the answers for these new certificates. Optional: without it the first
    query of each is signed on demand."""
    _hook(session)
    session.info.setdefault(_PENDING_ISSUED, []).extend(
        IssuedCertificate(c.ca_generation_id, c.serial, c.status, c.revoked_at, c.revocation_reason)
        for c in certificates
    )


# ------------------------------------------------------------------------------------- change feed


def feed_head(session: Session) -> int:
    """The sequence number of the last committed revocation change (0 before the first)."""
    seq = session.execute(
        select(AuditChainHead.last_seq).where(AuditChainHead.chain == REVOCATION_CHAIN)
    ).scalar()
    return int(seq or 0)


def changes_since(session: Session, after: int, limit: int = 10_000) -> list[StatusChange]:
    """The committed changes with a sequence number above ``after``, oldest first."""
    rows = session.execute(
        select(AuditEntryRow.seq, AuditEntryRow.action, AuditEntryRow.details)
        .where(AuditEntryRow.chain == REVOCATION_CHAIN, AuditEntryRow.seq > after)
        .order_by(AuditEntryRow.seq)
        .limit(limit)
    )
    out = []
    for seq, action, details in rows:
        try:
            out.append(StatusChange.from_entry(int(seq), action, json.loads(details)))
        except (ValueError, KeyError, TypeError):  # an entry of a newer version: skip it
            continue
    return out


# ------------------------------------------------------------------------------------- service


def _check_cause(cause: str) -> str:
    if not isinstance(cause, str) or not cause.strip():
        raise InvalidInput("cause", "must not be empty")
    if len(cause) > MAX_CAUSE_LENGTH:
        raise InvalidInput("cause", f"at most {MAX_CAUSE_LENGTH} characters")
    return cause.strip()


def normalise_serial(value: str | int, field: str = "serial") -> str:
    """A serial as stored: lower-case hex without leading zeros (from an int or hex text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower().removeprefix("0x").replace(":", "")
        if not text or len(text) > 42 or any(c not in "0123456789abcdef" for c in text):
            raise InvalidInput(field, "must be a hexadecimal serial number")
        number = int(text, 16)
    else:
        raise InvalidInput(field, "must be a hexadecimal serial number")
    if number <= 0 or number.bit_length() > 160:
        raise InvalidInput(field, "must be a positive serial number of at most 20 octets")
    return format(number, "x")


class Revocations:
    """Status changes of certificates, in the caller's session (the caller commits). ``actor`` is
    who acts, for the audit chain (a staff username, ``hotline``, ``jpki-stream``...)."""

    def __init__(self, session: Session, clock: Clock, *, actor: str = "J-LIS") -> None:
        self.s = session
        self.clock = clock
        self.actor = actor

    # -- look-ups --------------------------------------------------------------------------------

    def certificate(self, ca_kind: str, serial: str | int, generation: int | None = None) -> CertificateRow:
        """The certificate of ``ca_kind`` with this serial (in one generation, when given)."""
        if ca_kind not in (SIGN, AUTH):
            raise InvalidInput("ca_kind", "must be sign or auth")
        stmt = select(CertificateRow).where(
            CertificateRow.ca_kind == ca_kind, CertificateRow.serial == normalise_serial(serial)
        )
        if generation is not None:
            stmt = stmt.join(CaGenerationRow, CaGenerationRow.id == CertificateRow.ca_generation_id).where(
                CaGenerationRow.generation == generation
            )
        rows = list(self.s.scalars(stmt))
        if not rows:
            raise NotFound("certificate", f"{ca_kind}:{serial}")
        if len(rows) > 1:  # serials are random 16 octets: a clash across generations is theoretical
            raise InvalidInput("generation", "must be given: the serial exists in several generations")
        return rows[0]

    def of_card(
        self, card_id: str, kinds: Iterable[str] = (SIGN, AUTH), holders: Iterable[str] = (CARD, PHONE)
    ) -> list[CertificateRow]:
        return list(
            self.s.scalars(
                select(CertificateRow)
                .where(
                    CertificateRow.card_id == card_id,
                    CertificateRow.ca_kind.in_(list(kinds)),
                    CertificateRow.holder.in_(list(holders)),
                )
                .order_by(CertificateRow.id)
            )
        )

    # -- end-entity certificates -----------------------------------------------------------------

    def revoke(self, certificate: CertificateRow, reason: Reason | str, cause: str) -> bool:
        """Revoke one certificate; False when it was already revoked (nothing changes)."""
        return bool(self.revoke_many([certificate], reason, cause))

    def revoke_many(
        self, certificates: Sequence[CertificateRow], reason: Reason | str, cause: str
    ) -> list[CertificateRow]:
        """Revoke several certificates for one cause; returns those whose status changed."""
        why = Reason.parse(str(reason))
        if why not in EE_REASONS:
            raise InvalidInput("reason", "must be an end-entity revocation reason (hold has its own action)")
        return self._apply(certificates, Action.REVOKE, why, _check_cause(cause))

    def revoke_each(self, items: Sequence[tuple[CertificateRow, Reason | str, str]]) -> list[CertificateRow]:
        """Revoke many certificates, each with its own reason and cause, in one batch (the change
        stream's round). Returns those whose status changed."""
        checked: list[tuple[CertificateRow, Reason | None, str]] = []
        for certificate, reason, cause in items:
            why = Reason.parse(str(reason))
            if why not in EE_REASONS:
                raise InvalidInput("reason", "must be an end-entity revocation reason")
            checked.append((certificate, why, _check_cause(cause)))
        return self._apply_each(checked, Action.REVOKE)

    def hold(self, certificate: CertificateRow, cause: str) -> bool:
        """一時保留: the certificate answers revoked (certificateHold) until released at the counter."""
        return bool(self._apply([certificate], Action.HOLD, Reason.CERTIFICATE_HOLD, _check_cause(cause)))

    def release(self, certificate: CertificateRow, *, staff: Principal, cause: str) -> bool:
        """Lift a hold, at the counter only (a municipal staff member; fails closed otherwise)."""
        return bool(self.release_many([certificate], staff=staff, cause=cause))

    def release_many(
        self, certificates: Sequence[CertificateRow], *, staff: Principal, cause: str
    ) -> list[CertificateRow]:
        if not isinstance(staff, Principal) or staff.kind is not PrincipalKind.MUNICIPAL_STAFF:
            raise Forbidden(
                "a hold is lifted only at a municipal counter",
                field="principal",
                rule="must be municipal_staff",
            )
        return self._apply(certificates, Action.RELEASE, None, _check_cause(cause), actor=staff.actor)

    def revoke_card(
        self,
        card_id: str,
        reason: Reason | str,
        cause: str,
        *,
        kinds: Iterable[str] = (SIGN, AUTH),
        holders: Iterable[str] = (CARD, PHONE),
    ) -> list[CertificateRow]:
        """Revoke every certificate of a card (and, by default, of the phone linked to it: facts
        §3.7, they end together). Already revoked ones are left as they are."""
        return self.revoke_many(self.of_card(card_id, kinds, holders), reason, cause)

    def hold_card(
        self, card_id: str, cause: str, *, holders: Iterable[str] = (CARD, PHONE)
    ) -> list[CertificateRow]:
        """The hotline (一時停止 of a lost card): every good certificate of the card goes on hold."""
        cause = _check_cause(cause)
        return self._apply(
            self.of_card(card_id, holders=holders), Action.HOLD, Reason.CERTIFICATE_HOLD, cause
        )

    def release_card(
        self, card_id: str, *, staff: Principal, cause: str, holders: Iterable[str] = (CARD, PHONE)
    ) -> list[CertificateRow]:
        """Lift the hold of every held certificate of a card, at the counter. Revoked ones stay
        revoked; a card with nothing on hold is refused (there is nothing to lift)."""
        held = [c for c in self.of_card(card_id, holders=holders) if c.status == HOLD]
        if not held:
            raise RuleViolation(
                "card_id", "must have a certificate on hold", f"no certificate of {card_id} is on hold"
            )
        return self.release_many(held, staff=staff, cause=cause)

    # -- CA generations (ARL) ----------------------------------------------------------------------

    def revoke_generation(self, generation: CaGenerationRow, reason: Reason | str, cause: str) -> bool:
        """Put a CA generation on the ARL of its kind (e.g. cACompromise, or superseded when it is
        retired early). Its certificates are not revoked one by one: a verifier that checks the
        ARL refuses the whole generation."""
        why = Reason.parse(str(reason))
        if why not in (
            Reason.CA_COMPROMISE,
            Reason.SUPERSEDED,
            Reason.CESSATION_OF_OPERATION,
            Reason.UNSPECIFIED,
        ):
            raise InvalidInput(
                "reason", "must be cACompromise, superseded, cessationOfOperation or unspecified"
            )
        cause = _check_cause(cause)
        row = self.s.scalars(
            select(CaGenerationRow)
            .where(CaGenerationRow.id == generation.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        if row.revoked_at is not None:
            return False
        now = self.clock.now()
        row.revoked_at = now
        row.revocation_reason = why.value
        row.active = False
        serial = format(x509.load_der_x509_certificate(row.certificate_der).serial_number, "x")
        change = StatusChange(0, Action.REVOKE_CA, row.ca_kind, row.id, serial, None, REVOKED, now, why.value)
        (entry,) = REVOCATION_LOG.append_many(
            self.s,
            [
                {
                    "at": now,
                    "actor": self.actor,
                    "action": Action.REVOKE_CA.value,
                    "subject": None,
                    "details": change.details(generation=row.generation, cause=cause),
                }
            ],
        )
        self.s.flush()
        announce_after_commit(self.s, [_with_seq(change, entry.seq)])
        return True

    # -- the one path every change takes -----------------------------------------------------------

    def _apply(
        self,
        certificates: Sequence[CertificateRow],
        action: Action,
        reason: Reason | None,
        cause: str,
        *,
        actor: str | None = None,
    ) -> list[CertificateRow]:
        return self._apply_each([(c, reason, cause) for c in certificates], action, actor=actor)

    def _apply_each(
        self,
        items: Sequence[tuple[CertificateRow, Reason | None, str]],
        action: Action,
        *,
        actor: str | None = None,
    ) -> list[CertificateRow]:
        """Apply ``action`` to each (certificate, reason, cause), in order: for one certificate the
        first item that changes it wins, the later ones find nothing left to change."""
        if not items:
            return []
        ids = sorted({c.id for c, _r, _c in items})
        # Lock the rows (PostgreSQL: FOR UPDATE; SQLite: the write lock BEGIN IMMEDIATE took) and
        # read them afresh, so two concurrent revocations of one certificate record it once.
        rows = {
            r.id: r
            for r in self.s.scalars(
                select(CertificateRow)
                .where(CertificateRow.id.in_(ids))
                .order_by(CertificateRow.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        }
        now = self.clock.now()
        changed: list[tuple[CertificateRow, str, str]] = []
        for certificate, reason, cause in items:
            row = rows.get(certificate.id)
            if row is None:
                raise NotFound("certificate", str(certificate.id))
            new = transition(row.status, action)
            if new is None:
                continue
            changed.append((row, row.status, cause))
            row.status = new
            if new == GOOD:
                row.revoked_at, row.revocation_reason, row.revocation_cause = None, None, None
            else:
                row.revoked_at = now
                row.revocation_reason = reason.value if reason else None
                row.revocation_cause = cause
        if not changed:
            return []
        drafts = [
            StatusChange(
                0,
                action,
                row.ca_kind,
                row.ca_generation_id,
                row.serial,
                row.lg_code,
                row.status,
                row.revoked_at,
                row.revocation_reason,
            )
            for row, _old, _cause in changed
        ]
        entries = REVOCATION_LOG.append_many(
            self.s,
            [
                {
                    "at": now,
                    "actor": actor or self.actor,
                    "action": action.value,
                    "subject": row.resident_code,
                    "details": draft.details(
                        cause=cause, previous=old, holder=row.holder, card_id=row.card_id
                    ),
                }
                for (row, old, cause), draft in zip(changed, drafts, strict=True)
            ],
        )
        self.s.flush()
        announce_after_commit(self.s, [_with_seq(d, e.seq) for d, e in zip(drafts, entries, strict=True)])
        return [row for row, _old, _cause in changed]


def _with_seq(change: StatusChange, seq: int) -> StatusChange:
    return StatusChange(
        seq,
        change.action,
        change.ca_kind,
        change.ca_generation_id,
        change.serial,
        change.lg_code,
        change.status,
        change.revoked_at,
        change.reason,
    )


def revocation_log(
    session: Session, *, limit: int = 200
) -> list[tuple[int, dt.datetime, str, str, StatusChange, dict[str, Any]]]:
    """The newest changes for the operator's page: (seq, at, actor, action, change, details).
    The caller audits the read (the entries name residents by their 住民票コード)."""
    out = []
    for e in REVOCATION_LOG.entries(session, newest_first=True, limit=limit):
        details = dict(e.details)
        try:
            change = StatusChange.from_entry(e.seq, e.action, details)
        except (ValueError, KeyError, TypeError):
            continue
        out.append((e.seq, e.at, e.actor, e.action, change, details))
    return out
