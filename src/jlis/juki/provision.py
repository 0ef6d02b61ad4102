"""本人確認情報の提供 (住基法 §30の9): J-LIS answers a listed agency, for a listed affair, with only the
items the legal table allows; every answer and every refusal goes to the provision log.

The path of a request is: check the input (a malformed number is refused with the field named and
nothing logged: no request was made) → check the (agency, affair) pair against the table (deny by
default) → read the 機構保存本人確認情報 → append to the ``juki.provision`` audit chain, in the same
transaction as the read.

A refusal must be on record even though the request fails. :meth:`ProvisionService.query` therefore
does not raise for it: it logs the refusal in the caller's transaction and returns a REFUSED result,
which the caller commits and then turns into :class:`jlis.errors.Forbidden` with
:meth:`ProvisionResult.raise_if_refused`. :func:`provide` is that adapter: its own transaction,
commit, then raise. A refused result carries no personal data (nothing was read).
"""

from __future__ import annotations

import datetime as dt
import enum
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.clock import Clock
from jlis.codes import MyNumber, ResidentCode
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput
from jlis.juki.models import is_kana, kana_key, name_key
from jlis.juki.tables import national_identities
from jlis.masters import IdentityItem, ProvisionRule, ProvisionTable
from jlis.registry.models import ChangeReason, Sex

PROVISION_LOG = AuditLog("juki.provision")
ACCESS_LOG = AuditLog("access")
MAX_CANDIDATES = 10  # a 基本4情報 search answers at most this many people
SOURCE = "national"  # 機構保存本人確認情報
FUNCTION = "本人確認情報照会"  # 機能区分 of the log (facts §4.6)
REFUSAL_RULE = "not in 住基法 別表第一 for this agency"

_T = national_identities
_COLUMNS = (
    _T.c.resident_code,
    _T.c.my_number,
    _T.c.family_name,
    _T.c.given_name,
    _T.c.family_kana,
    _T.c.given_kana,
    _T.c.birth_date,
    _T.c.sex,
    _T.c.address,
    _T.c.reason,
    _T.c.change_date,
)
_CURRENT = _T.c.superseded_by.is_(None)
# Built once: the look-up by 住民票コード is the hot path (one indexed primary-key read).
_BY_CODE = select(*_COLUMNS).where(_T.c.resident_code == bindparam("code"), _CURRENT)
_BY_NUMBER = (
    select(*_COLUMNS).where(_T.c.my_number == bindparam("number"), _CURRENT).limit(MAX_CANDIDATES + 1)
)


class Outcome(enum.StrEnum):
    PROVIDED = "provided"  # 提供
    NO_MATCH = "no_match"  # 該当なし
    REFUSED = "refused"  # 拒否 (the pair is not in the table)

    @property
    def label(self) -> str:
        return {"provided": "提供", "no_match": "該当なし", "refused": "拒否"}[self.value]


class QueryKey(enum.StrEnum):
    RESIDENT_CODE = "resident_code"
    MY_NUMBER = "my_number"
    BASIC4 = "basic4"


@dataclass(frozen=True)
class Basic4Query:
    """A search by 基本4情報. ``name`` in kanji or kana (blanks ignored; hiragana is read as kana);
    ``address`` optional, matched as a prefix of the current address."""

    name: str
    birth_date: dt.date
    sex: str
    address: str | None = None


@dataclass(frozen=True)
class ProvisionResult:
    outcome: Outcome
    agency_id: str
    affair_id: str
    key: QueryKey
    items: frozenset[IdentityItem]  # what the table allows this pair (empty when refused)
    records: tuple[Mapping[IdentityItem, Any], ...] = ()  # one per person, allowed items only
    truncated: bool = False  # a 基本4情報 search matched more than MAX_CANDIDATES people
    log_seqs: tuple[int, ...] = ()  # the provision-log entries written for this answer

    def raise_if_refused(self) -> None:
        if self.outcome is Outcome.REFUSED:
            raise Forbidden(
                f"提供不可: ({self.agency_id}, {self.affair_id}) is {REFUSAL_RULE}",
                field="affair",
                rule=REFUSAL_RULE,
            )


@dataclass(frozen=True)
class ProvisionLogEntry:
    """One line of a disclosure (facts §4.6): when, to whom, for which affair, which items."""

    seq: int
    at: dt.datetime
    resident_code: str | None
    recipient: str
    recipient_name: str | None
    affair: str
    affair_name: str | None
    items: tuple[str, ...]
    outcome: Outcome
    key: str
    function: str
    source: str


