"""Synthetic population: households of Faker ja_JP people at real addresses of the town master,
ages 0 to 100, a realistic share of foreign residents (with some 通称) and of people with a 旧氏.

Generation is pure (a seeded ``random.Random`` and Faker instance); writing goes through the bulk
path in chunks, one transaction per chunk. The seeded people are an initial load (初期移行): each
municipality's register gets them with one history entry 「初期登録」, and every tier of the
network gets its copy directly, as when Juki-net first went live, rather than as 1,000,000
change messages.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from faker import Faker
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.bulk import bulk_insert, bump_sequence
from jlis.clock import Clock
from jlis.codes import NumberAuthority
from jlis.db import transaction
from jlis.masters import Geography, Town
from jlis.registry.events import FuhyoNotice, IdentityRecord
from jlis.registry.models import ABROAD, ChangeReason, Sex, Status
from jlis.registry.service import snapshot
from jlis.registry.tables import HistoryRow, HouseholdRow, ResidentRow

# Household sizes in Japan (2020 census, rounded): many single people, few large households.
HOUSEHOLD_SIZES = [(1, 0.38), (2, 0.28), (3, 0.16), (4, 0.12), (5, 0.06)]
FOREIGN_SHARE = 0.03  # about 3 % of residents (出入国在留管理庁, 2024)
ALIAS_SHARE = 0.15  # of foreign residents, those who registered a 通称
FORMER_SURNAME_SHARE = 0.05  # of married people who changed their surname, those with 旧氏併記
SAME_HONSEKI_SHARE = 0.55  # of Japanese residents whose 本籍 is where they live

# Synthetic foreign names (family, given, katakana family, katakana given, nationality).
FOREIGN_PEOPLE = [
    ("WANG", "WEI", "ワン", "ウェイ", "中国"),
    ("LI", "NA", "リ", "ナ", "中国"),
    ("ZHANG", "MIN", "チャン", "ミン", "中国"),
    ("NGUYEN", "VAN AN", "グエン", "ヴァン\u3000アン", "ベトナム"),
    ("TRAN", "THI HOA", "チャン", "ティ\u3000ホア", "ベトナム"),
    ("KIM", "MINJUN", "キム", "ミンジュン", "韓国"),
    ("PARK", "JIYEON", "パク", "ジヨン", "韓国"),
    ("SANTOS", "MARIA", "サントス", "マリア", "フィリピン"),
    ("REYES", "JOSE", "レジェス", "ホセ", "フィリピン"),
    ("SILVA", "LUCAS", "シルバ", "ルカス", "ブラジル"),
    ("SHRESTHA", "ANIL", "シュレスタ", "アニル", "ネパール"),
    ("SMITH", "EMILY", "スミス", "エミリー", "米国"),
]
DEFAULT_LG_CODES = [
    "131016",  # 千代田区
    "141011",  # 横浜市鶴見区
    "131041",  # 新宿区
    "142042",  # 鎌倉市
    "132012",  # 八王子市
    "141313",  # 川崎市川崎区
    "131130",  # 渋谷区
    "142018",  # 横須賀市
    "132021",  # 立川市
    "141020",  # 横浜市神奈川区
]


@dataclass
class SeedReport:
    municipalities: list[str]
    residents: int = 0
    households: int = 0
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)


@dataclass
class PersonDraft:
    family: str
    given: str
    family_kana: str
    given_kana: str
    sex: Sex
    birth_date: dt.date
    relationship: str
    nationality: str = "JP"
    former_surname: str | None = None
    former_surname_kana: str | None = None
    alias: str | None = None


@dataclass
class HouseholdDraft:
    lg_code: str
    town: Town
    banchi: str
    members: list[PersonDraft]
    honseki_lg_code: str | None
    honseki: str | None
    since: dt.date


def choose_municipalities(geo: Geography, count: int) -> list[str]:
    """The first ``count`` of a fixed list spanning Tokyo and Kanagawa (so propagation crosses two
    prefectures), then further hosting municipalities in code order."""
    chosen = [c for c in DEFAULT_LG_CODES if _hosts(geo, c)][:count]
    if len(chosen) < count:
        for m in geo.municipalities(hosting_only=True):
            if m.lg_code not in chosen:
                chosen.append(m.lg_code)
                if len(chosen) == count:
                    break
    return chosen


def _hosts(geo: Geography, lg_code: str) -> bool:
    try:
        return geo.municipality(lg_code).hosts_register
    except Exception:
        return False


class PopulationGenerator:
    """Pure generation of households; the same seed gives the same people."""

    def __init__(self, geo: Geography, lg_codes: Sequence[str], today: dt.date, seed: int = 0) -> None:
        self.geo = geo
        self.lg_codes = list(lg_codes)
        self.today = today
        self.rng = random.Random(seed)
        self.fake = Faker("ja_JP")
        self.fake.seed_instance(seed)
        self.towns: dict[str, Sequence[Town]] = {lg: geo.towns(lg) for lg in self.lg_codes}
        for lg, towns in self.towns.items():
            if not towns:
                raise ValueError(f"municipality {lg} has no towns in the master")
        self.honseki_pool = [m.lg_code for m in geo.municipalities(hosting_only=True)]
        self._honseki_towns: dict[str, Sequence[Town]] = {}

    def households(self, residents: int) -> Iterator[HouseholdDraft]:
        made = 0
        sizes, weights = zip(*HOUSEHOLD_SIZES, strict=True)
        while made < residents:
            size = min(self.rng.choices(sizes, weights)[0], residents - made)
            lg = self.lg_codes[self.rng.randrange(len(self.lg_codes))]
            hh = self._household(lg, size)
            made += len(hh.members)
            yield hh

    def _birth(self, age: int) -> dt.date:
        start = self.today.replace(month=1, day=1) - dt.timedelta(days=365 * age)
        return min(self.today, start - dt.timedelta(days=self.rng.randrange(365)))

    def _japanese(self, sex: Sex, family: tuple[str, ...], age: int, rel: str) -> PersonDraft:
        pair = self.fake.first_name_male_pair() if sex is Sex.MALE else self.fake.first_name_female_pair()
        return PersonDraft(family[0], pair[0], family[1], pair[1], sex, self._birth(age), rel)

    def _household(self, lg: str, size: int) -> HouseholdDraft:
        rng = self.rng
        town = rng.choice(self.towns[lg])
        banchi = f"{rng.randint(1, 30)}番{rng.randint(1, 25)}号"
        foreign = rng.random() < FOREIGN_SHARE
        head_age = rng.randint(20, 100) if size == 1 else rng.randint(25, 80)
        members: list[PersonDraft] = []
        if foreign:
            fam, giv, fkana, gkana, nat = rng.choice(FOREIGN_PEOPLE)
            for i in range(size):
                age = (
                    head_age
                    if i == 0
                    else (max(0, head_age - rng.randint(-5, 5)) if i == 1 else rng.randint(0, 17))
                )
                sex = Sex.MALE if rng.random() < 0.5 else Sex.FEMALE
                rel = (
                    "世帯主"
                    if i == 0
                    else ("妻" if i == 1 and sex is Sex.FEMALE else ("夫" if i == 1 else "子"))
                )
                alias = None
                if rng.random() < ALIAS_SHARE:
                    alias = f"{self.fake.last_name()}\u3000{self.fake.first_name()}"
                members.append(
                    PersonDraft(fam, giv, fkana, gkana, sex, self._birth(age), rel, nat, alias=alias)
                )
        else:
            family = self.fake.last_name_pair()
            head_sex = Sex.MALE if size > 1 and rng.random() < 0.7 else rng.choice([Sex.MALE, Sex.FEMALE])
            members.append(self._japanese(head_sex, family, head_age, "世帯主"))
            if size >= 2:
                spouse_sex = Sex.FEMALE if head_sex is Sex.MALE else Sex.MALE
                spouse_age = min(100, max(20, head_age + rng.randint(-6, 6)))
                spouse = self._japanese(
                    spouse_sex, family, spouse_age, "妻" if spouse_sex is Sex.FEMALE else "夫"
                )
                if rng.random() < FORMER_SURNAME_SHARE:
                    maiden = self.fake.last_name_pair()
                    spouse.former_surname, spouse.former_surname_kana = maiden[0], maiden[1]
                members.append(spouse)
            youngest_parent = min(m.birth_date for m in members)
            max_child_age = max(0, (self.today - youngest_parent).days // 365 - 18)
            for _ in range(size - len(members)):
                sex = Sex.MALE if rng.random() < 0.51 else Sex.FEMALE
                members.append(self._japanese(sex, family, rng.randint(0, min(max_child_age, 60)), "子"))
        honseki_lg = (
            None if foreign else (lg if rng.random() < SAME_HONSEKI_SHARE else rng.choice(self.honseki_pool))
        )
        honseki = None
        if honseki_lg:
            towns = self._honseki_towns.get(honseki_lg)
            if towns is None:
                towns = self._honseki_towns[honseki_lg] = self.geo.towns(honseki_lg) or self.towns[lg]
            honseki = self.geo.address_text(rng.choice(towns).town_id, f"{rng.randint(1, 3000)}番地")
        youngest = max(m.birth_date for m in members)
        since = youngest + dt.timedelta(days=rng.randrange(max(1, (self.today - youngest).days)))
        return HouseholdDraft(lg, town, banchi, members, honseki_lg, honseki, since)


InitialLoad = Callable[[Session, list[IdentityRecord], list[FuhyoNotice]], None]


class Seeder:
    """Writes generated households in chunks through the bulk path."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        clock: Clock,
        geography: Geography,
        secret: bytes,
        initial_load: InitialLoad | None = None,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.geo = geography
        self.secret = secret
        self.initial_load = initial_load or _network_initial_load

    def run(
        self,
        lg_codes: Sequence[str],
        residents: int,
        *,
        seed: int = 0,
        chunk: int = 5000,
        progress: Callable[[int], None] | None = None,
    ) -> SeedReport:
        import time

        started = time.perf_counter()
        report = SeedReport(list(lg_codes))
        gen = PopulationGenerator(self.geo, lg_codes, self.clock.today(), seed)
        batch: list[HouseholdDraft] = []
        count = 0
        for hh in gen.households(residents):
            batch.append(hh)
            count += len(hh.members)
            if count >= chunk:
                self._write(batch, report, random.Random(seed + report.residents))
                if progress:
                    progress(count)
                batch, count = [], 0
        if batch:
            self._write(batch, report, random.Random(seed + report.residents))
            if progress:
                progress(count)
        report.seconds = time.perf_counter() - started
        return report

    def _write(self, batch: list[HouseholdDraft], report: SeedReport, rng: random.Random) -> None:
        now = self.clock.now()
        with transaction(self.factory) as s:
            next_hh = (s.execute(select(func.max(HouseholdRow.id))).scalar() or 0) + 1
            next_res = (s.execute(select(func.max(ResidentRow.id))).scalar() or 0) + 1
            numbers = NumberAuthority(s, self.secret, self.clock)
            people = [(hh, p) for hh in batch for p in hh.members]
            codes = numbers.allocate_bulk(rng, [hh.lg_code for hh, _ in people])
            households, residents, history = [], [], []
            identities: list[IdentityRecord] = []
            notices: list[FuhyoNotice] = []
            person_iter = iter(zip(people, codes, strict=True))
            for hh in batch:
                hh_id = next_hh
                next_hh += 1
                head_id = next_res
                households.append(
                    {
                        "id": hh_id,
                        "lg_code": hh.lg_code,
                        "household_no": f"{hh_id:010d}",
                        "head_resident_id": head_id,
                        "created_on": hh.since,
                    }
                )
                address = self.geo.address_text(hh.town.town_id, hh.banchi)
                for _ in hh.members:
                    (_, p), (code, my_number) = next(person_iter)
                    rid = next_res
                    next_res += 1
                    since = max(hh.since, p.birth_date)
                    row: dict[str, object] = {
                        "id": rid,
                        "lg_code": hh.lg_code,
                        "resident_code": str(code),
                        "my_number": str(my_number),
                        "household_id": hh_id,
                        "relationship": p.relationship,
                        "family_name": p.family,
                        "given_name": p.given,
                        "family_kana": p.family_kana,
                        "given_kana": p.given_kana,
                        "former_surname": p.former_surname,
                        "former_surname_kana": p.former_surname_kana,
                        "alias": p.alias,
                        "nationality": p.nationality,
                        "birth_date": p.birth_date,
                        "sex": p.sex.value,
                        "town_id": hh.town.town_id,
                        "banchi": hh.banchi,
                        "address_text": address,
                        "honseki": hh.honseki,
                        "honseki_lg_code": hh.honseki_lg_code,
                        "resident_since": max(hh.since, p.birth_date),
                        "address_since": max(hh.since, p.birth_date),
                        "notified_on": max(hh.since, p.birth_date),
                        "previous_address": None,
                        "status": Status.ACTIVE.value,
                        "last_reason": ChangeReason.INITIAL.value,
                        "last_change_date": max(hh.since, p.birth_date),
                        "removed_on": None,
                        "move_destination": None,
                        "move_destination_lg_code": None,
                        "version": 1,
                    }
                    residents.append(row)
                    history.append(
                        {
                            "resident_id": rid,
                            "version": 1,
                            "reason": ChangeReason.INITIAL.value,
                            "change_date": since,
                            "notified_on": since,
                            "recorded_at": now,
                            "staff": "seed",
                            "summary": "初期登録",
                            "snapshot": json.dumps(snapshot(row, f"{hh_id:010d}"), ensure_ascii=False),
                        }
                    )
                    record = IdentityRecord(
                        resident_code=str(code),
                        my_number=str(my_number),
                        lg_code=hh.lg_code,
                        family_name=p.family,
                        given_name=p.given,
                        family_kana=p.family_kana,
                        given_kana=p.given_kana,
                        alias=p.alias,
                        former_surname=p.former_surname,
                        birth_date=p.birth_date,
                        sex=p.sex.value,
                        address=address,
                        status=Status.ACTIVE.value,
                        reason=ChangeReason.INITIAL,
                        change_date=since,
                        recorded_at=now,
                    )
                    identities.append(record)
                    if hh.honseki_lg_code:
                        notices.append(
                            FuhyoNotice(
                                resident_code=record.resident_code,
                                honseki_lg_code=hh.honseki_lg_code,
                                honseki=hh.honseki or "",
                                family_name=p.family,
                                given_name=p.given,
                                birth_date=p.birth_date,
                                sex=p.sex.value,
                                address=address,
                                address_lg_code=hh.lg_code,
                                address_since=since,
                                reason=ChangeReason.INITIAL,
                                change_date=since,
                                recorded_at=now,
                            )
                        )
            bulk_insert(s, HouseholdRow.__table__, households)  # type: ignore[arg-type]
            bulk_insert(s, ResidentRow.__table__, residents)  # type: ignore[arg-type]
            bulk_insert(s, HistoryRow.__table__, history)  # type: ignore[arg-type]
            bump_sequence(s, HouseholdRow.__table__)  # type: ignore[arg-type]
            bump_sequence(s, ResidentRow.__table__)  # type: ignore[arg-type]
            self.initial_load(s, identities, notices)
        report.households += len(households)
        report.residents += len(residents)
        for name, n in (
            ("households", len(households)),
            ("residents", len(residents)),
            ("history", len(history)),
        ):
            report.rows[name] = report.rows.get(name, 0) + n


def _network_initial_load(
    session: Session, identities: list[IdentityRecord], notices: list[FuhyoNotice]
) -> None:
    from jlis.juki import initial_load

    initial_load(session, identities, notices)


__all__ = ["ABROAD", "PopulationGenerator", "SeedReport", "Seeder", "choose_municipalities"]
