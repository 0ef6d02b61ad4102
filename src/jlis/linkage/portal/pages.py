"""Pages of マイナポータル (``/portal``), for a card holder signed in with the card.

The sign-in page shows two parties side by side, and keeps them apart in the code too: the portal
(which issues a challenge and verifies the answer, :func:`jlis.linkage.portal.api.complete_login`)
and the **user's software**, simulated on the server for a browser without a card reader
(:mod:`jlis.linkage.portal.client`): it opens a demo card file, or a card file the user uploads
with its passphrase, and has the card sign the challenge after the 4-digit PIN. Only the card's
answer (certificate + signature) goes from one to the other.

The session is the portal's own cookie (``jlis_portal``), separate from staff sign-in; every form
carries a CSRF token derived from it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from jlis.auth import service as auth
from jlis.auth.models import Principal, PrincipalKind
from jlis.card.chip.errors import PinBlocked, WrongPin
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, JlisError
from jlis.jpki.rp.login import LoginResponse
from jlis.linkage.portal import client
from jlis.linkage.portal.api import (
    audience_of,
    complete_login,
    login_desk,
    portal_deps,
)
from jlis.linkage.portal.service import (
    DEFAULT_CONSENT_DAYS,
    STATUS_LABELS,
    ConsentRequest,
    PortalService,
    PortalUser,
)
from jlis.registry.models import parse_date
from jlis.web.deps import CSRF_FIELD, GUARD_ATTR, csrf_form, get_container, page_principal, poke_relay, public
from jlis.web.templating import render, submit_form

PORTAL_COOKIE = "jlis_portal"
HOME = "/portal"
LOGIN = "/portal/login"

router = APIRouter(prefix="/portal", include_in_schema=False)


# ----------------------------------------------------------------------------------------- session


def _token(request: Request) -> str | None:
    return request.cookies.get(PORTAL_COOKIE)


def portal_page_user(request: Request) -> PortalUser | None:
    """The signed-in card holder of the portal cookie, or None (the page then sends them to sign in)."""
    if hasattr(request.state, "portal_user"):
        cached: PortalUser | None = request.state.portal_user
        return cached
    with transaction(get_container(request).factory) as s:
        user = PortalService(s, portal_deps(request)).user_for(_token(request))
    request.state.portal_user = user
    return user


setattr(portal_page_user, GUARD_ATTR, (PrincipalKind.RESIDENT,))


def _csrf(request: Request) -> str:
    token = _token(request)
    return auth.csrf_token_for(token) if token else ""


async def portal_form(request: Request) -> dict[str, Any]:
    """The posted form (text fields, and uploads as UploadFile) after the CSRF check against the
    portal session. Fails closed: no session or a wrong token is 403."""
    form = await request.form()
    token = _token(request)
    submitted = form.get(CSRF_FIELD)
    if not token or not isinstance(submitted, str) or not auth.csrf_matches(token, submitted):
        raise Forbidden(
            "the form's CSRF token does not match this session; reload the page and try again",
            field=CSRF_FIELD,
            rule="must match the session",
        )
    return {k: v for k, v in form.multi_items() if k != CSRF_FIELD}


def _page(request: Request, user: PortalUser | None, template: str, title: str, **ctx: Any) -> Response:
    error: JlisError | None = ctx.pop("error", None)
    values: dict[str, str] | None = ctx.pop("values", None)
    unread = 0
    if user is not None:
        with transaction(get_container(request).factory) as s:
            unread = PortalService(s, portal_deps(request)).unread_count(user)
    context = {
        "title": title,
        "user": user,
        "unread": unread,
        "csrf_token": _csrf(request) if user else "",
        **ctx,
    }
    return render(request, f"portal/{template}", context, error=error, values=values)


def _signed_in(
    request: Request, user: PortalUser | None, build: Callable[[PortalUser], Response]
) -> Response:
    if user is None:
        return RedirectResponse(LOGIN, status_code=303)
    return build(user)


def _work(request: Request, fn: Callable[[PortalService], Any]) -> Any:
    with transaction(get_container(request).factory) as s:
        return fn(PortalService(s, portal_deps(request)))


def _cards_dir(request: Request) -> Path:
    configured: Path | None = getattr(request.app.state, "portal_cards_dir", None)
    return configured or get_container(request).settings.data_dir / "cards"


# ----------------------------------------------------------------------------------------- sign-in


@router.get("")
def home(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    return _signed_in(request, user, lambda u: _page(request, u, "home.html", "マイナポータル"))


def _login_page(
    request: Request, *, error: JlisError | None = None, values: dict[str, str] | None = None
) -> Response:
    container = get_container(request)
    challenge = login_desk(request).issue(audience_of(container), container.clock)
    return render(
        request,
        "portal/login.html",
        {
            "title": "マイナポータルにログイン",
            "user": None,
            "unread": 0,
            "challenge": challenge.to_text(),
            "expires_at": challenge.expires_at,
            "cards": client.demo_cards(_cards_dir(request)),
        },
        error=error,
        values=values or {},
        status_code=error.http_status if error is not None else 200,
    )


@router.get("/login", dependencies=[Depends(public)])
def login_form(request: Request) -> Response:
    return _login_page(request)


def _card_error(exc: Exception) -> JlisError:
    if isinstance(exc, WrongPin):
        return InvalidInput("pin", f"暗証番号が違います (残り {exc.tries_left} 回)")
    if isinstance(exc, PinBlocked):
        return InvalidInput("pin", "暗証番号がロックされています。市区町村の窓口で初期化してください")
    assert isinstance(exc, JlisError)
    return exc


def _open_card(request: Request, form: dict[str, Any]) -> Any:
    """The user's software opens the card the user chose (a context manager over a reader)."""
    from contextlib import contextmanager

    source = str(form.get("source", "demo"))
    passphrase = str(form.get("passphrase", ""))

    @contextmanager
    def opened() -> Any:
        if source == "upload":
            upload = form.get("card_file")
            data = upload.file.read(client.MAX_CARD_FILE + 1) if isinstance(upload, UploadFile) else b""
            with client.open_uploaded_card(data, passphrase) as reader:
                yield reader
        elif source == "demo":
            yield client.open_card(
                client.demo_card(_cards_dir(request), str(form.get("card", ""))), passphrase
            )
        else:
            raise InvalidInput("source", "must be demo or upload")

    return opened()


