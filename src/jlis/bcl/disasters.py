"""Disaster-victim support (クラウド型被災者支援システム, facts §11): declaring a disaster, the victim
register (被災者台帳) built from the resident register, the damaged-dwelling register (被災住家台帳)
and its damage surveys, and 罹災証明書 applications and their decision.

Who may do what (deny by default, checked at every entry):

- declare: a J-LIS operator for any area; a municipality's staff for an area inside their own 団体;
- the victim register, surveys, counter applications and decisions: staff of the municipality, and
  only for the part of the disaster's area that is theirs;
- an online application: the resident themself, identified by their card (:class:`CardHolder`) —
  :class:`ResidentDesk`; the portal wiring comes later.

Every read of personal data writes an ``access`` audit entry per person in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.auth.models import Principal, PrincipalKind
from jlis.bcl.identity import CardHolder
from jlis.bcl.models import (
    MAX_NAME_LENGTH,
    MAX_NOTE_LENGTH,
    ApplicationStatus,
    AreaPart,
    Channel,
    DamageGrade,
    DisasterCause,
    SurveyRound,
    application_id,
    check_area,
    check_occurred_on,
    check_text,
    disaster_id,
    grade_for_ratio,
    parse_disaster_id,
    was_resident_on,
)
from jlis.bcl.register import HOUSEHOLDS, RESIDENTS
from jlis.bcl.tables import (
    DamageApplicationRow,
    DisasterAreaRow,
    DisasterRow,
    DwellingRow,
    SurveyRow,
    VictimRow,
)
from jlis.clock import JST, Clock
from jlis.codes import LgCode, ResidentCode
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.masters import Geography

ACCESS_LOG = AuditLog("access")
ID_ATTEMPTS = 5  # a running number taken by a concurrent transaction is retried this often
_R, _H = RESIDENTS.c, HOUSEHOLDS.c
# What the victim register copies from a register row (and what the build filters on).
_VICTIM_COLUMNS = (
    _R.resident_code,
    _R.family_name,
    _R.given_name,
    _R.family_kana,
    _R.given_kana,
    _R.birth_date,
    _R.sex,
    _R.relationship,
    _R.town_id,
    _R.banchi,
    _R.address_text,
    _R.status,
    _R.address_since,
    _R.removed_on,
    _H.household_no,
)


# ------------------------------------------------------------------------------------ views


@dataclass(frozen=True)
class DisasterView:
    id: str
    name: str
    cause: DisasterCause
    occurred_on: dt.date
    area: tuple[AreaPart, ...]
    declared_at: dt.datetime
    declared_by: str
    closed: bool

    def covers(self, lg_code: str) -> bool:
        return any(p.lg_code == lg_code for p in self.area)


@dataclass(frozen=True)
class VictimView:
    id: int
    disaster_id: str
    lg_code: str
    resident_code: str
    household_no: str
    relationship: str
    name: str
    name_kana: str
    birth_date: dt.date
    sex: str
    address: str
    dwelling_id: int
    register_status: str

    @classmethod
    def of(cls, r: VictimRow) -> VictimView:
        return cls(
            r.id,
            r.disaster_id,
            r.lg_code,
            r.resident_code,
            r.household_no,
            r.relationship,
            r.name,
            r.name_kana,
            r.birth_date,
            r.sex,
            r.address,
            r.dwelling_id,
            r.register_status,
        )


@dataclass(frozen=True)
class DwellingView:
    id: int
    disaster_id: str
    lg_code: str
    town_id: str
    banchi: str
    address: str
    grade: DamageGrade | None
    surveyed_on: dt.date | None

    @classmethod
    def of(cls, r: DwellingRow) -> DwellingView:
        return cls(
            r.id,
            r.disaster_id,
            r.lg_code,
            r.town_id,
            r.banchi,
            r.address,
            DamageGrade(r.grade) if r.grade else None,
            r.surveyed_on,
        )


@dataclass(frozen=True)
class SurveyView:
    id: int
    dwelling_id: int
    round: SurveyRound
    damage_ratio: float
    grade: DamageGrade
    surveyed_on: dt.date
    surveyor: str
    note: str | None


@dataclass(frozen=True)
class ApplicationView:
    id: str
    disaster_id: str
    lg_code: str
    resident_code: str
    household_no: str
    dwelling_id: int
    channel: Channel
    applied_at: dt.datetime
    status: ApplicationStatus
    grade: DamageGrade | None
    decided_at: dt.datetime | None
    reason: str | None

    @classmethod
    def of(cls, r: DamageApplicationRow) -> ApplicationView:
        return cls(
            r.id,
            r.disaster_id,
            r.lg_code,
            r.resident_code,
            r.household_no,
            r.dwelling_id,
            Channel(r.channel),
            r.applied_at.astimezone(JST),
            ApplicationStatus(r.status),
            DamageGrade(r.grade) if r.grade else None,
            r.decided_at.astimezone(JST) if r.decided_at else None,
            r.reason,
        )


@dataclass(frozen=True)
class BuildReport:
    disaster_id: str
    lg_code: str
    listed: int  # added now
    already: int  # listed by an earlier build
    dwellings: int  # dwellings of the municipality's part after the build


# ------------------------------------------------------------------------------------ reads shared


def get_disaster(session: Session, disaster: str) -> DisasterView:
    did = parse_disaster_id(disaster)
    row = session.get(DisasterRow, did)
    if row is None:
        raise NotFound("災害", did)
    areas = session.scalars(select(DisasterAreaRow).where(DisasterAreaRow.disaster_id == did)).all()
    parts: dict[str, list[str]] = {}
    for a in areas:
        towns = parts.setdefault(a.lg_code, [])
        if a.town_id:
            towns.append(a.town_id)
    return DisasterView(
        row.id,
        row.name,
        DisasterCause(row.cause),
        row.occurred_on,
        tuple(AreaPart(lg, tuple(sorted(t))) for lg, t in sorted(parts.items())),
        row.declared_at.astimezone(JST),
        row.declared_by,
        row.closed_at is not None,
    )


def list_disasters(session: Session, *, lg_code: str | None = None) -> list[DisasterView]:
    """Declared disasters (newest first), or those whose area includes ``lg_code``. Not personal data."""
    stmt = select(DisasterRow.id).order_by(DisasterRow.occurred_on.desc(), DisasterRow.id.desc())
    if lg_code:
        stmt = stmt.where(
            DisasterRow.id.in_(select(DisasterAreaRow.disaster_id).where(DisasterAreaRow.lg_code == lg_code))
        )
    return [get_disaster(session, d) for d in session.scalars(stmt)]


def _audit(
    session: Session,
    at: dt.datetime,
    actor: str,
    lg_code: str,
    purpose: str,
    subjects: Iterable[str],
    **details: object,
) -> None:
    entries = [
        {
            "at": at,
            "actor": actor,
            "action": "read",
            "subject": code,
            "details": {"system": "bcl", "lg_code": lg_code, "purpose": purpose, **details},
        }
        for code in subjects
    ]
    ACCESS_LOG.append_many(session, entries)


# ------------------------------------------------------------------------------------ staff


class DisasterService:
    """Disasters for one acting principal, in the caller's session (the caller commits)."""

    def __init__(self, session: Session, clock: Clock, geography: Geography, principal: Principal) -> None:
        self.s = session
        self.clock = clock
        self.geo = geography
        self.principal = principal

    # -- declaring

    def declare(
        self, *, name: str, cause: str | DisasterCause, occurred_on: dt.date, area: Sequence[AreaPart]
    ) -> DisasterView:
        name = check_text("災害名", name, max_length=MAX_NAME_LENGTH)
        cause = DisasterCause.parse(str(cause))
        occurred_on = check_occurred_on(occurred_on, self.clock.today())
        parts = check_area(
            AreaPart(str(LgCode.parse(p.lg_code, f"area[{i}].lg_code")), tuple(p.town_ids))
            for i, p in enumerate(area)
        )
        for i, part in enumerate(parts):
            municipality = self.geo.municipality(part.lg_code)
            if not municipality.hosts_register:
                raise InvalidInput(f"area[{i}].lg_code", "must be a municipality that keeps a register")
            known = {t.town_id for t in self.geo.towns(part.lg_code)}
            for town in part.town_ids:
                if town not in known:
                    raise InvalidInput(f"area[{i}].town_ids", f"unknown town {town}")
        if self.principal.kind is PrincipalKind.MUNICIPAL_STAFF:
            for part in parts:
                self.principal.require_staff_of(part.lg_code)
        elif self.principal.kind is not PrincipalKind.JLIS_OPERATOR:
            raise Forbidden(
                "declaring a disaster needs staff or a J-LIS operator",
                field="principal",
                rule="must be municipal_staff or jlis_operator",
            )
        now = self.clock.now()
        did = ""
        for attempt in range(ID_ATTEMPTS):
            same_day = self.s.scalar(
                select(func.count()).select_from(DisasterRow).where(DisasterRow.occurred_on == occurred_on)
            )
            did = disaster_id(occurred_on, int(same_day or 0) + 1)
            try:
                with self.s.begin_nested():  # two declarations of one day at once: the later retries
                    self.s.add(
                        DisasterRow(
                            id=did,
                            name=name,
                            cause=cause.value,
                            occurred_on=occurred_on,
                            declared_at=now,
                            declared_by=self.principal.actor,
                        )
                    )
                    self.s.flush()
                break
            except IntegrityError:
                if attempt == ID_ATTEMPTS - 1:
                    raise RuleViolation("災害ID", "could not be allocated; try again") from None
        for part in parts:
            towns: tuple[str | None, ...] = part.town_ids or (None,)
            for area_town in towns:
                self.s.add(DisasterAreaRow(disaster_id=did, lg_code=part.lg_code, town_id=area_town))
        self.s.flush()
        return get_disaster(self.s, did)

    def close(self, disaster: str) -> DisasterView:
        """No more applications; the registers stay."""
        view = get_disaster(self.s, disaster)
        self._require_area_staff_or_operator(view)
        row = self.s.get(DisasterRow, view.id)
        assert row is not None
        if row.closed_at is None:
            row.closed_at = self.clock.now()
            self.s.flush()
        return get_disaster(self.s, view.id)

    def _require_area_staff_or_operator(self, view: DisasterView) -> None:
        if self.principal.kind is PrincipalKind.JLIS_OPERATOR:
            return
        for part in view.area:
            self.principal.require_staff_of(part.lg_code)

    def _part(self, disaster: str, lg_code: str) -> tuple[DisasterView, AreaPart]:
        """The disaster and the calling staff's part of its area."""
        self.principal.require_staff_of(lg_code)
        view = get_disaster(self.s, disaster)
        for part in view.area:
            if part.lg_code == lg_code:
                return view, part
        raise RuleViolation(
            "地方公共団体コード",
            "must be in the disaster's area",
            f"{lg_code} is not in the area of {view.id}",
        )

    # -- the victim register

    def build_victim_register(self, disaster: str, lg_code: str) -> BuildReport:
        """List everyone the register shows living in the municipality's part of the area on the day
        of the disaster (see :func:`models.was_resident_on`), and a dwelling per address. Idempotent:
        a second build adds only the people not listed yet."""
        view, part = self._part(disaster, lg_code)
        day = view.occurred_on
        stmt = (
            select(*_VICTIM_COLUMNS)
            .join(HOUSEHOLDS, _H.id == _R.household_id)
            .where(_R.lg_code == lg_code, _R.address_since <= day)
            .order_by(_R.id)
        )
        if part.town_ids:
            stmt = stmt.where(_R.town_id.in_(part.town_ids))
        rows = [
            r
            for r in self.s.execute(stmt)
            if was_resident_on(
                status=r.status, address_since=r.address_since, removed_on=r.removed_on, day=day
            )
        ]
        listed = set(
            self.s.scalars(
                select(VictimRow.resident_code).where(
                    VictimRow.disaster_id == view.id, VictimRow.lg_code == lg_code
                )
            )
        )
        dwellings = {
            (d.town_id, d.banchi): d
            for d in self.s.scalars(
                select(DwellingRow).where(DwellingRow.disaster_id == view.id, DwellingRow.lg_code == lg_code)
            )
        }
        now = self.clock.now()
        new_rows = []
        for r in rows:
            if r.resident_code in listed:
                continue
            listed.add(r.resident_code)  # a code held by two rows (removed, then back): the first
            new_rows.append(r)
        # Bulk statements: a whole town's register is listed at once (one INSERT per table, not an
        # ORM flush per dwelling).
        missing: dict[tuple[str, str], str] = {}
        for r in new_rows:
            if (r.town_id, r.banchi) not in dwellings:
                missing.setdefault((r.town_id, r.banchi), r.address_text)
        dwelling_ids = {key: d.id for key, d in dwellings.items()}
        if missing:
            made = self.s.execute(
                insert(DwellingRow).returning(DwellingRow.id, DwellingRow.town_id, DwellingRow.banchi),
                [
                    {"disaster_id": view.id, "lg_code": lg_code, "town_id": t, "banchi": b, "address": a}
                    for (t, b), a in missing.items()
                ],
            ).all()
            dwelling_ids.update({(m.town_id, m.banchi): m.id for m in made})
        if new_rows:
            self.s.execute(
                insert(VictimRow),
                [
                    _victim_values(
                        view.id, lg_code, r, r.address_text, dwelling_ids[(r.town_id, r.banchi)], now
                    )
                    for r in new_rows
                ],
            )
        added = [r.resident_code for r in new_rows]
        _audit(self.s, now, self.principal.actor, lg_code, "被災者台帳", added, disaster_id=view.id)
        return BuildReport(view.id, lg_code, len(added), len(listed) - len(added), len(dwelling_ids))

    def add_victim(
        self, disaster: str, lg_code: str, resident_code: str, *, town_id: str, banchi: str
    ) -> VictimView:
        """List one person by hand at a dwelling of the area: someone the build cannot find, such as
        a resident who moved within the municipality after the disaster (the register's row then
        describes the new address only). The person is taken from the municipality's register."""
        view, part = self._part(disaster, lg_code)
        code = str(ResidentCode.parse(resident_code))
        if not part.covers(lg_code, town_id):
            raise RuleViolation("町字", "the dwelling must be in the disaster's area")
        banchi = check_text("番地", banchi, max_length=60)
        address = self.geo.address_text(town_id, banchi)
        r = self.s.execute(
            select(*_VICTIM_COLUMNS)
            .join(HOUSEHOLDS, _H.id == _R.household_id)
            .where(_R.lg_code == lg_code, _R.resident_code == code)
            .order_by(_R.id.desc())
            .limit(1)
        ).first()
        if r is None:
            raise NotFound("住民票", code)
        exists = self.s.scalar(
            select(func.count())
            .select_from(VictimRow)
            .where(VictimRow.disaster_id == view.id, VictimRow.resident_code == code)
        )
        if exists:
            raise RuleViolation("被災者台帳", "a person is listed once per disaster", "既に登載されています")
        dwellings = {
            (d.town_id, d.banchi): d
            for d in self.s.scalars(
                select(DwellingRow).where(
                    DwellingRow.disaster_id == view.id,
                    DwellingRow.lg_code == lg_code,
                    DwellingRow.town_id == town_id,
                    DwellingRow.banchi == banchi,
                )
            )
        }
        now = self.clock.now()
        row = self._list(view.id, lg_code, r, town_id, banchi, address, dwellings, now)
        self.s.flush()
        _audit(self.s, now, self.principal.actor, lg_code, "被災者台帳", [code], disaster_id=view.id)
        return VictimView.of(row)

    def _list(
        self,
        disaster_id: str,
        lg_code: str,
        r: Any,
        town_id: str,
        banchi: str,
        address: str,
        dwellings: dict[tuple[str, str], DwellingRow],
        now: dt.datetime,
    ) -> VictimRow:
        dwelling = dwellings.get((town_id, banchi))
        if dwelling is None:
            dwelling = DwellingRow(
                disaster_id=disaster_id, lg_code=lg_code, town_id=town_id, banchi=banchi, address=address
            )
            self.s.add(dwelling)
            self.s.flush()
            dwellings[(town_id, banchi)] = dwelling
        row = VictimRow(**_victim_values(disaster_id, lg_code, r, address, dwelling.id, now))
        self.s.add(row)
        return row

    def victims(self, disaster: str, lg_code: str, *, household_no: str | None = None) -> list[VictimView]:
        view, _ = self._part(disaster, lg_code)
        stmt = select(VictimRow).where(VictimRow.disaster_id == view.id, VictimRow.lg_code == lg_code)
        if household_no:
            stmt = stmt.where(VictimRow.household_no == household_no)
        rows = self.s.scalars(stmt.order_by(VictimRow.household_no, VictimRow.id)).all()
        _audit(
            self.s,
            self.clock.now(),
            self.principal.actor,
            lg_code,
            "被災者台帳閲覧",
            [r.resident_code for r in rows],
            disaster_id=view.id,
        )
        return [VictimView.of(r) for r in rows]

    # -- dwellings and surveys

    def dwellings(self, disaster: str, lg_code: str) -> list[DwellingView]:
        view, _ = self._part(disaster, lg_code)
        rows = self.s.scalars(
            select(DwellingRow)
            .where(DwellingRow.disaster_id == view.id, DwellingRow.lg_code == lg_code)
            .order_by(DwellingRow.town_id, DwellingRow.banchi)
        )
        return [DwellingView.of(r) for r in rows]

    def _dwelling(self, dwelling_id: int) -> tuple[DwellingRow, DisasterView]:
        row = self.s.get(DwellingRow, dwelling_id)
        if row is None:
            raise NotFound("被災住家", str(dwelling_id))
        view, _ = self._part(row.disaster_id, row.lg_code)
        return row, view

    def record_survey(
        self,
        dwelling_id: int,
        *,
        damage_ratio: float,
        surveyed_on: dt.date,
        round: int | SurveyRound = SurveyRound.FIRST,
        note: str | None = None,
    ) -> SurveyView:
        """A 被害認定調査: the grade follows from the 損害割合 (:func:`models.grade_for_ratio`); the
        dwelling takes the grade of its latest survey. A first survey after a second is refused."""
        row, view = self._dwelling(dwelling_id)
        survey_round = SurveyRound.parse(round)
        grade = grade_for_ratio(damage_ratio)
        if surveyed_on < view.occurred_on:
            raise InvalidInput("調査日", "must not be before the disaster")
        if surveyed_on > self.clock.today():
            raise InvalidInput("調査日", "must not be in the future")
        note = check_text("備考", note, max_length=MAX_NOTE_LENGTH, required=False) or None
        last = self.s.scalar(select(func.max(SurveyRow.round)).where(SurveyRow.dwelling_id == row.id))
        if last is not None and survey_round < last:
            raise RuleViolation("調査区分", "a first survey cannot follow a second one")
        survey = SurveyRow(
            dwelling_id=row.id,
            round=int(survey_round),
            damage_ratio=float(damage_ratio),
            grade=grade.value,
            surveyed_on=surveyed_on,
            surveyor=self.principal.actor,
            note=note,
            recorded_at=self.clock.now(),
        )
        self.s.add(survey)
        row.grade, row.surveyed_on = grade.value, surveyed_on
        self.s.flush()
        return SurveyView(
            survey.id, row.id, survey_round, survey.damage_ratio, grade, surveyed_on, survey.surveyor, note
        )

    def surveys(self, dwelling_id: int) -> list[SurveyView]:
        row, _ = self._dwelling(dwelling_id)
        return [
            SurveyView(
                s.id,
                row.id,
                SurveyRound(s.round),
                s.damage_ratio,
                DamageGrade(s.grade),
                s.surveyed_on,
                s.surveyor,
                s.note,
            )
            for s in self.s.scalars(
                select(SurveyRow).where(SurveyRow.dwelling_id == row.id).order_by(SurveyRow.id)
            )
        ]

    # -- applications at the counter, and decisions

    def apply_at_counter(self, disaster: str, lg_code: str, resident_code: str) -> ApplicationView:
        view, _ = self._part(disaster, lg_code)
        code = str(ResidentCode.parse(resident_code))
        return _apply(self.s, self.clock, view, code, Channel.COUNTER, self.principal.actor, lg_code=lg_code)

    def applications(
        self, disaster: str, lg_code: str, *, status: ApplicationStatus | None = None
    ) -> list[ApplicationView]:
        view, _ = self._part(disaster, lg_code)
        stmt = select(DamageApplicationRow).where(
            DamageApplicationRow.disaster_id == view.id, DamageApplicationRow.lg_code == lg_code
        )
        if status:
            stmt = stmt.where(DamageApplicationRow.status == status.value)
        rows = self.s.scalars(stmt.order_by(DamageApplicationRow.id)).all()
        _audit(
            self.s,
            self.clock.now(),
            self.principal.actor,
            lg_code,
            "罹災証明書申請一覧",
            [r.resident_code for r in rows],
            disaster_id=view.id,
        )
        return [ApplicationView.of(r) for r in rows]

    def decide(self, application: str, *, approve: bool, reason: str | None = None) -> ApplicationView:
        """交付決定 (the grade of the dwelling's latest survey is fixed on the application) or 却下
        (with a reason). Only a received application is decided."""
        row = self.s.get(DamageApplicationRow, (application or "").strip())
        if row is None:
            raise NotFound("罹災証明書申請", application)
        self._part(row.disaster_id, row.lg_code)
        if row.status != ApplicationStatus.RECEIVED:
            raise RuleViolation("状態", "must be received", f"申請 {row.id} は決定済みです")
        now = self.clock.now()
        if approve:
            dwelling = self.s.get(DwellingRow, row.dwelling_id)
            assert dwelling is not None
            if not dwelling.grade:
                raise RuleViolation(
                    "被害認定調査",
                    "the dwelling must be surveyed before a decision",
                    "被災住家の被害認定調査が済んでいません",
                )
            row.status, row.grade, row.reason = ApplicationStatus.APPROVED.value, dwelling.grade, None
        else:
            text = check_text("却下理由", reason, max_length=MAX_NOTE_LENGTH)
            row.status, row.reason = ApplicationStatus.REJECTED.value, text
        row.decided_at, row.decided_by = now, self.principal.actor
        self.s.flush()
        return ApplicationView.of(row)


