"""罹災証明書 online through マイナポータル: the declared disasters of the holder's municipality,
the online application, and its status (issue 4 §7; the BCL side is :mod:`jlis.bcl.disasters`).

Who applies is never a form field. The portal knows the signed-in holder by the certificate they
signed in with (:class:`jlis.linkage.portal.service.PortalUser`); for every request J-LIS resolves
that certificate to its holder (:class:`jlis.jpki.holders.HolderLookup`, as the resident themself,
audited in the ``access`` chain) and the BCL's :class:`jlis.bcl.disasters.ResidentDesk` acts for
that holder only. The 住民票コード lives in memory for the request and is never stored by the
portal nor shown on the page.

What the holder sees per disaster:

- every disaster declared over the municipality of their current 住民票 (not personal data), and
  every disaster whose victim register (被災者台帳) lists them (they may have moved since);
- whether they are listed, their own applications (受付 / 交付決定 with the 被害の程度 / 却下 with
  the reason), and whether a 罹災証明書 can be issued now: their household's application approved
  (:func:`jlis.bcl.certificate.issuable_disasters`, the kiosk's own menu);
- once it can be issued: that it can be printed at a kiosk with the card, the fee and the hours
  from the municipality's kiosk policy (:mod:`jlis.kiosk.fees`, :mod:`jlis.kiosk.issuer.policy`),
  or that it is issued at the counter where the municipality does not offer it at the kiosk.

Faces: the page ``/portal/disaster`` (:data:`router`) and the API ``/api/v1/portal/disasters``
(:data:`api_router`, with the portal session token as the bearer). Each application is also
appended to the portal's own audit chain (``linkage.portal``, by the portal's code only).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from jlis.auth import service as auth
from jlis.bcl.certificate import issuable_disasters
from jlis.bcl.disasters import ApplicationView, DisasterView, ResidentDesk, get_disaster, list_disasters
from jlis.bcl.identity import CardHolder
from jlis.bcl.models import ApplicationStatus, Channel, parse_disaster_id
from jlis.db import transaction
from jlis.errors import Forbidden, JlisError, NotFound, RuleViolation
from jlis.jpki.holders import HolderLookup
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.fees import FeeTable, load_fees
from jlis.kiosk.issuer.policy import PolicyBook, load_policies
from jlis.linkage.hub.members import PORTAL_ID
from jlis.linkage.portal.api import TAG_PORTAL, portal_api_user, portal_deps
from jlis.linkage.portal.pages import LOGIN, PORTAL_COOKIE, portal_form, portal_page_user
from jlis.linkage.portal.service import PORTAL_LOG, PortalDeps, PortalService, PortalUser
from jlis.web.deps import get_container
from jlis.web.templating import render

PAGE = "/portal/disaster"
PURPOSE = "罹災証明書 (マイナポータル)"
CHANNEL_LABELS = {Channel.ONLINE: "オンライン (マイナポータル)", Channel.COUNTER: "窓口"}

# ----------------------------------------------------------------------------------------- views


@dataclass(frozen=True)
class KioskPrint:
    """How the approved 罹災証明書 can be obtained at the issuing municipality."""

    lg_code: str
    municipality: str
    at_kiosk: bool  # the municipality offers the 罹災証明書 at the kiosk (its policy)
    fee: int  # yen per copy at the kiosk
    opens: dt.time
    closes: dt.time
    weekdays_only: bool
    closed: str  # the year-end closure, e.g. "12月29日〜1月3日"
    min_age: int  # the kiosk serves card holders of this age and over


@dataclass(frozen=True)
class PortalApplication:
    """One of the holder's own applications, without the 住民票コード or the household number."""

    id: str
    disaster_id: str
    lg_code: str
    channel: str
    applied_at: dt.datetime
    status: str
    grade: str | None  # the label of the 被害の程度 fixed by the approval
    decided_at: dt.datetime | None
    reason: str | None

    @property
    def status_label(self) -> str:
        return ApplicationStatus(self.status).label

    @property
    def channel_label(self) -> str:
        return CHANNEL_LABELS[Channel(self.channel)]

    @property
    def open(self) -> bool:
        return self.status != ApplicationStatus.REJECTED.value

    @classmethod
    def of(cls, view: ApplicationView) -> PortalApplication:
        return cls(
            view.id,
            view.disaster_id,
            view.lg_code,
            view.channel.value,
            view.applied_at,
            view.status.value,
            view.grade.label if view.grade else None,
            view.decided_at,
            view.reason,
        )


@dataclass(frozen=True)
class DisasterEntry:
    """A disaster as the holder sees it."""

    disaster: DisasterView
    listed: bool  # the victim register lists the holder
    applications: tuple[PortalApplication, ...]  # the holder's own, newest first
    issuable: bool  # a 罹災証明書 can be issued now (the household's application is approved)
    kiosk: KioskPrint | None  # set when issuable

    @property
    def can_apply(self) -> bool:
        return (
            self.listed
            and not self.disaster.closed
            and not self.issuable
            and not any(a.open for a in self.applications)
        )

    @property
    def state(self) -> str:
        """A stable word for the page and the API: issuable / received / rejected / can_apply /
        closed / not_listed."""
        if self.issuable:
            return "issuable"
        if any(a.status == ApplicationStatus.RECEIVED.value for a in self.applications):
            return "received"
        if not self.listed:
            return "not_listed"
        if self.disaster.closed:
            return "closed"
        if self.applications:
            return "rejected"  # every own application was rejected; another may be made
        return "can_apply"


