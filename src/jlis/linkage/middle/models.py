"""Domain types and pure rules of the middle server: member ids, 団体内統合宛名番号, the 住民票関係情報
replica of a 住民票, and the synthetic replicas of the demo population. No database, no clock."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jlis.errors import InvalidInput

# As jlis.linkage.hub.members: 3-32 characters, and an ``lg-`` id is a municipality's.
MEMBER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$")
MUNICIPALITY_ID_RE = re.compile(r"^lg-[0-9]{6}$")
LOCAL_ID_RE = re.compile(r"^[0-9]{15}$")
LOCAL_ID_FIELD = "団体内統合宛名番号"
MUNICIPALITY_PREFIX = "lg-"
AGENCY_LOCAL_PREFIX = "000000"  # agencies have no 地方公共団体コード to lead their numbers
LOCAL_SEQ_DIGITS = 9
MAX_LOCAL_SEQ = 10**LOCAL_SEQ_DIGITS - 1


def check_member_id(value: str) -> str:
    if (
        not isinstance(value, str)
        or not MEMBER_ID_RE.match(value)
        or (value.startswith(MUNICIPALITY_PREFIX) and not MUNICIPALITY_ID_RE.match(value))
    ):
        raise InvalidInput("member_id", "must be lg-<6-digit LgCode> or an agency slug (a-z, 0-9, '-')")
    return value


def is_municipality(member_id: str) -> bool:
    return member_id.startswith(MUNICIPALITY_PREFIX)


def member_lg_code(member_id: str) -> str | None:
    return member_id[len(MUNICIPALITY_PREFIX) :] if is_municipality(member_id) else None


def municipality_member(lg_code: str) -> str:
    """The member id of a municipality (``lg-131016``)."""
    return f"{MUNICIPALITY_PREFIX}{lg_code}"


def local_id(member_id: str, seq: int) -> str:
    """The 団体内統合宛名番号 numbered ``seq`` at ``member_id``: 15 digits, the 地方公共団体コード (or
    ``000000`` for an agency) and a 9-digit serial. Unique within one member only."""
    if not 1 <= seq <= MAX_LOCAL_SEQ:
        raise InvalidInput(LOCAL_ID_FIELD, f"serial must be 1..{MAX_LOCAL_SEQ}")
    prefix = member_lg_code(member_id) or AGENCY_LOCAL_PREFIX
    return f"{prefix}{seq:0{LOCAL_SEQ_DIGITS}d}"


def check_local_id(value: str) -> str:
    if not isinstance(value, str) or not LOCAL_ID_RE.match(value):
        raise InvalidInput(LOCAL_ID_FIELD, "must be 15 digits")
    return value


@dataclass(frozen=True)
class Replica:
    """One version of a person's replica of one category, as read back."""

    member_id: str
    local_id: str
    category: str
    version: int
    data: Mapping[str, Any]
    registered_at: dt.datetime
    registered_by: str


# ---------------------------------------------------------------------------------------------
# 住民票関係情報 from a 住民票
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterFacts:
    """What a 住民票 contributes to 住民票関係情報 (plain values; built from a ResidentView)."""

    name: str
    name_kana: str
    birth_date: dt.date
    sex: str
    address: str
    resident_since: dt.date
    relationship: str
    householder_name: str | None
    household_size: int | None
    status: str  # registry Status value
    last_reason: str  # registry ChangeReason value


def juminhyo_status(status: str, last_reason: str) -> str:
    """The replica's 住民の状態: listed (including 転出予定) is ``resident``; removed is ``deceased``
    after a 死亡 and ``moved_out`` otherwise."""
    if status != "removed":
        return "resident"
    return "deceased" if last_reason == "death" else "moved_out"


def juminhyo_replica(facts: RegisterFacts) -> dict[str, object]:
    data: dict[str, object] = {
        "name": facts.name,
        "name_kana": facts.name_kana or None,
        "birth_date": facts.birth_date,
        "sex": facts.sex,
        "address": facts.address,
        "resident_since": facts.resident_since,
        "relationship": facts.relationship or None,
        "status": juminhyo_status(facts.status, facts.last_reason),
    }
    if facts.status != "removed":  # a removed person is no longer in a household of ours
        data["householder_name"] = facts.householder_name
        data["household_size"] = facts.household_size
    return data


