"""Jinja2 for the pages: one environment over the template folders of every package, addressed
as ``web/…``, ``registry/…``, ``juki/…``; and :func:`render`, which adds what the layout needs."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, PrefixLoader, StrictUndefined, select_autoescape

from jlis.auth import service as auth
from jlis.auth.models import PrincipalKind
from jlis.clock import JST
from jlis.errors import Forbidden, JlisError, Unauthenticated
from jlis.web.deps import CSRF_FIELD, current_page_principal, session_token

_SRC = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = {
    "web": _SRC / "web" / "templates",
    "registry": _SRC / "registry" / "templates",
    "juki": _SRC / "juki" / "templates",
    "card": _SRC / "card" / "templates",
    "jpki": _SRC / "jpki" / "templates",
    "portal": _SRC / "linkage" / "portal" / "templates",
    "bcl": _SRC / "bcl" / "templates",
    "middle": _SRC / "linkage" / "middle" / "templates",
    "linkage_hub": _SRC / "linkage" / "hub" / "templates",
    "linkage_exchange": _SRC / "linkage" / "exchange" / "templates",
    "kiosk_pdf": _SRC / "kiosk" / "pdf" / "templates",
    "kiosk_screen": _SRC / "kiosk" / "screen" / "templates",
    "lgwan": _SRC / "lgwan" / "templates",
}

_WEEKDAYS = "月火水木金土日"


def jdate(value: dt.date | None) -> str:
    """2026-11-26 → 2026年11月26日 (the form printed on a 住民票)."""
    if value is None:
        return ""
    return f"{value.year}年{value.month}月{value.day}日"


def jdatetime(value: dt.datetime | None) -> str:
    """In Japan time. A naive value (SQLite drops offsets) is shown as stored."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(JST)
    return f"{value.year}年{value.month}月{value.day}日({_WEEKDAYS[value.weekday()]}) {value:%H:%M:%S}"


# The rules of the domain are English (they travel in API answers and logs); the counter shows the
# common ones in Japanese and keeps the original rule beside it.
_RULES_JA: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), text)
    for pattern, text in (
        (r"^must not be empty$", "{field}を入力してください。"),
        (r"^must be katakana$", "{field}はカタカナで入力してください。"),
        (r"^must be a real date", "{field}は実在する日付 (年-月-日) で入力してください。"),
        (r"^must not be in the future$", "{field}に未来の日付は指定できません。"),
        (r"^must not be before (.+)$", "{field}は {0} より前にできません。"),
        (r"^check digit does not match$", "{field}の検査用数字が一致しません。番号を確かめてください。"),
        (r"^must be (\d+) digits$", "{field}は{0}桁の数字で入力してください。"),
        (r"^must contain only digits$", "{field}は数字だけで入力してください。"),
        (r"^must be a number$", "{field}は数字で入力してください。"),
        (r"^at most (\d+) characters$", "{field}は{0}文字以内で入力してください。"),
        (r"^unknown town$", "該当する町字がありません。"),
        (r"^unknown municipality$", "該当する市区町村がありません。"),
        (r"^must be a town of (.+)$", "{0}の町字を選んでください。"),
        (r"^must be male or female$", "性別を選んでください。"),
        (r"^must exist$", "{field}が見つかりません。"),
        (r"^must be within (\d+) days from today$", "{field}は本日から{0}日以内にしてください。"),
        (r"^required unless 国外転出$", "{field}を入力してください (国外転出のときは不要)。"),
        (r"^must be the staff member's own municipality$", "自団体以外の住民票は扱えません。"),
        (r"^must match the session$", "画面の有効期限が切れました。画面を読み込み直してください。"),
        (r"^must be municipal_staff$", "市区町村職員だけが使える画面です。"),
        (r"^must be jlis_operator$", "J-LIS 運用者だけが使える画面です。"),
    )
)


def message_ja(error: JlisError) -> str:
    """The Japanese sentence for a refusal whose rule is a common one, else the error's message."""
    field = str(error.context.get("field") or "")
    rule = str(error.context.get("rule") or "")
    for pattern, text in _RULES_JA:
        m = pattern.match(rule)
        if m:
            return text.format(*m.groups(), field=field)
    return error.message


def build_environment() -> Environment:
    env = Environment(
        loader=PrefixLoader({name: FileSystemLoader(str(path)) for name, path in TEMPLATE_DIRS.items()}),
        autoescape=select_autoescape(["html"]),
        # A typo in a template is an error in the tests, not a silently empty cell.
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["jdate"] = jdate
    env.filters["jdatetime"] = jdatetime
    env.filters["message_ja"] = message_ja
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int | None = None,
    error: JlisError | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page. ``error`` and ``values`` re-show a refused form with what was typed; the
    status is the error's (422, 403, …) unless ``status_code`` says otherwise, else 200."""
    env: Environment = request.app.state.templates
    principal = current_page_principal(request)
    token = session_token(request)
    ctx: dict[str, Any] = {
        "request": request,
        "principal": principal,
        "kinds": PrincipalKind,
        "csrf_field": CSRF_FIELD,
        "csrf_token": auth.csrf_token_for(token) if token and principal else "",
        "error": error,
        "values": values or {},
        "title": "",
    }
    ctx.update(context or {})
    html = env.get_template(template).render(ctx)
    if status_code is None:
        status_code = error.http_status if error is not None else 200
    return HTMLResponse(html, status_code=status_code)


def submit_form(run: Callable[[], str], redisplay: Callable[[JlisError], Response]) -> Response:
    """The POST side of every counter form: ``run`` does the work in its own transaction and returns
    where to go (303); a refusal comes back as the form again (``redisplay``) with its message, while
    scope errors (403, 401) go on to the error page."""
    try:
        target = run()
    except (Forbidden, Unauthenticated):
        raise
    except JlisError as exc:
        return redisplay(exc)
    return RedirectResponse(target, status_code=303)
