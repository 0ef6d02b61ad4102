"""機関別符号 (agency-specific codes): J-LIS's code-generation side, the hub, and acquisition.

The chain of facts §5.2, split between two owners that never share a key or a table:

- **J-LIS** (:class:`CodeGeneration`): 住民票コード → a *value for code generation*. The value is
  HMAC-SHA256 under the J-LIS key of the person's first 住民票コード (truncated to 128 bits, 32
  hex digits). Every code of a person who changed 住民票コード carries that same value, recorded
  in ``linkage_jlis_persons``, so the person's 符号 do not change; for everyone else it is
  computed. J-LIS refuses (:class:`NotFound`) a 住民票コード its national copy does not hold.
- **The hub** (:class:`Hub`, the コアシステム): value → a hub-internal *link* of the person
  (HMAC under the hub key), and (member, link) → that member's *code* (HMAC under the hub key,
  128 bits as 32 upper-case hex digits: values and links are lower-case hex, so one is never
  taken for another). The hub keeps (member, code, link) rows and
  nothing else about a person: no 住民票コード, no name, not even the generation value.
- **Acquisition** (:func:`acquire_code`, :func:`acquire_codes_bulk`): the member asks the hub for a
  処理通番, hands it with the 住民票コード to J-LIS, J-LIS hands the hub (serial, value), the hub
  issues the code for the member named by the serial and answers keyed by the serial.

Keys: both sides derive their key from the installation secret (``container.secret``) with a
domain-separation label — HMAC(secret, ``b"linkage-jlis"``) for J-LIS and HMAC(secret,
``b"linkage-hub"``) for the hub — so neither can compute the other's values. Callers pass the
installation secret; the classes derive.

Codes are deterministic per (member, person) under one hub key: issuing is idempotent by
construction and a bulk run can be repeated. The table says which codes have been *issued*: a
code the hub never issued to a member is an :class:`UnknownCode` for it, whatever its value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.clock import Clock
from jlis.codes import ResidentCode, resident_code_check_digit
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, JlisError, NotFound, RuleViolation
from jlis.linkage.hub import national
from jlis.linkage.hub.errors import UnknownCode
from jlis.linkage.hub.members import Member, get_member
from jlis.linkage.hub.sql import insert_rows, select_in
from jlis.linkage.hub.tables import HubAcquisitionRow, HubCodeRow, JlisPersonRow

if TYPE_CHECKING:
    from jlis.linkage.hub.stream import LinkageStreamNode

__all__ = [
    "HUB_LABEL",
    "JLIS_LABEL",
    "AcquisitionReport",
    "CodeGeneration",
    "Hub",
    "LinkageStreamNode",
    "UnknownCode",
    "acquire_code",
    "acquire_codes_bulk",
    "derive_key",
]

JLIS_LABEL = b"linkage-jlis"
HUB_LABEL = b"linkage-hub"
MIN_SECRET_BYTES = 16
JLIS_LOG = AuditLog("linkage.jlis")  # J-LIS's record of every value it handed the hub
JLIS_ACTOR = "jlis-codegen"

VALUE_RE = re.compile(r"^[0-9a-f]{32}$")
CODE_RE = re.compile(r"^[0-9A-F]{32}$")
LINK_RE = VALUE_RE
SERIAL_RE = re.compile(r"^[0-9]{12}$")
DEFAULT_BATCH = 20_000
RETRIES = 3  # a bulk batch that lost a race with another run of the same people

_P = cast(Table, JlisPersonRow.__table__)
_C = cast(Table, HubCodeRow.__table__)
_A = cast(Table, HubAcquisitionRow.__table__)


def derive_key(secret: bytes, label: bytes) -> bytes:
    """HMAC-SHA256(secret, label): one key per side, from the one installation secret."""
    if len(secret) < MIN_SECRET_BYTES:  # fails closed: a guessable key makes codes computable
        raise ValueError(f"the linkage secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}")
    return hmac.digest(secret, label, "sha256")


class _Mac:
    """HMAC-SHA256 with a fixed key and message prefix, written out (RFC 2104) over two pre-keyed
    SHA-256 states so that each message costs two ``copy()`` calls (see
    :class:`jlis.codes.derivation.Deriver`); the tests check it against :func:`hmac.digest`."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, prefix: bytes) -> None:
        block = hashlib.sha256().block_size
        k = key.ljust(block, b"\0")  # keys here are 32 bytes, never longer than a block
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in k) + prefix)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def format_serial(serial: int) -> str:
    """A 処理通番 as the members see it: 12 digits."""
    return f"{serial:012d}"


