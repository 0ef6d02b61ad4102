"""Use cases of one municipality's resident register (既存住基).

A :class:`RegistryService` is bound to one 団体 (``lg_code``) and works inside the caller's
session: the caller decides the unit of work (one counter action, or a batch), and every change
writes the record, its history and its outgoing messages in that same transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from jlis import jsontext
from jlis.audit import AuditLog
from jlis.bulk import Bound
from jlis.clock import Clock
from jlis.codes import LgCode, MyNumber, NumberAuthority, ResidentCode
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.masters import Geography, Municipality
from jlis.messaging import Message, publish_many
from jlis.messaging.outbox import new_message_id
from jlis.planned import PlanRefused
from jlis.registry import store
from jlis.registry.events import (
    TOPIC_FUHYO,
    TOPIC_IDENTITY,
    TOPIC_MOVE_IN_NOTICE,
    TOPIC_MOVE_OUT_CERT,
    FuhyoNotice,
    IdentityRecord,
    encoded,
)
from jlis.registry.models import (
    ABROAD,
    MAX_ADDRESS_LENGTH,
    NOTIFIED_REASONS,
    Address,
    ChangeReason,
    HistoryEntry,
    PersonName,
    ResidentView,
    Sex,
    Status,
    check_banchi,
    check_kana,
    check_name,
    check_past_date,
    check_text,
    normalise_text,
    parse_date,
)
from jlis.registry.store import (
    CERTIFICATES,
    HISTORY,
    HOUSEHOLD_COLUMNS,
    HOUSEHOLDS,
    RESIDENT_COLUMNS,
    RESIDENTS,
    Household,
    Resident,
    RowSet,
)

EARLIEST_BIRTH = dt.date(1880, 1, 1)
MOVE_OUT_ADVANCE_DAYS = 30  # a 転出届 may name a planned date up to this far ahead
ACCESS_LOG = AuditLog("access")

_R = RESIDENTS.c
_NR = len(RESIDENT_COLUMNS)


def cs_node(lg_code: str) -> str:
    return f"cs:{lg_code}"


def registry_node(lg_code: str) -> str:
    return f"registry:{lg_code}"


@dataclass(frozen=True)
class NewPerson:
    """The person-level items of a new 住民票 (出生, paper 転入)."""

    name: PersonName
    birth_date: dt.date
    sex: Sex
    nationality: str = "JP"
    former_surname: str | None = None
    former_surname_kana: str | None = None
    alias: str | None = None
    honseki: str | None = None
    honseki_lg_code: str | None = None


@dataclass(frozen=True)
class Placement:
    """Where a person goes: an address, and a household (a new one, or an existing one to join)."""

    town_id: str
    banchi: str
    household_id: int | None = None  # None: a new household with this person as 世帯主
    relationship: str = "世帯主"


@dataclass(frozen=True)
class MoveOutCertificate:
    """A paper 転出証明書 (or the 転出証明書情報 received over the network)."""

    certificate_no: str
    from_lg_code: str
    resident_code: str
    my_number: str
    name: PersonName
    birth_date: dt.date
    sex: Sex
    previous_address: str
    planned_date: dt.date
    nationality: str = "JP"
    former_surname: str | None = None
    former_surname_kana: str | None = None
    alias: str | None = None
    honseki: str | None = None
    honseki_lg_code: str | None = None


P = ParamSpec("P")
T = TypeVar("T")


def _action(
    method: Callable[Concatenate[RegistryService, P], T], *, plannable: bool = False
) -> Callable[Concatenate[RegistryService, P], T]:
    """One counter action (a change or an audited read): the rows it changed, its history rows and
    its messages are written when it returns, in the caller's transaction; if it raises, nothing
    of it is written (a caller that goes on after a refusal keeps no trace of it). An action that
    calls another (特例転入 → 転入) writes once, at the end of the outer one.

    In a group planned on a snapshot (store.GroupPlan) only a ``plannable`` action runs: one that
    reads only residents and households it reaches by id (and their households' members), so
    that the plan's checks cover its reads, and inserts no resident (its id comes from the
    database). Any other is refused, and the group commit runs it the ordinary way."""

    @functools.wraps(method)
    def run(self: RegistryService, /, *args: P.args, **kwargs: P.kwargs) -> T:
        self._depth += 1
        try:
            if self._depth == 1:
                self._enter(method.__name__, plannable)
            result = method(self, *args, **kwargs)
            if self._depth == 1:
                self._write()
            return result
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._forget()

    return run


def _plannable_action(
    method: Callable[Concatenate[RegistryService, P], T],
) -> Callable[Concatenate[RegistryService, P], T]:
    """An :func:`_action` a planned group may run."""
    return _action(method, plannable=True)


@functools.lru_cache(maxsize=4096)
def _register_code(lg_code: str) -> str:
    """A register's 地方公共団体コード, normalised and checked once per distinct value: every
    counter action names its municipality, and parsing it was ~2 % of an action."""
    return str(LgCode.parse(lg_code, "地方公共団体コード"))


class RegistryService:
    def __init__(
        self,
        session: Session,
        *,
        lg_code: str,
        clock: Clock,
        geography: Geography,
        numbers: NumberAuthority,
        rng: random.Random,
        staff: str,
    ) -> None:
        self.s = session
        self.lg_code = _register_code(lg_code)
        self.municipality = geography.municipality(self.lg_code)
        if not self.municipality.hosts_register:
            raise InvalidInput("地方公共団体コード", "must be a municipality that keeps a register")
        self.clock = clock
        self.geo = geography
        self.numbers = numbers
        self.rng = rng
        self.staff = staff
        # What the current action read and will write (see _action).
        self._depth = 0
        self._bound: Bound | None = None  # the action's Bound (see _db)
        self._residents: RowSet[Resident] = RowSet(RESIDENTS, Resident, RESIDENT_COLUMNS)
        self._households: RowSet[Household] = RowSet(HOUSEHOLDS, Household, HOUSEHOLD_COLUMNS)
        self._history: list[dict[str, object]] = []
        self._messages: list[Message] = []
        self._now: dt.datetime | None = None
        self._inserted = False  # the action inserted a resident or a household
        # Whether another active member lives in the household of a record the action loaded,
        # as read with the record (store.LOAD_WITH_HOUSEHOLD), before the action changed anything.
        self._others_active: dict[int, bool] = {}

    def _enter(self, name: str, plannable: bool) -> None:
        """A top-level action begins: in a planned group, check that it may run there, and give
        its row sets the plan's checks."""
        plan: store.GroupPlan | None = self.s.info.get(store.PLAN_KEY)
        if plan is None:
            return
        if not plannable:
            raise PlanRefused(f"{name} does not run in a planned group")
        plan.enter(self._db, self.lg_code)
        self._residents.plan = self._households.plan = plan

    def _send(self, destination: str, topic: str, key: str, payload: dict[str, object]) -> None:
        self._now = self.clock.now()
        self._messages.append(
            Message(new_message_id(), registry_node(self.lg_code), destination, topic, key, payload)
        )

    def flush(self) -> None:
        """Kept for callers of the buffered version: every action now writes when it returns."""

    def _write(self) -> None:
        households = self._households.write(self._db)
        residents = self._residents.write(self._db)
        store.touched(self.s, residents, households)
        if residents or households or self._inserted:
            store.register_written(self.s, self._db, self.lg_code)
        if self._history:
            held = self.s.info.get(store.HISTORY_HELD)
            if held is not None:  # a group commit writes them at its end (store.hold_changes)
                held.extend(self._history)
            else:
                for row in self._history:  # one or a few: single statements (see publish_many)
                    store.INSERT_HISTORY.run(self._db, row)
            self._history = []
        if self._messages:
            assert self._now is not None
            publish_many(self.s, self._messages, now=self._now, bound=self._db)
            self._messages = []

    @property
    def _db(self) -> Bound:
        """The transaction's connection for prepared statements (one per transaction, shared by
        the actions of a group), looked up once per action: an action runs in one transaction."""
        bound = self._bound
        if bound is None:
            bound = Bound.current(self.s)
            if self._depth:
                self._bound = bound
        return bound

    def _forget(self) -> None:
        self._bound = None
        self._others_active.clear()
        self._residents.forget()
        self._households.forget()
        self._history, self._messages = [], []
        self._inserted = False

    # ------------------------------------------------------------------ reads (audited)

    @_plannable_action
    def get(self, resident_id: int, *, purpose: str = "閲覧") -> ResidentView:
        row = self._row(resident_id)
        self._audit_read(row, purpose)
        return self._view(row)

    @_action
    def find_by_code(self, resident_code: str) -> ResidentView:
        code = ResidentCode.parse(resident_code)
        row = self._latest_with_code(code)
        if row is None:
            raise NotFound("住民票", code)
        self._audit_read(row, "照会")
        return self._view(row)

    @_action
    def search(self, query: str, *, include_removed: bool = False, limit: int = 50) -> list[ResidentView]:
        """By 住民票コード, 個人番号, or a prefix of the name or its furigana."""
        q = normalise_text(query)
        if not q:
            raise InvalidInput("検索語", "must not be empty")
        stmt = select(RESIDENTS).where(_R.lg_code == self.lg_code)
        compact = q.replace(" ", "").replace("\u3000", "")
        if compact.isdigit() and len(compact) in (11, 12):
            col = _R.resident_code if len(compact) == 11 else _R.my_number
            stmt = stmt.where(col == compact)
        else:
            family, _, given = q.replace("\u3000", " ").partition(" ")
            conds = [_R.family_name.startswith(family), _R.family_kana.startswith(family)]
            stmt = stmt.where(or_(*conds))
            if given:
                stmt = stmt.where(or_(_R.given_name.startswith(given), _R.given_kana.startswith(given)))
        if not include_removed:
            stmt = stmt.where(_R.status != Status.REMOVED)
        rows = [
            self._residents.adopt(r)
            for r in self.s.execute(stmt.order_by(_R.family_kana, _R.id).limit(limit))
        ]
        views = []
        for row in rows:
            self._audit_read(row, "検索")
            views.append(self._view(row))
        return views

    @_action
    def household_members(self, household_id: int) -> list[ResidentView]:
        hh = self._household(household_id)
        rows = [
            self._residents.adopt(r)
            for r in self.s.execute(
                select(RESIDENTS).where(_R.household_id == hh.id, _R.status != Status.REMOVED).order_by(_R.id)
            )
        ]
        views = []
        for row in rows:
            self._audit_read(row, "世帯照会")
            views.append(self._view(row))
        return views

    @_action
    def history(self, resident_id: int) -> list[HistoryEntry]:
        row = self._row(resident_id)
        self._audit_read(row, "履歴閲覧")
        h = HISTORY.c
        rows = self.s.execute(
            select(
                h.version,
                h.reason,
                h.change_date,
                h.notified_on,
                h.recorded_at,
                h.staff,
                h.summary,
                h.snapshot,
            )
            .where(h.resident_id == row.id)
            .order_by(h.version)
        )
        return [
            HistoryEntry(
                version,
                ChangeReason(reason),
                change_date,
                notified_on,
                recorded_at,
                staff,
                summary,
                json.loads(snap),
            )
            for version, reason, change_date, notified_on, recorded_at, staff, summary, snap in rows
        ]

    def received_certificates(self) -> list[MoveOutCertificate]:
        """転出証明書情報 received over the network and not yet used for a 特例転入."""
        c = CERTIFICATES.c
        rows = self.s.execute(
            select(c.payload).where(c.lg_code == self.lg_code, c.direction == "in", c.status == "received")
        ).scalars()
        return [_certificate_from_json(payload) for payload in rows]

    # ------------------------------------------------------------------ changes

    @_action
    def record_birth(
        self,
        person: NewPerson,
        *,
        household_id: int,
        relationship: str = "子",
        notified_on: dt.date | None = None,
    ) -> ResidentView:
        today = self.clock.today()
        check_past_date("生年月日", person.birth_date, today, earliest=today - dt.timedelta(days=366))
        notified = self._notified(notified_on, not_before=person.birth_date)
        hh = self._household(household_id)
        code = self.numbers.new_resident_code(self.rng, self.lg_code)
        row = self._new_row(
            person,
            resident_code=code,
            my_number=self.numbers.my_number_for(code),
            address_of=self._head_or_member(hh),
            household=hh,
            relationship=check_name("続柄", relationship),
            since=person.birth_date,
            notified_on=notified,
            previous_address=None,
        )
        return self._commit_change(row, ChangeReason.BIRTH, person.birth_date, notified, "出生により記載")

    @_action
    def record_move_in(
        self,
        certificate: MoveOutCertificate,
        placement: Placement,
        *,
        moved_on: dt.date,
        notified_on: dt.date | None = None,
        special: bool = False,
    ) -> ResidentView:
        """転入届. With a paper 転出証明書 (``special=False``) or, for card holders, the
        转出証明書情報 received over the network (``special=True``; see :meth:`record_special_move_in`)."""
        today = self.clock.today()
        check_past_date("転入日", moved_on, today, earliest=certificate.birth_date)
        notified = self._notified(notified_on, not_before=moved_on)
        from_lg = self._municipality(certificate.from_lg_code, "転出元 地方公共団体コード").lg_code
        if from_lg == self.lg_code:
            raise RuleViolation(
                "転出元 地方公共団体コード", "a move within one municipality is a 転居, not a 転入"
            )
        code = ResidentCode.parse(certificate.resident_code)
        MyNumber.parse(certificate.my_number)
        already = store.LIVING_WITH_CODE.first(
            self._db, {"lg": self.lg_code, "code": code, "removed": Status.REMOVED.value}
        )
        if already:
            raise RuleViolation("住民票コード", "the person already lives in this municipality")
        hh = self._household_for(placement, moved_on)
        person = NewPerson(
            certificate.name,
            certificate.birth_date,
            certificate.sex,
            certificate.nationality,
            certificate.former_surname,
            certificate.former_surname_kana,
            certificate.alias,
            certificate.honseki,
            certificate.honseki_lg_code,
        )
        row = self._new_row(
            person,
            resident_code=code,
            my_number=certificate.my_number,
            address_of=self._address(placement.town_id, placement.banchi),
            household=hh,
            relationship=check_name("続柄", placement.relationship),
            since=moved_on,
            notified_on=notified,
            previous_address=certificate.previous_address,
        )
        if placement.household_id is None:
            hh.head_resident_id = row.id
        reason = ChangeReason.SPECIAL_MOVE_IN if special else ChangeReason.MOVE_IN
        view = self._commit_change(row, reason, moved_on, notified, f"{certificate.previous_address}から転入")
        self._send(
            cs_node(from_lg),
            TOPIC_MOVE_IN_NOTICE,
            code,
            {
                "resident_code": code,
                "certificate_no": certificate.certificate_no,
                "to_lg_code": self.lg_code,
                "to_address": view.address.text,
                "moved_on": moved_on.isoformat(),
            },
        )
        return view

    @_action
    def record_special_move_in(
        self,
        certificate_no: str,
        placement: Placement,
        *,
        moved_on: dt.date,
        notified_on: dt.date | None = None,
    ) -> ResidentView:
        """転入届の特例: the 転出証明書情報 arrived over the network; the card holder shows the card."""
        found = store.FIND_CERTIFICATE.first(
            self._db, {"lg": self.lg_code, "direction": "in", "no": certificate_no}
        )
        if found is None:
            raise NotFound("転出証明書情報", certificate_no)
        cert_id, status, payload = found
        if status != "received":
            raise RuleViolation("転出証明書情報", "already used for a 転入")
        cert = _certificate_from_json(payload)
        if moved_on < cert.planned_date - dt.timedelta(days=MOVE_OUT_ADVANCE_DAYS):
            raise RuleViolation("転入日", "must not be long before the planned move-out date")
        view = self.record_move_in(cert, placement, moved_on=moved_on, notified_on=notified_on, special=True)
        store.CERTIFICATE_USED.run(self._db, {"k_id": cert_id})
        return view

    @_action
    def record_move_out(
        self,
        resident_id: int,
        *,
        planned_date: dt.date,
        destination: str,
        destination_lg_code: str | None,
        special: bool = False,
        new_head_id: int | None = None,
        notified_on: dt.date | None = None,
    ) -> tuple[ResidentView, MoveOutCertificate]:
        """転出届. ``destination_lg_code`` None means 国外転出. With ``special`` (a card holder in
        the household) no paper is issued: the 転出証明書情報 goes to the destination's CS."""
        row = self._active_row(resident_id, "転出")
        today = self.clock.today()
        notified = self._notified(notified_on)
        if planned_date > today + dt.timedelta(days=MOVE_OUT_ADVANCE_DAYS):
            raise InvalidInput("転出予定日", f"must be within {MOVE_OUT_ADVANCE_DAYS} days from today")
        if planned_date < row.address_since:
            raise InvalidInput("転出予定日", "must not be before the date the address was set")
        destination = str(check_text("転出先", destination, max_length=MAX_ADDRESS_LENGTH, required=True))
        abroad = destination_lg_code is None
        if not abroad:
            dest = self._municipality(str(destination_lg_code), "転出先 地方公共団体コード").lg_code
            if not self.geo.municipality(dest).hosts_register:
                raise InvalidInput(
                    "転出先 地方公共団体コード", "must be a municipality that keeps a register"
                )
            if dest == self.lg_code:
                raise RuleViolation("転出先 地方公共団体コード", "a move within one municipality is a 転居")
        else:
            dest = None
            if special:
                raise RuleViolation("特例", "a 国外転出 has no 転入 to send the 転出証明書情報 to")
        self._leave_household(row, new_head_id, planned_date, notified)
        row.move_destination = destination
        row.move_destination_lg_code = dest
        if abroad:
            row.status, row.removed_on = Status.REMOVED, planned_date
            reason = ChangeReason.MOVE_ABROAD
        else:
            row.status = Status.MOVING_OUT
            reason = ChangeReason.MOVE_OUT
        cert = self._certificate(row, planned_date, special)
        view = self._commit_change(row, reason, planned_date, notified, f"{destination}へ転出")
        store.INSERT_CERTIFICATE.run(
            self._db,
            {
                "lg_code": self.lg_code,
                "direction": "out",
                "certificate_no": cert.certificate_no,
                "from_lg_code": self.lg_code,
                "to_lg_code": dest,
                "resident_code": row.resident_code,
                "planned_date": planned_date,
                "payload": _certificate_to_json(cert),
                "status": "issued",
            },
        )
        if special and dest:
            self._send(cs_node(dest), TOPIC_MOVE_OUT_CERT, row.resident_code, certificate_to_payload(cert))
        return view, cert

    @_action
    def receive_move_out_certificate(self, payload: dict[str, object]) -> None:
        """The CS hands over 転出証明書情報 that arrived for this municipality (idempotent by number)."""
        cert = _certificate_from_json(json.dumps(payload))
        exists = store.FIND_CERTIFICATE.first(
            self._db, {"lg": self.lg_code, "direction": "in", "no": cert.certificate_no}
        )
        if exists:
            return
        store.INSERT_CERTIFICATE.run(
            self._db,
            {
                "lg_code": self.lg_code,
                "direction": "in",
                "certificate_no": cert.certificate_no,
                "from_lg_code": cert.from_lg_code,
                "to_lg_code": self.lg_code,
                "resident_code": cert.resident_code,
                "planned_date": cert.planned_date,
                "payload": json.dumps(payload, ensure_ascii=False),
                "status": "received",
            },
        )

    @_action
    def receive_move_in_notice(self, payload: dict[str, object]) -> None:
        """転入通知 from the new municipality: close (消除) the record that was moving out."""
        code = str(payload["resident_code"])
        row = self._latest_with_code(code)
        if row is None or row.status == Status.REMOVED:
            return  # a repeat, or a person this municipality no longer holds: nothing to close
        moved_on = dt.date.fromisoformat(str(payload["moved_on"]))
        row.status = Status.REMOVED
        row.removed_on = moved_on
        row.move_destination = str(payload["to_address"])
        row.move_destination_lg_code = str(payload["to_lg_code"])
        if row.household_id:
            self._leave_household(row, None)
        self._commit_change(
            row,
            ChangeReason.MOVE_OUT_CONFIRMED,
            moved_on,
            self.clock.today(),
            "転入通知により消除",
            staff="CS",
        )
        store.CERTIFICATES_OF_USED.run(self._db, {"lg": self.lg_code, "code": code})

    @_plannable_action
    def record_relocation(
        self,
        resident_id: int,
        placement: Placement,
        *,
        moved_on: dt.date,
        whole_household: bool = False,
        notified_on: dt.date | None = None,
    ) -> list[ResidentView]:
        """転居 within the municipality; with ``whole_household`` every active member moves."""
        row = self._active_row(resident_id, "転居")
        check_past_date("転居日", moved_on, self.clock.today(), earliest=row.address_since)
        notified = self._notified(notified_on, not_before=moved_on)
        address = self._address(placement.town_id, placement.banchi)
        if whole_household:
            movers = [
                self._residents.adopt(r)
                for r in store.ACTIVE_MEMBERS.rows(
                    self._db, {"hid": row.household_id, "active": Status.ACTIVE.value}
                )
            ]
        else:
            movers = [row]
        # Refuse before anything changes, so a caller that goes on after a refusal keeps no trace of it.
        if all(m.address_text == address.text for m in movers):
            raise RuleViolation("住所", "the new address is the current address")
        if not whole_household:
            self._regroup(row, placement, moved_on)
        views = []
        for mover in movers:
            previous = mover.address_text
            mover.town_id, mover.banchi, mover.address_text = address.town_id, address.banchi, address.text
            mover.previous_address, mover.address_since = previous, moved_on
            views.append(
                self._commit_change(mover, ChangeReason.RELOCATION, moved_on, notified, f"{previous}から転居")
            )
        return views

    @_action
    def record_death(
        self, resident_id: int, *, died_on: dt.date, notified_on: dt.date | None = None
    ) -> ResidentView:
        row = self._active_row(resident_id, "死亡", allow_moving_out=True)
        check_past_date("死亡日", died_on, self.clock.today(), earliest=row.birth_date)
        notified = self._notified(notified_on, not_before=died_on)
        hh = self._household(row.household_id)
        if hh.head_resident_id == row.id:
            hh.head_resident_id = None  # 世帯主変更届 is awaited from the household
        row.status, row.removed_on = Status.REMOVED, died_on
        return self._commit_change(row, ChangeReason.DEATH, died_on, notified, "死亡により消除")

    @_plannable_action
    def record_name_change(
        self,
        resident_id: int,
        name: PersonName,
        *,
        changed_on: dt.date,
        cause: str,
        keep_former_surname: bool = False,
        notified_on: dt.date | None = None,
    ) -> ResidentView:
        """氏名変更 (婚姻, 離婚, 養子縁組, 家庭裁判所の許可 ...), with its furigana. With
        ``keep_former_surname`` the old 氏 is recorded as the 旧氏 (併記)."""
        row = self._active_row(resident_id, "氏名変更")
        check_past_date("変更日", changed_on, self.clock.today(), earliest=row.birth_date)
        notified = self._notified(notified_on, not_before=changed_on)
        cause = check_name("変更事由", cause)
        if (name.family, name.given, name.family_kana, name.given_kana) == (
            row.family_name,
            row.given_name,
            row.family_kana,
            row.given_kana,
        ):
            raise RuleViolation("氏名", "the new name is the same as the current name")
        if keep_former_surname and name.family != row.family_name:
            row.former_surname, row.former_surname_kana = row.family_name, row.family_kana
        row.family_name, row.given_name = name.family, name.given
        row.family_kana, row.given_kana = name.family_kana, name.given_kana
        return self._commit_change(
            row, ChangeReason.NAME_CHANGE, changed_on, notified, f"{cause}により氏名変更"
        )

    CORRECTABLE: ClassVar[dict[str, str]] = {
        "family_name": "氏",
        "given_name": "名",
        "family_kana": "氏の振り仮名",
        "given_kana": "名の振り仮名",
        "birth_date": "生年月日",
        "sex": "性別",
        "banchi": "番地",
        "relationship": "続柄",
        "honseki": "本籍",
        "alias": "通称",
        "former_surname": "旧氏",
        "former_surname_kana": "旧氏の振り仮名",
    }

    @_plannable_action
    def record_correction(
        self, resident_id: int, fields: dict[str, str], *, reason: str, corrected_on: dt.date | None = None
    ) -> ResidentView:
        """職権修正: the mayor corrects an entry found to be wrong."""
        row = self._row(resident_id)
        if row.status == Status.REMOVED:
            raise RuleViolation("状態", "a removed (消除) record is corrected through 職権記載, not 職権修正")
        if not fields:
            raise InvalidInput("修正項目", "must name at least one item")
        unknown = set(fields) - set(self.CORRECTABLE)
        if unknown:
            raise InvalidInput("修正項目", f"cannot be corrected here: {', '.join(sorted(unknown))}")
        reason = check_name("修正理由", reason)
        today = self.clock.today()
        when = corrected_on or today
        check_past_date("修正日", when, today)
        changes: dict[str, object] = {}
        for key, raw in fields.items():
            label = self.CORRECTABLE[key]
            if key in ("family_kana", "given_kana", "former_surname_kana"):
                changes[key] = check_kana(label, raw, required=key == "family_kana") or None
            elif key == "birth_date":
                changes[key] = check_past_date(label, parse_date(label, raw), today, earliest=EARLIEST_BIRTH)
            elif key == "sex":
                try:
                    changes[key] = Sex(raw)
                except ValueError:
                    raise InvalidInput(label, "must be male or female") from None
            elif key == "banchi":
                changes[key] = check_banchi(raw)
            elif key == "honseki":
                changes[key] = check_text(label, raw, max_length=MAX_ADDRESS_LENGTH)
            elif key == "alias":
                changes[key] = check_text(label, raw, max_length=100)
            else:
                changes[key] = check_name(label, raw, required=key in ("family_name", "relationship")) or None
        for key, value in changes.items():
            setattr(
                row,
                key,
                value if value is not None else ("" if key in ("given_name", "given_kana") else None),
            )
        if "banchi" in changes:
            row.address_text = self._address(row.town_id, row.banchi).text
        return self._commit_change(row, ChangeReason.CORRECTION, when, today, f"職権修正({reason})")

    @_action
    def change_resident_code(self, resident_id: int, *, notified_on: dt.date | None = None) -> ResidentView:
        """住民票コード変更請求: a new random code, and with it a new My Number; both old ones are
        retired and never issued again."""
        row = self._active_row(resident_id, "住民票コード変更")
        notified = self._notified(notified_on)
        old_code, old_number = row.resident_code, row.my_number
        new_code = self.numbers.new_resident_code(self.rng, self.lg_code)
        row.resident_code = new_code
        row.my_number = self.numbers.my_number_for(new_code)
        self.numbers.retire_resident_code(ResidentCode(old_code), lg_code=self.lg_code)
        self.numbers.retire_my_number(MyNumber(old_number), resident_code=old_code)
        return self._commit_change(
            row, ChangeReason.CODE_CHANGE, notified, notified, "住民票コード変更", previous_code=old_code
        )

    # ------------------------------------------------------------------ households

    @_action
    def new_household(self, created_on: dt.date, *, head_resident_id: int | None = None) -> Household:
        """A household with no members yet; ``head_resident_id``: an existing resident who heads it
        (written with the insert, not by an update after it)."""
        values = {
            "lg_code": self.lg_code,
            "household_no": "",
            "head_resident_id": head_resident_id,
            "created_on": created_on,
        }
        self._inserted = True
        plan: store.GroupPlan | None = self.s.info.get(store.PLAN_KEY)
        db = self._db
        if plan is not None or db.dialect.name == "postgresql":
            # A reserved id: the plan's replay writes the one it planned; on PostgreSQL the insert
            # then needs no answer and goes with the transaction's next statement.
            hid = store.household_ids(self.s.get_bind().engine).take()
            values["household_no"] = f"{hid:010d}"
            store.INSERT_HOUSEHOLD_WITH_ID.defer(db, {"id": hid, **values})
            return self._households.adopt((hid, *values.values()))
        (hid,) = store.INSERT_HOUSEHOLD.rows(db, values)[0]
        hh = self._households.adopt((hid, *values.values()))
        hh.household_no = f"{hid:010d}"  # the number is the id: written with the action's other changes
        return hh

    # ------------------------------------------------------------------ internals

    def _notified(self, notified_on: dt.date | None, *, not_before: dt.date | None = None) -> dt.date:
        today = self.clock.today()
        notified = notified_on or today
        check_past_date("届出日", notified, today)
        if not_before and notified < not_before - dt.timedelta(days=MOVE_OUT_ADVANCE_DAYS):
            raise InvalidInput("届出日", "must not be long before the change itself")
        return notified

    def _municipality(self, code: str, field: str) -> Municipality:
        """A municipality of the master, with errors that name the caller's field."""
        try:
            return self.geo.municipality(str(LgCode.parse(code, field)))
        except InvalidInput as err:
            if err.field == field:
                raise
            raise InvalidInput(field, err.rule) from err

    def _row(self, resident_id: int) -> Resident:
        row = self._residents.rows.get(resident_id)
        if row is None:
            # One query loads the record with its household: every change shows both afterwards.
            found = store.prefetched(self.s, resident_id)
            if found is None:
                found = store.LOAD_WITH_HOUSEHOLD.first(self._db, {"rid": resident_id})
            if found is not None:
                row = self._residents.adopt(found[:_NR])
                self._households.adopt(found[_NR:-1])
                self._others_active[row.id] = found[-1]
        # Another municipality's record answers exactly like a missing one: staff are scoped to
        # their own 団体 and must not learn that a record exists elsewhere (fails closed).
        if row is None or row.lg_code != self.lg_code:
            raise NotFound("住民票", str(resident_id))
        return row

    def _latest_with_code(self, code: str) -> Resident | None:
        """The newest record of this municipality with the code (a person who left and came back
        has an old, removed record too)."""
        found = store.LATEST_WITH_CODE.first(self._db, {"lg": self.lg_code, "code": code})
        return None if found is None else self._residents.adopt(found)

    def _active_row(self, resident_id: int, action: str, *, allow_moving_out: bool = False) -> Resident:
        row = self._row(resident_id)
        if row.status == Status.REMOVED:
            why = "deceased" if row.last_reason == ChangeReason.DEATH else "removed (消除)"
            raise RuleViolation("状態", f"{action} is not possible for a {why} person")
        if row.status == Status.MOVING_OUT and not allow_moving_out:
            raise RuleViolation("状態", f"{action} is not possible after a 転出届 (moving out)")
        return row

    def _household(self, household_id: int | None) -> Household:
        hh = None
        if household_id is not None:
            hh = self._households.rows.get(household_id)
            if hh is None:
                found = store.LOAD_HOUSEHOLD.first(self._db, {"hid": household_id})
                hh = None if found is None else self._households.adopt(found)
        if hh is None or hh.lg_code != self.lg_code:
            raise NotFound("世帯", str(household_id))
        return hh

    def _regroup(self, row: Resident, placement: Placement, since: dt.date) -> None:
        """A person who moves alone joins the named household, or founds a new one (世帯分離) when
        others stay behind."""
        if placement.household_id is not None:
            target = self._household(placement.household_id)
            if target.id != row.household_id:
                self._leave_household(row, None)
                row.household_id = target.id
                row.relationship = check_name("続柄", placement.relationship)
            return
        others = self._others_active.get(row.id)  # read with the record, in this action
        if others is None:
            others = (
                store.ANOTHER_ACTIVE_MEMBER.first(
                    self._db, {"hid": row.household_id, "active": Status.ACTIVE.value, "rid": row.id}
                )
                is not None
            )
        if others:
            self._leave_household(row, None)
            hh = self.new_household(since, head_resident_id=row.id)
            row.household_id, row.relationship = hh.id, "世帯主"

    def _household_for(self, placement: Placement, since: dt.date) -> Household:
        if placement.household_id is None:
            if placement.relationship not in ("世帯主", ""):
                raise InvalidInput("続柄", "a person founding a new household is its 世帯主")
            return self.new_household(since)
        return self._household(placement.household_id)

    def _head_or_member(self, hh: Household) -> Address:
        found = store.FIRST_ACTIVE_MEMBER.first(self._db, {"hid": hh.id, "active": Status.ACTIVE.value})
        member = None if found is None else self._residents.adopt(found)
        if member is None:
            raise RuleViolation("世帯", "the household has no living member to be born into")
        return Address(self.lg_code, member.town_id, member.banchi, member.address_text)

    def _leave_household(
        self,
        row: Resident,
        new_head_id: int | None,
        since: dt.date | None = None,
        notified_on: dt.date | None = None,
    ) -> None:
        """``row`` leaves its household; if it was the head and others stay, ``new_head_id`` (one of
        them) becomes the head from ``since``, or the household has none until a 世帯主変更届."""
        hh = self._household(row.household_id)
        if hh.head_resident_id != row.id:
            if new_head_id is not None:
                raise InvalidInput("新世帯主", "only a 世帯主 who leaves the household names a new one")
            return
        others = [
            rid
            for (rid,) in store.OTHER_ACTIVE_MEMBERS.rows(
                self._db, {"hid": hh.id, "active": Status.ACTIVE.value, "rid": row.id}
            )
        ]
        if not others:
            if new_head_id is not None:
                raise InvalidInput("新世帯主", "must be a remaining member of the household")
            return
        if new_head_id is None:
            hh.head_resident_id = None
            return
        if new_head_id not in others:
            raise InvalidInput("新世帯主", "must be a remaining member of the household")
        assert since is not None and notified_on is not None  # a new head is named with a date
        head = self._residents.rows.get(new_head_id)
        if head is None:
            found = store.LOAD_RESIDENT.first(self._db, {"rid": new_head_id})
            assert found is not None  # one of ``others``, read in this transaction
            head = self._residents.adopt(found)
        if head.household_id != hh.id or head.status != Status.ACTIVE:  # left since ``others`` was read
            raise InvalidInput("新世帯主", "must be a remaining member of the household")
        hh.head_resident_id = new_head_id
        head.relationship = "世帯主"
        # A change of the new head's 住民票 (its 続柄), with its own version and history row: a
        # concurrent change of that person in another process then clashes with this one
        # (store.raced) instead of leaving the household a head who has left it meanwhile.
        self._commit_change(
            head,
            ChangeReason.HEAD_CHANGE,
            since,
            notified_on,
            f"{row.family_name}{row.given_name}の転出により世帯主",
        )

    def _address(self, town_id: str, banchi: str) -> Address:
        town = self.geo.town(town_id)
        if town.lg_code != self.lg_code:
            raise InvalidInput("町字", f"must be a town of {self.municipality.name}")
        banchi = check_banchi(banchi)
        return Address(
            self.lg_code, town.town_id, banchi, self.geo.address_text(town_id, banchi), town.postal_code
        )

    def _new_row(
        self,
        person: NewPerson,
        *,
        resident_code: str,
        my_number: str,
        address_of: Address,
        household: Household,
        relationship: str,
        since: dt.date,
        notified_on: dt.date,
        previous_address: str | None,
    ) -> Resident:
        today = self.clock.today()
        check_past_date("生年月日", person.birth_date, today, earliest=EARLIEST_BIRTH)
        nationality = check_name("国籍", person.nationality)
        if person.honseki_lg_code:
            self._municipality(person.honseki_lg_code, "本籍 地方公共団体コード")
        honseki = check_text("本籍", person.honseki, max_length=MAX_ADDRESS_LENGTH)
        previous_address = check_text("前住所", previous_address, max_length=MAX_ADDRESS_LENGTH)
        alias = check_text("通称", person.alias, max_length=100)
        if nationality == "JP" and alias:
            raise InvalidInput("通称", "only foreign residents may register a 通称")
        if nationality != "JP" and (honseki or person.honseki_lg_code):
            raise InvalidInput("本籍", "foreign residents have no 本籍")
        values: dict[str, Any] = dict(
            lg_code=self.lg_code,
            resident_code=resident_code,
            my_number=my_number,
            household_id=household.id,
            relationship=relationship,
            family_name=person.name.family,
            given_name=person.name.given,
            family_kana=person.name.family_kana,
            given_kana=person.name.given_kana,
            former_surname=person.former_surname and check_name("旧氏", person.former_surname),
            former_surname_kana=person.former_surname_kana,
            alias=alias,
            nationality=nationality,
            birth_date=person.birth_date,
            sex=Sex(person.sex),
            town_id=address_of.town_id,
            banchi=address_of.banchi,
            address_text=address_of.text,
            honseki=honseki,
            honseki_lg_code=person.honseki_lg_code,
            resident_since=since,
            address_since=since,
            notified_on=notified_on,
            previous_address=previous_address,
            status=Status.ACTIVE,
            last_reason=ChangeReason.INITIAL,
            last_change_date=since,
            removed_on=None,
            move_destination=None,
            move_destination_lg_code=None,
            version=0,
        )
        (rid,) = store.INSERT_RESIDENT.rows(self._db, values)[0]
        self._inserted = True
        return self._residents.adopt((rid, *(values[c] for c in RESIDENT_COLUMNS[1:])))

    def _certificate(self, row: Resident, planned_date: dt.date, special: bool) -> MoveOutCertificate:
        prefix = "TS" if special else "TP"  # 特例 (network) / paper
        return MoveOutCertificate(
            certificate_no=f"{prefix}-{self.lg_code}-{row.id}-{row.version + 1}",
            from_lg_code=self.lg_code,
            resident_code=row.resident_code,
            my_number=row.my_number,
            name=PersonName(row.family_name, row.given_name, row.family_kana, row.given_kana),
            birth_date=row.birth_date,
            sex=Sex(row.sex),
            previous_address=row.address_text,
            planned_date=planned_date,
            nationality=row.nationality,
            former_surname=row.former_surname,
            former_surname_kana=row.former_surname_kana,
            alias=row.alias,
            honseki=row.honseki,
            honseki_lg_code=row.honseki_lg_code,
        )

    def _commit_change(
        self,
        row: Resident,
        reason: ChangeReason,
        change_date: dt.date,
        notified_on: dt.date,
        summary: str,
        *,
        staff: str | None = None,
        previous_code: str | None = None,
    ) -> ResidentView:
        """Bump the version; the history row and the outgoing messages are written with the record
        when the action returns (see _action), in the caller's transaction."""
        now = self.clock.now()
        row.version += 1
        row.last_reason, row.last_change_date = reason, change_date
        if reason not in (ChangeReason.MOVE_OUT_CONFIRMED,):
            row.notified_on = notified_on
        view = self._view(row)
        self._now = now
        self._history.append(
            {
                "resident_id": row.id,
                "version": row.version,
                "reason": reason.value,
                "change_date": change_date,
                "notified_on": notified_on,
                "recorded_at": now,
                "staff": staff or self.staff,
                "summary": summary[:400],
                "snapshot": jsontext.dumps(snapshot(_columns(row), view.household_no)),
            }
        )
        if reason in NOTIFIED_REASONS:
            self._messages.extend(identity_messages(view, reason, change_date, now, previous_code))
        return view

    def _audit_read(self, row: Resident, purpose: str) -> None:
        ACCESS_LOG.append_later(
            self.s,
            at=self.clock.now(),
            actor=self.staff,
            action="read",
            subject=row.resident_code,
            details={
                "system": "registry",
                "lg_code": self.lg_code,
                "purpose": purpose,
                "resident_id": row.id,
            },
        )

    def _view(self, row: Resident) -> ResidentView:
        hh = self._households.rows.get(row.household_id)
        if hh is None:
            found = store.LOAD_HOUSEHOLD.first(self._db, {"hid": row.household_id})
            assert found is not None  # reg_residents.household_id is a foreign key
            hh = self._households.adopt(found)
        return ResidentView(
            id=row.id,
            lg_code=row.lg_code,
            resident_code=row.resident_code,
            my_number=row.my_number,
            name=PersonName(row.family_name, row.given_name, row.family_kana, row.given_kana),
            former_surname=row.former_surname,
            former_surname_kana=row.former_surname_kana,
            alias=row.alias,
            nationality=row.nationality,
            birth_date=row.birth_date,
            sex=Sex(row.sex),
            household_id=hh.id,
            household_no=hh.household_no,
            is_head=hh.head_resident_id == row.id,
            relationship=row.relationship,
            address=Address(row.lg_code, row.town_id, row.banchi, row.address_text),
            honseki=row.honseki,
            honseki_lg_code=row.honseki_lg_code,
            resident_since=row.resident_since,
            address_since=row.address_since,
            notified_on=row.notified_on,
            previous_address=row.previous_address,
            status=Status(row.status),
            last_reason=ChangeReason(row.last_reason),
            last_change_date=row.last_change_date,
            version=row.version,
            removed_on=row.removed_on,
            move_destination=row.move_destination,
        )


