"""The kiosk screen (``/kiosk``): the 行政サービス screen of a multifunction copier in a shop.

待受 → 行政サービス → カードを置く → 暗証番号 (4桁) → 証明書を選ぶ (options, copies) → 手数料 →
お支払い (simulated) → 印刷 (the PDF is shown and can be downloaded) → カード・証明書の取り忘れ防止 →
終了. Every refusal of the issuance center is shown with its Japanese message. For a person whose
本籍 is elsewhere the menu also offers 本籍地利用登録申請 (``/kiosk/honseki-use``: the 本籍地 picked
from the master's lists, prefecture then municipality, and the 筆頭者's name; nothing charged).

Three parties, kept apart in the code as on the street:

- the **card reader** (:mod:`.reader`): the card file set on the reader signs the center's challenge
  after the PIN; only the certificate and the signature leave it;
- the **kiosk** (this module, :mod:`.visits`): the screen and its memory of the visit (a table,
  so that every worker process of ``jlis serve --workers N`` serves the same visits);
- the **issuance center**, reached only through :class:`.port.KioskCenter` (in-process by default:
  :mod:`.adapter`; ``app.state.kiosk_screen_center`` may hold any other implementation).

The browser holds a random visit token (cookie ``jlis_kiosk``, path ``/kiosk``); every form carries a
CSRF token derived from it. No sign-in: the card is the credential, and everything the kiosk holds is
dropped when the visit ends. The routes of a visit carry the guard :func:`jlis.web.deps.kiosk_visit`
(the visit's cookie and form token, checked here); only the start screen, its stylesheet, the start
of a visit and the goodbye screen are :func:`~jlis.web.deps.public`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from jlis.card.chip.errors import PinBlocked, WrongPin
from jlis.errors import Forbidden, InvalidInput, JlisError
from jlis.kiosk.screen import messages
from jlis.kiosk.screen.port import CenterRefused, CenterVisit, KioskCenter, Offer
from jlis.kiosk.screen.reader import MAX_CARD_FILE, CardSlot, check_pin, demo_cards
from jlis.kiosk.screen.visits import Outcome, Step, Visit, Visits, csrf_for
from jlis.masters import Geography, Municipality, Prefecture
from jlis.web.deps import CSRF_FIELD, get_container, kiosk_visit, public

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = PACKAGE_DIR / "templates"
STYLESHEET = PACKAGE_DIR / "static" / "kiosk.css"
COOKIE = "jlis_kiosk"
MAX_TEXT_OPTION = 20
MAX_HEAD_NAME = 50  # characters of the 筆頭者's 氏 or 名 (as the register's names)
_DIGITS = re.compile(r"[0-9]{1,6}")  # ASCII only: str.isdigit() accepts １ and ١
_LG_CODE = re.compile(r"[0-9]{6}")
PREF = "pref"  # the query parameter (and hidden field) of the prefecture chosen for a 本籍地
PLACE_FIELD = "本籍地の市区町村"
HONSEKI_USE_LG = "honseki_lg_code"
HEAD_FAMILY = "head_family_name"
HEAD_GIVEN = "head_given_name"
APPLIED = "申請を受け付けました。本籍地での確認後（数日）ご利用いただけます。"
BASE = "/kiosk"
UPLOADS = "kiosk-screen/cards"  # under the data dir: the uploaded card files of visits in progress

router = APIRouter(prefix=BASE, include_in_schema=False)
OPEN = [Depends(public)]  # the start screen, its stylesheet, a new visit, the goodbye screen
VISIT = [Depends(kiosk_visit)]  # a visit's pages: its cookie, and its form token on a POST

# ----------------------------------------------------------------------------------------- wiring


@dataclass
class KioskScreen:
    """One kiosk: its center connection, its visits, the demo cards it offers, where uploaded card
    files are kept while their visit lasts."""

    center: KioskCenter
    visits: Visits
    cards_dir: Path
    uploads_dir: Path
    shop: str = "jlis デモ店"


_screen_lock = threading.Lock()


def screen_of(request: Request) -> KioskScreen:
    """The app's kiosk, made on first use: ``app.state.kiosk_screen_center`` (a :class:`KioskCenter`)
    or the app's in-process center (:meth:`InProcessCenter.for_app`); demo cards from
    ``app.state.kiosk_cards_dir`` or ``<data dir>/cards``; uploaded card files in
    ``<data dir>/kiosk-screen/cards`` (shared by the worker processes, as the visits' table is)."""
    state = request.app.state
    with _screen_lock:
        screen: KioskScreen | None = getattr(state, "kiosk_screen", None)
        if screen is None:
            container = get_container(request)
            center: KioskCenter | None = getattr(state, "kiosk_screen_center", None)
            if center is None:
                from jlis.kiosk.screen.adapter import InProcessCenter

                center = InProcessCenter.for_app(request.app)
            cards_dir: Path = getattr(state, "kiosk_cards_dir", None) or container.settings.data_dir / "cards"
            uploads_dir = container.settings.data_dir / UPLOADS
            visits = Visits(
                container.factory,
                container.clock,
                uploads_dir=uploads_dir,
                close_center=lambda session: _close_center(center, session),
            )
            screen = KioskScreen(center, visits, cards_dir, uploads_dir)
            state.kiosk_screen = screen
    return screen


def _close_center(center: KioskCenter, session: CenterVisit) -> None:
    """Tell the center the card was taken. The center may be a remote call: on the event loop it
    goes to a background thread (the pages call the visits off the loop, so this is a safeguard).
    Best effort: the center forgets an idle session by itself."""

    def close() -> None:
        with contextlib.suppress(Exception):
            center.close(session)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        close()
        return
    threading.Thread(target=close, name="kiosk-close", daemon=True).start()


def _environment(request: Request) -> Environment:
    """The app's environment plus this package's templates as ``kiosk_screen/…`` (once per app)."""
    env: Environment | None = getattr(request.app.state, "kiosk_screen_templates", None)
    if env is None:
        base: Environment = request.app.state.templates
        assert base.loader is not None
        env = base.overlay(
            loader=ChoiceLoader(
                [PrefixLoader({"kiosk_screen": FileSystemLoader(str(TEMPLATE_DIR))}), base.loader]
            )
        )
        request.app.state.kiosk_screen_templates = env
    return env


def _render(
    request: Request,
    template: str,
    visit: Visit | None,
    *,
    status_code: int = 200,
    error: str | None = None,
    **ctx: Any,
) -> HTMLResponse:
    screen = screen_of(request)
    context: dict[str, Any] = {
        "request": request,
        "visit": visit,
        "step": visit.step.value if visit else "",
        "csrf_field": CSRF_FIELD,
        "csrf_token": visit.csrf() if visit else "",
        "shop": screen.shop,
        "steps": STEPS,
        "title": "",
        "error": error,
        **ctx,
    }
    html = _environment(request).get_template(f"kiosk_screen/{template}").render(context)
    return HTMLResponse(html, status_code=status_code)


STEPS = (
    ("card", "カード"),
    ("pin", "暗証番号"),
    ("menu", "証明書の選択"),
    ("fee", "手数料"),
    ("printed", "印刷"),
)

# Where each step of a visit is shown.
_PAGE_OF = {
    Step.CARD: f"{BASE}/card",
    Step.PIN: f"{BASE}/pin",
    Step.MENU: f"{BASE}/menu",
    Step.FEE: f"{BASE}/fee",
    Step.PRINTED: f"{BASE}/printed",
}


def _go(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _visit(request: Request, *, pdf: bool = False) -> Visit | None:
    return screen_of(request).visits.get(request.cookies.get(COOKIE), pdf=pdf)


def _at(request: Request, *steps: Step, pdf: bool = False) -> Visit | Response:
    """The visit if it is at one of ``steps``; else where the resident should be. Reads the
    database: an async page calls it through :func:`_at_off_loop`."""
    visit = _visit(request, pdf=pdf)
    if visit is None:
        return _go(BASE)
    if visit.step not in steps:
        return _go(_PAGE_OF[visit.step])
    return visit


async def _at_off_loop(request: Request, *steps: Step) -> Visit | Response:
    return await run_in_threadpool(_at, request, *steps)


async def _form(request: Request, visit: Visit) -> dict[str, Any]:
    """The posted form after the CSRF check against the visit (fails closed: 403)."""
    form = await request.form()
    submitted = form.get(CSRF_FIELD)
    if not isinstance(submitted, str) or submitted != csrf_for(visit.token):
        raise Forbidden(
            "the form's CSRF token does not match this visit", field=CSRF_FIELD, rule="must match the session"
        )
    return {k: v for k, v in form.multi_items() if k != CSRF_FIELD}


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


async def _end(request: Request, visit: Visit) -> None:
    """End the visit off the event loop (the center is told the card was taken)."""
    await run_in_threadpool(screen_of(request).visits.end, visit)


async def _refused(request: Request, visit: Visit, exc: CenterRefused) -> Response:
    """A refusal that ends the visit: the message, and the card is given back."""
    await _end(request, visit)
    response = _render(request, "refused.html", None, status_code=exc.http_status, refusal=exc)
    response.delete_cookie(COOKIE, path=BASE)
    return response


# ----------------------------------------------------------------------------------------- pages


@router.get("", dependencies=OPEN)
def idle(request: Request) -> Response:
    """The copier's top screen."""
    return _render(request, "idle.html", None)


@router.get("/screen.css", dependencies=OPEN)
def stylesheet() -> FileResponse:
    return FileResponse(STYLESHEET, media_type="text/css")


@router.post("/start", dependencies=OPEN)
async def start(request: Request) -> Response:
    """行政サービス: a new visit (a visit already on this browser ends first)."""
    screen = screen_of(request)
    previous = await run_in_threadpool(screen.visits.get, request.cookies.get(COOKIE))
    if previous is not None:
        await run_in_threadpool(screen.visits.end, previous)
    visit = await run_in_threadpool(screen.visits.start)
    response = _go(f"{BASE}/card")
    response.set_cookie(
        COOKIE, visit.token, httponly=True, samesite="strict", secure=request.url.scheme == "https", path=BASE
    )
    return response


@router.get("/card", dependencies=VISIT)
def card_form(request: Request) -> Response:
    visit = _at(request, Step.CARD)
    if not isinstance(visit, Visit):
        return visit
    return _card_page(request, visit)


def _card_page(request: Request, visit: Visit, error: str | None = None, status_code: int = 200) -> Response:
    cards = demo_cards(screen_of(request).cards_dir)
    return _render(request, "card.html", visit, cards=cards, error=error, status_code=status_code)


@router.post("/card", dependencies=VISIT)
async def card_set(request: Request) -> Response:
    """The card is set on the reader; the center gives a challenge for it."""
    visit = await _at_off_loop(request, Step.CARD)
    if not isinstance(visit, Visit):
        return visit
    form = await _form(request, visit)
    screen = screen_of(request)
    source = _text(form, "source") or "demo"
    passphrase = _text(form, "passphrase")
    data = b""
    if source == "upload":
        upload = form.get("card_file")
        data = await upload.read(MAX_CARD_FILE + 1) if isinstance(upload, UploadFile) else b""

    def work() -> None:
        if source == "upload":
            slot = CardSlot.upload(data, passphrase, screen.uploads_dir)
        elif source == "demo":
            slot = CardSlot.demo(screen.cards_dir, _text(form, "card"), passphrase)
        else:
            raise InvalidInput("source", "must be demo or upload")
        try:
            text = screen.center.challenge()
        except BaseException:
            slot.eject()
            raise
        visit.set_card(slot.ref, passphrase)
        visit.challenge_text = text
        visit.step = Step.PIN

    try:
        moved = await _run(request, visit, Step.CARD, work)
    except CenterRefused as exc:
        return await _refused(request, visit, exc)
    except JlisError as exc:
        return _card_page(request, visit, messages.for_error(exc), exc.http_status)
    return moved or _go(f"{BASE}/pin")


@router.get("/pin", dependencies=VISIT)
def pin_form(request: Request) -> Response:
    visit = _at(request, Step.PIN)
    if not isinstance(visit, Visit):
        return visit
    return _render(request, "pin.html", visit)


@router.post("/pin", dependencies=VISIT)
async def pin_enter(request: Request) -> Response:
    """The card signs the challenge after the PIN; the center checks the card (signature, chain, OCSP)."""
    visit = await _at_off_loop(request, Step.PIN)
    if not isinstance(visit, Visit):
        return visit
    form = await _form(request, visit)
    screen = screen_of(request)

    def work() -> None:
        pin = check_pin(_text(form, "pin"))
        if visit.card is None:
            raise InvalidInput("カード", "must be set on the reader first")
        # The card set in an earlier request (maybe in another worker process) is on the reader again.
        slot = CardSlot.reopen(visit.card, visit.passphrase(), screen.cards_dir, screen.uploads_dir)
        try:
            answer = slot.answer(visit.challenge_text, pin)
        except (WrongPin, PinBlocked) as exc:
            # Counted on the card; the center logs it. A blocked PIN ends the visit, a wrong one
            # gets a fresh challenge for the next try.
            refusal = screen.center.card_failed(visit.challenge_text, exc)
            if isinstance(exc, PinBlocked):
                refusal.fatal = True
            else:
                visit.challenge_text = screen.center.challenge()
            raise refusal from exc
        visit.center = screen.center.authenticate(visit.challenge_text, answer)
        visit.challenge_text = ""
        visit.menu = screen.center.menu(visit.center)
        visit.step = Step.MENU

    def again(error: str, status: int) -> Response:
        return _render(request, "pin.html", visit, error=error, status_code=status)

    return await _step(request, visit, Step.PIN, work, again) or _go(f"{BASE}/menu")


@router.get("/menu", dependencies=VISIT)
def menu(request: Request) -> Response:
    visit = _at(request, Step.MENU, Step.FEE)
    if not isinstance(visit, Visit):
        return visit
    if visit.step is Step.FEE:  # back from the fee: the quote is dropped

        def back() -> None:
            visit.step, visit.quote = Step.MENU, None

        if screen_of(request).visits.run(visit, Step.FEE, back) is Outcome.GONE:
            return _go(BASE)
        if visit.step is not Step.MENU:
            return _go(_PAGE_OF[visit.step])
    return _render(request, "menu.html", visit, menu=visit.menu, not_charged=False)


def _offer(visit: Visit, kind: str) -> Offer:
    offer = visit.menu.offer(kind) if visit.menu is not None else None
    if offer is None:
        raise InvalidInput("証明書の種類", "must be one on the menu")
    return offer


# ----------------------------------------------------------------------------------------- 本籍地


@dataclass(frozen=True)
class PlaceLists:
    """The 本籍地 as a real kiosk asks for it: the prefectures, the one chosen and its
    municipalities (from the geography master; a 政令市 by its wards, which keep the 戸籍)."""

    prefectures: tuple[Prefecture, ...]
    pref: Prefecture | None
    municipalities: tuple[Municipality, ...]


def place_lists(geography: Geography, pref_code: str | None, chosen: str = "") -> PlaceLists:
    """The lists for ``pref_code`` (or, shown again after a refusal, the prefecture of ``chosen``);
    an unknown prefecture is no prefecture."""
    code = pref_code or ""
    if not code and chosen:
        with contextlib.suppress(JlisError):
            code = geography.municipality(chosen).pref_code
    pref = None
    if code:
        with contextlib.suppress(JlisError):
            pref = geography.prefecture(code)
    municipalities = geography.municipalities(pref.code, hosting_only=True) if pref else ()
    return PlaceLists(geography.prefectures(), pref, municipalities)


def check_place(geography: Geography | None, value: str, *, required: bool) -> str:
    """A municipality picked from the lists: its 地方公共団体コード, known to the master (without a
    master, its form only). Empty: allowed unless ``required``."""
    rule = "must be chosen from the list"
    if not value:
        if required:
            raise InvalidInput(PLACE_FIELD, rule)
        return ""
    if not _LG_CODE.fullmatch(value):
        raise InvalidInput(PLACE_FIELD, rule)
    if geography is not None:
        try:
            municipality = geography.municipality(value)
        except JlisError:
            raise InvalidInput(PLACE_FIELD, rule) from None
        if not municipality.hosts_register:
            raise InvalidInput(PLACE_FIELD, rule)  # a 政令市 is listed by its wards
    return value


def _head_name(field: str, value: str) -> str:
    """The 筆頭者's 氏 or 名 as typed on the kiosk's keyboard (the 本籍 server checks it again)."""
    text = value.strip()
    if not text:
        raise InvalidInput(field, "must not be empty")
    if len(text) > MAX_HEAD_NAME:
        raise InvalidInput(field, f"at most {MAX_HEAD_NAME} characters")
    return text


def _geography(request: Request) -> Geography:
    return get_container(request).geography


def _place_for(request: Request, offer: Offer, pref: str | None, chosen: str = "") -> PlaceLists | None:
    if not any(o.place for o in offer.options):
        return None
    return place_lists(_geography(request), pref, chosen)


@router.get("/certificates/{kind}", dependencies=VISIT)
def options_form(request: Request, kind: str, pref: str | None = None) -> Response:
    visit = _at(request, Step.MENU)
    if not isinstance(visit, Visit):
        return visit
    try:
        offer = _offer(visit, kind)
    except JlisError:
        return _go(f"{BASE}/menu")
    return _render(
        request,
        "options.html",
        visit,
        offer=offer,
        menu=visit.menu,
        values={},
        submitted=False,
        place=_place_for(request, offer, pref),
    )


@router.post("/certificates/{kind}", dependencies=VISIT)
async def options_submit(request: Request, kind: str) -> Response:
    """The options and copies chosen: the center quotes the fee."""
    visit = await _at_off_loop(request, Step.MENU)
    if not isinstance(visit, Visit):
        return visit
    form = await _form(request, visit)
    screen = screen_of(request)
    try:
        offer = _offer(visit, kind)
    except JlisError:
        return _go(f"{BASE}/menu")
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    geography = _geography(request)

    def work() -> None:
        options = chosen_options(offer, form, geography)
        copies = parse_copies(_text(form, "copies"), visit.menu.max_copies if visit.menu else 1)
        assert visit.center is not None
        visit.quote = screen.center.quote(visit.center, offer.kind, options, copies)
        visit.step = Step.FEE

    def again(error: str, status: int) -> Response:
        return _options_again(request, visit, offer, values, error, status)

    return await _step(request, visit, Step.MENU, work, again) or _go(f"{BASE}/fee")


def _options_again(
    request: Request, visit: Visit, offer: Offer, values: dict[str, str], error: str, status: int
) -> Response:
    chosen = next((values.get(o.name, "") for o in offer.options if o.place), "")
    return _render(
        request,
        "options.html",
        visit,
        offer=offer,
        menu=visit.menu,
        values=values,
        submitted=True,
        error=error,
        status_code=status,
        place=_place_for(request, offer, values.get(PREF), chosen),
    )


def chosen_options(
    offer: Offer, form: dict[str, Any], geography: Geography | None = None
) -> dict[str, object]:
    """The options of ``offer`` as the form gives them: yes/no boxes as booleans, choices checked
    against the offered values, a place against the master (anything else is refused, not passed
    on)."""
    out: dict[str, object] = {}
    for option in offer.options:
        if option.place:
            place = check_place(geography, _text(form, option.name).strip(), required=False)
            if place:
                out[option.name] = place
        elif option.text:
            text = _text(form, option.name).strip()
            if len(text) > MAX_TEXT_OPTION:
                raise InvalidInput(option.label, f"at most {MAX_TEXT_OPTION} characters")
            if text:
                out[option.name] = text
        elif option.choices:
            value = form.get(option.name) or option.default
            if not value:
                continue
            allowed = {v for v, _ in option.choices}
            if value not in allowed:
                raise InvalidInput(option.label, "must be one of the choices shown")
            out[option.name] = value
        else:
            out[option.name] = form.get(option.name) in ("1", "on", "yes")
    return out


def parse_copies(text: str, max_copies: int) -> int:
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= max_copies:
        raise InvalidInput("部数", f"must be an integer from 1 to {max_copies}")
    return int(text)


# ------------------------------------------------------------------------- 本籍地利用登録申請


def _may_apply(visit: Visit) -> bool:
    return visit.menu is not None and visit.menu.honseki_elsewhere


def _honseki_use_page(
    request: Request,
    visit: Visit,
    pref: str | None,
    values: dict[str, str],
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    place = place_lists(_geography(request), pref, values.get(HONSEKI_USE_LG, ""))
    return _render(
        request,
        "honseki_use.html",
        visit,
        place=place,
        values=values,
        error=error,
        status_code=status_code,
    )


@router.get("/honseki-use", dependencies=VISIT)
def honseki_use_form(request: Request, pref: str | None = None) -> Response:
    """本籍地利用登録申請: the 本籍地 (prefecture, then municipality) and the 筆頭者's name."""
    visit = _at(request, Step.MENU)
    if not isinstance(visit, Visit):
        return visit
    if not _may_apply(visit):
        return _go(f"{BASE}/menu")
    return _honseki_use_page(request, visit, pref, {})


@router.post("/honseki-use", dependencies=VISIT)
async def honseki_use_apply(request: Request) -> Response:
    """The application goes to the center, which hands it to the 本籍 municipality (pending its
    check; nothing charged). The visit stays at the menu."""
    visit = await _at_off_loop(request, Step.MENU)
    if not isinstance(visit, Visit):
        return visit
    form = await _form(request, visit)
    if not _may_apply(visit):
        return _go(f"{BASE}/menu")
    screen = screen_of(request)
    geography = _geography(request)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    applied: list[str] = []

    def work() -> None:
        lg_code = check_place(geography, _text(form, HONSEKI_USE_LG).strip(), required=True)
        family = _head_name("筆頭者の氏", _text(form, HEAD_FAMILY))
        given = _head_name("筆頭者の名", _text(form, HEAD_GIVEN))
        assert visit.center is not None
        applied.append(screen.center.apply_honseki_use(visit.center, lg_code, family, given))

    def again(error: str, status: int) -> Response:
        return _honseki_use_page(request, visit, values.get(PREF), values, error, status)

    moved = await _step(request, visit, Step.MENU, work, again)
    if moved is not None or not applied:
        return moved or _go(f"{BASE}/menu")
    return _render(request, "applied.html", visit, municipality=applied[0], message=APPLIED)


@router.get("/fee", dependencies=VISIT)
def fee(request: Request) -> Response:
    visit = _at(request, Step.FEE)
    if not isinstance(visit, Visit):
        return visit
    return _render(request, "fee.html", visit, quote=visit.quote)


@router.post("/pay", dependencies=VISIT)
async def pay(request: Request) -> Response:
    """The fee is paid (simulated), and the center issues: the PDF comes back to print."""
    visit = await _at_off_loop(request, Step.FEE)
    if not isinstance(visit, Visit):
        return visit
    form = await _form(request, visit)
    screen = screen_of(request)
    if visit.quote is None:
        return _go(f"{BASE}/menu")
    shown = visit.quote

    def work() -> None:
        paid = _text(form, "paid")
        if not _DIGITS.fullmatch(paid):
            raise InvalidInput("お支払い", "must be a number")
        quote = visit.quote  # as reloaded under the claim
        if quote is None or visit.center is None:
            raise InvalidInput("お支払い", "must follow a quote")
        try:
            visit.printout = screen.center.pay_and_issue(visit.center, quote, int(paid))
        except CenterRefused:
            # The center used the request up (nothing charged): choose again from the menu.
            visit.quote, visit.step = None, Step.MENU
            raise
        visit.quote = None
        visit.step = Step.PRINTED

    def again(error: str, status: int) -> Response:
        quote = visit.quote or shown
        return _render(request, "fee.html", visit, quote=quote, error=error, status_code=status)

    def used_up(error: str, status: int) -> Response:  # back to the menu: nothing was charged
        return _render(
            request, "menu.html", visit, menu=visit.menu, error=error, not_charged=True, status_code=status
        )

    return await _step(request, visit, Step.FEE, work, again, refused=used_up) or _go(f"{BASE}/printed")


@router.get("/printed", dependencies=VISIT)
def printed(request: Request) -> Response:
    visit = _at(request, Step.PRINTED)
    if not isinstance(visit, Visit):
        return visit
    return _render(request, "printed.html", visit, printout=visit.printout)


@router.get("/document.pdf", dependencies=VISIT)
def document(request: Request, download: int = 0) -> Response:
    """The printed certificate, shown (inline) or downloaded, while the visit lasts."""
    visit = _at(request, Step.PRINTED, pdf=True)
    if not isinstance(visit, Visit):
        return visit
    printout = visit.printout
    if printout is None or not printout.pdf:
        return _go(f"{BASE}/menu")
    disposition = "attachment" if download else "inline"
    return Response(
        printout.pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'{disposition}; filename="{printout.certificate_number}.pdf"'},
    )


@router.post("/again", dependencies=VISIT)
async def again(request: Request) -> Response:
    """Another certificate in the same visit: the printed one is dropped from the kiosk."""
    visit = await _at_off_loop(request, Step.PRINTED)
    if not isinstance(visit, Visit):
        return visit
    await _form(request, visit)

    def work() -> None:
        visit.printout = None
        visit.step = Step.MENU

    return await _run(request, visit, Step.PRINTED, work) or _go(f"{BASE}/menu")


@router.post("/finish", dependencies=VISIT)
async def finish(request: Request) -> Response:
    """終了 (or 中止 at any step): the card is given back, the kiosk forgets the visit."""
    visit = await run_in_threadpool(_visit, request)
    if visit is not None:
        await _form(request, visit)
        await _end(request, visit)
    response = _go(f"{BASE}/bye")
    response.delete_cookie(COOKIE, path=BASE)
    return response


@router.get("/bye", dependencies=OPEN)
def bye(request: Request) -> Response:
    return _render(request, "bye.html", None)


async def _step(
    request: Request,
    visit: Visit,
    step: Step,
    work: Callable[[], None],
    again: Callable[[str, int], Response],
    *,
    refused: Callable[[str, int], Response] | None = None,
) -> Response | None:
    """:func:`_run` with the screen's answers to a failure: a fatal refusal of the center ends the
    visit; another refusal goes to ``refused`` (default ``again``), an input error to ``again``,
    each with the Japanese message and the HTTP status. None when the step was done."""
    try:
        return await _run(request, visit, step, work)
    except CenterRefused as exc:
        if exc.fatal:
            return await _refused(request, visit, exc)
        return (refused or again)(exc.message, exc.http_status)
    except JlisError as exc:
        return again(messages.for_error(exc), exc.http_status)


async def _run(request: Request, visit: Visit, step: Step, work: Callable[[], None]) -> Response | None:
    """``work`` in a worker thread as the visit's one step in progress (:meth:`Visits.run`: a
    second submission of the same visit, in any process, waits for the first and then finds the
    visit moved on); a redirect when the visit moved on or ended meanwhile."""
    outcome = await run_in_threadpool(screen_of(request).visits.run, visit, step, work)
    if outcome is Outcome.DONE:
        return None
    if outcome is Outcome.GONE:
        return _go(BASE)
    return _go(_PAGE_OF[visit.step])
