"""The J-LIS operator's JPKI pages: the CAs and their generations, issuance and revocation counts,
the freshness of the CRLs this process serves, the revocation log, the registered verifiers (with
registration and (de)activation forms) and the status-query log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cryptography import x509
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from jlis.audit import AuditLog
from jlis.auth.models import Principal, PrincipalKind
from jlis.db import read_only, transaction
from jlis.errors import Forbidden, InvalidInput, JlisError, Unauthenticated
from jlis.jpki.api import crl_status, services, status_query_log
from jlis.jpki.revocation import REASON_LABELS, Reason, revocation_log
from jlis.jpki.tables import AUTH, SIGN, CaGenerationRow, CertificateRow, OcspResponderRow
from jlis.jpki.verifiers import VerifierRegistry
from jlis.registry.models import parse_date
from jlis.web.deps import csrf_form, get_container, page_principal
from jlis.web.templating import render

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
router = APIRouter(prefix="/jlis/jpki", include_in_schema=False)
OPERATOR = page_principal(PrincipalKind.JLIS_OPERATOR)
ACCESS_LOG = AuditLog("access")
KIND_LABELS = {SIGN: "署名用", AUTH: "利用者証明用"}
STATUS_LABELS = {"good": "有効", "hold": "一時保留", "revoked": "失効"}


def _generations(s: Any) -> list[dict[str, Any]]:
    responders: dict[int, dt.datetime] = {}
    for gen_id, not_after in s.execute(
        select(OcspResponderRow.ca_generation_id, func.max(OcspResponderRow.not_after)).group_by(
            OcspResponderRow.ca_generation_id
        )
    ):
        responders[gen_id] = not_after
    out = []
    for row in s.scalars(
        select(CaGenerationRow).order_by(CaGenerationRow.ca_kind.desc(), CaGenerationRow.generation)
    ):
        cert = x509.load_der_x509_certificate(row.certificate_der)
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
        except x509.ExtensionNotFound:
            ski = ""
        out.append(
            {
                "kind": row.ca_kind,
                "kind_label": KIND_LABELS.get(row.ca_kind, row.ca_kind),
                "generation": row.generation,
                "algorithm": row.algorithm,
                "not_before": row.not_before,
                "not_after": row.not_after,
                "active": row.active,
                "revoked_at": row.revoked_at,
                "revocation_reason": row.revocation_reason,
                "ski": ski,
                "key_ref": row.key_ref.split(":", 1)[0],
                "responder_until": responders.get(row.id),
            }
        )
    return out


def _counts(s: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    c = CertificateRow
    issued: dict[tuple[str, str], dict[str, int]] = {}
    for kind, holder, status, n in s.execute(
        select(c.ca_kind, c.holder, c.status, func.count()).group_by(c.ca_kind, c.holder, c.status)
    ):
        issued.setdefault((kind, holder), {"good": 0, "hold": 0, "revoked": 0})[status] = n
    rows = [
        {
            "kind_label": KIND_LABELS.get(k, k),
            "holder": h,
            **v,
            "total": sum(v.values()),
        }
        for (k, h), v in sorted(issued.items(), key=lambda kv: (kv[0][0] != SIGN, kv[0][1]))
    ]
    reasons = []
    for kind, reason, n in s.execute(
        select(c.ca_kind, c.revocation_reason, func.count())
        .where(c.revocation_reason.is_not(None))
        .group_by(c.ca_kind, c.revocation_reason)
        .order_by(c.ca_kind.desc(), c.revocation_reason)
    ):
        label = REASON_LABELS.get(Reason(reason), reason) if reason in Reason._value2member_map_ else reason
        reasons.append(
            {"kind_label": KIND_LABELS.get(kind, kind), "reason": reason, "label": label, "count": n}
        )
    return rows, reasons


@router.get("")
def overview_page(request: Request, _principal: Principal = Depends(OPERATOR)) -> Response:
    container = get_container(request)
    with container.factory() as s:
        read_only(s)
        generations = _generations(s)
        issued, reasons = _counts(s)
    svc = services(request)
    return render(
        request,
        "jpki/overview.html",
        {
            "title": "公的個人認証サービス (JPKI)",
            "generations": generations,
            "issued": issued,
            "reasons": reasons,
            "crls": crl_status(svc),
            "ocsp": svc.responder.state(),
            "now": container.clock.now(),
        },
    )


@router.get("/revocations")
def revocations_page(request: Request, principal: Principal = Depends(OPERATOR)) -> Response:
    container = get_container(request)
    with transaction(container.factory) as s:
        entries = revocation_log(s, limit=200)
        # The entries name residents (by 住民票コード); reading them is on record.
        ACCESS_LOG.append(
            s,
            at=container.clock.now(),
            actor=principal.actor,
            action="read",
            subject=None,
            details={"system": "jpki", "purpose": "失効記録の閲覧", "entries": len(entries)},
        )
    rows = [
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "kind_label": KIND_LABELS.get(change.ca_kind, change.ca_kind),
            "serial": change.serial,
            "lg_code": change.lg_code or "",
            "status": STATUS_LABELS.get(change.status, change.status),
            "reason": change.reason or "",
            "cause": details.get("cause", ""),
        }
        for seq, at, actor, action, change, details in entries
    ]
    return render(request, "jpki/revocations.html", {"title": "失効の記録", "entries": rows})


def _verifiers_page(
    request: Request,
    principal: Principal,
    *,
    error: JlisError | None = None,
    values: dict[str, str] | None = None,
    notice: str = "",
) -> Response:
    container = get_container(request)
    with container.factory() as s:
        verifiers = VerifierRegistry(s, container.clock, actor=principal.actor).list()
    return render(
        request,
        "jpki/verifiers.html",
        {"title": "署名検証者・利用者証明検証者", "verifiers": verifiers, "notice": notice},
        error=error,
        values=values,
    )


@router.get("/verifiers")
def verifiers_page(request: Request, notice: str = "", principal: Principal = Depends(OPERATOR)) -> Response:
    return _verifiers_page(request, principal, notice=notice[:100])


@router.post("/verifiers")
def register_verifier_page(
    request: Request, form: dict[str, str] = Depends(csrf_form), principal: Principal = Depends(OPERATOR)
) -> Response:
    container = get_container(request)
    try:
        with transaction(container.factory) as s:
            v = VerifierRegistry(s, container.clock, actor=principal.actor).register(
                verifier_id=form.get("verifier_id", ""),
                name=form.get("name", ""),
                signature_verifier=form.get("signature_verifier") == "on",
                user_verifier=form.get("user_verifier") == "on",
                basis=form.get("basis", ""),
                agreement_no=form.get("agreement_no", ""),
                agreement_date=parse_date("agreement_date", form.get("agreement_date", "")),
                username=form.get("username", ""),
                password=form.get("password", ""),
            )
    except (Forbidden, Unauthenticated):
        raise
    except JlisError as exc:
        values = {k: v for k, v in form.items() if k != "password"}
        return _verifiers_page(request, principal, error=exc, values=values)
    return RedirectResponse(f"/jlis/jpki/verifiers?notice=registered:{v.id}", status_code=303)


@router.post("/verifiers/{verifier_id}/{action}")
def set_active_page(
    verifier_id: str,
    action: str,
    request: Request,
    _form: dict[str, str] = Depends(csrf_form),
    principal: Principal = Depends(OPERATOR),
) -> Response:
    container = get_container(request)
    if action not in ("activate", "deactivate"):
        return _verifiers_page(
            request, principal, error=InvalidInput("action", "must be activate or deactivate")
        )
    try:
        with transaction(container.factory) as s:
            VerifierRegistry(s, container.clock, actor=principal.actor).set_active(
                verifier_id, action == "activate"
            )
    except (Forbidden, Unauthenticated):
        raise
    except JlisError as exc:
        return _verifiers_page(request, principal, error=exc)
    services(request).auth.forget()
    return RedirectResponse(f"/jlis/jpki/verifiers?notice={action}d:{verifier_id}", status_code=303)


@router.get("/queries")
def queries_page(
    request: Request, verifier_id: str = "", channel: str = "", principal: Principal = Depends(OPERATOR)
) -> Response:
    container = get_container(request)
    error: JlisError | None = None
    entries: list[Any] = []
    services(request).log.flush()
    try:
        entries = status_query_log(
            container, principal, verifier_id=verifier_id.strip() or None, channel=channel.strip() or None
        )
    except (Forbidden, Unauthenticated):
        raise
    except JlisError as exc:
        error = exc
    return render(
        request,
        "jpki/queries.html",
        {"title": "失効情報の照会記録", "entries": entries, "verifier_id": verifier_id, "channel": channel},
        error=error,
    )
