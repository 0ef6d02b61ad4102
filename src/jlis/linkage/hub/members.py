"""Linkage members (情報照会者・情報提供者): national agencies, municipalities and the portal.

Member ids are stable strings: an agency by its slug (``nenkin`` 日本年金機構, ...), a municipality
as ``lg-<6-digit 地方公共団体コード>`` (``lg-131016``), the portal ``myna-portal``.

Each member has a **request key** (32 random bytes) with which it MACs its requests to the hub
(``jlis.linkage.exchange``). It is shown once, when the member is registered, and kept at rest
sealed with AES-GCM under the installation's storage key (the chip-storage key of ``key_dir``,
:class:`jlis.card.chip.store.Sealer`), bound to the member id. A member may also get a principal of
kind ``linkage_member`` (username + password; ``POST /api/v1/token``): :func:`member_of` turns such
a principal into its member, and refuses any other caller (fails closed).

Registration, activation and deactivation are J-LIS operator acts, recorded in the
``linkage.members`` audit chain in the caller's transaction.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.auth import service as auth
from jlis.auth.models import Principal, PrincipalKind
from jlis.auth.tables import PrincipalRow
from jlis.card.chip.store import Sealer, storage_key
from jlis.clock import Clock
from jlis.codes import LgCode
from jlis.errors import Forbidden, InvalidInput, JlisError, NotFound, RuleViolation
from jlis.linkage.hub.tables import MemberRow

if TYPE_CHECKING:
    from jlis.masters import Geography

MEMBER_LOG = AuditLog("linkage.members")
REQUEST_KEY_BYTES = 32
MEMBER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$")
MUNICIPALITY_PREFIX = "lg-"
PORTAL_ID = "myna-portal"
PORTAL_NAME = "マイナポータル"
MAX_NAME_LENGTH = 200

# The national agencies every installation knows (ids are stable; names as the agencies call
# themselves). Which of them may ask whom for what is the exchange table's business, not ours.
STANDARD_AGENCIES: tuple[tuple[str, str], ...] = (
    ("nenkin", "日本年金機構"),
    ("mhlw", "厚生労働省"),
    ("kyokai", "全国健康保険協会"),
    ("jasso", "日本学生支援機構"),
)


class MemberKind(enum.StrEnum):
    AGENCY = "agency"
    MUNICIPALITY = "municipality"
    PORTAL = "portal"

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]

    @classmethod
    def parse(cls, value: str | MemberKind, field: str = "kind") -> MemberKind:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput(field, f"must be one of {', '.join(k.value for k in cls)}") from None


_KIND_LABELS = {
    MemberKind.AGENCY: "国の機関等",
    MemberKind.MUNICIPALITY: "地方公共団体",
    MemberKind.PORTAL: "マイナポータル",
}


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    kind: MemberKind
    lg_code: str | None
    active: bool

    def require_active(self) -> None:
        if not self.active:
            raise Forbidden(
                f"linkage member {self.id} is not active", field="member", rule="must be an active member"
            )


def municipality_member_id(lg_code: str) -> str:
    """``lg-<地方公共団体コード>`` for a valid code (InvalidInput otherwise)."""
    return f"{MUNICIPALITY_PREFIX}{LgCode.parse(lg_code)}"


def check_member_id(value: str, field: str = "member_id") -> str:
    value = (value or "").strip()
    if not MEMBER_ID_RE.match(value):
        raise InvalidInput(
            field, "3-32 characters: lower-case letters, digits or '-', alphanumeric at both ends"
        )
    return value


def _name(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput("name", "must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput("name", f"at most {MAX_NAME_LENGTH} characters")
    if any(ord(c) < 0x20 for c in value):
        raise InvalidInput("name", "no control characters")
    return value


def _checked_identity(member_id: str, kind: MemberKind, lg_code: str | None) -> tuple[str, str | None]:
    """The id and 団体コード rules of each kind: a municipality is ``lg-<its code>``, and nothing
    else may take an ``lg-`` id or a 団体コード."""
    mid = check_member_id(member_id)
    if kind is MemberKind.MUNICIPALITY:
        if lg_code is None:
            if not mid.startswith(MUNICIPALITY_PREFIX):
                raise InvalidInput("member_id", "a municipality's id is lg-<地方公共団体コード>")
            lg_code = mid[len(MUNICIPALITY_PREFIX) :]
        code = str(LgCode.parse(lg_code, "lg_code"))
        if mid != f"{MUNICIPALITY_PREFIX}{code}":
            raise InvalidInput("member_id", f"a municipality's id is lg-<地方公共団体コード> (lg-{code})")
        return mid, code
    if lg_code is not None:
        raise InvalidInput("lg_code", f"only a municipality has a 地方公共団体コード, not a {kind.value}")
    if mid.startswith(MUNICIPALITY_PREFIX):
        raise InvalidInput("member_id", "ids starting with lg- are for municipalities")
    return mid, None


def _member(row: MemberRow) -> Member:
    return Member(id=row.id, name=row.name, kind=MemberKind(row.kind), lg_code=row.lg_code, active=row.active)


def _aad(member_id: str) -> str:
    return f"jlis-linkage-member:{member_id}"


class MemberService:
    """The register of members, in the caller's session (the caller commits). ``actor`` names the
    J-LIS operator (or tool) acting, for the audit chain; ``rng`` is the source of request keys."""

    def __init__(
        self,
        session: Session,
        clock: Clock,
        *,
        actor: str,
        key_dir: Path,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.s = session
        self.clock = clock
        self.actor = actor
        self.key_dir = Path(key_dir)
        self._rng = rng
        self._sealer: Sealer | None = None

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            self._sealer = Sealer(storage_key(self.key_dir), self._rng)
        return self._sealer

    def register(
        self,
        member_id: str,
        name: str,
        kind: MemberKind | str,
        *,
        lg_code: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> tuple[Member, bytes]:
        """Register a member; returns it with its request key (shown once). With ``username`` and
        ``password`` the member also gets a principal of kind ``linkage_member``."""
        kind = MemberKind.parse(kind)
        mid, code = _checked_identity(member_id, kind, lg_code)
        name = _name(name)
        if (username is None) != (password is None):
            raise InvalidInput("password", "username and password go together")
        if self.s.get(MemberRow, mid) is not None:
            raise RuleViolation("member_id", "must be unique", f"linkage member {mid!r} already exists")
        now = self.clock.now()
        principal_id: int | None = None
        if username is not None and password is not None:
            principal = auth.create_principal(
                self.s,
                username=username,
                password=password,
                kind=PrincipalKind.LINKAGE_MEMBER,
                display_name=name[:100],
                now=now,
            )
            principal_id = principal.id
        key = self._rng(REQUEST_KEY_BYTES)
        if len(key) != REQUEST_KEY_BYTES:
            raise ValueError(f"the key source gave {len(key)} bytes, not {REQUEST_KEY_BYTES}")
        row = MemberRow(
            id=mid,
            name=name,
            kind=kind.value,
            lg_code=code,
            active=True,
            principal_id=principal_id,
            request_key=self.sealer.seal(_aad(mid), key),
            created_at=now,
            updated_at=now,
        )
        self.s.add(row)
        self.s.flush()
        self._audit("register", row, username=username)
        return _member(row), key

    def get(self, member_id: str) -> Member:
        return _member(self._row(member_id))

    def list(self) -> list[Member]:
        return [_member(r) for r in self.s.scalars(select(MemberRow).order_by(MemberRow.kind, MemberRow.id))]

    def username(self, member_id: str) -> str | None:
        """The username of the member's principal, if it has one."""
        row = self._row(member_id)
        if row.principal_id is None:
            return None
        return self.s.execute(
            select(PrincipalRow.username).where(PrincipalRow.id == row.principal_id)
        ).scalar()

    def set_active(self, member_id: str, active: bool) -> Member:
        """Deactivation also disables the member's principal, which ends its tokens."""
        row = self._row(member_id)
        if row.active == bool(active):
            return _member(row)
        row.active = bool(active)
        row.updated_at = self.clock.now()
        username = self.username(row.id)
        if username is not None:
            auth.set_disabled(self.s, username, not active)
        self.s.flush()
        self._audit("activate" if active else "deactivate", row)
        return _member(row)

    def request_key(self, member_id: str) -> bytes:
        """The member's request key, unsealed (for the hub's MAC check). Fails closed: a blob
        sealed for another member or under another storage key does not open."""
        row = self._row(member_id)
        try:
            return self.sealer.unseal(_aad(row.id), row.request_key)
        except JlisError:
            raise RuleViolation(
                "request_key", "must open under this installation's storage key", "request key unreadable"
            ) from None

    def rotate_key(self, member_id: str) -> bytes:
        """A new request key for the member (the old one stops working at once); shown once."""
        row = self._row(member_id)
        key = self._rng(REQUEST_KEY_BYTES)
        row.request_key = self.sealer.seal(_aad(row.id), key)
        row.updated_at = self.clock.now()
        self.s.flush()
        self._audit("rotate_key", row)
        return key

    def _row(self, member_id: str) -> MemberRow:
        row = self.s.get(MemberRow, (member_id or "").strip())
        if row is None:
            raise NotFound("member", member_id)
        return row

    def _audit(self, action: str, row: MemberRow, **extra: Any) -> None:
        MEMBER_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=self.actor,
            action=action,
            subject=row.id,
            details={
                "name": row.name,
                "kind": row.kind,
                "lg_code": row.lg_code,
                "active": row.active,
                **{k: v for k, v in extra.items() if v is not None},
            },
        )