def _victim_values(
    disaster_id: str, lg_code: str, r: Any, address: str, dwelling_id: int, now: dt.datetime
) -> dict[str, Any]:
    """A victim-register row from a register row (the columns of ``_VICTIM_COLUMNS``)."""
    given, given_kana = r.given_name, r.given_kana
    return {
        "disaster_id": disaster_id,
        "lg_code": lg_code,
        "resident_code": r.resident_code,
        "household_no": r.household_no,
        "relationship": r.relationship,
        "name": f"{r.family_name}\u3000{given}" if given else r.family_name,
        "name_kana": f"{r.family_kana}\u3000{given_kana}" if given_kana else r.family_kana,
        "birth_date": r.birth_date,
        "sex": r.sex,
        "address": address,
        "dwelling_id": dwelling_id,
        "register_status": r.status,
        "listed_at": now,
    }


def _apply(
    session: Session,
    clock: Clock,
    view: DisasterView,
    resident_code: str,
    channel: Channel,
    actor: str,
    *,
    lg_code: str | None = None,
) -> ApplicationView:
    if view.closed:
        raise RuleViolation(
            "災害", "must still accept applications", f"{view.name} の申請受付は終了しています"
        )
    stmt = select(VictimRow).where(VictimRow.disaster_id == view.id, VictimRow.resident_code == resident_code)
    if lg_code:
        stmt = stmt.where(VictimRow.lg_code == lg_code)
    victim = session.scalars(stmt).first()
    if victim is None:
        raise RuleViolation(
            "被災者台帳",
            "the applicant must be listed in the victim register",
            "被災者台帳に登載されていません",
        )
    open_query = select(DamageApplicationRow.id).where(
        DamageApplicationRow.disaster_id == view.id,
        DamageApplicationRow.resident_code == resident_code,
        DamageApplicationRow.status != ApplicationStatus.REJECTED.value,
    )
    open_app = session.scalars(open_query).first()
    if open_app is not None:
        raise RuleViolation(
            "罹災証明書申請",
            "at most one open or approved application per person",
            f"既に申請があります ({open_app})",
        )
    now = clock.now()
    for attempt in range(ID_ATTEMPTS):
        number = session.scalar(
            select(func.count())
            .select_from(DamageApplicationRow)
            .where(DamageApplicationRow.disaster_id == view.id)
        )
        row = DamageApplicationRow(
            id=application_id(view.id, int(number or 0) + 1),
            disaster_id=view.id,
            lg_code=victim.lg_code,
            resident_code=resident_code,
            household_no=victim.household_no,
            dwelling_id=victim.dwelling_id,
            channel=channel.value,
            applied_at=now,
            applied_by=actor,
            status=ApplicationStatus.RECEIVED.value,
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            break
        except IntegrityError:
            # Either the same person applied at the same moment (the unique index), or another
            # application took the number: the first is a refusal, the second a retry.
            if session.scalars(open_query).first() is not None:
                raise RuleViolation(
                    "罹災証明書申請",
                    "at most one open or approved application per person",
                    "既に申請があります",
                ) from None
            if attempt == ID_ATTEMPTS - 1:
                raise RuleViolation("受付番号", "could not be allocated; try again") from None
    _audit(session, now, actor, victim.lg_code, "罹災証明書申請", [resident_code], disaster_id=view.id)
    return ApplicationView.of(row)


# ------------------------------------------------------------------------------------ the resident


class ResidentDesk:
    """What a resident identified by their card does online: see the disasters they are listed
    for, apply for a 罹災証明書, follow their applications. Their own data only."""

    def __init__(self, session: Session, clock: Clock, holder: CardHolder) -> None:
        self.s = session
        self.clock = clock
        self.holder = holder

    def disasters(self) -> list[DisasterView]:
        rows = self.s.execute(
            select(VictimRow.disaster_id, VictimRow.lg_code).where(
                VictimRow.resident_code == self.holder.resident_code
            )
        ).all()
        self._audit("被災者台帳(本人)", rows[0].lg_code if rows else self.holder.lg_code)
        return [get_disaster(self.s, d) for d in sorted({r.disaster_id for r in rows}, reverse=True)]

    def apply(self, disaster: str) -> ApplicationView:
        view = get_disaster(self.s, disaster)
        return _apply(self.s, self.clock, view, self.holder.resident_code, Channel.ONLINE, self.holder.actor)

    def applications(self) -> list[ApplicationView]:
        rows = self.s.scalars(
            select(DamageApplicationRow)
            .where(DamageApplicationRow.resident_code == self.holder.resident_code)
            .order_by(DamageApplicationRow.applied_at.desc())
        ).all()
        self._audit("罹災証明書申請(本人)", rows[0].lg_code if rows else self.holder.lg_code)
        return [ApplicationView.of(r) for r in rows]

    def _audit(self, purpose: str, lg_code: str) -> None:
        """A resident reading their own data is recorded too (it shows in their disclosure)."""
        _audit(self.s, self.clock.now(), self.holder.actor, lg_code, purpose, [self.holder.resident_code])