def parse_serial(value: str, field: str = "serial") -> int:
    if not isinstance(value, str) or not SERIAL_RE.match(value):
        raise InvalidInput(field, "a 処理通番 is 12 digits")
    return int(value)


def _looks_like_resident_code(value: object) -> bool:
    """Eleven ASCII digits. The check digit is checked only for the codes the national copy does
    not hold (it holds valid codes only): one computation per refusal instead of per person."""
    return isinstance(value, str) and len(value) == 11 and value.isascii() and value.isdigit()


def _check_digit_ok(code: str) -> bool:
    return resident_code_check_digit(code[:10]) == int(code[10])


def _insert_ignore(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows, skipping those whose primary key exists (two transactions issuing the same code
    at once both succeed and agree: the code is a function of the key)."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)
    else:
        session.execute(sqlite.insert(table).on_conflict_do_nothing(), rows)


# ------------------------------------------------------------------------------------------- J-LIS


class CodeGeneration:
    """J-LIS: the value for code generation of a 住民票コード, stable across 住民票コード変更.

    The value of a person is HMAC(J-LIS key, their *first* 住民票コード). For the many people who
    never changed code it is computed, not stored; ``linkage_jlis_persons`` holds the values of the
    codes of people who did (each of their codes → the value of the first), so that a new code
    keeps the person's value. Works in the caller's session (the caller commits). ``secret`` is the
    installation secret."""

    def __init__(self, session: Session, secret: bytes, clock: Clock) -> None:
        self.s = session
        self.clock = clock
        self._mac = _Mac(derive_key(secret, JLIS_LABEL), b"jlis-codegen-v1|")

    def derive(self, resident_code: str) -> str:
        """The value of a person whose first 住民票コード is ``resident_code``."""
        return self._mac.digest(resident_code.encode("ascii"))[:16].hex()

    def stored_value(self, resident_code: str) -> str | None:
        """The value recorded for a code of a person with several codes (None for the others)."""
        return self.s.execute(
            select(_P.c.value).where(_P.c.resident_code == str(resident_code))
        ).scalar_one_or_none()

    def value_for(self, resident_code: str) -> str:
        """The value for code generation of ``resident_code``. InvalidInput for a malformed code;
        NotFound for a code the national copy (機構保存本人確認情報) does not hold. Every code of a
        person with several codes (住民票コード変更) gets the value of their first code."""
        code = str(ResidentCode.parse(resident_code))
        stored = self.stored_value(code)
        if stored is not None:
            return stored
        known = national.known_codes(self.s, [code])
        if code not in known:
            raise NotFound("住民票コード", code)
        return self._establish(code) if known[code] else self.derive(code)

    def values_for_many(self, resident_codes: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """Values of many well-formed codes at once (a 符号一斉取得 batch): (code → value, the codes
        the national copy does not hold). Two statements per batch when nobody in it changed code."""
        codes = list(dict.fromkeys(resident_codes))
        values: dict[str, str] = dict(
            select_in(self.s, f"SELECT resident_code, value FROM {_P.name}", "resident_code", codes)
        )
        missing = [c for c in codes if c not in values]
        if not missing:
            return values, []
        known = national.known_codes(self.s, missing)
        unknown: list[str] = []
        derive = self.derive
        for code in missing:
            chained = known.get(code)
            if chained is None:
                unknown.append(code)
            elif chained:  # a person with several codes: the careful path, one person at a time
                values[code] = self._establish(code)
            else:
                values[code] = derive(code)
        return values, unknown

    def record_code_change(self, old: str, new: str) -> None:
        """A 住民票コード変更: ``new`` gets the person's value (the one ``old`` has), and both are
        recorded. Idempotent. RuleViolation if ``new`` already has another value (it would be
        another person's code)."""
        old_code = str(ResidentCode.parse(old, "old_resident_code"))
        new_code = str(ResidentCode.parse(new, "new_resident_code"))
        if old_code == new_code:
            raise InvalidInput("new_resident_code", "must differ from the old 住民票コード")
        chain = national.person_codes(self.s, old_code) | {old_code}
        if new_code not in chain and new_code in national.known_codes(self.s, [new_code]):
            # Fails closed: the national copy holds the new code as someone else's.
            raise RuleViolation(
                "new_resident_code",
                "must not already belong to another person",
                "the national copy holds the new 住民票コード as another person's",
            )
        old_value = self.stored_value(old_code)
        if old_value is None:
            # The national copy may already chain the two (the stream runs after it): the value of
            # the person's first code; otherwise ``old`` is that first code.
            old_value = self.derive(national.first_code(self.s, chain) if len(chain) > 1 else old_code)
        new_value = self.stored_value(new_code)
        if new_value is not None and new_value != old_value:
            raise RuleViolation(
                "new_resident_code",
                "must not already belong to another person",
                "the new 住民票コード already has a value of its own (it is another person's)",
            )
        self._store({old_code, new_code}, old_value)

    def _establish(self, code: str) -> str:
        """The value of a person known by several codes (national copy): the one any of them has
        recorded, or the first code's, recorded for all of them."""
        codes = sorted(national.person_codes(self.s, code) | {code})
        existing = dict(
            select_in(self.s, f"SELECT resident_code, value FROM {_P.name}", "resident_code", codes)
        )
        distinct = set(existing.values())
        if len(distinct) > 1:  # fails closed: two values for one person would split their codes
            raise RuleViolation(
                "住民票コード", "one person has one value", "the codes of this person have different values"
            )
        value = distinct.pop() if distinct else self.derive(national.first_code(self.s, set(codes)))
        self._store(set(codes) - set(existing), value)
        return value

    def _store(self, codes: set[str], value: str) -> None:
        now = self.clock.now()
        _insert_ignore(
            self.s, _P, [{"resident_code": c, "value": value, "created_at": now} for c in sorted(codes)]
        )


# --------------------------------------------------------------------------------------------- hub


@dataclass(frozen=True)
class Issued:
    """The hub's answer to an acquisition, keyed by its 処理通番."""

    serial: str
    member_id: str
    codes: tuple[str, ...]


class Hub:
    """The hub's コアシステム: per-member codes and the hub-internal person link.

    Works in the caller's session (the caller commits). ``secret`` is the installation secret."""

    def __init__(self, session: Session, secret: bytes, clock: Clock) -> None:
        self.s = session
        self.clock = clock
        key = derive_key(secret, HUB_LABEL)
        self._link = _Mac(key, b"jlis-hub-link-v1|")
        self._code = _Mac(key, b"jlis-hub-code-v1|")
        self._members: dict[str, Member] = {}

    # -- pure parts ------------------------------------------------------------------------------

    def link_of(self, generation_value: str) -> str:
        return self._link.digest(generation_value.encode("ascii"))[:16].hex()

    def code_of(self, member_id: str, link: str) -> str:
        raw = self._code.digest(f"{member_id}|{link}".encode("ascii"))[:16]
        return raw.hex().upper()

    # -- members ---------------------------------------------------------------------------------

    def member(self, member_id: str, *, field: str = "member_id") -> Member:
        """An active member (NotFound, Forbidden when inactive), cached for this hub's session."""
        m = self._members.get(member_id) if isinstance(member_id, str) else None
        if m is None:
            try:
                m = get_member(self.s, member_id)
            except NotFound:
                raise NotFound(field, str(member_id)) from None
            self._members[m.id] = m
        if not m.active:
            raise Forbidden(
                f"linkage member {m.id} is not active", field=field, rule="must be an active member"
            )
        return m

    # -- codes -----------------------------------------------------------------------------------

    def issue_code(self, member_id: str, generation_value: str) -> str:
        """The member's code for the person of ``generation_value``, issued if new (idempotent)."""
        _check_value(generation_value)
        member = self.member(member_id)
        return self._issue(member.id, self.link_of(generation_value))

    def person_link(self, member_id: str, code: str) -> str:
        """The hub-internal link of the person a member's code names. Never leaves the hub: the
        hub's own records (the exchange records it keeps) use it. UnknownCode unless the hub
        issued ``code`` to ``member_id``."""
        _check_code(code)
        link = self.s.execute(
            select(_C.c.link).where(_C.c.member_id == member_id, _C.c.code == code)
        ).scalar_one_or_none()
        if link is None:
            raise UnknownCode(str(member_id))
        return cast(str, link)

    def translate(self, from_member: str, code: str, to_member: str) -> str:
        """``to_member``'s code for the person that ``from_member``'s ``code`` names, issued on
        demand. UnknownCode unless ``code`` is one the hub issued to ``from_member`` (member A
        cannot resolve member B's codes); both members must be active."""
        self.member(from_member, field="from_member")
        target = self.member(to_member, field="to_member")
        link = self.person_link(from_member, code)
        return self._issue(target.id, link)

    def code_for_link(self, member_id: str, link: str) -> str:
        """A member's code for a person known to the hub by its link (issued on demand): for the
        hub's own use, e.g. naming a person to the portal by the portal's code. ``link`` must be
        one the hub gave out (:meth:`person_link`): a link never leaves the hub, so it is checked
        for form only (the codes table has no index on links; a bulk run would pay for one)."""
        _check_link(link)
        return self._issue(self.member(member_id).id, link)

    # -- batches (the exchange's BatchCodeHub) ---------------------------------------------------

    def person_links(self, member_id: str, codes: Sequence[str]) -> dict[str, str]:
        """code → link for those of ``codes`` the hub issued to ``member_id``; the others
        (another member's, unknown, malformed) are left out. One statement per 5,000 codes."""
        wanted = sorted({c for c in codes if isinstance(c, str) and CODE_RE.match(c)})
        rows = select_in(
            self.s, f"SELECT code, link FROM {_C.name}", "code", wanted, equal=("member_id", member_id)
        )
        return {code: link for code, link in rows}

    def codes_for_links(self, member_id: str, links: Sequence[str]) -> dict[str, str]:
        """link → ``member_id``'s code, issued on demand, for links from :meth:`person_links`.
        The member must be active (Forbidden); a malformed link is InvalidInput."""
        ordered = list(dict.fromkeys(links))
        for link in ordered:
            _check_link(link)
        member = self.member(member_id)
        return dict(zip(ordered, self._issue_many(member.id, ordered), strict=True))

    def _issue(self, member_id: str, link: str) -> str:
        code = self.code_of(member_id, link)
        exists = self.s.execute(
            select(_C.c.link).where(_C.c.member_id == member_id, _C.c.code == code)
        ).first()
        if exists is None:
            _insert_ignore(
                self.s,
                _C,
                [{"member_id": member_id, "code": code, "link": link, "issued_at": self.clock.now()}],
            )
        return code

    # -- acquisitions (処理通番) ------------------------------------------------------------------

    def open_acquisition(self, member_id: str, count: int = 1) -> str:
        """Step 1 of facts §5.2: a member asks for codes and gets a 処理通番."""
        if not isinstance(count, int) or count < 1:
            raise InvalidInput("count", "at least one person per acquisition")
        member = self.member(member_id)
        result = self.s.execute(
            _A.insert()
            .values(
                member_id=member.id,
                status="pending",
                requested=count,
                issued=0,
                requested_at=self.clock.now(),
            )
            .returning(_A.c.serial)
        )
        return format_serial(int(result.scalar_one()))

    def complete_acquisition(self, serial: str, generation_values: Sequence[str]) -> Issued:
        """Step 4: J-LIS hands the hub the values for a 処理通番; the hub issues the codes of the
        member the serial belongs to, in the order of the values, and closes the serial."""
        number = parse_serial(serial)
        row = self.s.execute(
            select(_A.c.member_id, _A.c.status, _A.c.requested).where(_A.c.serial == number)
        ).first()
        if row is None:
            raise NotFound("serial", serial)
        if row.status != "pending":
            raise RuleViolation("serial", "must be pending", f"処理通番 {serial} is already {row.status}")
        if not 1 <= len(generation_values) <= row.requested:
            raise InvalidInput("generation_values", f"between 1 and {row.requested} values for this 処理通番")
        for v in generation_values:
            _check_value(v)
        member = self.member(row.member_id)
        codes = self._issue_many(member.id, [self.link_of(v) for v in generation_values])
        self.s.execute(
            update(_A)
            .where(_A.c.serial == number)
            .values(status="completed", issued=len(codes), completed_at=self.clock.now())
        )
        return Issued(serial=serial, member_id=member.id, codes=tuple(codes))

    def refuse_acquisition(self, serial: str) -> None:
        """Close a pending 処理通番 that J-LIS refused (no code issued)."""
        number = parse_serial(serial)
        done = self.s.execute(
            update(_A)
            .where(_A.c.serial == number, _A.c.status == "pending")
            .values(status="refused", completed_at=self.clock.now())
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise RuleViolation("serial", "must be pending", f"処理通番 {serial} is not pending")

    def _issue_many(self, member_id: str, links: Sequence[str]) -> list[str]:
        """The member's codes for ``links``, in order; those not yet issued are inserted (in key
        order), the others left as they are (no look-up first: the insert skips them)."""
        codes = [self.code_of(member_id, link) for link in links]
        now = self.clock.now()
        rows = sorted({(member_id, code, link, now) for code, link in zip(codes, links, strict=True)})
        insert_rows(self.s, _C, ("member_id", "code", "link", "issued_at"), rows)
        return codes


def _check_value(value: object) -> None:
    if not isinstance(value, str) or not VALUE_RE.match(value):
        raise InvalidInput("generation_value", "32 lower-case hex digits (a value from J-LIS)")


def _check_link(link: object) -> None:
    if not isinstance(link, str) or not LINK_RE.match(link):
        raise InvalidInput("link", "32 lower-case hex digits (a link of the hub)")


def _check_code(code: object) -> None:
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise InvalidInput("code", "a 機関別符号 is 32 upper-case hex digits")


# ------------------------------------------------------------------------------------- acquisition


def acquire_code(session: Session, clock: Clock, secret: bytes, member: Member, resident_code: str) -> str:
    """The whole chain for one person, in the caller's transaction (facts §5.2 steps 1–4; step 5,
    storing the code with the 団体内統合宛名番号, is the middle server's):

    1. the member's middle server asks the hub for a 処理通番;
    2. it sends the 処理通番 with the 住民票コード to J-LIS (over the CS);
    3. J-LIS turns the 住民票コード into the value for code generation, records the hand-over in
       its ``linkage.jlis`` audit chain, and hands the hub (処理通番, value);
    4. the hub issues the member's code and answers keyed by the 処理通番.

    The 住民票コード never reaches the hub, and the value never reaches the member. InvalidInput for
    a malformed code, NotFound for one J-LIS does not know, Forbidden for an inactive member; a
    refusal changes nothing (the caller's transaction rolls back)."""
    return acquire(session, clock, secret, member, resident_code).codes[0]


def acquire(session: Session, clock: Clock, secret: bytes, member: Member, resident_code: str) -> Issued:
    """:func:`acquire_code` with the hub's whole answer (the 処理通番 with the code)."""
    member.require_active()
    code = str(ResidentCode.parse(resident_code))
    hub = Hub(session, secret, clock)
    serial = hub.open_acquisition(member.id, 1)
    try:
        value = CodeGeneration(session, secret, clock).value_for(code)
    except JlisError:
        # J-LIS refused: the hub closes the serial as refused. A caller that rolls back (the usual
        # case) leaves nothing; one that goes on and commits leaves a truthful record.
        hub.refuse_acquisition(serial)
        raise
    JLIS_LOG.append(
        session,
        at=clock.now(),
        actor=JLIS_ACTOR,
        action="value",
        subject=member.id,
        details={"serial": serial, "resident_code": code},
    )
    return hub.complete_acquisition(serial, [value])


BULK_CACHE_KIB = 131_072  # SQLite page cache of a connection that ran a 符号一斉取得 batch


def _bulk_cache(session: Session) -> None:
    """A larger page cache for the connection of a bulk batch on SQLite (the default 2 MB holds a
    sliver of the indexes of a million people, so every batch re-read them from the OS). Memory
    only: the setting stays with the pooled connection, and pages are taken as they are read."""
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")


@dataclass
class AcquisitionReport:
    """What a 符号一斉取得 did: how many codes were issued, which 住民票コード were refused and why,
    and the 処理通番 of each batch."""

    member_id: str
    requested: int = 0
    issued: int = 0
    invalid: list[str] = field(default_factory=list)  # malformed (length, digits, check digit)
    unknown: list[str] = field(default_factory=list)  # well-formed, not in the national copy
    serials: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.issued / self.seconds if self.seconds > 0 else 0.0


CodeSink = Callable[[Session, Sequence[tuple[str, str]]], None]


def acquire_codes_bulk(
    factory: sessionmaker[Session],
    clock: Clock,
    secret: bytes,
    member: Member,
    resident_codes: Iterable[str],
    *,
    progress: Callable[[int], None] | None = None,
    batch: int = DEFAULT_BATCH,
    sink: CodeSink | None = None,
) -> AcquisitionReport:
    """符号一斉取得: codes for many people, one transaction and one 処理通番 per ``batch``.

    Per batch: the well-formed, distinct 住民票コード go to J-LIS (values in three statements),
    the hub issues the codes under the batch's 処理通番, J-LIS's audit chain gets one entry for the
    batch, and ``sink(session, [(住民票コード, code), ...])`` — the member's side, e.g. the middle
    server storing 符号 ↔ 団体内統合宛名番号 — runs in the same transaction, so a crash leaves no
    batch half done. Malformed and unknown codes are reported, not fatal. ``progress(n)`` is
    called after each committed batch with the number of 住民票コード it consumed. Repeatable: a
    second run issues nothing new and answers the same codes."""
    if not isinstance(batch, int) or not 1 <= batch <= 100_000:
        raise InvalidInput("batch", "between 1 and 100000")
    member.require_active()
    report = AcquisitionReport(member_id=member.id)
    started = time.perf_counter()
    pending: list[str] = []
    seen = 0  # 住民票コード consumed since the last batch, malformed ones included

    def batch_once(codes: list[str]) -> tuple[list[str], str | None]:
        """One batch in one transaction: (its unknown codes, its 処理通番 or None)."""
        with transaction(factory) as s:
            _bulk_cache(s)
            values, unknown = CodeGeneration(s, secret, clock).values_for_many(codes)
            known = [c for c in codes if c in values]
            if not known:
                return unknown, None
            hub = Hub(s, secret, clock)
            serial = hub.open_acquisition(member.id, len(known))
            JLIS_LOG.append(
                s,
                at=clock.now(),
                actor=JLIS_ACTOR,
                action="values_bulk",
                subject=member.id,
                details={"serial": serial, "count": len(known), "unknown": len(unknown)},
            )
            issued = hub.complete_acquisition(serial, [values[c] for c in known])
            if sink is not None:
                sink(s, list(zip(known, issued.codes, strict=True)))
            return unknown, serial

    def flush() -> None:
        nonlocal seen
        codes = list(dict.fromkeys(pending))
        consumed, seen = seen, 0
        pending.clear()
        for attempt in range(RETRIES):
            try:
                unknown, serial = batch_once(codes)
                break
            except IntegrityError:
                # Another run stored a value or issued a code of this batch first: the batch rolled
                # back whole; again, it now finds them stored.
                if attempt == RETRIES - 1:
                    raise
        # The report moves only after the commit: a retried batch is counted once.
        for code in unknown:
            (report.unknown if _check_digit_ok(code) else report.invalid).append(code)
        if serial is not None:
            report.serials.append(serial)
            report.issued += len(codes) - len(unknown)
        if progress is not None:
            progress(consumed)

    for raw in resident_codes:
        report.requested += 1
        seen += 1
        if not _looks_like_resident_code(raw):
            report.invalid.append(str(raw)[:32])
            continue
        pending.append(raw)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    elif seen and progress is not None:
        progress(seen)
    report.seconds = time.perf_counter() - started
    return report


def __getattr__(name: str) -> Any:
    # The stream subscriber lives in stream.py (it imports this module); reachable from here too,
    # as the public API lists it beside the code classes.
    if name == "LinkageStreamNode":
        from jlis.linkage.hub.stream import LinkageStreamNode

        return LinkageStreamNode
    raise AttributeError(name)
