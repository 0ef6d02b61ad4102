"""Issuing certificate PDFs and verifying them: render → sign by the municipality's 職責 key →
register; and the public verification by certificate number + code, or by the PDF itself.

:class:`CertificateDocuments` works in the caller's session and never commits: the certificate
server issues a document inside the transaction of its request, so a refused or failed request
leaves no register row behind (and a register row always has its audit entry, chain
``kiosk.documents``). Verification answers never carry personal data: the verdict, the kind of
certificate, the issuing municipality, the issue date and the SHA-256 of the document.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.auth.models import Principal
from jlis.clock import Clock
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.kiosk.content import CertificateContent, CertificateKind
from jlis.kiosk.pdf import render as render_mod
from jlis.kiosk.pdf.fonts import FontSet
from jlis.kiosk.pdf.signing import sign_pdf, signer_for_role
from jlis.kiosk.pdf.tables import REVOKED, VALID, IssuedDocumentRow
from jlis.kiosk.pdf.verification import PdfCheck, check_pdf
from jlis.lgwan.ca import OrganisationCA

if TYPE_CHECKING:
    from jlis.container import Container

DOCUMENT_LOG = AuditLog("kiosk.documents")
CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base32: no 0/1/8/9 to misread
CODE_LENGTH = 16  # 80 bits
MAX_REASON = 200


class Verdict(enum.StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    REVOKED = "revoked"

    @property
    def label(self) -> str:
        return {"valid": "有効", "invalid": "確認できません", "revoked": "無効 (取消済み)"}[self.value]


@dataclass(frozen=True)
class IssuedDocument:
    certificate_number: str
    request_id: str
    lg_code: str
    kind: CertificateKind
    code: str  # printed on the document; the register keeps only its hash
    sha256: str
    pdf: bytes
    signer_serial: str
    issued_at: dt.datetime


@dataclass(frozen=True)
class PreparedDocument:
    """A rendered and signed document not yet in the register (:meth:`CertificateDocuments.prepare`)."""

    content: CertificateContent
    code: str
    pdf: bytes
    sha256: str
    pages: int
    signer_serial: str
    signed_at: dt.datetime


@dataclass(frozen=True)
class VerificationResult:
    verdict: Verdict
    message: str  # Japanese, for the page
    problem: str | None = None  # English, for the API and logs
    sha256: str | None = None
    certificate_number: str | None = None
    kind: CertificateKind | None = None
    lg_code: str | None = None
    issued_on: dt.date | None = None
    revoked_at: dt.datetime | None = None
    signer_title: str | None = None  # the office that signed (from the PDF's signature)

    @property
    def problem_ja(self) -> str | None:
        """The reason in Japanese, for the page (the API keeps the English ``problem``)."""
        if self.problem is None:
            return None
        for prefix, text in _PROBLEMS_JA:
            if self.problem.startswith(prefix):
                return text
        return self.problem

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "message": self.message,
            "problem": self.problem,
            "sha256": self.sha256,
            "certificate_number": self.certificate_number,
            "kind": self.kind.value if self.kind else None,
            "kind_label": self.kind.label if self.kind else None,
            "lg_code": self.lg_code,
            "issued_on": self.issued_on.isoformat() if self.issued_on else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "signer_title": self.signer_title,
        }


def new_code(rng: random.Random) -> str:
    return "".join(rng.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalise_code(code: str) -> str:
    """What a person types: spaces and hyphens dropped, lower case allowed."""
    return "".join(ch for ch in (code or "").upper() if ch not in " -\u3000")


_PROBLEMS_JA = (
    ("the signature does not match", "電子署名と文書の内容が一致しません (改ざんされています)。"),
    ("the file was changed after signing", "署名の後に文書が書き換えられています。"),
    ("the signer's certificate is revoked", "署名した職責証明書は失効しています。"),
    (
        "the signer's certificate does not chain",
        "署名した証明書は、市区町村の職責証明書として確認できません。",
    ),
    ("not signed", "電子署名がありません。"),
    ("must carry exactly one signature", "電子署名の数が正しくありません。"),
    ("not a readable PDF", "PDF として読み取れません。"),
    ("larger than", "ファイルが大きすぎます。"),
    ("signed, but not in the register", "発行台帳に登録されていない文書です。"),
    ("unknown number or wrong code", "証明書番号と照合番号の組が見つかりません。"),
    ("revoked by the issuing municipality", "発行した市区町村が取り消しました。"),
)
_UNKNOWN = "証明書番号と照合番号の組が確認できませんでした。入力を確かめてください。"
_PDF_INVALID = "この PDF は、発行された証明書として確認できません。"


class CertificateDocuments:
    """The register of issued certificate PDFs over one session."""

    def __init__(
        self,
        session: Session,
        clock: Clock,
        ca: OrganisationCA,
        *,
        base_url: str,
        rng: random.Random | None = None,
        fonts: FontSet | None = None,
    ) -> None:
        self.session = session
        self.clock = clock
        self.ca = ca
        self.base_url = base_url.rstrip("/")
        self.rng = rng if rng is not None else random.SystemRandom()
        self.fonts = fonts

    # -- issuance ------------------------------------------------------------------------------------

    def issue(self, content: CertificateContent, *, actor: str) -> IssuedDocument:
        """Render, sign and register ``content`` in this session (:meth:`prepare` then
        :meth:`register`). Refuses a certificate number already issued and a municipality without a
        職責証明書; the caller's transaction holds the register row."""
        if self._number_taken(content.certificate_number):
            raise RuleViolation("certificate_number", "must not have been issued before")
        return self.register(self.prepare(content), actor=actor)

    def prepare(self, content: CertificateContent) -> PreparedDocument:
        """Render and sign ``content``; writes nothing. It only reads the municipality's 職責証明書,
        so it can run in a read-only session before the writing transaction: on SQLite, where a
        writing transaction holds the database's one write lock from its start, the ~40 ms of
        rendering and signing then happen outside the lock (see :meth:`register`)."""
        role = self.ca.role_for(content.lg_code)
        key = self.ca.role_signer(role)
        code = new_code(self.rng)
        now = self.clock.now()
        pdf, pages = render_mod.render_with_pages(
            content, verification=render_mod.Verification(self.base_url, code), fonts=self.fonts
        )
        signed = sign_pdf(pdf, signer_for_role(role, key), at=now, location=content.issuer_title)
        return PreparedDocument(
            content, code, signed, hashlib.sha256(signed).hexdigest(), pages, role.serial, now
        )

    def register(self, prepared: PreparedDocument, *, actor: str) -> IssuedDocument:
        """Enter a prepared document in the register (and the audit chain) in this session's
        transaction. The number is checked again here: the unique index decides a race."""
        content = prepared.content
        if self._number_taken(content.certificate_number):
            raise RuleViolation("certificate_number", "must not have been issued before")
        row = IssuedDocumentRow(
            certificate_number=content.certificate_number,
            lg_code=content.lg_code,
            kind=content.kind.value,
            request_id=content.request_id,
            code_hash=code_hash(prepared.code),
            sha256=prepared.sha256,
            size=len(prepared.pdf),
            pages=prepared.pages,
            signer_serial=prepared.signer_serial,
            issued_on=content.issued_on,
            issued_at=prepared.signed_at,
            status=VALID,
        )
        self.session.add(row)
        try:
            self.session.flush()
        except IntegrityError:
            # Two requests raced for one number: the unique index decides; the loser's transaction
            # is rolled back by its caller (fails closed: nothing of the second document remains).
            raise RuleViolation("certificate_number", "must not have been issued before") from None
        DOCUMENT_LOG.append(
            self.session,
            at=self.clock.now(),
            actor=actor,
            action="document.issue",
            subject=content.certificate_number,
            details={
                "lg_code": content.lg_code,
                "kind": content.kind.value,
                "request_id": content.request_id,
                "sha256": prepared.sha256,
                "signer_serial": prepared.signer_serial,
            },
        )
        return IssuedDocument(
            certificate_number=content.certificate_number,
            request_id=content.request_id,
            lg_code=content.lg_code,
            kind=content.kind,
            code=prepared.code,
            sha256=prepared.sha256,
            pdf=prepared.pdf,
            signer_serial=prepared.signer_serial,
            issued_at=prepared.signed_at,
        )

    def revoke(self, certificate_number: str, *, principal: Principal, reason: str) -> VerificationResult:
        """Withdraw an issued document (e.g. issued in error): staff of the issuing municipality."""
        row = self._row(certificate_number)
        if row is None:
            raise NotFound("certificate", certificate_number)
        principal.require_staff_of(row.lg_code)
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInput("reason", "must not be empty")
        if len(reason) > MAX_REASON:
            raise InvalidInput("reason", f"at most {MAX_REASON} characters")
        if row.status == REVOKED:
            raise RuleViolation("certificate_number", "already revoked")
        now = self.clock.now()
        row.status = REVOKED
        row.revoked_at = now
        row.revocation_reason = reason
        self.session.flush()
        DOCUMENT_LOG.append(
            self.session,
            at=now,
            actor=principal.actor,
            action="document.revoke",
            subject=row.certificate_number,
            details={"lg_code": row.lg_code, "reason": reason},
        )
        return self._result(row)

    # -- public verification -------------------------------------------------------------------------

    def verify_code(self, certificate_number: str, code: str) -> VerificationResult:
        """By the number and the code printed on the document. An unknown number and a wrong code
        get the same answer, so the register cannot be probed for numbers."""
        number = (certificate_number or "").strip()
        if not render_mod.NUMBER_RE.match(number):
            raise InvalidInput("certificate_number", "1–32 characters of A–Z a–z 0–9 -")
        given = normalise_code(code)
        if len(given) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in given):
            raise InvalidInput("code", f"{CODE_LENGTH} characters of A–Z 2–7")
        row = self._row(number)
        # Compare even when the number is unknown, so both refusals cost the same.
        expected = row.code_hash if row is not None else code_hash("")
        if row is None or not hmac.compare_digest(expected, code_hash(given)):
            return VerificationResult(Verdict.INVALID, _UNKNOWN, problem="unknown number or wrong code")
        return self._result(row)

    def verify_pdf(self, pdf: bytes) -> VerificationResult:
        """By the PDF itself: pyHanko validates the signature against the organisation CA's roots and
        CRLs, then the register must know the document by its hash."""
        check = self.check(pdf)
        if not check.ok and not check.revoked:
            return VerificationResult(
                Verdict.INVALID, _PDF_INVALID, problem=check.problem, sha256=check.sha256
            )
        row = self.session.scalars(
            select(IssuedDocumentRow).where(IssuedDocumentRow.sha256 == check.sha256).limit(1)
        ).first()
        if row is None or row.signer_serial != check.signer_serial:
            return VerificationResult(
                Verdict.INVALID,
                _PDF_INVALID,
                problem="signed, but not in the register of issued documents",
                sha256=check.sha256,
                signer_title=check.signer_title,
            )
        if check.revoked:
            result = self._result(row)
            return VerificationResult(
                Verdict.REVOKED,
                "この証明書に署名した職責証明書は失効しています。",
                problem=check.problem,
                sha256=check.sha256,
                certificate_number=result.certificate_number,
                kind=result.kind,
                lg_code=result.lg_code,
                issued_on=result.issued_on,
                signer_title=check.signer_title,
            )
        result = self._result(row)
        return VerificationResult(
            result.verdict,
            result.message,
            problem=result.problem,
            sha256=check.sha256,
            certificate_number=result.certificate_number,
            kind=result.kind,
            lg_code=result.lg_code,
            issued_on=result.issued_on,
            revoked_at=result.revoked_at,
            signer_title=check.signer_title,
        )

    def check(self, pdf: bytes) -> PdfCheck:
        """The signature check alone (no register lookup), at the clock's time."""
        gens = self.ca.generations()
        return check_pdf(
            pdf,
            trust_roots=self.ca.trust_anchors(),
            crls=[self.ca.crl(g) for g in gens],
            at=self.clock.now(),
        )

    def _number_taken(self, certificate_number: str) -> bool:
        taken = self.session.scalar(
            select(IssuedDocumentRow.id).where(IssuedDocumentRow.certificate_number == certificate_number)
        )
        return taken is not None

    def _row(self, certificate_number: str) -> IssuedDocumentRow | None:
        return self.session.scalars(
            select(IssuedDocumentRow).where(IssuedDocumentRow.certificate_number == certificate_number)
        ).first()

    def _result(self, row: IssuedDocumentRow) -> VerificationResult:
        kind = CertificateKind(row.kind)
        common: dict[str, Any] = {
            "sha256": row.sha256,
            "certificate_number": row.certificate_number,
            "kind": kind,
            "lg_code": row.lg_code,
            "issued_on": row.issued_on,
        }
        if row.status == REVOKED:
            return VerificationResult(
                Verdict.REVOKED,
                "この証明書は発行元の市区町村により取り消されています。",
                problem="revoked by the issuing municipality",
                revoked_at=row.revoked_at,
                **common,
            )
        return VerificationResult(
            Verdict.VALID,
            f"この{kind.label}は発行された証明書として登録されています。"
            "お手元の PDF の SHA-256 が下の値と一致すれば、内容も発行時のままです。",
            **common,
        )


def documents_for(session: Session, container: Container) -> CertificateDocuments:
    """The register wired from the container (the CA over the same session, the public URL)."""
    base_url = container.settings.resolved_public_url
    ca = OrganisationCA(session, container.clock, container.keystore, base_url, rng=container.rng)
    return CertificateDocuments(session, container.clock, ca, base_url=base_url, rng=container.rng)
