"""HTTP routes of sign-in for programs: exchange a password for a bearer token, revoke it, and
ask who the token belongs to."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from jlis.auth import service as auth
from jlis.auth.models import Principal, PrincipalKind
from jlis.db import transaction
from jlis.web.deps import api_principal, bearer_scheme, get_container, public

router = APIRouter(prefix="/api/v1", tags=["認証"])


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(description="ユーザー名")
    password: str = Field(description="パスワード")


class PrincipalOut(BaseModel):
    username: str
    kind: PrincipalKind
    display_name: str
    lg_code: str | None = Field(None, description="市区町村職員の地方公共団体コード")
    agency_id: str | None = Field(None, description="提供先機関の機関ID")

    @classmethod
    def of(cls, p: Principal) -> PrincipalOut:
        return cls(
            username=p.username,
            kind=p.kind,
            display_name=p.display_name,
            lg_code=p.lg_code,
            agency_id=p.agency_id,
        )


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: dt.datetime
    principal: PrincipalOut


@router.post(
    "/token",
    summary="パスワードでベアラートークンを取得",
    description="有効期限つきのトークンを返します。"
    "以後 `Authorization: Bearer <token>` を付けて呼び出します。"
    " 保存されるのはトークンの SHA-256 だけです。",
    response_model=TokenOut,
    dependencies=[Depends(public)],
    responses={401: {"description": "ユーザー名またはパスワードが違う"}},
)
async def token(body: TokenRequest, request: Request) -> TokenOut:
    container = get_container(request)

    def issue() -> TokenOut:
        with transaction(container.factory) as s:
            principal = auth.authenticate(s, body.username, body.password)
            issued = auth.issue_token(s, principal, now=container.clock.now())
        return TokenOut(
            access_token=issued.token, expires_at=issued.expires_at, principal=PrincipalOut.of(principal)
        )

    return await run_in_threadpool(issue)  # argon2 is CPU-bound: off the event loop


@router.delete(
    "/token",
    summary="使用中のトークンを失効させる",
    status_code=204,
    response_class=Response,
)
def revoke(
    request: Request,
    _principal: Principal = Depends(api_principal(*PrincipalKind)),
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> Response:
    container = get_container(request)
    if credentials is not None:
        with transaction(container.factory) as s:
            auth.revoke_token(s, credentials.credentials)
    return Response(status_code=204)


@router.get("/me", summary="トークンの持ち主", response_model=PrincipalOut)
def me(principal: Principal = Depends(api_principal(*PrincipalKind))) -> PrincipalOut:
    return PrincipalOut.of(principal)