# ---------------------------------------------------------------------------------------------
# Synthetic replicas of the demo population
# ---------------------------------------------------------------------------------------------

NHI_COPAY_CHILD_AGE = 6  # 義務教育就学前: 2割
ELDERLY_NHI_AGE = 70  # 70–74: 2割
LATE_ELDERLY_AGE = 75  # 後期高齢者医療: out of 国保
LTC_FIRST_CLASS_AGE = 65  # 介護保険 第1号被保険者
PENSION_AGE = 65
FULL_BASIC_PENSION = 831_700  # 老齢基礎年金 満額 (令和7年度, 67歳以下) [M]
CHILD_ALLOWANCE_LIMIT_AGE = 18  # 高校生年代まで (2024-10 改正): until the 31 March after turning 18
BASIC_DEDUCTION = 430_000  # 住民税 基礎控除 [M]
DEPENDENT_DEDUCTION = 330_000  # 住民税 扶養控除 [M]
EXEMPT_INCOME = 450_000  # 非課税限度額 (単身) [M]
PER_CAPITA_LEVY = 5_000  # 均等割 (市町村 3,000 + 道府県 1,000 + 森林環境税 1,000) [M]
INCOME_LEVY_RATE = 0.10  # 所得割 10 %


@dataclass(frozen=True)
class PersonFacts:
    """What the synthetic generator knows of a resident: age, household and place."""

    lg_code: str
    birth_date: dt.date
    is_head: bool
    household_size: int
    children_birth_dates: tuple[dt.date, ...]  # the household's children (heads only; else empty)


def age_on(birth: dt.date, day: dt.date) -> int:
    years = day.year - birth.year
    return years - ((day.month, day.day) < (birth.month, birth.day))


def fiscal_tax_year(today: dt.date) -> int:
    """住民税の年度: assessed in June, so before June the current year's is not out yet."""
    return today.year if today.month >= 6 else today.year - 1


def _child_covered(birth: dt.date, today: dt.date) -> bool:
    """高校生年代: covered until the first 31 March after the 18th birthday."""
    end_year = birth.year + CHILD_ALLOWANCE_LIMIT_AGE + (0 if birth.month <= 3 else 1)
    return today <= dt.date(end_year, 3, 31)


def child_allowance_monthly(children_birth_dates: Sequence[dt.date], today: dt.date) -> int:
    """児童手当 monthly total (2024-10 rules [M]): 15,000 yen under 3, 10,000 yen from 3 to 高校生年代,
    30,000 yen from the third child on; no income limit."""
    covered = sorted(b for b in children_birth_dates if _child_covered(b, today))
    total = 0
    for order, birth in enumerate(covered, start=1):
        if order >= 3:
            total += 30_000
        elif age_on(birth, today) < 3:
            total += 15_000
        else:
            total += 10_000
    return total