class ProvisionService:
    """The information-provision server of J-LIS, inside the caller's session (the caller commits)."""

    def __init__(self, session: Session, clock: Clock, table: ProvisionTable) -> None:
        self.s = session
        self.clock = clock
        self.table = table

    def query(
        self,
        agency_id: str,
        affair_id: str,
        *,
        resident_code: str | None = None,
        my_number: str | None = None,
        basic4: Basic4Query | None = None,
    ) -> ProvisionResult:
        _check_id("agency", agency_id)
        _check_id("affair", affair_id)
        given = [
            k
            for k, v in (("住民票コード", resident_code), ("個人番号", my_number), ("基本4情報", basic4))
            if v
        ]
        if len(given) != 1:
            raise InvalidInput("query", "exactly one of 住民票コード, 個人番号, 基本4情報")
        code = ResidentCode.parse(resident_code) if resident_code is not None else None
        number = MyNumber.parse(my_number) if my_number is not None else None
        search = _checked_basic4(basic4) if basic4 is not None else None
        key = QueryKey.RESIDENT_CODE if code else QueryKey.MY_NUMBER if number else QueryKey.BASIC4

        rule = self.table.rule(agency_id, affair_id)
        if rule is None:  # deny by default: anything not listed is refused, and the refusal logged
            seq = self._log(agency_id, affair_id, None, key, Outcome.REFUSED, [code])
            return ProvisionResult(Outcome.REFUSED, agency_id, affair_id, key, frozenset(), log_seqs=seq)

        if code is not None:
            rows = list(self.s.execute(_BY_CODE, {"code": code}))
        elif number is not None:
            rows = list(self.s.execute(_BY_NUMBER, {"number": number}))
        else:
            assert search is not None
            rows = list(self.s.execute(search))
        truncated = len(rows) > MAX_CANDIDATES
        rows = rows[:MAX_CANDIDATES]
        if not rows:
            seq = self._log(agency_id, affair_id, rule, key, Outcome.NO_MATCH, [code])
            return ProvisionResult(Outcome.NO_MATCH, agency_id, affair_id, key, rule.items, log_seqs=seq)
        records = tuple(_items(row, rule.items) for row in rows)
        seq = self._log(agency_id, affair_id, rule, key, Outcome.PROVIDED, [r.resident_code for r in rows])
        return ProvisionResult(
            Outcome.PROVIDED, agency_id, affair_id, key, rule.items, records, truncated, seq
        )

    def _log(
        self,
        agency_id: str,
        affair_id: str,
        rule: ProvisionRule | None,
        key: QueryKey,
        outcome: Outcome,
        subjects: list[str | None],
    ) -> tuple[int, ...]:
        try:
            recipient_name: str | None = self.table.agency(agency_id).name
        except InvalidInput:  # an unknown agency: refused, and logged under the id it gave
            recipient_name = None
        provided = sorted(i.value for i in rule.items) if rule and outcome is Outcome.PROVIDED else []
        details = {
            "recipient": agency_id,
            "recipient_name": recipient_name,
            "affair": affair_id,
            "affair_name": rule.affair_name if rule else None,
            "basis": rule.basis if rule else None,
            "items": provided,
            "outcome": outcome.value,
            "key": key.value,
            "function": FUNCTION,
            "source": SOURCE,
        }
        if outcome is Outcome.REFUSED:
            details["rule"] = REFUSAL_RULE
        now = self.clock.now()
        action = {"provided": "provide", "no_match": "no_match", "refused": "refuse"}[outcome.value]
        entries = [
            {"at": now, "actor": agency_id, "action": action, "subject": subject, "details": details}
            for subject in subjects
        ]
        return tuple(e.seq for e in PROVISION_LOG.append_many(self.s, entries))

    def disclose(self, resident_code: str, *, requested_by: str = "J-LIS") -> list[ProvisionLogEntry]:
        """Every provision-log entry about a person (their disclosure request, facts §4.6), under
        each 住民票コード they have had. The disclosure itself is written to the access log."""
        entries = disclose(self.s, resident_code)
        ACCESS_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=requested_by,
            action="disclose",
            subject=str(ResidentCode.parse(resident_code)),
            details={"system": "juki", "purpose": "提供記録の開示", "entries": len(entries)},
        )
        return entries


def provide(
    factory: sessionmaker[Session],
    clock: Clock,
    table: ProvisionTable,
    agency_id: str,
    affair_id: str,
    *,
    resident_code: str | None = None,
    my_number: str | None = None,
    basic4: Basic4Query | None = None,
) -> ProvisionResult:
    """The adapter for an API: one transaction per request, committed whatever the outcome, then
    :class:`Forbidden` for a refusal, so the refusal is on record although the request fails."""
    with transaction(factory) as s:
        result = ProvisionService(s, clock, table).query(
            agency_id, affair_id, resident_code=resident_code, my_number=my_number, basic4=basic4
        )
    result.raise_if_refused()
    return result


