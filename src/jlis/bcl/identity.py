"""Who a card is: the holder of a My Number card's authentication certificate (利用者証明用電子証明書),
for shelter check-in and for an online 罹災証明書 application.

Reads ``jpki_certificates`` read-only (the JPKI package's table; the contract allows the BCL a
read-only look-up there). It fails closed: an unknown serial, a certificate of another kind, one on
hold or revoked, or one outside its validity identifies no one.

The serial alone is not a proof of possession: the caller (a shelter's card reader, the portal's
login, the kiosk) must have checked the card's signature over a challenge first
(``jlis.jpki.rp.login.verify_login``), and hands over the serial of the certificate it verified.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.bcl.models import normalise_serial
from jlis.errors import NotFound, RuleViolation
from jlis.jpki.tables import AUTH, CARD, GOOD, PHONE, CertificateRow


@dataclass(frozen=True)
class CardHolder:
    """A resident identified by their card's authentication certificate."""

    resident_code: str
    lg_code: str  # the municipality that held the register when the certificate was issued
    serial: str
    card_id: str

    @property
    def actor(self) -> str:
        """How the resident is named in audit records and application rows."""
        return f"resident:{self.serial}"


def card_holder(session: Session, serial: str, now: dt.datetime, *, allow_phone: bool = False) -> CardHolder:
    """The holder of the valid authentication certificate ``serial`` (a card's; a smartphone's too
    when ``allow_phone``)."""
    key = normalise_serial(serial)
    rows = session.scalars(
        select(CertificateRow).where(CertificateRow.ca_kind == AUTH, CertificateRow.serial == key)
    ).all()
    if not rows:
        raise NotFound("利用者証明用電子証明書", key)
    if len(rows) > 1:  # two generations with one serial: refuse rather than guess
        raise RuleViolation("証明書シリアル番号", "must identify exactly one certificate")
    cert = rows[0]
    holders = (CARD, PHONE) if allow_phone else (CARD,)
    if cert.holder not in holders:
        raise RuleViolation("証明書シリアル番号", "must be the certificate of a card")
    if cert.status != GOOD:
        raise RuleViolation(
            "利用者証明用電子証明書",
            "must not be revoked or on hold",
            "この電子証明書は失効または一時保留中です",
        )
    at = now.astimezone(dt.UTC)
    not_before = _utc(cert.not_before)
    not_after = _utc(cert.not_after)
    if not not_before <= at <= not_after:
        raise RuleViolation(
            "利用者証明用電子証明書", "must be within its validity", "この電子証明書は有効期間外です"
        )
    return CardHolder(cert.resident_code, cert.lg_code, key, cert.card_id)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