def identity_record(
    view: ResidentView,
    reason: ChangeReason,
    change_date: dt.date,
    now: dt.datetime,
    previous_code: str | None,
) -> IdentityRecord:
    return IdentityRecord(
        resident_code=view.resident_code,
        my_number=view.my_number,
        lg_code=view.lg_code,
        family_name=view.name.family,
        given_name=view.name.given,
        family_kana=view.name.family_kana,
        given_kana=view.name.given_kana,
        alias=view.alias,
        former_surname=view.former_surname,
        birth_date=view.birth_date,
        sex=view.sex.value,
        address=ABROAD if reason == ChangeReason.MOVE_ABROAD else view.address.text,
        status=view.status.value,
        reason=reason,
        change_date=change_date,
        recorded_at=now,
        previous_resident_code=previous_code,
    )


def identity_messages(
    view: ResidentView,
    reason: ChangeReason,
    change_date: dt.date,
    now: dt.datetime,
    previous_code: str | None = None,
) -> list[Message]:
    """The CS連携: every change of 本人確認情報 leaves for the CS, and, for a person whose 本籍 is
    in Japan, the address news leaves for the 本籍地 that keeps the 戸籍の附票."""
    record = identity_record(view, reason, change_date, now, previous_code)
    source, key = registry_node(view.lg_code), previous_code or view.resident_code
    payload, raw = encoded(record)
    out = [Message(new_message_id(), source, cs_node(view.lg_code), TOPIC_IDENTITY, key, payload, raw=raw)]
    if view.honseki_lg_code:
        notice = FuhyoNotice(
            resident_code=view.resident_code,
            honseki_lg_code=view.honseki_lg_code,
            honseki=view.honseki or "",
            family_name=view.name.family,
            given_name=view.name.given,
            birth_date=view.birth_date,
            sex=view.sex.value,
            address=record.address,
            address_lg_code=None if reason == ChangeReason.MOVE_ABROAD else view.lg_code,
            address_since=change_date if reason == ChangeReason.MOVE_ABROAD else view.address_since,
            reason=reason,
            change_date=change_date,
            recorded_at=now,
            previous_resident_code=previous_code,
        )
        payload, raw = encoded(notice)
        destination = f"honseki:{view.honseki_lg_code}"
        out.append(Message(new_message_id(), source, destination, TOPIC_FUHYO, key, payload, raw=raw))
    return out


