"""Who may act on the certificate server's data, and the audit of every read of it.

- Staff of the municipality (``MUNICIPAL_STAFF`` with that ``lg_code``) keep the data: 印鑑登録,
  DV 支援措置, 本籍地利用登録 at the counter, assessments and 戸籍 entries.
- The issuance center (a J-LIS principal, ``JLIS_OPERATOR``) reads it to issue a certificate for
  the resident its card authentication identified; it changes nothing but the issuance log and,
  for the resident, a 本籍地利用登録.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.auth.models import Principal, PrincipalKind
from jlis.clock import Clock

ACCESS_LOG = AuditLog("access")
SYSTEM = "kiosk.issuer"


def require_keeper(principal: Principal, lg_code: str) -> None:
    """The municipality's own staff: they alone change its certificate data."""
    principal.require_staff_of(lg_code)


def require_reader(principal: Principal, lg_code: str) -> None:
    """The municipality's staff, or the issuance center (J-LIS) acting for an authenticated resident."""
    if principal.kind is PrincipalKind.JLIS_OPERATOR:
        return
    principal.require_staff_of(lg_code)


def audit_read(
    session: Session,
    clock: Clock,
    principal: Principal,
    lg_code: str,
    subject: str,
    purpose: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    ACCESS_LOG.append(
        session,
        at=clock.now(),
        actor=principal.actor,
        action="read",
        subject=subject,
        details={"system": SYSTEM, "lg_code": lg_code, "purpose": purpose, **(details or {})},
    )