@router.post("/login", dependencies=[Depends(public)])
async def login_submit(request: Request) -> Response:
    form = {k: v for k, v in (await request.form()).multi_items()}
    values = {k: str(v) for k, v in form.items() if k in ("card", "source")}
    # A browser submits a form's line breaks as CRLF (HTML form submission normalises them).
    challenge_text = str(form.get("challenge", "")).replace("\r\n", "\n")
    try:
        # ---- the user's software: the card answers the challenge (never the PIN to the portal)
        with _open_card(request, form) as reader:
            answer = client.answer_challenge(reader, challenge_text, str(form.get("pin", "")))
        # ---- the portal: verify the answer and identify the holder
        signed = complete_login(request, challenge_text, LoginResponse.from_dict(dict(answer)))
    except (WrongPin, PinBlocked) as exc:
        return _login_page(request, error=_card_error(exc), values=values)
    except JlisError as exc:
        return _login_page(request, error=exc, values=values)
    response = RedirectResponse(HOME, status_code=303)
    response.set_cookie(
        PORTAL_COOKIE,
        signed.token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=int((signed.user.expires_at - get_container(request).clock.now()).total_seconds()),
        path="/portal",
    )
    return response


@router.post("/logout", dependencies=[Depends(public)])
async def logout(request: Request) -> Response:
    await portal_form(request)
    token = _token(request)
    _work(request, lambda svc: svc.sign_out(token))
    response = RedirectResponse(LOGIN, status_code=303)
    response.delete_cookie(PORTAL_COOKIE, path="/portal")
    return response


# ----------------------------------------------------------------------------------------- views