def snapshot(values: Mapping[str, Any], household_no: str) -> dict[str, object]:
    """The record as a history row keeps it, from its column values (a ``ResidentRow``'s, or the
    seeder's row dicts): the one format of every history snapshot."""
    given, given_kana = values["given_name"], values["given_kana"]
    return {
        "resident_code": values["resident_code"],
        "my_number": values["my_number"],
        "name": f"{values['family_name']}\u3000{given}" if given else values["family_name"],
        "name_kana": f"{values['family_kana']}\u3000{given_kana}" if given_kana else values["family_kana"],
        "former_surname": values["former_surname"],
        "alias": values["alias"],
        "birth_date": str(values["birth_date"]),
        "sex": str(values["sex"]),
        "address": values["address_text"],
        "household_no": household_no,
        "relationship": values["relationship"],
        "honseki": values["honseki"],
        "status": str(values["status"]),
        "address_since": str(values["address_since"]),
        "previous_address": values["previous_address"],
        "move_destination": values["move_destination"],
    }


def _columns(row: Resident) -> dict[str, Any]:
    return {c: getattr(row, c) for c in RESIDENT_COLUMNS}


def _certificate_to_json(cert: MoveOutCertificate) -> str:
    d = {
        "certificate_no": cert.certificate_no,
        "from_lg_code": cert.from_lg_code,
        "resident_code": cert.resident_code,
        "my_number": cert.my_number,
        "family_name": cert.name.family,
        "given_name": cert.name.given,
        "family_kana": cert.name.family_kana,
        "given_kana": cert.name.given_kana,
        "birth_date": cert.birth_date.isoformat(),
        "sex": cert.sex.value,
        "previous_address": cert.previous_address,
        "planned_date": cert.planned_date.isoformat(),
        "nationality": cert.nationality,
        "former_surname": cert.former_surname,
        "former_surname_kana": cert.former_surname_kana,
        "alias": cert.alias,
        "honseki": cert.honseki,
        "honseki_lg_code": cert.honseki_lg_code,
    }
    return json.dumps(d, ensure_ascii=False)


def _certificate_from_json(text: str) -> MoveOutCertificate:
    d = json.loads(text)
    return MoveOutCertificate(
        certificate_no=d["certificate_no"],
        from_lg_code=d["from_lg_code"],
        resident_code=d["resident_code"],
        my_number=d["my_number"],
        name=PersonName(d["family_name"], d["given_name"], d["family_kana"], d["given_kana"]),
        birth_date=dt.date.fromisoformat(d["birth_date"]),
        sex=Sex(d["sex"]),
        previous_address=d["previous_address"],
        planned_date=dt.date.fromisoformat(d["planned_date"]),
        nationality=d.get("nationality", "JP"),
        former_surname=d.get("former_surname"),
        former_surname_kana=d.get("former_surname_kana"),
        alias=d.get("alias"),
        honseki=d.get("honseki"),
        honseki_lg_code=d.get("honseki_lg_code"),
    )


def certificate_to_payload(cert: MoveOutCertificate) -> dict[str, object]:
    return dict(json.loads(_certificate_to_json(cert)))


def active_codes(session: Session, lg_code: str) -> Sequence[str]:
    return (
        session.execute(select(_R.resident_code).where(_R.lg_code == lg_code, _R.status == Status.ACTIVE))
        .scalars()
        .all()
    )
