"""The values that pass between a kiosk and the issuance center (pure: no database, clock or
randomness). The kiosk holds these objects between steps and hands them back; the center keeps its
own copy of each and refuses one that differs (a tampered request)."""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass, field

from jlis.errors import InvalidInput
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.models import IssueOptions

KIOSK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")
MAX_COPIES = 10


class Server(enum.StrEnum):
    """Which certificate server a municipality issues through (issue 4 §7)."""

    OWN = "own"  # the municipality's own 証明発行サーバ, signing with its 職責証明書
    BCL = "bcl"  # the shared instance of the 自治体基盤クラウド, signing with the BCL's 職責証明書


class Stage(enum.StrEnum):
    AUTHENTICATE = "authenticate"
    REQUEST = "request"
    PAY = "pay"
    ISSUE = "issue"


def check_kiosk_id(value: str) -> str:
    value = (value or "").strip() if isinstance(value, str) else ""
    if not KIOSK_ID.match(value):
        raise InvalidInput("kiosk_id", "1-32 characters: letters, digits or '-', starting alphanumeric")
    return value


def check_copies(copies: object) -> int:
    if not isinstance(copies, int) or isinstance(copies, bool) or not 1 <= copies <= MAX_COPIES:
        raise InvalidInput("部数", f"must be an integer from 1 to {MAX_COPIES}")
    return copies


@dataclass(frozen=True)
class KioskChallenge:
    """Step 1: what the kiosk has the card sign (``text``: a jlis-jpki-login/1 challenge whose
    audience is the center and the kiosk)."""

    kiosk_id: str
    text: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class CenterSession:
    """Step 2: an authenticated card at a kiosk. ``token`` is the kiosk's handle; the session names
    no person: the residence municipality and the card's certificate are kept at the center."""

    token: str
    kiosk_id: str
    lg_code: str  # the municipality of residence (from J-LIS's look-up of the certificate's holder)
    municipality: str  # its name, for the screen
    expires_at: dt.datetime


@dataclass(frozen=True)
class MenuItem:
    kind: CertificateKind
    label: str
    fee: int  # yen per copy
    options: tuple[str, ...]  # the IssueOptions fields that apply: household, show_honseki, ...
    honseki: bool  # issued by the 本籍 municipality (the kiosk asks for it when it differs)


@dataclass(frozen=True)
class Menu:
    """Step 3: what the person's municipality offers at the kiosk."""

    lg_code: str
    municipality: str
    server: Server
    items: tuple[MenuItem, ...]
    disasters: tuple[tuple[str, str], ...] = ()  # (id, name) with an approved 罹災証明書 application
    my_number_allowed: bool = False
    # The 住民票 names a 本籍 in another municipality: the kiosk offers 本籍地利用登録申請.
    honseki_elsewhere: bool = False


@dataclass(frozen=True)
class HonsekiApplied:
    """A 本籍地利用登録申請 the 本籍 municipality's certificate server recorded (pending its check)."""

    lg_code: str  # the 本籍 municipality
    municipality: str  # its name, for the screen
    applied_at: dt.datetime


@dataclass(frozen=True)
class Quote:
    """Step 4: the request as the center accepted it, with its fee. ``request_id`` is made by the
    center and checked at every hop down to the PDF."""

    request_id: str
    token: str
    kiosk_id: str
    kind: CertificateKind
    options: IssueOptions
    copies: int
    fee: int  # yen, for all copies
    lg_code: str  # the municipality that issues (residence, or 本籍 for 戸籍/附票)
    server: Server
    expires_at: dt.datetime


@dataclass(frozen=True)
class Receipt:
    """Step 5: the simulated payment, held until the certificate is issued (released on a refusal)."""

    request_id: str
    amount: int
    paid_at: dt.datetime


@dataclass(frozen=True)
class IssuedCertificate:
    """Step 6: what the kiosk prints (``copies`` times) and then deletes, with the verification data
    printed on it (number, code, URL in the QR code)."""

    request_id: str
    kiosk_id: str
    kind: CertificateKind
    lg_code: str
    server: Server
    copies: int
    fee: int
    certificate_number: str
    verification_code: str
    verify_url: str
    sha256: str
    signer_serial: str
    issued_at: dt.datetime
    pdf: bytes = field(repr=False)

    @property
    def filename(self) -> str:
        return f"{self.certificate_number}.pdf"


def options_for(kind: CertificateKind) -> tuple[str, ...]:
    """The IssueOptions fields a kiosk may offer for ``kind``."""
    if kind is CertificateKind.RESIDENT:
        return ("household", "show_honseki", "show_relationship", "show_my_number")
    if kind is CertificateKind.RESIDENT_ITEMS:
        return ("items",)
    if kind is CertificateKind.INCOME:
        return ("fiscal_year",)
    return ()
