"""HTTP face of JPKI's revocation information (the adapter over ocsp.py, crl.py, verifiers.py,
basic4.py and revocation.py).

Two routers (the app includes both):

- :data:`router` (``/jpki``): what relying parties fetch at the URLs written into certificates
  (jlis.jpki.urls): CA certificates (public: the roots are published), CRLs and ARLs and the OCSP
  responder (POST and GET), for registered verifiers only — a bearer token of a verifier principal,
  a 署名検証者 for the signing CA and a 利用者証明検証者 for the authentication CA (facts §3.5). A
  refusal is 401 (no or a bad token) or 403 (another role, an inactive verifier) with the house JSON
  error; OCSP errors inside a request are OCSP statuses (malformedRequest, unauthorized...), never a
  5xx. Every answer and every refusal is a row of the status-query log, with the purpose from the
  ``X-JPKI-Purpose`` header (percent-encoded UTF-8; "unspecified" when absent).
- :data:`api_router` (``/api/v1/jpki``): verifier registration, the status-query log and
  revocations by the J-LIS operator; the latest 基本4情報 for a 署名検証者.

The per-process parts (the OCSP cache, the CRL cache, the query log writer, the token cache) are
:class:`RevocationServices`, made on first use and kept in ``app.state``; :func:`start_services` and
:func:`stop_services` are for the app's lifespan (start the background threads / flush the log).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import threading
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from jlis.audit import AuditLog
from jlis.auth.models import Principal, PrincipalKind
from jlis.cli.options import DatabaseOpt
from jlis.cli.options import container as container_of
from jlis.container import Container
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, JlisError, NotFound, Unauthenticated
from jlis.jpki.basic4 import Basic4, provide_basic4
from jlis.jpki.crl import CrlDocument, CrlPublisher, keystore_signers
from jlis.jpki.keystore import KeyStore, keystore_from_settings
from jlis.jpki.ocsp import (
    MALFORMED,
    MAX_REQUEST_BYTES,
    TRY_LATER,
    Answer,
    MalformedRequest,
    OcspResponder,
    ResponseStatus,
    decode_get_path,
)
from jlis.jpki.revocation import Reason, Revocations
from jlis.jpki.tables import AUTH, SIGN, CaGenerationRow
from jlis.jpki.verifiers import (
    PURPOSE_HEADER,
    CallerCheck,
    QueryRecord,
    StatusQueryLog,
    Verifier,
    VerifierAuth,
    VerifierRegistry,
    check_purpose,
    recent_queries,
    verifier_of,
)
from jlis.web.deps import GUARD_ATTR, api_principal, get_container, public
from jlis.web.errors import jlis_error_body

STATUS_TAG = "JPKI 失効情報 (検証者)"
VERIFIER_TAG = "JPKI 最新の基本4情報 (署名検証者)"
JLIS_TAG = "JPKI (J-LIS)"
OPENAPI_TAGS = [
    {
        "name": STATUS_TAG,
        "description": "登録された署名検証者・利用者証明検証者だけが使える CRL・ARL・OCSP。"
        " `Authorization: Bearer <token>` と、任意で `X-JPKI-Purpose: <目的>`"
        " (UTF-8 をパーセント符号化) を付けます。",
    },
    {
        "name": VERIFIER_TAG,
        "description": "本人の同意書 (署名用電子証明書で署名した CMS) による最新の基本4情報",
    },
    {"name": JLIS_TAG, "description": "J-LIS 運用者: 検証者の登録、照会記録、失効"},
]

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
CRL_TYPE = "application/pkix-crl"
CERT_TYPE = "application/pkix-cert"
ACCESS_LOG = AuditLog("access")

router = APIRouter(prefix="/jpki", tags=[STATUS_TAG])
api_router = APIRouter(prefix="/api/v1/jpki")
OPERATOR = api_principal(PrincipalKind.JLIS_OPERATOR)
VERIFIER = api_principal(PrincipalKind.VERIFIER)
_BEARER: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


# ------------------------------------------------------------------------------------- services


class RevocationServices:
    """The per-process state of revocation serving for one database."""

    def __init__(
        self, container: Container, keystore: KeyStore | None = None, *, durable_log: bool = False
    ) -> None:
        """``durable_log``: an OCSP answer waits for the commit of its status-query record (no
        crash window, about half the throughput); by default it is queued and written within
        50 ms (see :class:`jlis.jpki.verifiers.StatusQueryLog`)."""
        ks = keystore if keystore is not None else keystore_from_settings(container.settings)
        signer_for = keystore_signers(ks)
        self.container = container
        self.durable_log = durable_log
        self.responder = OcspResponder(container.factory, container.clock, ks, signer_for)
        self.crls = CrlPublisher(
            container.factory, container.clock, signer_for, container.settings.resolved_public_url
        )
        self.log = StatusQueryLog(container.factory)
        self.auth = VerifierAuth(container.factory, container.clock)

    def start(self) -> None:
        self.log.start()
        self.responder.start()

    def stop(self) -> None:
        self.responder.stop()
        self.log.close()


_services_lock = threading.Lock()


def services(request: Request) -> RevocationServices:
    return services_of(request.app)


def services_of(app: FastAPI | Any) -> RevocationServices:
    svc: RevocationServices | None = getattr(app.state, "jpki_revocation", None)
    if svc is None:
        with _services_lock:
            svc = getattr(app.state, "jpki_revocation", None)
            if svc is None:
                svc = RevocationServices(app.state.container)
                svc.start()
                app.state.jpki_revocation = svc
    return svc


def start_services(app: FastAPI) -> None:
    """For the app's lifespan: build the services (and their responder certificates) at start-up
    rather than on the first query."""
    services_of(app)


def stop_services(app: FastAPI) -> None:
    svc: RevocationServices | None = getattr(app.state, "jpki_revocation", None)
    if svc is not None:
        svc.stop()
        app.state.jpki_revocation = None


# ------------------------------------------------------------------------------------- guards


async def status_caller(request: Request) -> CallerCheck:
    """The verifier calling a /jpki revocation route (deny by default: the route answers nothing
    but the refusal unless :func:`_refusal` passes). Cached per token for a few seconds."""
    svc = services(request)
    header = request.headers.get("authorization")
    check = svc.auth.cached(header)
    if check is None:
        check = await run_in_threadpool(svc.auth.check, header)
    return check


setattr(status_caller, GUARD_ATTR, (PrincipalKind.VERIFIER,))


def _refusal(caller: CallerCheck, ca_kind: str | None) -> JlisError | None:
    if caller.refusal is not None:
        return caller.refusal
    assert caller.verifier is not None
    if ca_kind is None:  # the ARL of either kind: any active verifier
        return None
    try:
        caller.verifier.require_role(ca_kind)
    except Forbidden as exc:
        return exc
    return None


def _error(exc: JlisError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    return JSONResponse(jlis_error_body(exc), status_code=exc.http_status, headers=headers)


def _purpose(request: Request) -> str:
    raw = request.headers.get(PURPOSE_HEADER)
    try:
        return check_purpose(unquote(raw) if raw else None)
    except InvalidInput:
        return check_purpose(unquote(raw or "")[:120])


def _kind(ca_kind: str) -> str:
    if ca_kind not in (SIGN, AUTH):
        raise NotFound("ca_kind", ca_kind)
    return ca_kind


def _refused_record(
    svc: RevocationServices,
    caller: CallerCheck,
    exc: JlisError,
    purpose: str,
    channel: str,
    ca_kind: str | None,
) -> QueryRecord:
    rule = "unauthenticated" if isinstance(exc, Unauthenticated) else "forbidden"
    verifier_id = caller.verifier.id if caller.verifier is not None else None
    now = svc.container.clock.now()
    return QueryRecord(now, verifier_id, purpose, channel, ca_kind, None, f"refused:{rule}")


# ------------------------------------------------------------------------------------- /jpki


@router.get(
    "/ca/{ca_kind}/g{generation:int}.cer",
    summary="CA 証明書 (DER)",
    description="署名用 (sign) または利用者証明用 (auth) CA の世代ごとの自己署名証明書。公開。",
    dependencies=[Depends(public)],
    response_class=Response,
    responses={200: {"content": {CERT_TYPE: {}}}, 404: {"description": "その世代はない"}},
)
def ca_certificate(ca_kind: str, generation: int, request: Request) -> Response:
    container = get_container(request)
    try:
        _kind(ca_kind)
        with container.factory() as s:
            row = (
                s.query(CaGenerationRow)
                .filter(CaGenerationRow.ca_kind == ca_kind, CaGenerationRow.generation == generation)
                .one_or_none()
            )
        if row is None:
            raise NotFound("generation", f"{ca_kind} g{generation}")
    except JlisError as exc:
        return _error(exc)
    return Response(row.certificate_der, media_type=CERT_TYPE)


def _crl_response(
    request: Request, caller: CallerCheck, ca_kind: str, scope: str, build: Any, role: str | None
) -> Response:
    svc = services(request)
    purpose = _purpose(request)
    try:
        _kind(ca_kind)
    except JlisError as exc:
        return _error(exc)
    refusal = _refusal(caller, role)
    if refusal is not None:
        with contextlib.suppress(Exception):  # the refusal is answered either way; it gives nothing away
            svc.log.record(_refused_record(svc, caller, refusal, purpose, "crl", ca_kind)).result(30)
        return _error(refusal)
    assert caller.verifier is not None
    try:
        doc: CrlDocument = build(svc.crls)
    except JlisError as exc:
        return _error(exc)
    now = svc.container.clock.now()
    record = QueryRecord(now, caller.verifier.id, purpose, "crl", ca_kind, None, f"crl:{scope}")
    try:
        svc.log.record(record).result(30)
    except Exception:  # fails closed: nothing leaves without its record
        return _error(JlisError("the status-query log is unavailable; try again"))
    return Response(
        doc.der,
        media_type=CRL_TYPE,
        headers={"Last-Modified": _http_date(doc.this_update), "X-CRL-Number": str(doc.number)},
    )


def _http_date(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


_CRL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {CRL_TYPE: {}}, "description": "DER の CRL"},
    401: {"description": "検証者のトークンがない・無効"},
    403: {"description": "その CA の検証者として登録されていない"},
    404: {"description": "その世代・区分はない"},
}


@router.get(
    "/crl/{ca_kind}/g{generation:int}.crl",
    summary="CRL (世代ごとの全体)",
    response_class=Response,
    responses=_CRL_RESPONSES,
    openapi_extra=_BEARER,
)
def crl_full(
    ca_kind: str, generation: int, request: Request, caller: CallerCheck = Depends(status_caller)
) -> Response:
    return _crl_response(
        request, caller, ca_kind, f"g{generation}", lambda c: c.crl(ca_kind, generation), ca_kind
    )


@router.get(
    "/crl/{ca_kind}/g{generation:int}/{lg_code}.crl",
    summary="CRL (市区町村ごとの分割)",
    description="証明書の CRL 配布点 (市区町村) に対応する分割 CRL。issuingDistributionPoint つき。",
    response_class=Response,
    responses=_CRL_RESPONSES,
    openapi_extra=_BEARER,
)
def crl_partition(
    ca_kind: str,
    generation: int,
    lg_code: str,
    request: Request,
    caller: CallerCheck = Depends(status_caller),
) -> Response:
    return _crl_response(
        request,
        caller,
        ca_kind,
        f"g{generation}/{lg_code}"[:27],
        lambda c: c.crl(ca_kind, generation, lg_code),
        ca_kind,
    )


@router.get(
    "/arl/{ca_kind}.crl",
    summary="ARL (失効した CA 世代)",
    response_class=Response,
    responses=_CRL_RESPONSES,
    openapi_extra=_BEARER,
)
def arl(ca_kind: str, request: Request, caller: CallerCheck = Depends(status_caller)) -> Response:
    return _crl_response(request, caller, ca_kind, "arl", lambda c: c.arl(ca_kind), None)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` (read no further than that)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > limit:
            return None
        return await request.body()  # the server delivers no more than the declared length
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _ocsp(request: Request, caller: CallerCheck, ca_kind: str, der: bytes | None) -> Response:
    svc = services(request)
    purpose = _purpose(request)
    refusal = _refusal(caller, ca_kind)
    if refusal is not None:
        with contextlib.suppress(Exception):  # the refusal is answered either way; it gives nothing away
            svc.log.enqueue(_refused_record(svc, caller, refusal, purpose, "ocsp", ca_kind))
        return _error(refusal)
    assert caller.verifier is not None
    if der is None:
        answer = Answer(MALFORMED, ResponseStatus.MALFORMED_REQUEST, ca_kind)
    else:
        hit = svc.responder.cached(ca_kind, der)
        answer = hit if hit is not None else await run_in_threadpool(svc.responder.answer, ca_kind, der)
    now = svc.container.clock.now()
    serials = answer.serials or (None,)
    results = answer.results if len(answer.results) == len(serials) else (answer.result,) * len(serials)
    records = [
        QueryRecord(now, caller.verifier.id, purpose, "ocsp", ca_kind, s, r)
        for s, r in zip(serials, results, strict=True)
    ]
    try:
        for record in records:
            if svc.durable_log:
                await svc.log.record_async(record)
            else:
                svc.log.enqueue(record)
    except Exception:  # fails closed: no answer without its record
        return Response(TRY_LATER, media_type=OCSP_RESPONSE)
    return Response(answer.der, media_type=OCSP_RESPONSE)


_OCSP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {OCSP_RESPONSE: {}},
        "description": "OCSPResponse (DER)。要求の誤りは malformedRequest、他の CA は unauthorized",
    },
    401: {"description": "検証者のトークンがない・無効"},
    403: {"description": "その CA の検証者として登録されていない"},
    404: {"description": "CA の種類が sign / auth でない"},
}


@router.post(
    "/ocsp/{ca_kind}",
    summary="OCSP (POST, RFC 6960)",
    description=f"本文は DER の OCSPRequest (Content-Type: {OCSP_REQUEST})。{MAX_REQUEST_BYTES} バイトまで。"
    " nonce がなければ事前署名の応答を、あれば nonce を返す応答をその場で署名して返します。",
    response_class=Response,
    responses=_OCSP_RESPONSES,
    openapi_extra={
        **_BEARER,
        "requestBody": {"content": {OCSP_REQUEST: {"schema": {"type": "string", "format": "binary"}}}},
    },
)
async def ocsp_post(ca_kind: str, request: Request, caller: CallerCheck = Depends(status_caller)) -> Response:
    if ca_kind not in (SIGN, AUTH):
        return _error(NotFound("ca_kind", ca_kind))
    return await _ocsp(request, caller, ca_kind, await _read_limited(request, MAX_REQUEST_BYTES))


@router.get(
    "/ocsp/{ca_kind}/{encoded:path}",
    summary="OCSP (GET, RFC 6960 付録 A.1)",
    description="パスは DER の OCSPRequest を base64 (標準または URL 安全、パディング省略可) にして"
    " URL 符号化したもの。",
    response_class=Response,
    responses=_OCSP_RESPONSES,
    openapi_extra=_BEARER,
)
async def ocsp_get(
    ca_kind: str, encoded: str, request: Request, caller: CallerCheck = Depends(status_caller)
) -> Response:
    if ca_kind not in (SIGN, AUTH):
        return _error(NotFound("ca_kind", ca_kind))
    try:
        der: bytes | None = decode_get_path(encoded)
    except MalformedRequest:
        der = None
    return await _ocsp(request, caller, ca_kind, der)


# ------------------------------------------------------------------------------------- /api/v1/jpki


class VerifierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verifier_id: str = Field(title="検証者ID", examples=["bank-a"])
    name: str = Field(title="名称")
    signature_verifier: bool = Field(title="署名検証者 (公的個人認証法 §17)")
    user_verifier: bool = Field(title="利用者証明検証者 (§36)")
    basis: str = Field(title="根拠", examples=["主務大臣認定事業者"])
    agreement_no: str = Field(title="協定・届出番号")
    agreement_date: dt.date = Field(title="協定日")
    username: str = Field(title="API 利用者名", description="検証者のトークンを得るユーザー名")
    password: str = Field(title="API パスワード")


class VerifierOut(BaseModel):
    verifier_id: str
    name: str
    signature_verifier: bool
    user_verifier: bool
    basis: str
    agreement_no: str
    agreement_date: dt.date
    active: bool
    username: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, v: Verifier) -> VerifierOut:
        return cls(
            verifier_id=v.id,
            name=v.name,
            signature_verifier=v.signature_verifier,
            user_verifier=v.user_verifier,
            basis=v.basis,
            agreement_no=v.agreement_no,
            agreement_date=v.agreement_date,
            active=v.active,
            username=v.username,
            created_at=v.created_at,
        )


class StatusQueryOut(BaseModel):
    id: int
    at: dt.datetime
    verifier_id: str | None
    purpose: str
    channel: str
    ca_kind: str | None
    serial: str | None
    result: str


class Basic4In(BaseModel):
    model_config = ConfigDict(extra="forbid")
    certificate: str = Field(description="保有する署名用電子証明書 (失効していてよい) の DER を base64 で")
    consent: str = Field(
        description="本人の同意書: 現在の署名用電子証明書で署名した CMS SignedData の DER を base64 で"
    )
    purpose: str | None = Field(None, description="照会の目的")


class Basic4Out(BaseModel):
    name: str = Field(title="氏名")
    birth_date: dt.date = Field(title="生年月日")
    sex: str = Field(title="性別", description="male | female")
    address: str = Field(title="住所")
    as_of: dt.date = Field(title="異動年月日")
    status: str = Field(description="active | moving_out | removed")
    certificate_serial: str

    @classmethod
    def of(cls, b: Basic4, serial: str) -> Basic4Out:
        return cls(
            name=b.name,
            birth_date=b.birth_date,
            sex=b.sex,
            address=b.address,
            as_of=b.as_of,
            status=b.status,
            certificate_serial=serial,
        )


class RevocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ca_kind: str = Field(description="sign | auth")
    serial: str = Field(description="証明書のシリアル番号 (16 進)")
    generation: int | None = Field(None, description="CA の世代 (シリアルが複数の世代にあるときだけ必要)")
    reason: str = Field(
        description="RFC 5280 の理由: keyCompromise, affiliationChanged, superseded, cessationOfOperation, "
        "privilegeWithdrawn, unspecified"
    )
    cause: str = Field(description="失効の原因 (記録用)", examples=["key-compromise:2026-11-26 報告"])


class RevocationOut(BaseModel):
    ca_kind: str
    serial: str
    status: str
    revoked_at: dt.datetime | None
    reason: str | None
    changed: bool


class CrlStatusOut(BaseModel):
    ca_kind: str
    scope: str
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    entries: int
    stale: bool
    build_seconds: float


def _b64(field: str, value: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(field, "must be base64") from None


@api_router.post(
    "/verifiers",
    tags=[JLIS_TAG],
    summary="検証者の登録 (協定の記録と API 利用者)",
    response_model=VerifierOut,
    status_code=201,
)
def register_verifier(
    body: VerifierIn, request: Request, principal: Principal = Depends(OPERATOR)
) -> VerifierOut:
    container = get_container(request)
    with transaction(container.factory) as s:
        v = VerifierRegistry(s, container.clock, actor=principal.actor).register(
            verifier_id=body.verifier_id,
            name=body.name,
            signature_verifier=body.signature_verifier,
            user_verifier=body.user_verifier,
            basis=body.basis,
            agreement_no=body.agreement_no,
            agreement_date=body.agreement_date,
            username=body.username,
            password=body.password,
        )
    return VerifierOut.of(v)


@api_router.get("/verifiers", tags=[JLIS_TAG], summary="登録された検証者", response_model=list[VerifierOut])
def list_verifiers(request: Request, principal: Principal = Depends(OPERATOR)) -> list[VerifierOut]:
    container = get_container(request)
    with container.factory() as s:
        return [VerifierOut.of(v) for v in VerifierRegistry(s, container.clock, actor=principal.actor).list()]


def _set_active(request: Request, principal: Principal, verifier_id: str, active: bool) -> VerifierOut:
    container = get_container(request)
    with transaction(container.factory) as s:
        v = VerifierRegistry(s, container.clock, actor=principal.actor).set_active(verifier_id, active)
    services(request).auth.forget()  # this process stops honouring its cached tokens at once
    return VerifierOut.of(v)


@api_router.post(
    "/verifiers/{verifier_id}/deactivate", tags=[JLIS_TAG], summary="検証者の停止", response_model=VerifierOut
)
def deactivate_verifier(
    verifier_id: str, request: Request, principal: Principal = Depends(OPERATOR)
) -> VerifierOut:
    return _set_active(request, principal, verifier_id, False)


@api_router.post(
    "/verifiers/{verifier_id}/activate", tags=[JLIS_TAG], summary="検証者の再開", response_model=VerifierOut
)
def activate_verifier(
    verifier_id: str, request: Request, principal: Principal = Depends(OPERATOR)
) -> VerifierOut:
    return _set_active(request, principal, verifier_id, True)


def status_query_log(
    container: Container,
    principal: Principal,
    *,
    verifier_id: str | None = None,
    channel: str | None = None,
    limit: int = 200,
) -> list[StatusQueryOut]:
    """The newest status queries; reading them is itself recorded (they name certificates)."""
    with transaction(container.factory) as s:
        rows = recent_queries(s, verifier_id=verifier_id, channel=channel, limit=limit)
        ACCESS_LOG.append(
            s,
            at=container.clock.now(),
            actor=principal.actor,
            action="read",
            subject=None,
            details={"system": "jpki", "purpose": "失効情報照会記録の閲覧", "entries": len(rows)},
        )
        return [
            StatusQueryOut(
                id=r.id,
                at=r.at,
                verifier_id=r.verifier_id,
                purpose=r.purpose,
                channel=r.channel,
                ca_kind=r.ca_kind,
                serial=r.serial,
                result=r.result,
            )
            for r in rows
        ]


@api_router.get(
    "/status-queries",
    tags=[JLIS_TAG],
    summary="失効情報の照会記録 (新しい順)",
    response_model=list[StatusQueryOut],
)
def status_queries(
    request: Request,
    verifier_id: str | None = None,
    channel: str | None = None,
    limit: int = 200,
    principal: Principal = Depends(OPERATOR),
) -> list[StatusQueryOut]:
    svc = services(request)
    svc.log.flush()
    return status_query_log(
        get_container(request), principal, verifier_id=verifier_id, channel=channel, limit=limit
    )


@api_router.post(
    "/revocations",
    tags=[JLIS_TAG],
    summary="証明書の失効 (鍵の危殆化・職権)",
    description="すでに失効している証明書は変わりません (changed=false)。",
    response_model=RevocationOut,
)
def revoke(body: RevocationIn, request: Request, principal: Principal = Depends(OPERATOR)) -> RevocationOut:
    container = get_container(request)
    with transaction(container.factory) as s:
        svc = Revocations(s, container.clock, actor=principal.actor)
        cert = svc.certificate(body.ca_kind, body.serial, body.generation)
        changed = svc.revoke(cert, Reason.parse(body.reason), f"operator:{body.cause}"[:120])
        return RevocationOut(
            ca_kind=cert.ca_kind,
            serial=cert.serial,
            status=cert.status,
            revoked_at=cert.revoked_at,
            reason=cert.revocation_reason,
            changed=changed,
        )


def crl_status(svc: RevocationServices) -> list[CrlStatusOut]:
    return [
        CrlStatusOut(
            ca_kind=d.scope.ca_kind,
            scope=d.scope.label,
            number=d.number,
            this_update=d.this_update,
            next_update=d.next_update,
            entries=d.entries,
            stale=d.stale,
            build_seconds=round(d.build_seconds, 3),
        )
        for d in svc.crls.cached()
    ]


@api_router.get(
    "/crl-status",
    tags=[JLIS_TAG],
    summary="このプロセスが保持する CRL の鮮度",
    response_model=list[CrlStatusOut],
)
def crl_status_api(request: Request, _principal: Principal = Depends(OPERATOR)) -> list[CrlStatusOut]:
    return crl_status(services(request))


@api_router.post(
    "/basic4",
    tags=[VERIFIER_TAG],
    summary="最新の基本4情報 (本人同意つき)",
    description="保有する署名用電子証明書と、本人が現在の署名用電子証明書で署名した同意書 (CMS) を送ると、"
    "最新の氏名・生年月日・性別・住所を返します。同意が有効でなければ 403 (拒否も記録されます)。",
    response_model=Basic4Out,
    responses={403: {"description": "署名検証者でない、または同意が有効でない"}},
)
def basic4(body: Basic4In, request: Request, principal: Principal = Depends(VERIFIER)) -> Basic4Out:
    container = get_container(request)
    certificate = _b64("certificate", body.certificate)
    consent = _b64("consent", body.consent)
    purpose = check_purpose(body.purpose)
    try:
        with container.factory() as s:
            verifier = verifier_of(s, principal)
    except Forbidden:
        record = QueryRecord(container.clock.now(), None, purpose, "basic4", SIGN, None, "refused:verifier")
        services(request).log.record(record).result(30)
        raise
    result = provide_basic4(
        container.factory,
        container.clock,
        verifier,
        certificate=certificate,
        consent=consent,
        purpose=purpose,
    )
    serial = format(x509.load_der_x509_certificate(certificate).serial_number, "x")
    return Basic4Out.of(result, serial)


# ------------------------------------------------------------------------------------- CLI
# ``cli`` is mounted by the lead (e.g. ``jlis jpki revocation ...``): the operator's commands for
# what the pages and the API do, for scripts and the demo.

cli = typer.Typer(help="公的個人認証: verifiers, revocations, CRLs (J-LIS operator).", no_args_is_help=True)


@cli.command("verifier-register")
def cli_register_verifier(
    verifier_id: Annotated[str, typer.Argument(help="検証者ID, e.g. bank-a")],
    name: Annotated[str, typer.Option("--name", help="名称")],
    username: Annotated[str, typer.Option("--username", help="API user for its bearer tokens")],
    password: Annotated[str, typer.Option("--password", prompt=True, hide_input=True, help="API password")],
    signature: Annotated[bool, typer.Option("--signature/--no-signature", help="署名検証者")] = True,
    user: Annotated[bool, typer.Option("--user/--no-user", help="利用者証明検証者")] = False,
    basis: Annotated[str, typer.Option("--basis", help="根拠")] = "主務大臣認定事業者",
    agreement_no: Annotated[str, typer.Option("--agreement-no", help="協定・届出番号")] = "",
    agreement_date: Annotated[str, typer.Option("--agreement-date", help="YYYY-MM-DD (default today)")] = "",
    database_url: DatabaseOpt = None,
) -> None:
    """Register a verifier (its agreement record and its API user)."""
    from jlis.registry.models import parse_date

    with container_of(database_url) as built, transaction(built.factory) as s:
        v = VerifierRegistry(s, built.clock, actor="cli").register(
            verifier_id=verifier_id,
            name=name,
            signature_verifier=signature,
            user_verifier=user,
            basis=basis,
            agreement_no=agreement_no or f"{verifier_id}-{built.clock.today():%Y%m%d}",
            agreement_date=parse_date("agreement_date", agreement_date)
            if agreement_date
            else built.clock.today(),
            username=username,
            password=password,
        )
    typer.echo(f"registered {v.id} ({'・'.join(v.roles)}); tokens: POST /api/v1/token as {v.username}")


@cli.command("verifier-list")
def cli_list_verifiers(database_url: DatabaseOpt = None) -> None:
    """The registered verifiers."""
    with container_of(database_url) as built, built.factory() as s:
        for v in VerifierRegistry(s, built.clock, actor="cli").list():
            state = "active" if v.active else "inactive"
            typer.echo(
                f"{v.id}\t{state}\t{'・'.join(v.roles)}\t{v.agreement_no}\t{v.username or '-'}\t{v.name}"
            )


@cli.command("verifier-set")
def cli_set_verifier(
    verifier_id: Annotated[str, typer.Argument(help="検証者ID")],
    active: Annotated[bool, typer.Option("--active/--inactive", help="Reactivate or deactivate")],
    database_url: DatabaseOpt = None,
) -> None:
    """Deactivate (ends its tokens) or reactivate a verifier."""
    with container_of(database_url) as built, transaction(built.factory) as s:
        v = VerifierRegistry(s, built.clock, actor="cli").set_active(verifier_id, active)
    typer.echo(f"{v.id}: {'active' if v.active else 'inactive'}")


@cli.command("revoke")
def cli_revoke(
    ca_kind: Annotated[str, typer.Argument(help="sign | auth")],
    serial: Annotated[str, typer.Argument(help="serial number (hex)")],
    reason: Annotated[str, typer.Option("--reason", help="RFC 5280 reason, e.g. keyCompromise")],
    cause: Annotated[str, typer.Option("--cause", help="what caused it (recorded)")],
    generation: Annotated[int | None, typer.Option("--generation", help="CA generation")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Revoke one certificate (key compromise, ex officio). A revoked certificate stays as it is."""
    with container_of(database_url) as built, transaction(built.factory) as s:
        svc = Revocations(s, built.clock, actor="cli")
        cert = svc.certificate(ca_kind, serial, generation)
        changed = svc.revoke(cert, Reason.parse(reason), f"operator:{cause}"[:120])
        typer.echo(
            f"{cert.ca_kind} {cert.serial}: {cert.status} ({cert.revocation_reason})"
            + ("" if changed else " — unchanged")
        )


@cli.command("crl")
def cli_crl(
    ca_kind: Annotated[str, typer.Argument(help="sign | auth")],
    out: Annotated[Path, typer.Option("--out", help="file to write")],
    generation: Annotated[
        int | None, typer.Option("--generation", help="CA generation (omit for the ARL)")
    ] = None,
    lg_code: Annotated[str | None, typer.Option("--lg-code", help="municipality partition")] = None,
    pem: Annotated[bool, typer.Option("--pem", help="PEM instead of DER")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Write a CRL (full or one municipality's partition) or, without --generation, the ARL."""
    with container_of(database_url) as built:
        signer_for = keystore_signers(keystore_from_settings(built.settings))
        pub = CrlPublisher(built.factory, built.clock, signer_for, built.settings.resolved_public_url)
        doc = pub.arl(ca_kind) if generation is None else pub.crl(ca_kind, generation, lg_code)
    data = x509.load_der_x509_crl(doc.der).public_bytes(Encoding.PEM) if pem else doc.der
    out.write_bytes(data)
    typer.echo(f"{out}: {doc.scope.ca_kind} {doc.scope.label}, {doc.entries} entries, number {doc.number}")
