"""What the kiosk needs of the 証明書交付センター, in the kiosk's own terms.

The kiosk (a multifunction copier in a shop) and the center (run by J-LIS) are separate systems on
a dedicated line (facts §6.1 step 2). The screen talks to the center only through a
:class:`KioskCenter`: these few calls, these plain values, and :class:`CenterRefused` for every
refusal. :mod:`jlis.kiosk.screen.adapter` implements it over the center's Python service; an
implementation over the center's HTTP API would change no page.

The kiosk never sees a 住民票コード, a name or an address: the center knows the person by the card
certificate the card presented, and the only personal data that reaches the kiosk is the PDF it
prints (and deletes).

Every value the screen keeps between steps is plain data (strings, numbers, tuples) because the
kiosk's memory of a visit is a database row shared by the screen's worker processes
(:mod:`jlis.kiosk.screen.visits`): the challenge is its text, the center's session its token, a
quote its ``quote_id``. An implementation finds its own objects again from these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from jlis.errors import JlisError
from jlis.jpki.rp.login import LoginResponse


class CenterRefused(JlisError):
    """The center refused a step. ``code`` is its stable reason (e.g. ``moved_out``,
    ``certificate_revoked``), ``message`` the Japanese text the screen shows; ``fatal`` means the
    visit cannot go on (the card is refused, the session is gone) and the screen ends it."""

    http_status = 409
    kind = "refused"

    def __init__(self, code: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message, code=code)
        self.code = code
        self.fatal = fatal


@dataclass(frozen=True)
class Option:
    """A choice the resident makes for a certificate: ``name`` is the request's key."""

    name: str  # the form field; the adapter maps it to the center's request
    label: str
    choices: tuple[tuple[str, str], ...] = ()  # (value, label); empty: a yes/no choice
    default: str = ""  # the value chosen at first ("1" ticks a yes/no choice)
    group: str = ""  # a heading shared by consecutive yes/no choices (e.g. 証明する事項)
    text: bool = False  # a short text field instead
    place: bool = False  # a municipality picked from the master's lists: prefecture, then municipality
    hint: str = ""


@dataclass(frozen=True)
class Offer:
    """One certificate on the menu: its kind, printed name, fee per copy and its options."""

    kind: str
    label: str
    fee: int  # yen per copy
    options: tuple[Option, ...] = ()
    issuer_name: str = ""  # the municipality that issues it (the 本籍地 for 戸籍 and 附票)


@dataclass(frozen=True)
class Menu:
    municipality: str  # the name of the municipality of residence
    offers: tuple[Offer, ...]
    max_copies: int = 10
    honseki_elsewhere: bool = False  # the 本籍 is elsewhere: 本籍地利用登録申請 is offered

    def offer(self, kind: str) -> Offer | None:
        return next((o for o in self.offers if o.kind == kind), None)


@dataclass(frozen=True)
class Quote:
    """The fee the center quotes for a request; paid, then issued, by its ``quote_id``."""

    quote_id: str
    kind: str
    label: str
    copies: int
    fee: int  # yen in all
    choices: tuple[str, ...] = ()  # what was chosen, in words (世帯全員, 本籍あり, ...)


@dataclass(frozen=True)
class Printout:
    """What the center returns to print: the signed PDF and its verification data (facts §6.1
    step 6). The kiosk prints it and deletes it."""

    pdf: bytes
    certificate_number: str
    verification_code: str
    verify_url: str
    request_id: str
    kind: str
    label: str
    copies: int
    fee: int
    sha256: str
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CenterVisit:
    """The center's side of one resident at this kiosk, opaque to the screen: what the adapter
    needs to continue (``handle``: the center's session token; its expiry)."""

    handle: str
    expires_at: dt.datetime | None = None


class KioskCenter(Protocol):
    """The calls the screen makes, in the order of the flow (facts §6.1)."""

    def challenge(self) -> str:
        """A new challenge for the card: the text the card signs (the center knows it by it)."""
        ...

    def card_failed(self, challenge: str, error: Exception) -> CenterRefused:
        """The card refused before answering (a wrong PIN, counted on the card; a blocked PIN):
        reported to the center, which logs it; the refusal to show is returned."""
        ...

    def authenticate(self, challenge: str, answer: LoginResponse) -> CenterVisit:
        """The card's answer: signature, chain, status by OCSP. Refused: CenterRefused (fatal)."""
        ...

    def menu(self, visit: CenterVisit) -> Menu: ...

    def quote(self, visit: CenterVisit, kind: str, options: Mapping[str, object], copies: int) -> Quote: ...

    def pay_and_issue(self, visit: CenterVisit, quote: Quote, paid: int) -> Printout:
        """The fee paid (simulated), then the certificate issued; a refusal charges nothing."""
        ...

    def apply_honseki_use(
        self, visit: CenterVisit, honseki_lg_code: str, head_family_name: str, head_given_name: str
    ) -> str:
        """本籍地利用登録申請 (nothing charged): the 本籍 municipality records it pending its check.
        Returns the name of the 本籍 municipality."""
        ...

    def close(self, visit: CenterVisit) -> None: ...