def get_member(session: Session, member_id: str) -> Member:
    """A member by id (NotFound), without a service (the hub's own checks)."""
    row = session.get(MemberRow, (member_id or "").strip()) if isinstance(member_id, str) else None
    if row is None:
        raise NotFound("member", str(member_id))
    return _member(row)


def member_of(session: Session, principal: Principal) -> Member:
    """The member a principal acts for. Fails closed: any other kind of principal, a principal no
    member names, or an inactive member is refused."""
    principal.require_kind(PrincipalKind.LINKAGE_MEMBER)
    row = session.execute(
        select(MemberRow).where(MemberRow.principal_id == principal.id)
    ).scalar_one_or_none()
    if row is None:
        raise Forbidden(
            "this principal is not a linkage member", field="member", rule="must be a registered member"
        )
    member = _member(row)
    member.require_active()
    return member


def standard_member_specs(
    lg_codes: Iterable[str], geography: Geography | None = None
) -> list[tuple[str, str, MemberKind, str | None]]:
    """(id, name, kind, lg_code) of the standard agencies, the given municipalities and the portal."""
    from jlis.masters import load_geography

    specs: list[tuple[str, str, MemberKind, str | None]] = [
        (mid, name, MemberKind.AGENCY, None) for mid, name in STANDARD_AGENCIES
    ]
    codes = [str(LgCode.parse(c, "lg_code")) for c in lg_codes]
    if codes:
        geo = geography or load_geography()
        for code in dict.fromkeys(codes):
            m = geo.municipality(code)
            specs.append((f"{MUNICIPALITY_PREFIX}{code}", m.name, MemberKind.MUNICIPALITY, code))
    specs.append((PORTAL_ID, PORTAL_NAME, MemberKind.PORTAL, None))
    return specs


def ensure_standard_members(
    session: Session,
    clock: Clock,
    *,
    key_dir: Path,
    lg_codes: Iterable[str],
    geography: Geography | None = None,
    password: str | None = None,
    actor: str = "linkage-seed",
) -> list[Member]:
    """Demo/seed: the standard agencies, the given municipalities and the portal, each registered
    unless it already is (idempotent; an existing member is left as it is). With ``password``
    each new member also gets a principal ``linkage-<member id>`` with that password."""
    svc = MemberService(session, clock, actor=actor, key_dir=key_dir)
    out: list[Member] = []
    for mid, name, kind, code in standard_member_specs(lg_codes, geography):
        row = session.get(MemberRow, mid)
        if row is not None:
            out.append(_member(row))
            continue
        username = f"linkage-{mid}" if password is not None else None
        member, _key = svc.register(mid, name, kind, lg_code=code, username=username, password=password)
        out.append(member)
    return out
