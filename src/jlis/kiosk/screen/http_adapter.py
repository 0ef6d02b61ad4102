"""The kiosk's line to the 証明書交付センター over HTTP: :class:`HttpCenter` implements
:class:`jlis.kiosk.screen.port.KioskCenter` over the center's kiosk API (``/api/v1/kiosk/center/...``,
the kiosk's bearer token, the session in ``X-Kiosk-Session``), for a kiosk that runs apart from the
center (facts §6.1: a dedicated line). The translation of choices and refusals is the in-process
adapter's (:mod:`jlis.kiosk.screen.adapter`), from JSON instead of objects; no page changes.

The HTTP client is any object with httpx's ``get``/``post``/``delete`` (an ``httpx.Client`` with
``base_url``, or Starlette's ``TestClient``); this module imports no HTTP library itself.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

from jlis.clock import JST, Clock
from jlis.errors import InvalidInput
from jlis.jpki.rp.login import LoginResponse
from jlis.kiosk.center import models as center_models
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.screen.adapter import (
    FATAL_CODES,
    HONSEKI_FIELD,
    INVALID_CHOICE,
    NOT_ISSUED,
    describe,
    issue_options_for,
    offers_of,
)
from jlis.kiosk.screen.port import CenterRefused, CenterVisit, Menu, Printout, Quote

PATH = "/api/v1/kiosk/center"
_JA = "ぁ"  # a message with Japanese in it is shown as the center sent it


class HttpResponse(Protocol):
    status_code: int

    def json(self) -> Any: ...


class HttpClient(Protocol):
    def get(self, url: str, *, headers: Mapping[str, str] | None = ...) -> Any: ...

    def post(self, url: str, *, json: Any = ..., headers: Mapping[str, str] | None = ...) -> Any: ...

    def delete(self, url: str, *, headers: Mapping[str, str] | None = ...) -> Any: ...


class HttpCenter:
    """The screen's :class:`KioskCenter` over the center's HTTP API, as the kiosk of ``token``."""

    def __init__(self, client: HttpClient, token: str, clock: Clock) -> None:
        self.client = client
        self.token = token
        self.clock = clock

    # -- plumbing ------------------------------------------------------------------------------

    def _headers(self, visit: CenterVisit | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if visit is not None:
            if not isinstance(visit.handle, str):
                raise CenterRefused(
                    "session_unknown", "操作の有効期限が切れたか、無効な要求です。", fatal=True
                )
            headers["X-Kiosk-Session"] = visit.handle
        return headers

    def _answer(self, response: HttpResponse) -> Any:
        body = _json(response)
        if response.status_code == 200:
            return body
        raise _refusal(response.status_code, body)

    # -- the calls -----------------------------------------------------------------------------

    def challenge(self) -> str:
        body = self._answer(self.client.post(f"{PATH}/sessions", headers=self._headers()))
        return str(body["challenge"])

    def card_failed(self, challenge: str, error: Exception) -> CenterRefused:
        from jlis.card.chip.errors import PinBlocked, WrongPin

        kind = "unreadable"
        if isinstance(error, WrongPin):
            kind = "wrong_pin"
        elif isinstance(error, PinBlocked):
            kind = "pin_blocked"
        payload = {
            "challenge": challenge,
            "error": kind,
            "tries_left": error.tries_left if isinstance(error, WrongPin) else 0,
        }
        response = self.client.post(f"{PATH}/sessions/card-error", json=payload, headers=self._headers())
        return _refusal(response.status_code, _json(response))

    def authenticate(self, challenge: str, answer: LoginResponse) -> CenterVisit:
        payload = {"challenge": challenge, **answer.to_dict()}
        try:
            body = self._answer(
                self.client.post(f"{PATH}/sessions/login", json=payload, headers=self._headers())
            )
        except CenterRefused as refusal:
            refusal.fatal = True
            raise
        return CenterVisit(body["session"], dt.datetime.fromisoformat(body["expires_at"]))

    def menu(self, visit: CenterVisit) -> Menu:
        body = self._answer(self.client.get(f"{PATH}/menu", headers=self._headers(visit)))
        menu = center_models.Menu(
            body["lg_code"],
            body["municipality"],
            center_models.Server(body["server"]),
            tuple(
                center_models.MenuItem(
                    CertificateKind(i["kind"]),
                    i["label"],
                    int(i["fee"]),
                    tuple(i["options"]),
                    bool(i["honseki"]),
                )
                for i in body["items"]
            ),
            tuple((d["id"], d["name"]) for d in body["disasters"]),
            bool(body["my_number_allowed"]),
            bool(body.get("honseki_elsewhere", False)),
        )
        offers = offers_of(menu, self.clock.now().astimezone(JST).date())
        return Menu(menu.municipality, offers, center_models.MAX_COPIES, menu.honseki_elsewhere)

    def quote(self, visit: CenterVisit, kind: str, options: Mapping[str, object], copies: int) -> Quote:
        try:
            k = CertificateKind(kind)
        except ValueError:
            raise CenterRefused("invalid_request", INVALID_CHOICE) from None
        try:
            chosen = issue_options_for(k, options)
        except InvalidInput:
            raise CenterRefused("invalid_request", INVALID_CHOICE) from None
        honseki = str(options.get(HONSEKI_FIELD) or "").strip() or None
        payload = {
            "kind": k.value,
            "copies": copies,
            "household": chosen.household,
            "show_honseki": chosen.show_honseki,
            "show_relationship": chosen.show_relationship,
            "show_my_number": chosen.show_my_number,
            "items": list(chosen.items),
            "fiscal_year": chosen.fiscal_year,
            "honseki_lg_code": honseki,
        }
        body = self._answer(self.client.post(f"{PATH}/requests", json=payload, headers=self._headers(visit)))
        return Quote(
            quote_id=body["request_id"],
            kind=body["kind"],
            label=body["label"],
            copies=int(body["copies"]),
            fee=int(body["fee"]),
            choices=describe(k, chosen),
        )

    def pay_and_issue(self, visit: CenterVisit, quote: Quote, paid: int) -> Printout:
        rid = quote.quote_id
        headers = self._headers(visit)
        self._answer(
            self.client.post(f"{PATH}/requests/{rid}/payment", json={"amount": paid}, headers=headers)
        )
        body = self._answer(self.client.post(f"{PATH}/requests/{rid}/issue", headers=headers))
        try:
            pdf = base64.b64decode(body["pdf_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise CenterRefused("issuer_failed", NOT_ISSUED) from None
        kind = CertificateKind(body["kind"])
        return Printout(
            pdf=pdf,
            certificate_number=body["certificate_number"],
            verification_code=body["verification_code"],
            verify_url=body["verify_url"],
            request_id=body["request_id"],
            kind=kind.value,
            label=kind.label,
            copies=int(body["copies"]),
            fee=int(body["fee"]),
            sha256=body["sha256"],
        )

    def apply_honseki_use(
        self, visit: CenterVisit, honseki_lg_code: str, head_family_name: str, head_given_name: str
    ) -> str:
        payload = {
            "honseki_lg_code": honseki_lg_code,
            "head_family_name": head_family_name,
            "head_given_name": head_given_name,
        }
        body = self._answer(
            self.client.post(f"{PATH}/honseki-applications", json=payload, headers=self._headers(visit))
        )
        return str(body["municipality"])

    def close(self, visit: CenterVisit) -> None:
        self.client.delete(f"{PATH}/sessions/current", headers=self._headers(visit))


def _json(response: HttpResponse) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(status: int, body: Mapping[str, Any]) -> CenterRefused:
    """A refusal of the API (409 ``{code, message}``; 401 an unknown kiosk token) as the screen's."""
    code = str(body.get("code") or body.get("error") or f"http_{status}")
    message = str(body.get("message") or "")
    if status == 401:
        code, message = "unknown_kiosk", "この端末は証明書交付センターに登録されていません。"
    elif not any(ord(c) >= ord(_JA) for c in message):
        message = INVALID_CHOICE if status == 422 else NOT_ISSUED  # never English on the screen
    return CenterRefused(code, message, fatal=code in FATAL_CODES)
