"""Sign-in use cases: principals, web sessions, API tokens. Everything works inside the caller's
session and transaction; nothing here commits.

Session cookies and API tokens are random values from the OS CSPRNG (``secrets``), never from the
container's ``rng``, which may be seeded for a replay. Only their SHA-256 is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth import passwords
from jlis.auth.models import (
    Principal,
    PrincipalKind,
    check_display_name,
    check_password,
    check_username,
)
from jlis.auth.tables import ApiTokenRow, PrincipalRow, WebSessionRow
from jlis.db import transaction
from jlis.errors import InvalidInput, NotFound, RuleViolation, Unauthenticated
from jlis.masters import Geography, ProvisionTable

SESSION_TTL = dt.timedelta(hours=8)  # one counter shift; a new sign-in after that
TOKEN_TTL = dt.timedelta(hours=1)
API_TOKEN_PREFIX = "jlis_at_"  # lets secret scanners recognise a leaked token

UTC = dt.UTC
TokenSource = Callable[[], str]


def _random_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token_for(session_token: str) -> str:
    """The form token of a web session: derived from the session secret, so it needs no storage and
    changes with every sign-in, and a page of another origin can neither read nor forge it."""
    return hmac.new(session_token.encode("utf-8"), b"jlis-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(csrf_token_for(session_token), submitted or "")


def _utc(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    # Stored in UTC: SQLite keeps no offset, so every stored and compared instant must be UTC.
    return at.astimezone(UTC)


def _principal(row: PrincipalRow) -> Principal:
    return Principal(
        id=row.id,
        username=row.username,
        kind=PrincipalKind(row.kind),
        display_name=row.display_name,
        lg_code=row.lg_code,
        agency_id=row.agency_id,
    )


@dataclass(frozen=True)
class IssuedSecret:
    """A session or API token as handed to the caller once; only its hash is kept."""

    token: str
    expires_at: dt.datetime


# ---------------------------------------------------------------------------------------- principals


def create_principal(
    session: Session,
    *,
    username: str,
    password: str,
    kind: PrincipalKind | str,
    display_name: str,
    now: dt.datetime,
    lg_code: str | None = None,
    agency_id: str | None = None,
    known_lg_code: Callable[[str], bool] | None = None,
    known_agency: Callable[[str], bool] | None = None,
) -> Principal:
    """Register a principal. ``known_lg_code`` / ``known_agency`` check the scope against the
    masters (the CLI and the demo pass them); a scope that does not fit the kind is refused."""
    username = check_username(username)
    check_password(password)
    display_name = check_display_name(display_name)
    kind = PrincipalKind.parse(str(kind))
    if kind is PrincipalKind.MUNICIPAL_STAFF:
        if not lg_code:
            raise InvalidInput("lg_code", "municipal staff need their municipality's 地方公共団体コード")
        if known_lg_code is not None and not known_lg_code(lg_code):
            raise InvalidInput("lg_code", "must be a municipality that keeps a register")
    elif lg_code:
        raise InvalidInput("lg_code", "only municipal staff belong to a municipality")
    if kind is PrincipalKind.AGENCY:
        if not agency_id:
            raise InvalidInput("agency_id", "an agency principal needs the agency id of the provision table")
        if known_agency is not None and not known_agency(agency_id):
            raise InvalidInput("agency_id", "must be an agency of the provision table")
    elif agency_id:
        raise InvalidInput("agency_id", "only agency principals have an agency id")
    if session.execute(select(PrincipalRow.id).where(PrincipalRow.username == username)).first():
        raise RuleViolation("username", "must be unique", f"user {username!r} already exists")
    row = PrincipalRow(
        username=username,
        kind=kind.value,
        lg_code=lg_code or None,
        agency_id=agency_id or None,
        password_hash=passwords.hash_password(password),
        display_name=display_name,
        disabled=False,
        created_at=_utc(now),
    )
    session.add(row)
    session.flush()
    return _principal(row)


def find_principal(session: Session, username: str) -> Principal | None:
    row = session.execute(select(PrincipalRow).where(PrincipalRow.username == username)).scalar_one_or_none()
    return _principal(row) if row is not None else None


def list_principals(session: Session) -> list[tuple[Principal, bool]]:
    """Every principal with its ``disabled`` flag, by username."""
    rows = session.execute(select(PrincipalRow).order_by(PrincipalRow.username)).scalars()
    return [(_principal(r), r.disabled) for r in rows]


def _row_by_username(session: Session, username: str) -> PrincipalRow:
    row = session.execute(select(PrincipalRow).where(PrincipalRow.username == username)).scalar_one_or_none()
    if row is None:
        raise NotFound("username", username)
    return row


def set_password(session: Session, username: str, password: str) -> None:
    """A new password also ends every session and token of the user."""
    row = _row_by_username(session, username)
    row.password_hash = passwords.hash_password(check_password(password))
    _end_all(session, row.id)


def set_disabled(session: Session, username: str, disabled: bool) -> None:
    row = _row_by_username(session, username)
    row.disabled = disabled
    if disabled:
        _end_all(session, row.id)


def _end_all(session: Session, principal_id: int) -> None:
    session.execute(delete(WebSessionRow).where(WebSessionRow.principal_id == principal_id))
    session.execute(delete(ApiTokenRow).where(ApiTokenRow.principal_id == principal_id))


_BAD_CREDENTIALS = "username or password is wrong"


def authenticate(session: Session, username: str, password: str) -> Principal:
    """The principal whose password this is, or :class:`Unauthenticated`. The answer and its time
    are the same for an unknown user, a wrong password and a disabled user (fails closed)."""
    row = None
    if isinstance(username, str) and 0 < len(username) <= 64:
        row = session.execute(
            select(PrincipalRow).where(PrincipalRow.username == username.strip())
        ).scalar_one_or_none()
    password = password if isinstance(password, str) else ""
    if len(password) > 1024:  # refuse before hashing: an oversize password must not cost CPU
        raise Unauthenticated(_BAD_CREDENTIALS, field="password", rule="must match an enabled user")
    if row is None:
        passwords.burn_dummy_verification(password)
        raise Unauthenticated(_BAD_CREDENTIALS, field="password", rule="must match an enabled user")
    ok = passwords.verify_password(row.password_hash, password)
    if not ok or row.disabled:
        raise Unauthenticated(_BAD_CREDENTIALS, field="password", rule="must match an enabled user")
    if passwords.needs_rehash(row.password_hash):
        row.password_hash = passwords.hash_password(password)
    return _principal(row)


# ---------------------------------------------------------------------------------------- web sessions


def open_session(
    session: Session,
    principal: Principal,
    *,
    now: dt.datetime,
    ttl: dt.timedelta = SESSION_TTL,
    new_token: TokenSource = _random_token,
) -> IssuedSecret:
    now_utc = _utc(now)
    # Housekeeping on sign-in keeps the table small without a scheduler.
    session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now_utc))
    token = new_token()
    expires = now_utc + ttl
    session.add(
        WebSessionRow(
            token_hash=token_hash(token), principal_id=principal.id, created_at=now_utc, expires_at=expires
        )
    )
    session.flush()
    return IssuedSecret(token, expires)


def close_session(session: Session, token: str) -> None:
    session.execute(delete(WebSessionRow).where(WebSessionRow.token_hash == token_hash(token)))


def principal_for_session(session: Session, token: str | None, *, now: dt.datetime) -> Principal | None:
    """The signed-in principal, or None for a missing, unknown, expired or disabled one."""
    if not token or len(token) > 200:
        return None
    row = session.execute(
        select(PrincipalRow)
        .join(WebSessionRow, WebSessionRow.principal_id == PrincipalRow.id)
        .where(
            WebSessionRow.token_hash == token_hash(token),
            WebSessionRow.expires_at > _utc(now),
            PrincipalRow.disabled.is_(False),
        )
    ).scalar_one_or_none()
    return _principal(row) if row is not None else None


# ---------------------------------------------------------------------------------------- API tokens


def issue_token(
    session: Session,
    principal: Principal,
    *,
    now: dt.datetime,
    ttl: dt.timedelta = TOKEN_TTL,
    new_token: TokenSource = _random_token,
) -> IssuedSecret:
    now_utc = _utc(now)
    session.execute(delete(ApiTokenRow).where(ApiTokenRow.expires_at <= now_utc))
    token = API_TOKEN_PREFIX + new_token()
    expires = now_utc + ttl
    session.add(
        ApiTokenRow(
            token_hash=token_hash(token), principal_id=principal.id, created_at=now_utc, expires_at=expires
        )
    )
    session.flush()
    return IssuedSecret(token, expires)


def revoke_token(session: Session, token: str) -> None:
    session.execute(delete(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash(token)))


def principal_for_token(session: Session, token: str | None, *, now: dt.datetime) -> Principal | None:
    if not token or len(token) > 200:
        return None
    row = session.execute(
        select(PrincipalRow)
        .join(ApiTokenRow, ApiTokenRow.principal_id == PrincipalRow.id)
        .where(
            ApiTokenRow.token_hash == token_hash(token),
            ApiTokenRow.expires_at > _utc(now),
            PrincipalRow.disabled.is_(False),
        )
    ).scalar_one_or_none()
    return _principal(row) if row is not None else None


# ---------------------------------------------------------------------------------------- demo

DEMO_PASSWORD = "jlis-demo"  # documented in docs/web.md; for the local demo only
OPERATOR_USERNAME = "jlis-operator"


def ensure_demo_users(
    factory: sessionmaker[Session],
    geography: Geography,
    provision_table: ProvisionTable,
    lg_codes: Iterable[str],
    *,
    now: dt.datetime | None = None,
) -> list[tuple[str, str, str]]:
    """Create the demo's users if they are missing: one staff member per municipality
    (``staff-<lg_code>``), one operator (``jlis-operator``) and one user per agency of the provision
    table (``agency-<agency_id>``), all with :data:`DEMO_PASSWORD`. Existing users are left as they
    are. Returns (username, password, description) for each, to print."""
    at = now or dt.datetime.now(UTC)
    wanted: list[tuple[str, PrincipalKind, str, str | None, str | None]] = []
    for lg in dict.fromkeys(lg_codes):
        muni = geography.municipality(lg)
        pref = geography.prefecture(muni.pref_code).name
        wanted.append(
            (f"staff-{lg}", PrincipalKind.MUNICIPAL_STAFF, f"{pref}{muni.full_name} 窓口職員", lg, None)
        )
    wanted.append((OPERATOR_USERNAME, PrincipalKind.JLIS_OPERATOR, "J-LIS 運用者", None, None))
    for agency in provision_table.agencies():
        wanted.append((f"agency-{agency.id}", PrincipalKind.AGENCY, agency.name, None, agency.id))
    out: list[tuple[str, str, str]] = []
    with transaction(factory) as s:
        existing = set(s.execute(select(PrincipalRow.username)).scalars())
        for username, kind, description, lg_code, agency_id in wanted:
            if username not in existing:
                create_principal(
                    s,
                    username=username,
                    password=DEMO_PASSWORD,
                    kind=kind,
                    display_name=description,
                    now=at,
                    lg_code=lg_code,
                    agency_id=agency_id,
                    known_lg_code=lambda code: geography.municipality(code).hosts_register,
                    known_agency=lambda a: a in {x.id for x in provision_table.agencies()},
                )
            out.append((username, DEMO_PASSWORD, f"{kind.label}: {description}"))
    return out
