"""A minimal 戸籍 kept by the 本籍 municipality, and 本籍地利用登録.

Only what a 戸籍全部事項証明書 prints: the 本籍 and 筆頭者, the 戸籍事項 (編製), and each person
entered with parents, 続柄 and 身分事項; a person's 除籍 (death, marriage into another 戸籍) is
marked, never deleted. A member carries the 住民票コード that the 戸籍の附票 links to it, which is
how the certificate server finds the 戸籍 of the resident the kiosk authenticated.

A person who lives elsewhere obtains 戸籍 certificates at a kiosk only after 本籍地利用登録 with
the 本籍 municipality (facts §6.3): :meth:`KosekiBook.register_use`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.auth.models import Principal, PrincipalKind
from jlis.clock import Clock
from jlis.codes import LgCode, ResidentCode
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.kiosk.issuer.access import audit_read, require_keeper, require_reader
from jlis.kiosk.issuer.models import Koseki, KosekiEvent, KosekiMember
from jlis.kiosk.issuer.seals import RegisterFactory
from jlis.kiosk.issuer.tables import HonsekiUseRow, KosekiMemberRow, KosekiRow
from jlis.masters import Geography
from jlis.registry import ResidentView, Sex, Status
from jlis.registry.models import MAX_ADDRESS_LENGTH, check_name, check_text
from jlis.registry.service import active_codes

DEATH = "死亡"


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