def _income(age: int, rng: random.Random) -> int:
    if age < 18:
        return 0
    if age < 23:
        return 0 if rng.random() < 0.7 else rng.randrange(300_000, 1_500_000, 1000)
    if age < PENSION_AGE:
        if rng.random() < 0.15:
            return 0
        return min(int(rng.lognormvariate(14.9, 0.55)) // 1000 * 1000, 30_000_000)
    return rng.randrange(0, 2_500_000, 1000)


def _some_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    if end <= start:
        return start
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def synthetic_replicas(
    person: PersonFacts, rng: random.Random, today: dt.date
) -> dict[str, dict[str, object]]:
    """Plausible municipal replicas for one resident (地方税, 児童手当, 国保, 介護保険): a pure function of
    the person, the random source and the day. Categories that do not apply are left out."""
    age = age_on(person.birth_date, today)
    out: dict[str, dict[str, object]] = {}
    income = _income(age, rng)
    covered_children = [b for b in person.children_birth_dates if _child_covered(b, today)]

    if age >= 18:
        dependents = len(covered_children) if person.is_head else 0
        taxable = max(0, income - BASIC_DEDUCTION - dependents * DEPENDENT_DEDUCTION) // 1000 * 1000
        exempt = income <= EXEMPT_INCOME + dependents * DEPENDENT_DEDUCTION
        out["local_tax"] = {
            "tax_year": fiscal_tax_year(today),
            "total_income": income,
            "taxable_income": 0 if exempt else taxable,
            "income_levy": 0 if exempt else int(taxable * INCOME_LEVY_RATE) // 100 * 100,
            "per_capita_levy": 0 if exempt else PER_CAPITA_LEVY,
            "tax_exempt": exempt,
            "dependents": dependents,
        }

    if person.is_head and covered_children:
        youngest = max(covered_children)
        out["child_allowance"] = {
            "eligible": True,
            "children": len(covered_children),
            "monthly_amount": child_allowance_monthly(covered_children, today),
            "certified_on": min(youngest + dt.timedelta(days=rng.randrange(5, 30)), today),
            "status": "paying",
        }

    in_nhi = age < LATE_ELDERLY_AGE and rng.random() < (0.7 if age >= 65 else 0.2)
    if in_nhi:
        copay = "20" if age < NHI_COPAY_CHILD_AGE or age >= ELDERLY_NHI_AGE else "30"
        out["nhi"] = {
            "insured": True,
            "insurer_number": person.lg_code,
            "insured_number": f"{_digits(rng, 4)}-{_digits(rng, 6)}",
            "acquired_on": _some_date(
                rng, max(person.birth_date, today.replace(year=today.year - 20)), today
            ),
            "copayment": copay,
            "annual_premium": 20_000 + int(income * 0.09) // 100 * 100,
        }

    if age >= LTC_FIRST_CLASS_AGE:
        certified_share = 0.04 if age < 75 else (0.19 if age < 85 else 0.58)
        certified = rng.random() < certified_share
        ltc: dict[str, object] = {
            "insured_number": _digits(rng, 10),
            "care_level": "none",
            "premium_stage": 1 if income == 0 else min(13, 4 + income // 400_000),
            "burden_ratio": "10" if income < 1_600_000 else ("20" if income < 2_200_000 else "30"),
        }
        if certified:
            level = rng.choice(["support1", "support2", "care1", "care2", "care3", "care4", "care5"])
            start = _some_date(rng, today - dt.timedelta(days=330), today)
            ltc.update(care_level=level, certified_from=start, certified_to=start + dt.timedelta(days=364))
        out["ltc"] = ltc
    return out


def synthetic_pension(person: PersonFacts, rng: random.Random, today: dt.date) -> dict[str, object] | None:
    """A 年金給付関係情報 replica (日本年金機構) for a resident of pension age, else None."""
    if age_on(person.birth_date, today) < PENSION_AGE:
        return None
    try:
        started = person.birth_date.replace(year=person.birth_date.year + PENSION_AGE)
    except ValueError:  # born 29 February
        started = dt.date(person.birth_date.year + PENSION_AGE, 3, 1)
    return {
        "pension_kind": "old_age_basic",
        "receiving": True,
        "annual_amount": int(FULL_BASIC_PENSION * rng.uniform(0.55, 1.0)) // 100 * 100,
        "started_on": started,
    }


KYOKAI_SHARE = 0.55  # of those outside 国保 and 後期高齢者医療, the share in 協会けんぽ [M]


def synthetic_medical_insurance(
    person: PersonFacts, rng: random.Random, today: dt.date, *, in_nhi: bool
) -> dict[str, object] | None:
    """A 医療保険給付関係情報 replica (全国健康保険協会) for someone under 75 outside 国保, about half
    of them (the rest are in other insurers); children and people without income are dependents."""
    age = age_on(person.birth_date, today)
    if in_nhi or age >= LATE_ELDERLY_AGE or rng.random() >= KYOKAI_SHARE:
        return None
    dependent = age < 18 or rng.random() < 0.3
    start = max(person.birth_date, today.replace(year=today.year - 15))
    return {
        "insured": True,
        "insurer_number": f"01{person.lg_code[:2]}0016",  # 協会けんぽ: 01 + 都道府県 + 支部 [M]
        "acquired_on": _some_date(rng, start, today),
        "dependent": dependent,
    }
