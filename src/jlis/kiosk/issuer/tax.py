"""個人住民税 assessments: one per resident and 年度, by the municipality where the person lived on
1 January. Kept by the municipality's tax system; the 所得・課税証明書 prints one. The demo and
tests seed them deterministically from a seed (:func:`seed_assessments`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.auth.models import Principal
from jlis.clock import Clock
from jlis.codes import LgCode, ResidentCode
from jlis.errors import InvalidInput, RuleViolation
from jlis.kiosk.issuer.access import audit_read, require_keeper, require_reader
from jlis.kiosk.issuer.models import TaxAssessment, TaxFigures, assess
from jlis.kiosk.issuer.rules import age_on
from jlis.kiosk.issuer.seals import RegisterFactory
from jlis.kiosk.issuer.tables import TaxAssessmentRow
from jlis.registry.models import check_text
from jlis.registry.service import active_codes


def _view(row: TaxAssessmentRow) -> TaxAssessment:
    return TaxAssessment(
        lg_code=row.lg_code,
        fiscal_year=row.fiscal_year,
        resident_code=row.resident_code,
        address_on_jan1=row.address_on_jan1,
        figures=TaxFigures(
            salary_income=row.salary_income,
            salary_deduction=row.salary_deduction,
            other_income=row.other_income,
            total_income=row.total_income,
            deductions=row.deductions,
            dependents=row.dependents,
            taxable_income=row.taxable_income,
            municipal_tax=row.municipal_tax,
            prefectural_tax=row.prefectural_tax,
            non_taxable=row.non_taxable,
        ),
        assessed_on=row.assessed_on,
    )


def _check_year(year: int) -> int:
    if not isinstance(year, int) or isinstance(year, bool) or not 2000 <= year <= 2100:
        raise InvalidInput("年度", "must be a year from 2000 to 2100")
    return year


class TaxRoll:
    """The 住民税 assessments of one municipality, for one acting principal."""

    def __init__(self, session: Session, clock: Clock, lg_code: str, principal: Principal) -> None:
        self.s = session
        self.clock = clock
        self.lg_code = str(LgCode.parse(lg_code))
        self.principal = principal

    def record(
        self,
        resident_code: str,
        fiscal_year: int,
        *,
        salary_income: int,
        other_income: int,
        dependents: int,
        address_on_jan1: str,
    ) -> TaxAssessment:
        """Record one assessment (賦課決定); a second one for the same person and 年度 is refused."""
        require_keeper(self.principal, self.lg_code)
        code = str(ResidentCode.parse(resident_code))
        year = _check_year(fiscal_year)
        address = str(check_text("1月1日現在の住所", address_on_jan1, max_length=200, required=True))
        figures = assess(salary_income, other_income, dependents)
        if self._row(code, year) is not None:
            raise RuleViolation("年度", f"{year} is already assessed for the person")
        row = self._insert(code, year, address, figures)
        return _view(row)

    def get(self, resident_code: str, fiscal_year: int) -> TaxAssessment | None:
        """The person's assessment of ``fiscal_year`` (audited when found)."""
        require_reader(self.principal, self.lg_code)
        code = str(ResidentCode.parse(resident_code))
        row = self._row(code, _check_year(fiscal_year))
        if row is None:
            return None
        audit_read(
            self.s,
            self.clock,
            self.principal,
            self.lg_code,
            code,
            "課税照会",
            {"fiscal_year": row.fiscal_year},
        )
        return _view(row)

    def _row(self, code: str, year: int) -> TaxAssessmentRow | None:
        t = TaxAssessmentRow
        return self.s.execute(
            select(t).where(t.lg_code == self.lg_code, t.fiscal_year == year, t.resident_code == code)
        ).scalar_one_or_none()

    def _insert(self, code: str, year: int, address: str, f: TaxFigures) -> TaxAssessmentRow:
        row = TaxAssessmentRow(
            lg_code=self.lg_code,
            fiscal_year=year,
            resident_code=code,
            address_on_jan1=address,
            salary_income=f.salary_income,
            salary_deduction=f.salary_deduction,
            other_income=f.other_income,
            total_income=f.total_income,
            deductions=f.deductions,
            dependents=f.dependents,
            taxable_income=f.taxable_income,
            municipal_tax=f.municipal_tax,
            prefectural_tax=f.prefectural_tax,
            non_taxable=f.non_taxable,
            assessed_on=dt.date(year, 6, 1),
        )
        self.s.add(row)
        self.s.flush()
        return row


def synthetic_income(seed: bytes, resident_code: str, fiscal_year: int, age: int) -> tuple[int, int, int]:
    """(salary, other income, dependents) of a person of ``age`` at the end of the income year,
    the same for the same seed, code and year. Salaries follow the age; pensions from 65."""
    digest = hashlib.sha256(seed + f"|{resident_code}|{fiscal_year}".encode()).digest()
    rng = random.Random(digest)
    if age < 18:
        return 0, 0, 0
    if age < 23:
        return (rng.randrange(0, 1_500_000, 1000) if rng.random() < 0.6 else 0), 0, 0
    if age < 65:
        if rng.random() < 0.12:
            return 0, 0, 0  # no income of the year
        peak = 1.0 + min(age - 23, 27) / 27  # rises to twice the starting level at 50
        salary = int(rng.lognormvariate(0, 0.35) * 2_800_000 * peak) // 1000 * 1000
        dependents = rng.choice((0, 0, 0, 1, 1, 2, 3)) if age >= 28 else 0
        return min(salary, 30_000_000), 0, dependents
    pension = rng.randrange(600_000, 2_600_000, 1000)
    salary = rng.randrange(0, 2_000_000, 1000) if age < 75 and rng.random() < 0.25 else 0
    # 公的年金等控除 (65+, 1,100,000 yen) applied to show the 雑所得 as the other income
    return salary, max(0, pension - 1_100_000), 0


def seed_assessments(
    session: Session,
    clock: Clock,
    lg_code: str,
    fiscal_year: int,
    principal: Principal,
    registry: RegisterFactory,
    *,
    seed: bytes,
) -> int:
    """Assess every current resident who lived in the municipality on 1 January of ``fiscal_year``
    with :func:`synthetic_income`; idempotent (people already assessed are skipped). Returns the
    number of new assessments. The register reads are audited by the register."""
    roll = TaxRoll(session, clock, lg_code, principal)
    require_keeper(principal, roll.lg_code)
    year = _check_year(fiscal_year)
    jan1 = dt.date(year, 1, 1)
    register = registry(session, roll.lg_code, principal.actor)
    t = TaxAssessmentRow
    done = set(
        session.execute(
            select(t.resident_code).where(t.lg_code == roll.lg_code, t.fiscal_year == year)
        ).scalars()
    )
    added = 0
    for code in sorted(active_codes(session, roll.lg_code)):
        if code in done:
            continue
        person = register.find_by_code(code)
        if person.resident_since > jan1:
            continue  # assessed by the municipality of 1 January
        age = age_on(person.birth_date, dt.date(year - 1, 12, 31))
        salary, other, dependents = synthetic_income(seed, code, year, age)
        roll._insert(code, year, person.address.text, assess(salary, other, dependents))
        added += 1
    return added
