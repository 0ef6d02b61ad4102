"""What a 罹災証明書 says (:class:`jlis.kiosk.content.CertificateContent`), for the certificate server
(the kiosk, helper 7) and the counter.

A certificate exists once a household's application is approved (交付決定): every member of that
household listed in the victim register may have it issued, at the kiosk with their own card or at
the counter. It names the requester, the household as listed, the dwelling and its 被害の程度, and
the disaster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.auth.models import Principal, PrincipalKind
from jlis.bcl.disasters import ACCESS_LOG, get_disaster
from jlis.bcl.identity import CardHolder
from jlis.bcl.models import ApplicationStatus, DamageGrade, SurveyRound, jdate
from jlis.bcl.tables import DamageApplicationRow, DwellingRow, SurveyRow, VictimRow
from jlis.clock import Clock
from jlis.codes import LgCode, ResidentCode
from jlis.errors import Forbidden, InvalidInput, RuleViolation
from jlis.kiosk.content import CertificateContent, CertificateKind, Row, Section
from jlis.masters import Geography

ATTESTATION = "上記のとおり相違ないことを証明します。"
NOTES = (
    "この証明書は、災害により被害を受けた住家の被害の程度を証明するものです。",
    "被害の程度は、災害に係る住家の被害認定基準運用指針に基づく調査の結果によります。",
)
MAX_REQUEST_ID = 64
MAX_CERTIFICATE_NUMBER = 64


def issuer_title(geography: Geography, lg_code: str) -> str:
    """The 市区町村長 who issues it: a ward of a designated city issues in the city's mayor's name."""
    municipality = geography.municipality(lg_code)
    if municipality.parent_lg_code:
        municipality = geography.municipality(municipality.parent_lg_code)
    prefecture = geography.prefecture(municipality.pref_code)
    return f"{prefecture.name}{municipality.full_name}長"


def _authorise(caller: Principal | CardHolder, lg_code: str, resident_code: str) -> str:
    """The actor name; a resident gets their own certificate only, staff their municipality's."""
    if isinstance(caller, CardHolder):
        if caller.resident_code != resident_code:
            raise Forbidden(
                "a resident may obtain only their own 罹災証明書",
                field="住民票コード",
                rule="must be the card holder's own",
            )
        return caller.actor
    if caller.kind is PrincipalKind.JLIS_OPERATOR:
        # The 証明書交付センター, for the card holder it has just authenticated: the certificate
        # server accepts it for every other certificate on the same terms (jlis.kiosk.issuer.access).
        return caller.actor
    caller.require_staff_of(lg_code)
    return caller.actor


def issuable_disasters(
    session: Session, *, caller: Principal | CardHolder, lg_code: str, resident_code: str
) -> list[tuple[str, str]]:
    """(disaster id, name) of the disasters for which ``resident_code`` can have a 罹災証明書 issued
    by ``lg_code`` now (their household's application is approved): the kiosk's menu. Newest first."""
    lg_code = str(LgCode.parse(lg_code, "地方公共団体コード"))
    code = str(ResidentCode.parse(resident_code))
    _authorise(caller, lg_code, code)
    victims = session.scalars(
        select(VictimRow).where(VictimRow.resident_code == code, VictimRow.lg_code == lg_code)
    ).all()
    out = []
    for victim in sorted(victims, key=lambda v: v.disaster_id, reverse=True):
        approved = session.scalar(
            select(DamageApplicationRow.id)
            .where(
                DamageApplicationRow.disaster_id == victim.disaster_id,
                DamageApplicationRow.lg_code == lg_code,
                DamageApplicationRow.household_no == victim.household_no,
                DamageApplicationRow.status == ApplicationStatus.APPROVED.value,
            )
            .limit(1)
        )
        if approved is not None:
            out.append((victim.disaster_id, get_disaster(session, victim.disaster_id).name))
    return out