def linked_codes(session: Session, resident_code: str) -> set[str]:
    """Every 住民票コード of the person: the code, the codes it replaced and the ones that replaced it."""
    codes = {resident_code}
    frontier = [resident_code]
    while frontier:
        rows = session.execute(
            select(_T.c.resident_code, _T.c.superseded_by, _T.c.previous_resident_code).where(
                or_(_T.c.resident_code.in_(frontier), _T.c.superseded_by.in_(frontier))
            )
        )
        found = {c for r in rows for c in r if c}
        frontier = sorted(found - codes)
        codes |= found
    return codes


def current_national_record(session: Session, resident_code: str, *, max_hops: int = 8) -> Any:
    """The national copy's current record of a person (本人確認情報, as the provision server holds
    it), following 住民票コード changes from an old code to the current one; None when unknown.
    For J-LIS's own services (JPKI's latest 基本4情報): no provision-table check, the caller's
    legal basis is its own and it audits the read."""
    code = resident_code
    for _ in range(max_hops):
        row = session.execute(
            select(
                _T.c.resident_code,
                _T.c.lg_code,
                _T.c.family_name,
                _T.c.given_name,
                _T.c.family_kana,
                _T.c.given_kana,
                _T.c.birth_date,
                _T.c.sex,
                _T.c.address,
                _T.c.change_date,
                _T.c.status,
                _T.c.reason,
                _T.c.superseded_by,
            ).where(_T.c.resident_code == code)
        ).first()
        if row is None or row.superseded_by is None:
            return row
        code = row.superseded_by
    return None


def disclose(session: Session, resident_code: str) -> list[ProvisionLogEntry]:
    """The provision log of a person, oldest first, across their code changes. No access record:
    :meth:`ProvisionService.disclose` is the audited entry point."""
    code = ResidentCode.parse(resident_code)
    entries = [e for c in linked_codes(session, code) for e in PROVISION_LOG.entries(session, subject=c)]
    entries.sort(key=lambda e: e.seq)
    return [
        ProvisionLogEntry(
            seq=e.seq,
            at=e.at,
            resident_code=e.subject,
            recipient=e.actor,
            recipient_name=e.details.get("recipient_name"),
            affair=str(e.details.get("affair", "")),
            affair_name=e.details.get("affair_name"),
            items=tuple(e.details.get("items", ())),
            outcome=Outcome(e.details.get("outcome", Outcome.PROVIDED.value)),
            key=str(e.details.get("key", "")),
            function=str(e.details.get("function", FUNCTION)),
            source=str(e.details.get("source", SOURCE)),
        )
        for e in entries
    ]


# --------------------------------------------------------------------------------------- helpers


def _check_id(field: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise InvalidInput(field, "must be a non-empty id of at most 64 characters")


def _checked_basic4(q: Basic4Query) -> Any:
    """The select of a 基本4情報 search, after checking every part of the query."""
    if not isinstance(q.name, str) or not name_key(q.name):
        raise InvalidInput("氏名", "must not be empty")
    if not isinstance(q.birth_date, dt.date) or isinstance(q.birth_date, dt.datetime):
        raise InvalidInput("生年月日", "must be a date")
    try:
        sex = Sex(q.sex)
    except ValueError:
        raise InvalidInput("性別", "must be male or female") from None
    if is_kana(q.name):
        stmt = select(*_COLUMNS).where(_T.c.kana_key == kana_key(q.name))
    else:
        stmt = select(*_COLUMNS).where(_T.c.name_key == name_key(q.name))
    stmt = stmt.where(_T.c.birth_date == q.birth_date, _T.c.sex == sex.value, _CURRENT)
    if q.address is not None:
        prefix = unicodedata.normalize("NFKC", q.address).strip()
        if prefix:
            stmt = stmt.where(_T.c.address.startswith(prefix, autoescape=True))
    return stmt.order_by(_T.c.resident_code).limit(MAX_CANDIDATES + 1)


def _items(row: Any, allowed: frozenset[IdentityItem]) -> dict[IdentityItem, Any]:
    """Only the allowed items; the others are never put into the answer at all."""
    out: dict[IdentityItem, Any] = {}
    for item in IdentityItem:
        if item not in allowed:
            continue
        if item is IdentityItem.NAME:
            out[item] = f"{row.family_name}\u3000{row.given_name}" if row.given_name else row.family_name
        elif item is IdentityItem.NAME_KANA:
            out[item] = f"{row.family_kana}\u3000{row.given_kana}" if row.given_kana else row.family_kana
        elif item is IdentityItem.BIRTH_DATE:
            out[item] = row.birth_date.isoformat()
        elif item is IdentityItem.SEX:
            out[item] = row.sex
        elif item is IdentityItem.ADDRESS:
            out[item] = row.address
        elif item is IdentityItem.RESIDENT_CODE:
            out[item] = row.resident_code
        elif item is IdentityItem.MY_NUMBER:
            out[item] = row.my_number
        elif item is IdentityItem.CHANGE_INFO:
            reason = ChangeReason(row.reason)
            out[item] = {"reason": reason.value, "label": reason.label, "date": row.change_date.isoformat()}
    return out
