"""The kiosk's line to the 証明書交付センター, in process: :class:`InProcessCenter` implements
:class:`jlis.kiosk.screen.port.KioskCenter` over :class:`jlis.kiosk.center.service.IssuanceCenter`.

This is the only module of the screen that imports the center. It translates both ways: the
screen's plain choices (form fields) into the center's request (``IssueOptions``, copies, the 本籍
municipality), the center's values (menu, quote, issued certificate) into the screen's, and every
refusal of the center — its own codes and the certificate servers' ``IssuanceRefused`` — into
:class:`~jlis.kiosk.screen.port.CenterRefused` with the same code and Japanese message. An adapter
over the center's HTTP API (``/api/v1/kiosk/center/...`` with the kiosk's bearer token) would do the
same translation from JSON.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jlis.clock import JST
from jlis.errors import InvalidInput, JlisError
from jlis.jpki.rp.errors import MalformedMessage
from jlis.jpki.rp.login import Challenge, LoginResponse
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.models import DEFAULT_RESIDENT_ITEMS, RESIDENT_ITEMS, IssueOptions
from jlis.kiosk.screen.port import CenterRefused, CenterVisit, Menu, Offer, Option, Printout, Quote

if TYPE_CHECKING:
    from jlis.kiosk.center import models as center_models
    from jlis.kiosk.center.service import IssuanceCenter

DEFAULT_KIOSK_ID = "DEMO-KIOSK-1"
DEFAULT_KIOSK_NAME = "jlis デモ店 1号機"

# The center's refusals that end the visit: the card or the session is no good any more.
FATAL_CODES = frozenset(
    {
        "unknown_kiosk",
        "challenge_unknown",
        "pin_blocked",
        "card_unreadable",
        "card_invalid",
        "card_revoked",
        "card_on_hold",
        "card_status_unknown",
        "holder_unknown",
        "session_unknown",
        "not_participating",
    }
)

INVALID_CHOICE = "選択された内容では証明書を交付できません。選択し直してください。"
NOT_ISSUED = (
    "証明書を交付できませんでした。手数料はいただいていません。市区町村の窓口にお問い合わせください。"
)
HONSEKI_FIELD = "honseki_lg_code"
ITEM_PREFIX = "item_"
SCOPE = "scope"

_OPTION_LABELS = {
    "show_honseki": "本籍を記載する",
    "show_relationship": "続柄を記載する",
    "show_my_number": "個人番号を記載する",
}


def _refusal(exc: JlisError) -> CenterRefused:
    """Any error of the center as the screen's refusal. The center's refusals and the certificate
    servers' keep their code and Japanese message; anything else (an error the center let through)
    gets its kind as the code and a Japanese message of the screen's, never the English text."""
    from jlis.kiosk.center.errors import CenterRefused as CenterSide
    from jlis.kiosk.issuer.errors import IssuanceRefused

    if isinstance(exc, CenterSide | IssuanceRefused):
        return CenterRefused(exc.code, exc.message, fatal=exc.code in FATAL_CODES)
    if isinstance(exc, InvalidInput):
        return CenterRefused(exc.kind, INVALID_CHOICE)
    return CenterRefused(exc.kind, NOT_ISSUED)


