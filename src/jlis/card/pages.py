"""The counter's card pages (統合端末 — マイナンバーカード): the cards the municipality holds, one card
with its history and certificates, the 交付通知書 (printable), delivery with the identity check and
the PINs, lifting a suspension, and re-issue.

Staff see the cards of their own municipality only (the path names it; the service refuses any
other card). A refused form comes back with the message naming the item and the rule, and with
what was typed — except PINs and passwords, which are never sent back to the browser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from jlis.auth.models import Principal, PrincipalKind
from jlis.card.api import (
    DeliveryIn,
    DocumentsIn,
    ReissueIn,
    apply_delivery,
    apply_lift,
    apply_reissue,
    card_deps,
    parse_state,
)
from jlis.card.applications import ReissueReason
from jlis.card.documents import Document
from jlis.card.lifecycle import CardEvent, CardState, allowed_events
from jlis.card.service import CardService, card_transaction
from jlis.errors import JlisError, NotFound
from jlis.web.deps import csrf_form, get_container, page_principal
from jlis.web.templating import render, submit_form

router = APIRouter(prefix="/counter/{lg_code}/cards", include_in_schema=False)

SECRET_FIELDS = frozenset({"sign_password", "auth_pin", "juki_pin", "text_pin", "new_pin", "password"})
DONE_MESSAGES = {
    "notice": "交付通知書を送付済みにしました。",
    "deliver": "カードを交付しました。電子証明書を発行し、カードに書き込みました。",
    "lift": "一時停止を解除しました。電子証明書の一時保留も解除しました。",
    "reissue": "再交付申請を受け付けました。",
}
# The documents a counter offers on its forms, in display order.
FORM_DOCUMENTS = (
    Document.NOTICE,
    Document.MY_NUMBER_CARD,
    Document.DRIVER_LICENCE,
    Document.PASSPORT,
    Document.RESIDENCE_CARD,
    Document.DISABILITY_BOOK,
    Document.HEALTH_INSURANCE,
    Document.PENSION_BOOK,
    Document.STUDENT_ID,
    Document.EMPLOYEE_ID,
    Document.NUMBER_NOTICE,
)


def page_staff(
    lg_code: str, principal: Principal = Depends(page_principal(PrincipalKind.MUNICIPAL_STAFF))
) -> Principal:
    principal.require_staff_of(lg_code)
    return principal


Loader = Callable[[CardService], dict[str, Any]]


def _municipality(request: Request, lg_code: str) -> str:
    geo = get_container(request).geography
    m = geo.municipality(lg_code)
    return geo.prefecture(m.pref_code).name + m.full_name


def _base(request: Request, lg_code: str) -> dict[str, Any]:
    return {
        "lg_code": lg_code,
        "municipality": _municipality(request, lg_code),
        "documents": FORM_DOCUMENTS,
        "CardState": CardState,
        "CardEvent": CardEvent,
    }


def _render(
    request: Request,
    lg_code: str,
    principal: Principal,
    template: str,
    title: str,
    loader: Loader,
    *,
    values: dict[str, str] | None = None,
    error: JlisError | None = None,
) -> Response:
    container = get_container(request)
    with card_transaction(container.factory) as s:
        ctx = _base(request, lg_code)
        ctx.update(loader(CardService(s, card_deps(request), principal)))
    ctx["title"] = title
    shown = {k: v for k, v in (values or {}).items() if k not in SECRET_FIELDS}
    return render(request, template, ctx, values=shown, error=error)


def _submit(
    request: Request,
    lg_code: str,
    principal: Principal,
    form: dict[str, str],
    template: str,
    title: str,
    loader: Loader,
    action: Callable[[CardService], str],
) -> Response:
    """Run ``action`` in one transaction and go where it says; a refusal shows the form again
    (nothing was written, except a wrong PIN's count, as on a card)."""
    container = get_container(request)

    def run() -> str:
        with card_transaction(container.factory) as s:
            return action(CardService(s, card_deps(request), principal))

    return submit_form(
        run,
        lambda exc: _render(request, lg_code, principal, template, title, loader, values=form, error=exc),
    )


def _documents(form: dict[str, str]) -> list[str]:
    return [d.value for d in FORM_DOCUMENTS if form.get(f"doc_{d.value}")]


def _checked(form: dict[str, str], name: str) -> bool:
    return form.get(name, "").lower() in ("on", "true", "1", "yes")


def _card_url(lg_code: str, card_id: str, done: str | None = None) -> str:
    return f"/counter/{lg_code}/cards/{card_id}" + (f"?done={done}" if done else "")


def _card_loader(card_id: str, purpose: str, *, full: bool = False) -> Loader:
    def load(svc: CardService) -> dict[str, Any]:
        card = svc.get(card_id, purpose=purpose)
        ctx: dict[str, Any] = {"card": card, "holder": svc.holder(card)}
        if full:
            ctx["events"] = list(reversed(svc.events(card_id)))
            ctx["certificates"] = svc.certificates(card_id)
            ctx["allowed"] = allowed_events(card.state)
        return ctx

    return load


# ------------------------------------------------------------------------------------------ list and card


@router.get("")
def card_list(
    request: Request, lg_code: str, state: str = "", principal: Principal = Depends(page_staff)
) -> Response:
    wanted = parse_state(state)

    def load(svc: CardService) -> dict[str, Any]:
        cards = svc.cards(lg_code, state=wanted)
        names = {}
        for c in cards:
            try:
                names[c.id] = svc.holder(c).name.full
            except NotFound:  # a holder who moved in keeps their record elsewhere until 継続利用
                names[c.id] = ""
        return {"cards": cards, "names": names, "state": state, "states": list(CardState)}

    return _render(request, lg_code, principal, "card/list.html", "マイナンバーカード", load)


@router.get("/{card_id}")
def card_page(
    request: Request,
    lg_code: str,
    card_id: str,
    done: str = "",
    application: str = "",
    principal: Principal = Depends(page_staff),
) -> Response:
    def load(svc: CardService) -> dict[str, Any]:
        ctx = _card_loader(card_id, "カード表示", full=True)(svc)
        ctx["done"] = DONE_MESSAGES.get(done)
        ctx["application"] = svc.application(application) if application else None
        return ctx

    return _render(request, lg_code, principal, "card/card.html", "マイナンバーカード", load)


# ------------------------------------------------------------------------------------------ 交付通知書


@router.post("/{card_id}/notice")
def notice_send(
    request: Request,
    lg_code: str,
    card_id: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def action(svc: CardService) -> str:
        svc.counter.send_notice(card_id)
        return f"/counter/{lg_code}/cards/{card_id}/notice"

    return _submit(
        request,
        lg_code,
        principal,
        form,
        "card/card.html",
        "マイナンバーカード",
        _card_loader(card_id, "カード表示", full=True),
        action,
    )


@router.get("/{card_id}/notice")
def notice_page(
    request: Request, lg_code: str, card_id: str, principal: Principal = Depends(page_staff)
) -> Response:
    def load(svc: CardService) -> dict[str, Any]:
        return {"notice": svc.counter.notice(card_id)}

    return _render(request, lg_code, principal, "card/notice.html", "個人番号カード交付通知書", load)


# ------------------------------------------------------------------------------------------ delivery


@router.get("/{card_id}/deliver")
def deliver_form(
    request: Request, lg_code: str, card_id: str, principal: Principal = Depends(page_staff)
) -> Response:
    return _render(
        request, lg_code, principal, "card/deliver.html", "カードの交付", _card_loader(card_id, "カード交付")
    )


@router.post("/{card_id}/deliver")
def deliver_submit(
    request: Request,
    lg_code: str,
    card_id: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def action(svc: CardService) -> str:
        body = DeliveryIn(
            documents=_documents(form),
            sign_password=form.get("sign_password") or None,
            auth_pin=form.get("auth_pin", ""),
            juki_pin=form.get("juki_pin", ""),
            text_pin=form.get("text_pin", ""),
            representative=form.get("representative") or None,
        )
        apply_delivery(svc, card_id, body)
        return _card_url(lg_code, card_id, "deliver")

    return _submit(
        request,
        lg_code,
        principal,
        form,
        "card/deliver.html",
        "カードの交付",
        _card_loader(card_id, "カード交付"),
        action,
    )


# ------------------------------------------------------------------------------------------ suspension


@router.get("/{card_id}/lift")
def lift_form(
    request: Request, lg_code: str, card_id: str, principal: Principal = Depends(page_staff)
) -> Response:
    return _render(
        request, lg_code, principal, "card/lift.html", "一時停止の解除", _card_loader(card_id, "一時停止解除")
    )


@router.post("/{card_id}/lift")
def lift_submit(
    request: Request,
    lg_code: str,
    card_id: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def action(svc: CardService) -> str:
        apply_lift(svc, card_id, DocumentsIn(documents=_documents(form)))
        return _card_url(lg_code, card_id, "lift")

    return _submit(
        request,
        lg_code,
        principal,
        form,
        "card/lift.html",
        "一時停止の解除",
        _card_loader(card_id, "一時停止解除"),
        action,
    )


# ------------------------------------------------------------------------------------------ re-issue


def _reissue_loader(card_id: str) -> Loader:
    base = _card_loader(card_id, "再交付")

    def load(svc: CardService) -> dict[str, Any]:
        return {**base(svc), "reasons": [r for r in ReissueReason if r is not ReissueReason.CODE_CHANGE]}

    return load


@router.get("/{card_id}/reissue")
def reissue_form(
    request: Request, lg_code: str, card_id: str, principal: Principal = Depends(page_staff)
) -> Response:
    return _render(request, lg_code, principal, "card/reissue.html", "再交付申請", _reissue_loader(card_id))


@router.post("/{card_id}/reissue")
def reissue_submit(
    request: Request,
    lg_code: str,
    card_id: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def action(svc: CardService) -> str:
        body = ReissueIn(
            documents=_documents(form),
            reason=form.get("reason", ""),
            express=_checked(form, "express"),
            event_date=form.get("event_date") or None,
            holder_responsible=not _checked(form, "not_responsible"),
            lost_outside_home=_checked(form, "lost_outside_home"),
            police_report_no=form.get("police_report_no") or None,
            certificates=not _checked(form, "no_certificates"),
        )
        app = apply_reissue(svc, card_id, body)
        return f"/counter/{lg_code}/cards/{card_id}?done=reissue&application={app.id}"

    return _submit(
        request, lg_code, principal, form, "card/reissue.html", "再交付申請", _reissue_loader(card_id), action
    )
