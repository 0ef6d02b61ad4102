"""A minimal 戸籍 kept by the 本籍 municipality, and 本籍地利用登録.

Only what a 戸籍全部事項証明書 prints: the 本籍 and 筆頭者, the 戸籍事項 (編製), and each person
entered with parents, 続柄 and 身分事項; a person's 除籍 (death, marriage into another 戸籍) is
marked, never deleted. A member carries the 住民票コード that the 戸籍の附票 links to it, which is
how the certificate server finds the 戸籍 of the resident the kiosk authenticated.

A person who lives elsewhere obtains 戸籍 certificates at a kiosk only after 本籍地利用登録 with
the 本籍 municipality (facts §6.3): applied for at the kiosk (:meth:`KosekiBook.apply_use`, pending),
checked and approved or rejected by the 本籍 municipality's staff (:meth:`KosekiBook.decide`; an
approval makes the registration), or registered at the counter (:meth:`KosekiBook.register_use`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jlis.auth.models import Principal, PrincipalKind
from jlis.clock import Clock
from jlis.codes import LgCode, ResidentCode
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.kiosk.issuer.access import ACCESS_LOG, SYSTEM, audit_read, require_keeper, require_reader
from jlis.kiosk.issuer.errors import IssuanceRefused, RefusalReason
from jlis.kiosk.issuer.models import HonsekiApplication, Koseki, KosekiEvent, KosekiMember
from jlis.kiosk.issuer.seals import RegisterFactory
from jlis.kiosk.issuer.tables import (
    APPROVED,
    PENDING,
    REJECTED,
    HonsekiApplicationRow,
    HonsekiUseRow,
    KosekiMemberRow,
    KosekiRow,
)
from jlis.masters import Geography
from jlis.registry import ResidentView, Sex, Status
from jlis.registry.models import MAX_ADDRESS_LENGTH, check_name, check_text
from jlis.registry.service import active_codes

DEATH = "死亡"
MAX_REASON = 200  # characters of a rejection's reason
MAX_LISTED = 500  # applications listed at once


@dataclass(frozen=True)
class NewMember:
    """A person to enter in a new 戸籍."""

    family_name: str
    given_name: str
    birth_date: dt.date
    sex: Sex
    father: str
    mother: str
    relationship: str
    resident_code: str | None = None
    events: tuple[KosekiEvent, ...] = ()


def _member(row: KosekiMemberRow) -> KosekiMember:
    events = tuple(
        KosekiEvent(dt.date.fromisoformat(d), label, text) for d, label, text in json.loads(row.events)
    )
    return KosekiMember(
        position=row.position,
        resident_code=row.resident_code,
        family_name=row.family_name,
        given_name=row.given_name,
        birth_date=row.birth_date,
        sex=row.sex,
        father=row.father,
        mother=row.mother,
        relationship=row.relationship,
        events=events,
        removed=row.removed,
        removed_reason=row.removed_reason,
    )


def _application(row: HonsekiApplicationRow) -> HonsekiApplication:
    return HonsekiApplication(
        id=row.id,
        lg_code=row.lg_code,
        resident_code=row.resident_code,
        head_family_name=row.head_family_name,
        head_given_name=row.head_given_name,
        kiosk_id=row.kiosk_id,
        applied_at=row.applied_at,
        state=row.state,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        reason=row.reason,
    )


def _events_json(events: Iterable[KosekiEvent]) -> str:
    return json.dumps([[e.date.isoformat(), e.label, e.text] for e in events], ensure_ascii=False)


def _full_name(field: str, value: str) -> str:
    """A checked 氏名 with the full-width blank 戸籍 prints between 氏 and 名 (NFKC folds it)."""
    return check_name(field, value, required=False).replace(" ", "\u3000")


class KosekiBook:
    """The 戸籍 of one 本籍 municipality, for one acting principal."""

    def __init__(self, session: Session, clock: Clock, lg_code: str, principal: Principal) -> None:
        self.s = session
        self.clock = clock
        self.lg_code = str(LgCode.parse(lg_code))
        self.principal = principal

    # ------------------------------------------------------------------ keeping

    def create(
        self,
        honseki: str,
        *,
        made_on: dt.date,
        made_reason: str,
        members: Sequence[NewMember],
    ) -> Koseki:
        """編製: a new 戸籍 whose first member is the 筆頭者."""
        require_keeper(self.principal, self.lg_code)
        place = str(check_text("本籍", honseki, max_length=MAX_ADDRESS_LENGTH, required=True))
        reason = check_name("編製事由", made_reason)
        if not members:
            raise InvalidInput("戸籍に記録されている者", "must list at least the 筆頭者")
        if made_on > self.clock.today():
            raise InvalidInput("編製日", "must not be in the future")
        codes = [m.resident_code for m in members if m.resident_code]
        if len(set(codes)) != len(codes):
            raise InvalidInput("住民票コード", "must not repeat within a 戸籍")
        head = members[0]
        family, given = check_name("筆頭者の氏", head.family_name), check_name("筆頭者の名", head.given_name)
        exists = self.s.execute(
            select(KosekiRow.id).where(
                KosekiRow.lg_code == self.lg_code,
                KosekiRow.honseki == place,
                KosekiRow.head_family_name == family,
                KosekiRow.head_given_name == given,
            )
        ).first()
        if exists:
            raise RuleViolation("戸籍", "a 戸籍 with this 本籍 and 筆頭者 already exists")
        row = KosekiRow(
            lg_code=self.lg_code,
            honseki=place,
            head_family_name=family,
            head_given_name=given,
            made_on=made_on,
            made_reason=reason,
        )
        self.s.add(row)
        self.s.flush()
        for position, m in enumerate(members, start=1):
            if m.birth_date > self.clock.today():
                raise InvalidInput("生年月日", "must not be in the future")
            self.s.add(
                KosekiMemberRow(
                    koseki_id=row.id,
                    position=position,
                    resident_code=str(ResidentCode.parse(m.resident_code)) if m.resident_code else None,
                    family_name=check_name("氏", m.family_name),
                    given_name=check_name("名", m.given_name),
                    birth_date=m.birth_date,
                    sex=Sex(m.sex).value,
                    father=_full_name("父", m.father),
                    mother=_full_name("母", m.mother),
                    relationship=check_name("続柄", m.relationship),
                    events=_events_json(m.events),
                    removed=False,
                    removed_reason=None,
                )
            )
        self.s.flush()
        return self._koseki(row)

    def remove_member(self, resident_code: str, *, reason: str, on: dt.date, text: str = "") -> Koseki:
        """除籍 (死亡, 婚姻 ...): the member stays, marked, with the event among the 身分事項."""
        require_keeper(self.principal, self.lg_code)
        code = str(ResidentCode.parse(resident_code))
        reason = check_name("除籍事由", reason)
        if on > self.clock.today():
            raise InvalidInput("除籍日", "must not be in the future")
        row = self._member_row(code)
        if row is None or row.removed:
            raise NotFound("戸籍に記録されている者", code)
        events = [*json.loads(row.events), [on.isoformat(), reason, text]]
        row.events = json.dumps(events, ensure_ascii=False)
        row.removed, row.removed_reason = True, reason
        self.s.flush()
        koseki = self.s.get(KosekiRow, row.koseki_id)
        assert koseki is not None  # a foreign key
        return self._koseki(koseki)

    # ------------------------------------------------------------------ reading

    def for_person(self, resident_code: str, *, purpose: str = "戸籍照会") -> Koseki | None:
        """The 戸籍 here in which the person is entered (the current entry before a 除籍 one), or
        None; audited when found."""
        require_reader(self.principal, self.lg_code)
        code = str(ResidentCode.parse(resident_code))
        row = self._member_row(code, include_removed=True)
        if row is None:
            return None
        koseki = self.s.get(KosekiRow, row.koseki_id)
        assert koseki is not None
        audit_read(self.s, self.clock, self.principal, self.lg_code, code, purpose, {"koseki_id": koseki.id})
        return self._koseki(koseki)

    # ------------------------------------------------------------------ 本籍地利用登録

    def register_use(self, resident_code: str) -> None:
        """本籍地利用登録 for a person entered (not 除籍) in a 戸籍 here; staff at the counter, or the
        issuance center for the resident its card authentication identified."""
        require_reader(self.principal, self.lg_code)
        code = str(ResidentCode.parse(resident_code))
        member = self._member_row(code)
        if member is None:
            raise RuleViolation("戸籍", "the person is not entered in a 戸籍 of this municipality")
        if self.use_registered(code):
            raise RuleViolation("本籍地利用登録", "the person is already registered")
        self.s.add(
            HonsekiUseRow(
                lg_code=self.lg_code,
                resident_code=code,
                koseki_id=member.koseki_id,
                registered_at=self.clock.now(),
                registered_by=self.principal.actor,
            )
        )
        self.s.flush()

    def cancel_use(self, resident_code: str) -> None:
        require_keeper(self.principal, self.lg_code)
        row = self._use_row(str(ResidentCode.parse(resident_code)))
        if row is None:
            raise NotFound("本籍地利用登録", resident_code)
        row.cancelled_at = self.clock.now()
        self.s.flush()

    def use_registered(self, resident_code: str) -> bool:
        require_reader(self.principal, self.lg_code)
        return self._use_row(str(ResidentCode.parse(resident_code))) is not None

    # ------------------------------------------------------------------ 本籍地利用登録申請 (kiosk)

    def apply_use(
        self, resident_code: str, head_family_name: str, head_given_name: str, *, kiosk_id: str | None = None
    ) -> HonsekiApplication:
        """本籍地利用登録申請 made at a kiosk by the resident the issuance center authenticated:
        recorded as ``pending`` for the staff here to check (nothing is checked against the 戸籍
        now, so the kiosk learns nothing of it). Refused (:class:`IssuanceRefused`) while one is
        pending or once the person is registered; the 筆頭者's name is checked like any name."""
        require_reader(self.principal, self.lg_code)
        code = str(ResidentCode.parse(resident_code))
        family = check_name("筆頭者の氏", head_family_name)
        given = check_name("筆頭者の名", head_given_name)
        if self.use_registered(code):
            raise IssuanceRefused(RefusalReason.HONSEKI_USE_REGISTERED, "already registered")
        pending = RefusalReason.HONSEKI_USE_PENDING
        if self._pending_row(code) is not None:
            raise IssuanceRefused(pending, "an application is pending")
        row = HonsekiApplicationRow(
            lg_code=self.lg_code,
            resident_code=code,
            head_family_name=family,
            head_given_name=given,
            kiosk_id=kiosk_id,
            applied_at=self.clock.now(),
            applied_by=self.principal.actor,
            state=PENDING,
        )
        savepoint = self.s.begin_nested()  # a concurrent twin hits the partial unique index
        try:
            self.s.add(row)
            self.s.flush()
        except IntegrityError:
            savepoint.rollback()
            raise IssuanceRefused(pending, "an application is pending") from None
        savepoint.commit()
        self._audit_write("honseki_use.apply", row)
        return _application(row)

    def applications(
        self, state: str | None = PENDING, *, limit: int = MAX_LISTED
    ) -> list[HonsekiApplication]:
        """The applications here (``state`` None: all), oldest first; each listed one is audited."""
        require_keeper(self.principal, self.lg_code)
        t = HonsekiApplicationRow
        stmt = select(t).where(t.lg_code == self.lg_code)
        if state is not None:
            if state not in (PENDING, APPROVED, REJECTED):
                raise InvalidInput("状態", f"must be one of {PENDING}, {APPROVED}, {REJECTED}")
            stmt = stmt.where(t.state == state)
        rows = list(self.s.scalars(stmt.order_by(t.applied_at, t.id).limit(max(1, min(limit, MAX_LISTED)))))
        now = self.clock.now()
        ACCESS_LOG.append_many(
            self.s,
            [
                {
                    "at": now,
                    "actor": self.principal.actor,
                    "action": "read",
                    "subject": r.resident_code,
                    "details": {
                        "system": SYSTEM,
                        "lg_code": self.lg_code,
                        "purpose": "本籍地利用登録申請の確認",
                        "application_id": r.id,
                    },
                }
                for r in rows
            ],
        )
        return [_application(r) for r in rows]

    def decide(self, application_id: int, *, approve: bool, reason: str | None = None) -> HonsekiApplication:
        """The staff's decision on a pending application. Approval checks that the applicant is
        entered (not 除籍) in a 戸籍 here whose 筆頭者 is the name applied with, then makes the
        registration (:class:`HonsekiUseRow`); a rejection needs its reason. Both are audited."""
        require_keeper(self.principal, self.lg_code)
        why = check_text("却下の理由", reason, max_length=MAX_REASON, required=not approve)
        t = HonsekiApplicationRow
        row = self.s.execute(
            select(t).where(t.id == application_id, t.lg_code == self.lg_code).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise NotFound("本籍地利用登録申請", str(application_id))
        if row.state != PENDING:
            raise RuleViolation("本籍地利用登録申請", f"must be pending (it is {row.state})")
        if approve:
            member = self._member_row(row.resident_code)
            koseki = self.s.get(KosekiRow, member.koseki_id) if member is not None else None
            if koseki is None:
                raise RuleViolation("戸籍", "the applicant is not entered in a 戸籍 of this municipality")
            head = (koseki.head_family_name, koseki.head_given_name)
            if head != (row.head_family_name, row.head_given_name):
                raise RuleViolation("筆頭者", "must be the 筆頭者 of the applicant's 戸籍")
            use = self._use_row(row.resident_code)
            if use is None:
                use = HonsekiUseRow(
                    lg_code=self.lg_code,
                    resident_code=row.resident_code,
                    koseki_id=koseki.id,
                    registered_at=self.clock.now(),
                    registered_by=self.principal.actor,
                )
                self.s.add(use)
                self.s.flush()
            row.honseki_use_id = use.id
        row.state = APPROVED if approve else REJECTED
        row.decided_at, row.decided_by, row.reason = self.clock.now(), self.principal.actor, why
        self.s.flush()
        self._audit_write("honseki_use.approve" if approve else "honseki_use.reject", row)
        return _application(row)

    def _pending_row(self, code: str) -> HonsekiApplicationRow | None:
        t = HonsekiApplicationRow
        return self.s.execute(
            select(t).where(t.lg_code == self.lg_code, t.resident_code == code, t.state == PENDING)
        ).scalar_one_or_none()

    def _audit_write(self, action: str, row: HonsekiApplicationRow) -> None:
        details = {"system": SYSTEM, "lg_code": self.lg_code, "application_id": row.id, "state": row.state}
        if row.kiosk_id:
            details["kiosk_id"] = row.kiosk_id
        if row.reason:
            details["reason"] = row.reason
        if row.honseki_use_id:
            details["honseki_use_id"] = row.honseki_use_id
        ACCESS_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=self.principal.actor,
            action=action,
            subject=row.resident_code,
            details=details,
        )

    # ------------------------------------------------------------------ internals

    def _use_row(self, code: str) -> HonsekiUseRow | None:
        t = HonsekiUseRow
        return self.s.execute(
            select(t).where(t.lg_code == self.lg_code, t.resident_code == code, t.cancelled_at.is_(None))
        ).scalar_one_or_none()

    def _member_row(self, code: str, *, include_removed: bool = False) -> KosekiMemberRow | None:
        m, k = KosekiMemberRow, KosekiRow
        stmt = (
            select(m)
            .join(k, k.id == m.koseki_id)
            .where(k.lg_code == self.lg_code, m.resident_code == code)
            .order_by(m.removed, m.id.desc())
        )
        if not include_removed:
            stmt = stmt.where(m.removed.is_(False))
        return self.s.execute(stmt.limit(1)).scalar_one_or_none()

    def _koseki(self, row: KosekiRow) -> Koseki:
        members = self.s.execute(
            select(KosekiMemberRow)
            .where(KosekiMemberRow.koseki_id == row.id)
            .order_by(KosekiMemberRow.position)
        ).scalars()
        return Koseki(
            id=row.id,
            lg_code=row.lg_code,
            honseki=row.honseki,
            head_name=f"{row.head_family_name}\u3000{row.head_given_name}",
            made_on=row.made_on,
            made_reason=row.made_reason,
            members=tuple(_member(r) for r in members),
        )