def damage_certificate_content(
    session: Session,
    clock: Clock,
    geography: Geography,
    *,
    caller: Principal | CardHolder,
    lg_code: str,
    resident_code: str,
    request_id: str,
    certificate_number: str,
    disaster_id: str | None = None,
    seal_image_png: bytes | None = None,
) -> CertificateContent:
    """The content of the 罹災証明書 of ``resident_code`` (a victim listed by ``lg_code``), for the
    approved application of their household in ``disaster_id`` (or the latest approved one when
    None). RuleViolation when there is none; audited per person printed."""
    lg_code = str(LgCode.parse(lg_code, "地方公共団体コード"))
    code = str(ResidentCode.parse(resident_code))
    actor = _authorise(caller, lg_code, code)
    request_id = (request_id or "").strip()
    certificate_number = (certificate_number or "").strip()
    if not request_id or len(request_id) > MAX_REQUEST_ID:
        raise InvalidInput("request_id", f"must be 1 to {MAX_REQUEST_ID} characters")
    if not certificate_number or len(certificate_number) > MAX_CERTIFICATE_NUMBER:
        raise InvalidInput("certificate_number", f"must be 1 to {MAX_CERTIFICATE_NUMBER} characters")
    stmt = select(VictimRow).where(VictimRow.resident_code == code, VictimRow.lg_code == lg_code)
    if disaster_id:
        stmt = stmt.where(VictimRow.disaster_id == get_disaster(session, disaster_id).id)
    victims = {v.disaster_id: v for v in session.scalars(stmt)}
    if not victims:
        raise RuleViolation(
            "被災者台帳",
            "the requester must be listed in the victim register",
            "被災者台帳に登載されていません",
        )
    approved = session.scalars(
        select(DamageApplicationRow)
        .where(
            DamageApplicationRow.disaster_id.in_(victims),
            DamageApplicationRow.lg_code == lg_code,
            DamageApplicationRow.status == ApplicationStatus.APPROVED.value,
        )
        .order_by(DamageApplicationRow.decided_at.desc(), DamageApplicationRow.id.desc())
    ).all()
    application = next((a for a in approved if a.household_no == victims[a.disaster_id].household_no), None)
    if application is None:
        raise RuleViolation(
            "罹災証明書",
            "the household must have an approved application",
            "交付決定された罹災証明書の申請がありません",
        )
    victim = victims[application.disaster_id]
    disaster = get_disaster(session, application.disaster_id)
    dwelling = session.get(DwellingRow, application.dwelling_id)
    assert dwelling is not None and application.grade is not None
    members = session.scalars(
        select(VictimRow)
        .where(
            VictimRow.disaster_id == disaster.id,
            VictimRow.lg_code == lg_code,
            VictimRow.household_no == application.household_no,
        )
        .order_by(VictimRow.id)
    ).all()
    survey = session.scalars(
        select(SurveyRow).where(SurveyRow.dwelling_id == dwelling.id).order_by(SurveyRow.id.desc())
    ).first()
    assert survey is not None  # an approval needs a survey
    now = clock.now()
    ACCESS_LOG.append_many(
        session,
        [
            {
                "at": now,
                "actor": actor,
                "action": "read",
                "subject": m.resident_code,
                "details": {
                    "system": "bcl",
                    "lg_code": lg_code,
                    "purpose": "罹災証明書",
                    "request_id": request_id,
                    "application_id": application.id,
                },
            }
            for m in members
        ],
    )
    return build_content(
        lg_code=lg_code,
        issuer=issuer_title(geography, lg_code),
        requester=victim,
        members=members,
        disaster_name=disaster.name,
        disaster_cause=disaster.cause.label,
        occurred_on=disaster.occurred_on,
        dwelling_address=dwelling.address,
        grade=DamageGrade(application.grade),
        survey_round=SurveyRound(survey.round),
        surveyed_on=survey.surveyed_on,
        application_id=application.id,
        request_id=request_id,
        certificate_number=certificate_number,
        issued_on=clock.today(),
        seal_image_png=seal_image_png,
    )


def build_content(
    *,
    lg_code: str,
    issuer: str,
    requester: VictimRow,
    members: Sequence[VictimRow],
    disaster_name: str,
    disaster_cause: str,
    occurred_on: dt.date,
    dwelling_address: str,
    grade: DamageGrade,
    survey_round: SurveyRound,
    surveyed_on: dt.date,
    application_id: str,
    request_id: str,
    certificate_number: str,
    issued_on: dt.date,
    seal_image_png: bytes | None = None,
) -> CertificateContent:
    """The layout-free content (pure: the rows are already read)."""
    return CertificateContent(
        kind=CertificateKind.DAMAGE,
        title=CertificateKind.DAMAGE.label,
        lg_code=lg_code,
        issuer_title=issuer,
        subject_name=requester.name,
        request_id=request_id,
        certificate_number=certificate_number,
        issued_on=issued_on,
        sections=(
            Section("被災者", (Row("氏名", requester.name), Row("住所", requester.address))),
            Section("世帯構成員", tuple(Row(m.relationship, m.name) for m in members)),
            Section(
                "災害",
                (
                    Row("災害名", disaster_name),
                    Row("発生年月日", jdate(occurred_on)),
                    Row("災害の原因", disaster_cause),
                ),
            ),
            Section(
                "被害の状況",
                (
                    Row("被災住家の所在地", dwelling_address),
                    Row("住家の被害の程度", grade.label),
                    Row("調査", f"{survey_round.label}({jdate(surveyed_on)})"),
                    Row("受付番号", application_id),
                ),
            ),
        ),
        attestation=ATTESTATION,
        notes=NOTES,
        seal_image_png=seal_image_png,
    )