@router.get("/identity")
def identity(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    def build(u: PortalUser) -> Response:
        view = _work(request, lambda svc: svc.identity(u))
        return _page(request, u, "identity.html", "本人確認情報", identity=view)

    return _signed_in(request, user, build)


@router.get("/history")
def history(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    def build(u: PortalUser) -> Response:
        records = _work(request, lambda svc: svc.history(u))
        return _page(request, u, "history.html", "やりとり履歴", records=records)

    return _signed_in(request, user, build)


@router.get("/self")
def self_information(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    def build(u: PortalUser) -> Response:
        topics = _work(request, lambda svc: svc.self_information_topics())
        return _page(request, u, "self.html", "自己情報", topics=topics, result=None)

    return _signed_in(request, user, build)


@router.post("/self")
async def self_information_query(
    request: Request, user: PortalUser | None = Depends(portal_page_user)
) -> Response:
    form = await portal_form(request)
    if user is None:
        return RedirectResponse(LOGIN, status_code=303)
    category = str(form.get("category", ""))
    topics = _work(request, lambda svc: svc.self_information_topics())
    try:
        result = _work(request, lambda svc: svc.self_information(user, category))
    except Forbidden:
        raise
    except JlisError as exc:
        return _page(request, user, "self.html", "自己情報", topics=topics, result=None, error=exc)
    return _page(request, user, "self.html", "自己情報", topics=topics, result=result)


@router.get("/provisions")
def provisions(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    def build(u: PortalUser) -> Response:
        entries = _work(request, lambda svc: svc.provision_log(u))
        return _page(request, u, "provisions.html", "住基ネットでの本人確認情報の提供状況", entries=entries)

    return _signed_in(request, user, build)


@router.get("/notices")
def notices(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    def build(u: PortalUser) -> Response:
        items = _work(request, lambda svc: svc.notices(u))
        return _page(request, u, "notices.html", "お知らせ", notices=items)

    return _signed_in(request, user, build)


@router.post("/notices/{notice_id}/read")
async def notice_read(
    notice_id: int, request: Request, user: PortalUser | None = Depends(portal_page_user)
) -> Response:
    await portal_form(request)
    if user is None:
        return RedirectResponse(LOGIN, status_code=303)
    _work(request, lambda svc: svc.mark_read(user, notice_id))
    return RedirectResponse(f"{HOME}/notices", status_code=303)


# ----------------------------------------------------------------------------------------- 転出届


def _move_out_page(
    request: Request,
    user: PortalUser,
    *,
    error: JlisError | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    requests = _work(request, lambda svc: svc.move_outs(user))
    today = get_container(request).clock.today()
    return _page(
        request,
        user,
        "move_out.html",
        "転出届 (引越しワンストップ)",
        requests=requests,
        labels=STATUS_LABELS,
        today=today,
        error=error,
        values=values or {"planned_date": today.isoformat()},
    )


@router.get("/move-out")
def move_out(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    return _signed_in(request, user, lambda u: _move_out_page(request, u))


@router.post("/move-out")
async def move_out_submit(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    form = await portal_form(request)
    if user is None:
        return RedirectResponse(LOGIN, status_code=303)
    values = {k: str(v) for k, v in form.items()}
    try:
        planned = parse_date("転出予定日", values.get("planned_date", ""))
        _work(
            request,
            lambda svc: svc.file_move_out(
                user,
                destination=values.get("destination", ""),
                destination_lg_code=values.get("destination_lg_code", ""),
                planned_date=planned,
            ),
        )
    except Forbidden:
        raise
    except JlisError as exc:
        return _move_out_page(request, user, error=exc, values=values)
    return RedirectResponse(f"{HOME}/move-out?filed=1", status_code=303)


@router.post("/move-out/{request_id}/withdraw")
async def move_out_withdraw(
    request_id: int, request: Request, user: PortalUser | None = Depends(portal_page_user)
) -> Response:
    await portal_form(request)
    if user is None:
        return RedirectResponse(LOGIN, status_code=303)
    _work(request, lambda svc: svc.withdraw_move_out(user, request_id))
    return RedirectResponse(f"{HOME}/move-out", status_code=303)


# ----------------------------------------------------------------------------------------- 同意


def _consent_page(
    request: Request,
    user: PortalUser,
    *,
    error: JlisError | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    consents, verifiers = _work(request, lambda svc: (svc.consents(user), svc.consent_verifiers()))
    return _page(
        request,
        user,
        "consents.html",
        "基本4情報の提供への同意",
        consents=consents,
        verifiers=verifiers,
        cards=client.demo_cards(_cards_dir(request)),
        now=get_container(request).clock.now(),
        error=error,
        values=values or {"days": str(DEFAULT_CONSENT_DAYS)},
    )


@router.get("/consents")
def consents(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    return _signed_in(request, user, lambda u: _consent_page(request, u))


@router.post("/consents")
async def consent_submit(request: Request, user: PortalUser | None = Depends(portal_page_user)) -> Response:
    form = await portal_form(request)
    if user is None:
        return RedirectResponse(LOGIN, status_code=303)
    values = {k: str(v) for k, v in form.items() if k in ("verifier_id", "purpose", "days", "card", "source")}
    clock = get_container(request).clock
    try:
        try:
            days = int(values.get("days", ""))
        except ValueError:
            raise InvalidInput("days", "must be a number") from None
        terms: ConsentRequest = _work(
            request,
            lambda svc: svc.consent_request(
                values.get("verifier_id", ""), values.get("purpose", ""), days=days
            ),
        )
        # ---- the user's software: the card signs the terms with the signing key
        with _open_card(request, form) as reader:
            document = client.sign_consent(reader, terms, str(form.get("password", "")), clock=clock)
        # ---- the portal keeps the signed consent for the verifier
        _work(request, lambda svc: svc.record_consent(user, document))
    except (WrongPin, PinBlocked) as exc:
        return _consent_page(request, user, error=_card_error(exc), values=values)
    except Forbidden:
        raise
    except JlisError as exc:
        return _consent_page(request, user, error=exc, values=values)
    return RedirectResponse(f"{HOME}/consents?given=1", status_code=303)


@router.post("/consents/{consent_id}/withdraw")
async def consent_withdraw(
    consent_id: int, request: Request, user: PortalUser | None = Depends(portal_page_user)
) -> Response:
    await portal_form(request)
    if user is None:
        return RedirectResponse(LOGIN, status_code=303)
    _work(request, lambda svc: svc.withdraw_consent(user, consent_id))
    return RedirectResponse(f"{HOME}/consents", status_code=303)


# ----------------------------------------------------------------------------------------- the counter's side

staff_router = APIRouter(prefix="/counter/{lg_code}/portal-move-outs", include_in_schema=False)


def page_staff(
    lg_code: str, principal: Principal = Depends(page_principal(PrincipalKind.MUNICIPAL_STAFF))
) -> Principal:
    principal.require_staff_of(lg_code)
    return principal


def _staff_page(
    request: Request, lg_code: str, staff: Principal, *, error: JlisError | None = None
) -> Response:
    def load(svc: PortalService) -> dict[str, Any]:
        return {
            "waiting": svc.requests_for(staff, lg_code),
            "decided": [r for r in svc.requests_for(staff, lg_code, status=None) if r.status != "submitted"],
        }

    data = _work(request, load)
    name = get_container(request).geography.municipality(lg_code).name
    return render(
        request,
        "portal/staff_move_outs.html",
        {"title": "オンライン転出届 (マイナポータル)", "lg_code": lg_code, "municipality": name, **data},
        error=error,
    )


@staff_router.get("")
def staff_move_outs(request: Request, lg_code: str, staff: Principal = Depends(page_staff)) -> Response:
    return _staff_page(request, lg_code, staff)


@staff_router.post("/{request_id}/{decision}")
def staff_decide(
    request: Request,
    lg_code: str,
    request_id: int,
    decision: str,
    staff: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def run() -> str:
        if decision == "accept":
            _work(request, lambda svc: svc.accept_move_out(staff, lg_code, request_id))
            poke_relay(request)
        elif decision == "reject":
            _work(
                request, lambda svc: svc.reject_move_out(staff, lg_code, request_id, form.get("reason", ""))
            )
        else:
            raise InvalidInput("decision", "must be accept or reject")
        return f"/counter/{lg_code}/portal-move-outs"

    return submit_form(run, lambda exc: _staff_page(request, lg_code, staff, error=exc))