# ----------------------------------------------------------------------------------------- seeding

_MALE_GIVEN = ("一郎", "正夫", "清", "茂", "実", "博", "隆", "和夫", "勝", "進")
_FEMALE_GIVEN = ("花子", "和子", "幸子", "節子", "洋子", "恵子", "京子", "美智子", "久子", "順子")
_ORDINALS = ("長", "二", "三", "四", "五", "六")


def _order(sex: Sex, n: int) -> str:
    prefix = _ORDINALS[n] if n < len(_ORDINALS) else f"{n + 1}"
    return prefix + ("男" if sex is Sex.MALE else "女")


def _parents(p: ResidentView, is_spouse: bool, rng: random.Random) -> tuple[str, str]:
    """Made-up parents' names; a spouse who took the other's surname was born under the 旧氏."""
    surname = p.former_surname if is_spouse and p.former_surname else p.name.family
    return f"{surname}\u3000{rng.choice(_MALE_GIVEN)}", f"{surname}\u3000{rng.choice(_FEMALE_GIVEN)}"


def family_drafts(
    household: Sequence[ResidentView], geography: Geography, seed: bytes, today: dt.date
) -> list[tuple[str, str, dt.date, str, list[NewMember]]]:
    """The 戸籍 a household's members suggest: one per (本籍地, 本籍, 氏) among the 世帯主, the
    spouse and the children; parents' names are made up from ``seed``, deterministically.
    Returns (本籍 lg_code, 本籍, 編製日, 編製事由, members with the 筆頭者 first); no date after
    ``today`` (a young 世帯主's 戸籍 is made today). Pure."""
    groups: dict[tuple[str, str, str], list[ResidentView]] = {}
    for p in household:
        if p.honseki_lg_code and p.honseki and p.relationship in ("世帯主", "妻", "夫", "子"):
            groups.setdefault((p.honseki_lg_code, p.honseki, p.name.family), []).append(p)
    out = []
    for (lg, honseki, _family), people in sorted(groups.items()):
        couple = [p for p in people if p.relationship in ("世帯主", "妻", "夫")]
        if not couple:
            continue  # children alone: their 戸籍 is their parents', not seeded here
        couple.sort(key=lambda p: (p.relationship != "世帯主", p.id))
        children = sorted((p for p in people if p.relationship == "子"), key=lambda p: (p.birth_date, p.id))
        head: ResidentView = couple[0]
        spouse: ResidentView | None = couple[1] if len(couple) > 1 else None
        if spouse is not None and spouse.sex is Sex.MALE and head.sex is Sex.FEMALE:
            head, spouse = spouse, couple[0]  # the 筆頭者: the one whose surname the couple kept
        rng = random.Random(hashlib.sha256(seed + f"|{head.resident_code}".encode()).digest())
        place = geography.municipality(lg).name

        eldest = children[0].birth_date if children else None
        married_on = None
        if spouse is not None:
            guess = max(head.birth_date, spouse.birth_date) + dt.timedelta(
                days=365 * 26 + rng.randrange(0, 1500)
            )
            married_on = min(guess, eldest - dt.timedelta(days=300)) if eldest else guess
            married_on = max(
                married_on, max(head.birth_date, spouse.birth_date) + dt.timedelta(days=365 * 18 + 5)
            )
            married_on = min(married_on, today)
        made_on = min(married_on or (head.birth_date + dt.timedelta(days=365 * 20 + 5)), today)
        members = []
        for p in (head, spouse) if spouse is not None else (head,):
            father, mother = _parents(p, p is spouse, rng)
            n = rng.randrange(0, 2)
            events = [KosekiEvent(p.birth_date, "出生", f"【出生地】{place}")]
            if married_on is not None:
                partner = spouse if p is head else head
                assert partner is not None
                events.append(KosekiEvent(married_on, "婚姻", f"【配偶者氏名】{partner.name.full}"))
            relationship = _order(p.sex, n)  # 父母との続柄; 夫/妻 shows in the 婚姻 事項
            members.append(
                NewMember(
                    p.name.family,
                    p.name.given,
                    p.birth_date,
                    p.sex,
                    father,
                    mother,
                    relationship,
                    p.resident_code,
                    tuple(events),
                )
            )
        counts = {Sex.MALE: 0, Sex.FEMALE: 0}
        for c in children:
            father = head.name.full if head.sex is Sex.MALE else (spouse.name.full if spouse else "")
            mother = head.name.full if head.sex is Sex.FEMALE else (spouse.name.full if spouse else "")
            rel = _order(c.sex, counts[c.sex])
            counts[c.sex] += 1
            members.append(
                NewMember(
                    c.name.family,
                    c.name.given,
                    c.birth_date,
                    c.sex,
                    father,
                    mother,
                    rel,
                    c.resident_code,
                    (KosekiEvent(c.birth_date, "出生", f"【出生地】{place}"),),
                )
            )
        out.append((lg, honseki, made_on, "婚姻" if married_on else "分籍", members))
    return out