STATE_LABELS = {
    "issuable": "交付決定済み (印刷できます)",
    "received": "申請中 (審査中)",
    "rejected": "却下されました (再申請できます)",
    "can_apply": "申請できます",
    "closed": "申請受付は終了しました",
    "not_listed": "被災者台帳に登載されていません",
}


@dataclass(frozen=True)
class DisasterOverview:
    lg_code: str  # the municipality of the holder's current 住民票
    municipality: str
    entries: tuple[DisasterEntry, ...]


# ----------------------------------------------------------------------------------------- service


class PortalDisasterDesk:
    """The 罹災証明書 pages' work for one signed-in holder, in the caller's session (the caller
    commits). ``fees`` and ``policies`` default to the packaged kiosk data."""

    def __init__(
        self,
        session: Session,
        deps: PortalDeps,
        user: PortalUser,
        *,
        fees: FeeTable | None = None,
        policies: PolicyBook | None = None,
    ) -> None:
        self.s = session
        self.deps = deps
        self.clock = deps.clock
        self.user = user
        self.fees = fees or load_fees()
        self.policies = policies or load_policies()

    def _holder(self, purpose: str) -> CardHolder:
        """J-LIS resolves the signed-in certificate to its holder (as that holder only; audited)."""
        try:
            found = HolderLookup(self.s, self.clock, self.user.principal).holder(
                self.user.certificate, purpose=purpose
            )
        except (NotFound, RuleViolation) as exc:  # revoked, on hold or expired since the sign-in
            raise RuleViolation(
                "利用者証明用電子証明書",
                "must be a good certificate (not revoked, on hold or expired)",
                "ログインに使ったマイナンバーカードの電子証明書が有効ではありません"
                " (失効・一時停止・有効期間外)。市区町村の窓口にお問い合わせください。",
            ) from exc
        return CardHolder(found.resident_code, found.lg_code, found.certificate.serial, found.card_id)

    def overview(self) -> DisasterOverview:
        holder = self._holder(f"{PURPOSE} の状況の表示")
        desk = ResidentDesk(self.s, self.clock, holder)
        listed = {d.id: d for d in desk.disasters()}
        applications: dict[str, list[PortalApplication]] = {}
        for view in desk.applications():  # newest first
            applications.setdefault(view.disaster_id, []).append(PortalApplication.of(view))
        declared = {d.id: d for d in list_disasters(self.s, lg_code=holder.lg_code)}
        # Where the holder is listed (the municipality of their address on the day): the kiosk's
        # menu of that municipality says which certificates can be issued now.
        issuable: dict[str, str] = {}
        for lg_code in sorted({p.lg_code for d in listed.values() for p in d.area}):
            for disaster_id, _name in issuable_disasters(
                self.s, caller=holder, lg_code=lg_code, resident_code=holder.resident_code
            ):
                issuable.setdefault(disaster_id, lg_code)
        disasters = {**declared, **listed}
        entries = []
        for d in sorted(disasters.values(), key=lambda v: (v.occurred_on, v.id), reverse=True):
            issuing = issuable.get(d.id)
            entries.append(
                DisasterEntry(
                    d,
                    d.id in listed,
                    tuple(applications.get(d.id, ())),
                    issuing is not None,
                    self._kiosk(issuing) if issuing else None,
                )
            )
        return DisasterOverview(
            holder.lg_code, self.deps.geography.municipality(holder.lg_code).name, tuple(entries)
        )

    def apply(self, disaster: str) -> PortalApplication:
        """An online application for the signed-in holder (the BCL checks the victim register, one
        open application per person, a disaster still accepting)."""
        disaster_id = get_disaster(self.s, parse_disaster_id(str(disaster or ""))).id
        holder = self._holder(f"{PURPOSE} の申請")
        view = ResidentDesk(self.s, self.clock, holder).apply(disaster_id)
        PORTAL_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=PORTAL_ID,
            action="damage_application",
            subject=self.user.portal_code,
            details={"application": view.id, "disaster": disaster_id, "lg_code": view.lg_code},
        )
        return PortalApplication.of(view)

    def _kiosk(self, lg_code: str) -> KioskPrint:
        policy = self.policies.for_municipality(lg_code)
        hours = policy.hours_for(CertificateKind.DAMAGE)
        return KioskPrint(
            lg_code,
            self.deps.geography.municipality(lg_code).name,
            CertificateKind.DAMAGE in policy.offered,
            self.fees.fee(lg_code, CertificateKind.DAMAGE),
            hours.open,
            hours.close,
            hours.weekdays_only,
            "{}月{}日〜{}月{}日".format(*policy.closed[0], *policy.closed[1]),
            policy.min_age,
        )


