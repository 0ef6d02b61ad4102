"""J-LIS's look-up of an authentication certificate's holder (利用者証明用電子証明書の保有者).

The authentication certificate carries no personal data (facts §3.2): a relying party knows its user
by issuer + serial (発行番号) only. J-LIS, which issued it, knows whose it is. This module is that
knowledge, for J-LIS's own services that act *for the holder* (マイナポータル's sign-in, the holder's
本人確認情報 and the disclosure of the 住基ネット provision log) and for the municipality that
handles the holder's online 転出届.

Who may look up whom (deny by default, :class:`jlis.errors.Forbidden` otherwise):

- a **resident** principal made from a verified card login (:func:`resident_principal`): only the
  certificate they logged in with — a resident sees only their own data;
- **municipal staff**: only a holder whose current 住民票 is in their own 団体;
- a **J-LIS operator**: any holder.

The certificate must be an authentication certificate of this instance's CA, of a generation not on
the ARL, ``good`` (not revoked, not on hold) and within its validity now. Every look-up that returns
a person writes an ``access`` audit record in the caller's transaction (subject: the 住民票コード,
which stays inside J-LIS; the caller commits).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.auth.models import Principal, PrincipalKind
from jlis.clock import Clock
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.jpki.tables import AUTH, GOOD, SIGN, CaGenerationRow, CertificateRow
from jlis.juki.provision import ProvisionService, current_national_record, linked_codes

ACCESS_LOG = AuditLog("access")
FUNCTION = "利用者証明用電子証明書の保有者の確認"
RESIDENT_PREFIX = "jpki-auth:"
_SERIAL = re.compile(r"^[0-9a-f]{1,40}$")
_GENERATION = re.compile(r"^g?([1-9][0-9]{0,3})$")


@dataclass(frozen=True)
class CertificateRef:
    """An authentication certificate as a relying party names it: CA generation and serial."""

    generation: int
    serial: str  # lower-case hex, no leading zeros

    @classmethod
    def parse(cls, generation: str | int, serial: str) -> CertificateRef:
        m = _GENERATION.match(str(generation))
        if not m:
            raise InvalidInput("generation", "must be a CA generation such as g1")
        text = (serial or "").strip().lower().removeprefix("0x").lstrip("0") or "0"
        if not _SERIAL.match(text):
            raise InvalidInput("serial", "must be the certificate serial in hexadecimal")
        return cls(int(m.group(1)), text)

    @property
    def label(self) -> str:
        return f"g{self.generation}:{self.serial}"


@dataclass(frozen=True)
class Holder:
    """Whose certificate it is, as J-LIS knows it. ``resident_code`` is the current one (after any
    住民票コード change) and must not leave J-LIS and the linkage chain (jlis.linkage.hub)."""

    certificate: CertificateRef
    card_id: str
    resident_code: str
    lg_code: str  # the municipality of the current 住民票
    not_after: dt.datetime


@dataclass(frozen=True)
class IdentityView:
    """本人確認情報 of the national copy (機構保存本人確認情報), without the 住民票コード."""

    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    birth_date: dt.date
    sex: str
    address: str
    lg_code: str
    status: str
    reason: str
    change_date: dt.date

    @property
    def name(self) -> str:
        return f"{self.family_name}\u3000{self.given_name}" if self.given_name else self.family_name


@dataclass(frozen=True)
class ProvisionDisclosure:
    """One line of the 住基ネット provision log about the holder (facts §4.6), without the code."""

    at: dt.datetime
    recipient: str
    recipient_name: str | None
    affair: str
    affair_name: str | None
    items: tuple[str, ...]
    outcome: str
    outcome_label: str
    function: str
    source: str


def resident_principal(ref: CertificateRef, display_name: str = "カード利用者") -> Principal:
    """The principal of someone who has just proved possession of ``ref``'s key (a verified login).
    It names the certificate, nothing personal; it is never stored as a user account."""
    return Principal(
        id=0, username=f"{RESIDENT_PREFIX}{ref.label}", kind=PrincipalKind.RESIDENT, display_name=display_name
    )


class HolderLookup:
    """Inside the caller's session; the caller commits (the audit record goes with the read)."""

    def __init__(self, session: Session, clock: Clock, principal: Principal) -> None:
        principal.require_kind(
            PrincipalKind.RESIDENT, PrincipalKind.MUNICIPAL_STAFF, PrincipalKind.JLIS_OPERATOR
        )
        self.s = session
        self.clock = clock
        self.principal = principal

    # -- public ------------------------------------------------------------------------------------

    def holder(self, ref: CertificateRef, *, purpose: str) -> Holder:
        """The holder of a good authentication certificate, after the scope check; audited."""
        found = self._resolve(ref)
        self._audit(found, purpose, "holder")
        return found

    def identity(self, ref: CertificateRef) -> IdentityView:
        """The holder's 本人確認情報 (the national copy's current record); audited."""
        found = self._resolve(ref)
        row = self._national(found.resident_code)
        self._audit(found, "本人確認情報の表示", "identity")
        return IdentityView(
            family_name=row.family_name,
            given_name=row.given_name,
            family_kana=row.family_kana,
            given_kana=row.given_kana,
            birth_date=row.birth_date,
            sex=row.sex,
            address=row.address,
            lg_code=row.lg_code,
            status=row.status,
            reason=row.reason,
            change_date=row.change_date,
        )

    def provision_log(self, ref: CertificateRef, table: Any) -> list[ProvisionDisclosure]:
        """The 住基ネット provision log about the holder (本人確認情報の提供状況の開示), newest first;
        the disclosure itself goes to the access log (jlis.juki.provision.ProvisionService.disclose)."""
        found = self._resolve(ref)
        entries = ProvisionService(self.s, self.clock, table).disclose(
            found.resident_code, requested_by=self.principal.actor
        )
        return [
            ProvisionDisclosure(
                at=e.at,
                recipient=e.recipient,
                recipient_name=e.recipient_name,
                affair=e.affair,
                affair_name=e.affair_name,
                items=e.items,
                outcome=e.outcome.value,
                outcome_label=e.outcome.label,
                function=e.function,
                source=e.source,
            )
            for e in reversed(entries)
        ]

    def signing_certificate(self, ref: CertificateRef, der: bytes) -> str:
        """The serial of ``der`` if it is a good signing certificate of this CA, within its validity,
        held by the same person as ``ref`` (the same 住民票コード or one linked to it); refused
        otherwise. No personal data is returned: the caller learns only that the two match."""
        found = self._resolve(ref)
        try:
            cert = x509.load_der_x509_certificate(bytes(der))
        except (TypeError, ValueError):
            raise InvalidInput("signing_certificate", "must be a DER certificate") from None
        serial = format(cert.serial_number, "x")
        rows = self.s.scalars(
            select(CertificateRow).where(CertificateRow.ca_kind == SIGN, CertificateRow.serial == serial)
        ).all()
        row = next((r for r in rows if r.der == cert.public_bytes(Encoding.DER)), None)
        if row is None:
            raise RuleViolation("signing_certificate", "must be a signing certificate issued by JPKI")
        now = self.clock.now()
        if row.status != GOOD or not (row.not_before <= now <= row.not_after):
            raise RuleViolation(
                "signing_certificate", "must be good (not revoked, not on hold) and valid now"
            )
        if row.resident_code not in linked_codes(self.s, found.resident_code):
            raise RuleViolation("signing_certificate", "must belong to the holder of the signed-in card")
        self._audit(found, "署名用電子証明書の保有者の照合", "signing_certificate")
        return serial

    # -- rules ---------------------------------------------------------------------------------------

    def _resolve(self, ref: CertificateRef) -> Holder:
        if self.principal.kind is PrincipalKind.RESIDENT and self.principal.username != (
            f"{RESIDENT_PREFIX}{ref.label}"
        ):
            raise Forbidden(
                "a card holder may look up only the certificate they signed in with",
                field="certificate",
                rule="must be the resident's own certificate",
            )
        row = self.s.execute(
            select(CertificateRow, CaGenerationRow.revoked_at)
            .join(CaGenerationRow, CaGenerationRow.id == CertificateRow.ca_generation_id)
            .where(
                CertificateRow.ca_kind == AUTH,
                CaGenerationRow.ca_kind == AUTH,
                CaGenerationRow.generation == ref.generation,
                CertificateRow.serial == ref.serial,
            )
        ).first()
        if row is None:
            raise NotFound("利用者証明用電子証明書", ref.label)
        cert, generation_revoked = row
        now = self.clock.now()
        if generation_revoked is not None:
            raise RuleViolation("certificate", "must be of a CA generation in service")
        if cert.status != GOOD:
            raise RuleViolation("certificate", "must not be revoked or on hold")
        if not (cert.not_before <= now <= cert.not_after):
            raise RuleViolation("certificate", "must be within its validity period")
        national = self._national(cert.resident_code)
        if self.principal.kind is PrincipalKind.MUNICIPAL_STAFF:
            self.principal.require_staff_of(national.lg_code)
        return Holder(ref, cert.card_id, national.resident_code, national.lg_code, cert.not_after)

    def _national(self, resident_code: str) -> Any:
        current = current_national_record(self.s, resident_code)
        if current is None:
            raise NotFound("本人確認情報", "the holder of the certificate")
        return current

    def _audit(self, found: Holder, purpose: str, what: str) -> None:
        ACCESS_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=self.principal.actor,
            action="read",
            subject=found.resident_code,
            details={
                "system": "jpki",
                "function": FUNCTION,
                "purpose": purpose,
                "read": what,
                "certificate": found.certificate.label,
            },
        )