class InProcessCenter:
    """The screen's :class:`KioskCenter` over an :class:`IssuanceCenter` of this process, as the
    registered kiosk ``kiosk_id``."""

    def __init__(self, center: IssuanceCenter, kiosk_id: str = DEFAULT_KIOSK_ID) -> None:
        self.center = center
        self.kiosk_id = kiosk_id

    @classmethod
    def for_app(cls, app: Any) -> InProcessCenter:
        """The app's center (the one its kiosk HTTP API serves, ``jlis.kiosk.center.api.center_of``)
        as the kiosk ``app.state.kiosk_id`` (default :data:`DEFAULT_KIOSK_ID`). The kiosk must be
        registered with the center: ``ensure_center(..., kiosks={DEFAULT_KIOSK_ID: DEFAULT_KIOSK_NAME})``
        (``jlis demo`` does it); otherwise the screen shows the center's ``unknown_kiosk`` refusal."""
        from jlis.kiosk.center.api import center_of

        return cls(center_of(app), getattr(app.state, "kiosk_id", None) or DEFAULT_KIOSK_ID)

    # -- the card ------------------------------------------------------------------------------

    def challenge(self) -> str:
        try:
            challenge = self.center.open_session(self.kiosk_id)
        except JlisError as exc:
            raise _refusal(exc) from exc
        return challenge.text

    def _challenge(self, text: str) -> center_models.KioskChallenge:
        """The center's challenge again from its text (the kiosk keeps only the text): this kiosk's,
        expiring when the text says (the center checks both against what it issued)."""
        from jlis.kiosk.center.models import KioskChallenge

        try:
            expires_at = Challenge.from_text(text).expires_at
        except MalformedMessage:
            raise CenterRefused("challenge_unknown", _AGAIN_SESSION, fatal=True) from None
        return KioskChallenge(self.kiosk_id, text, expires_at)

    def card_failed(self, challenge: str, error: Exception) -> CenterRefused:
        """The card reader's failure (wrong PIN, blocked PIN), reported to the center for its log."""
        return _refusal(self.center.card_refused(self._challenge(challenge), error))

    def authenticate(self, challenge: str, answer: LoginResponse) -> CenterVisit:
        held = self._challenge(challenge)
        try:
            session = self.center.authenticate(held, answer)
        except JlisError as exc:
            refusal = _refusal(exc)
            refusal.fatal = True  # a card the center refused cannot go on
            raise refusal from exc
        return CenterVisit(session.token, session.expires_at)

    # -- the menu and the request --------------------------------------------------------------

    def menu(self, visit: CenterVisit) -> Menu:
        try:
            menu = self.center.menu(self._session(visit))
        except JlisError as exc:
            raise _refusal(exc) from exc
        from jlis.kiosk.center.models import MAX_COPIES

        offers = offers_of(menu, self.center.clock.now().astimezone(JST).date())
        return Menu(menu.municipality, offers, MAX_COPIES, menu.honseki_elsewhere)

    def quote(self, visit: CenterVisit, kind: str, options: Mapping[str, object], copies: int) -> Quote:
        session = self._session(visit)
        try:
            k = CertificateKind(kind)
        except ValueError:
            raise CenterRefused("invalid_request", "選択された証明書は取得できません。") from None
        honseki = str(options.get(HONSEKI_FIELD) or "").strip()
        try:
            issue_options = issue_options_for(k, options)
            quote = self.center.request(
                session,
                k,
                issue_options,
                copies,
                honseki_lg_code=honseki or None,
            )
        except JlisError as exc:
            raise _refusal(exc) from exc
        return Quote(
            quote_id=quote.request_id,
            kind=quote.kind.value,
            label=quote.kind.label,
            copies=quote.copies,
            fee=quote.fee,
            choices=describe(quote.kind, quote.options),
        )

    def pay_and_issue(self, visit: CenterVisit, quote: Quote, paid: int) -> Printout:
        session = self._session(visit)
        try:
            held = self.center.quote_by_id(session, quote.quote_id)
            receipt = self.center.pay(held, paid)
            issued = self.center.issue(session, receipt)
        except JlisError as exc:
            raise _refusal(exc) from exc
        return _printout(issued)

    def apply_honseki_use(
        self, visit: CenterVisit, honseki_lg_code: str, head_family_name: str, head_given_name: str
    ) -> str:
        session = self._session(visit)
        try:
            applied = self.center.apply_honseki_use(
                session, honseki_lg_code, head_family_name, head_given_name
            )
        except JlisError as exc:
            raise _refusal(exc) from exc
        return applied.municipality

    def close(self, visit: CenterVisit) -> None:
        """The card was taken: the center ends the session of this token (its quotes and held
        payments with it). Nothing is looked up first: a session the center already forgot is no
        refusal to log."""
        from jlis.kiosk.center.models import CenterSession

        expires_at = visit.expires_at or self.center.clock.now()
        self.center.close(CenterSession(visit.handle, self.kiosk_id, "", "", expires_at))

    def _session(self, visit: CenterVisit) -> center_models.CenterSession:
        """The center's live session of the visit's token (the kiosk keeps only the token)."""
        if not isinstance(visit.handle, str) or not visit.handle:
            raise CenterRefused("session_unknown", _AGAIN_SESSION, fatal=True)
        try:
            return self.center.session_by_token(self.kiosk_id, visit.handle)
        except JlisError as exc:
            raise _refusal(exc) from exc


_AGAIN_SESSION = "操作の有効期限が切れたか、無効な要求です。はじめからやり直してください。"