# ----------------------------------------------------------------------------------------- page

router = APIRouter(prefix=PAGE, include_in_schema=False)


def _work(request: Request, user: PortalUser, fn: Any) -> Any:
    with transaction(get_container(request).factory) as s:
        return fn(PortalDisasterDesk(s, portal_deps(request), user))


def _page(
    request: Request,
    user: PortalUser,
    *,
    error: JlisError | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    overview: DisasterOverview | None = None
    try:
        overview = _work(request, user, lambda desk: desk.overview())
    except Forbidden:
        raise
    except JlisError as exc:  # the page still shows, with the refusal (the first one, if any)
        error = error or exc
    with transaction(get_container(request).factory) as s:
        unread = PortalService(s, portal_deps(request)).unread_count(user)
    token = request.cookies.get(PORTAL_COOKIE)
    return render(
        request,
        "portal/disaster.html",
        {
            "title": "罹災証明書",
            "user": user,
            "unread": unread,
            "csrf_token": auth.csrf_token_for(token) if token else "",
            "overview": overview,
            "state_labels": STATE_LABELS,
            "applied": request.query_params.get("applied", ""),
        },
        error=error,
        values=values or {},
    )


@router.get("")
def disaster_page(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    if user is None:
        return RedirectResponse(LOGIN, status_code=303)
    return _page(request, user)


@router.post("/apply")
async def disaster_apply(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    form = await portal_form(request)
    if user is None:
        return RedirectResponse(LOGIN, status_code=303)
    disaster_id = str(form.get("disaster_id", ""))
    try:
        made: PortalApplication = _work(request, user, lambda desk: desk.apply(disaster_id))
    except Forbidden:
        raise
    except JlisError as exc:
        return _page(request, user, error=exc, values={"disaster_id": disaster_id})
    return RedirectResponse(f"{PAGE}?applied={made.id}", status_code=303)


# ----------------------------------------------------------------------------------------- API

api_router = APIRouter(prefix="/api/v1/portal/disasters", tags=[TAG_PORTAL])


class KioskOut(BaseModel):
    lg_code: str
    municipality: str
    at_kiosk: bool
    fee: int
    opens: str
    closes: str
    weekdays_only: bool
    closed: str
    min_age: int


class ApplicationOut(BaseModel):
    id: str
    disaster_id: str
    lg_code: str
    channel: str
    applied_at: dt.datetime
    status: str
    grade: str | None
    decided_at: dt.datetime | None
    reason: str | None


class DisasterOut(BaseModel):
    id: str
    name: str
    cause: str
    occurred_on: dt.date
    closed: bool
    listed: bool
    state: str
    can_apply: bool
    issuable: bool
    kiosk: KioskOut | None
    applications: list[ApplicationOut]


class OverviewOut(BaseModel):
    lg_code: str
    municipality: str
    disasters: list[DisasterOut] = Field(default_factory=list)


def _application_out(a: PortalApplication) -> ApplicationOut:
    return ApplicationOut(
        id=a.id,
        disaster_id=a.disaster_id,
        lg_code=a.lg_code,
        channel=a.channel,
        applied_at=a.applied_at,
        status=a.status,
        grade=a.grade,
        decided_at=a.decided_at,
        reason=a.reason,
    )


def overview_out(overview: DisasterOverview) -> OverviewOut:
    return OverviewOut(
        lg_code=overview.lg_code,
        municipality=overview.municipality,
        disasters=[
            DisasterOut(
                id=e.disaster.id,
                name=e.disaster.name,
                cause=e.disaster.cause.value,
                occurred_on=e.disaster.occurred_on,
                closed=e.disaster.closed,
                listed=e.listed,
                state=e.state,
                can_apply=e.can_apply,
                issuable=e.issuable,
                kiosk=KioskOut(
                    lg_code=e.kiosk.lg_code,
                    municipality=e.kiosk.municipality,
                    at_kiosk=e.kiosk.at_kiosk,
                    fee=e.kiosk.fee,
                    opens=e.kiosk.opens.strftime("%H:%M"),
                    closes=e.kiosk.closes.strftime("%H:%M"),
                    weekdays_only=e.kiosk.weekdays_only,
                    closed=e.kiosk.closed,
                    min_age=e.kiosk.min_age,
                )
                if e.kiosk
                else None,
                applications=[_application_out(a) for a in e.applications],
            )
            for e in overview.entries
        ],
    )


@api_router.get("", response_model=OverviewOut, summary="罹災証明書: the holder's disasters and applications")
def api_overview(request: Request, user: PortalUser = Depends(portal_api_user)) -> OverviewOut:
    return overview_out(_work(request, user, lambda desk: desk.overview()))


@api_router.post(
    "/{disaster_id}/applications",
    response_model=ApplicationOut,
    status_code=201,
    summary="罹災証明書: apply online for the signed-in holder",
)
def api_apply(
    disaster_id: str, request: Request, user: PortalUser = Depends(portal_api_user)
) -> ApplicationOut:
    return _application_out(_work(request, user, lambda desk: desk.apply(disaster_id)))
