"""Who is calling: the principal kinds and their scope checks. Pure: no database, no HTTP.

Deny by default: a :class:`Principal` grants nothing by itself. Each route and service entry asks
for exactly the scope it needs (``require_staff_of``, ``require_operator``, ``require_agency``) and
every check fails closed with :class:`Forbidden`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from jlis.errors import Forbidden, InvalidInput

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}[a-z0-9]$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256  # argon2 takes any length; a cap keeps a request from costing megabytes
MAX_DISPLAY_NAME_LENGTH = 100


class PrincipalKind(enum.StrEnum):
    """Values are stored in the database and appear in the API; ``label`` is the Japanese name."""

    MUNICIPAL_STAFF = "municipal_staff"  # 市区町村職員: one 団体 only
    JLIS_OPERATOR = "jlis_operator"  # 機構の運用者
    AGENCY = "agency"  # 別表第一の国の機関等 (an agency of the provision table)
    RESIDENT = "resident"  # 住民 (authenticated by card; reserved for the portal)
    VERIFIER = "verifier"  # 署名検証者・利用者証明検証者 (JPKI relying parties; jlis.jpki.tables.VerifierRow)
    LINKAGE_MEMBER = "linkage_member"  # 情報連携の機関 (jlis.linkage.hub.tables.MemberRow)

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]

    @classmethod
    def parse(cls, value: str, field: str = "kind") -> PrincipalKind:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput(field, f"must be one of {', '.join(k.value for k in cls)}") from None


_KIND_LABELS = {
    PrincipalKind.MUNICIPAL_STAFF: "市区町村職員",
    PrincipalKind.JLIS_OPERATOR: "J-LIS 運用者",
    PrincipalKind.AGENCY: "提供先機関",
    PrincipalKind.RESIDENT: "住民",
    PrincipalKind.VERIFIER: "署名検証者・利用者証明検証者",
    PrincipalKind.LINKAGE_MEMBER: "情報連携の機関",
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``lg_code`` is set for municipal staff only, ``agency_id`` for
    agencies only (the table's check constraints hold the same rule)."""

    id: int
    username: str
    kind: PrincipalKind
    display_name: str
    lg_code: str | None = None
    agency_id: str | None = None

    @property
    def actor(self) -> str:
        """How this principal is named in audit records and history rows."""
        return self.username

    def require_kind(self, *kinds: PrincipalKind) -> None:
        if self.kind not in kinds:
            wanted = " or ".join(k.value for k in kinds)
            raise Forbidden(f"this needs a {wanted} principal", field="principal", rule=f"must be {wanted}")

    def require_staff_of(self, lg_code: str) -> None:
        """Municipal staff of exactly ``lg_code``: staff never act for another 団体."""
        self.require_kind(PrincipalKind.MUNICIPAL_STAFF)
        if not self.lg_code or self.lg_code != lg_code:
            raise Forbidden(
                f"staff of {self.lg_code} may not act for {lg_code}",
                field="地方公共団体コード",
                rule="must be the staff member's own municipality",
            )

    def require_operator(self) -> None:
        self.require_kind(PrincipalKind.JLIS_OPERATOR)

    def require_agency(self) -> str:
        """The agency id, for the legal-table check that follows."""
        self.require_kind(PrincipalKind.AGENCY)
        if not self.agency_id:  # the table forbids it; fail closed all the same
            raise Forbidden(
                "agency principal without an agency id", field="principal", rule="must name an agency"
            )
        return self.agency_id


def check_username(value: str) -> str:
    value = (value or "").strip()
    if not USERNAME_RE.match(value):
        raise InvalidInput(
            "username",
            "3-64 characters: lower-case letters, digits, '.', '_' or '-', starting and ending alphanumeric",
        )
    return value


def check_password(value: str) -> str:
    if len(value or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput("password", f"at least {MIN_PASSWORD_LENGTH} characters")
    if len(value) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("password", f"at most {MAX_PASSWORD_LENGTH} characters")
    return value


def check_display_name(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput("display_name", "must not be empty")
    if len(value) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidInput("display_name", f"at most {MAX_DISPLAY_NAME_LENGTH} characters")
    return value