def offers_of(menu: center_models.Menu, today: dt.date) -> tuple[Offer, ...]:
    """The screen's offers for the center's menu (``today``: the kiosk's date, for the 年度 list)."""
    offers = []
    for item in menu.items:
        if item.kind is CertificateKind.DAMAGE and not menu.disasters:
            continue  # 罹災証明書 only for a person with an approved application
        offers.append(
            Offer(
                kind=item.kind.value,
                label=item.label,
                fee=item.fee,
                options=offer_options(item, menu, today),
                issuer_name=_issuer_note(item, menu),
            )
        )
    return tuple(offers)


def offer_options(
    item: center_models.MenuItem, menu: center_models.Menu, today: dt.date
) -> tuple[Option, ...]:
    out: list[Option] = []
    for name in item.options:
        if name == "household":
            out.append(
                Option(SCOPE, "対象となる方", (("self", "本人のみ"), ("household", "世帯全員")), "self")
            )
        elif name == "show_my_number":
            if menu.my_number_allowed:
                out.append(Option(name, _OPTION_LABELS[name], group="記載する事項"))
        elif name in _OPTION_LABELS:
            out.append(Option(name, _OPTION_LABELS[name], group="記載する事項"))
        elif name == "items":
            out += [
                Option(
                    f"{ITEM_PREFIX}{key}",
                    label,
                    default="1" if key in DEFAULT_RESIDENT_ITEMS else "",
                    group="証明する事項",
                )
                for key, label in RESIDENT_ITEMS.items()
            ]
        elif name == "fiscal_year":
            out.append(Option(name, "年度", _fiscal_years(today), ""))
    if item.honseki:
        out.append(
            Option(
                HONSEKI_FIELD,
                "本籍地の市区町村",
                place=True,
                hint=f"本籍地が{menu.municipality}なら「お住まいの市区町村」のまま",
            )
        )
    return tuple(out)


def _fiscal_years(today: dt.date) -> tuple[tuple[str, str], ...]:
    """The 年度 a 所得・課税証明書 may be asked for (the new one is available from June)."""
    latest = today.year if today.month >= 6 else today.year - 1
    years = [("", "最新の年度")]
    years += [(str(y), f"{y}年度") for y in range(latest, latest - 3, -1)]
    return tuple(years)


def _issuer_note(item: center_models.MenuItem, menu: center_models.Menu) -> str:
    if item.honseki:
        return "本籍地の市区町村が交付します"
    if item.kind is CertificateKind.DAMAGE:
        return "対象の災害: " + "、".join(name for _, name in menu.disasters)
    return ""


def issue_options_for(kind: CertificateKind, chosen: Mapping[str, object]) -> IssueOptions:
    """The center's ``IssueOptions`` for the screen's choices (only the options of ``kind``)."""
    if kind is CertificateKind.RESIDENT:
        return IssueOptions(
            household=chosen.get(SCOPE) == "household",
            show_honseki=chosen.get("show_honseki") is True,
            show_relationship=chosen.get("show_relationship") is True,
            show_my_number=chosen.get("show_my_number") is True,
        )
    if kind is CertificateKind.RESIDENT_ITEMS:
        items = tuple(k for k in RESIDENT_ITEMS if chosen.get(f"{ITEM_PREFIX}{k}") is True)
        return IssueOptions(items=items)
    if kind is CertificateKind.INCOME:
        year = chosen.get("fiscal_year")
        return IssueOptions(fiscal_year=int(str(year)) if year else None)
    return IssueOptions()


def describe(kind: CertificateKind, options: IssueOptions) -> tuple[str, ...]:
    """What was chosen, in words, for the fee screen."""
    out: list[str] = []
    if kind is CertificateKind.RESIDENT:
        out.append("世帯全員" if options.household else "本人のみ")
        out.append("本籍あり" if options.show_honseki else "本籍なし")
        out.append("続柄あり" if options.show_relationship else "続柄なし")
        if options.show_my_number:
            out.append("個人番号あり")
    elif kind is CertificateKind.RESIDENT_ITEMS:
        out += [RESIDENT_ITEMS[i] for i in options.items]
    elif kind is CertificateKind.INCOME:
        out.append(f"{options.fiscal_year}年度" if options.fiscal_year else "最新の年度")
    return tuple(out)


def _printout(issued: center_models.IssuedCertificate) -> Printout:
    return Printout(
        pdf=issued.pdf,
        certificate_number=issued.certificate_number,
        verification_code=issued.verification_code,
        verify_url=issued.verify_url,
        request_id=issued.request_id,
        kind=issued.kind.value,
        label=issued.kind.label,
        copies=issued.copies,
        fee=issued.fee,
        sha256=issued.sha256,
    )