def seed_koseki(
    session: Session,
    clock: Clock,
    residence_lg_codes: Iterable[str],
    registry: RegisterFactory,
    geography: Geography,
    *,
    seed: bytes,
    actor: str = "kiosk-seed",
) -> int:
    """Make the 戸籍 of the current residents of ``residence_lg_codes`` at their 本籍 municipalities
    (which need not be among them), from the register: idempotent, deterministic for a seed.
    Acts as a tool principal named ``actor`` (staff of each municipality it reads or writes); the
    register audits its reads. Returns the number of 戸籍 made."""
    made = 0
    for lg in sorted({str(LgCode.parse(c)) for c in residence_lg_codes}):
        register = registry(session, lg, actor)
        households: dict[int, list[ResidentView]] = {}
        for code in sorted(active_codes(session, lg)):
            person = register.find_by_code(code)
            if person.status is Status.ACTIVE:
                households.setdefault(person.household_id, []).append(person)
        for hid in sorted(households):
            for honseki_lg, honseki, made_on, reason, members in family_drafts(
                households[hid], geography, seed, clock.today()
            ):
                staff = Principal(
                    id=0,
                    username=actor,
                    kind=PrincipalKind.MUNICIPAL_STAFF,
                    display_name=actor,
                    lg_code=honseki_lg,
                )
                book = KosekiBook(session, clock, honseki_lg, staff)
                if any(book._member_row(m.resident_code) for m in members if m.resident_code):
                    continue  # already entered (a repeat run)
                try:
                    book.create(honseki, made_on=made_on, made_reason=reason, members=members)
                except RuleViolation:
                    continue  # the same 本籍 and 筆頭者 from another household: keep the first
                made += 1
    return made
