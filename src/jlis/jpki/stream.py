"""JPKI's subscriber to the national change stream (node kind ``jpki``): revokes certificates when
the 機構保存本人確認情報 shows that what they certify is no longer true (facts §3.4).

The lead wires it: ``NationalNode(subscribers=["jpki", ...])`` and
``build_relay(..., extra_handlers={"jpki": JpkiStreamNode(clock)})``. It runs in the relay's round
transaction; the relay's inbox makes a redelivered message a no-op, and the cause
``identity:<message id>`` makes a repeat harmless even without it (a revoked certificate stays as it is).

What it decides, per record and per good or held certificate of that 住民票コード (pure:
:func:`decide`):

===================================  ====================  =====================  =====================
record                               signing certificate   authentication cert.   reason (RFC 5280)
===================================  ====================  =====================  =====================
死亡 (DEATH)                          revoked               revoked                cessationOfOperation
国外転出 (MOVE_ABROAD)                revoked               — (card helper)        cessationOfOperation
転出 (MOVE_OUT)                       revoked               —                      affiliationChanged
住民票 removed, any other reason       revoked               — (card helper)        cessationOfOperation
基本4情報 differ from the certificate   revoked               —                      affiliationChanged
anything else (INITIAL, kana only...)  —                     —
===================================  ====================  =====================  =====================

- "differ" compares the name, sex, birth date and address the signing certificate carries (its
  SubjectAltName, facts §3.3) with the same values rendered from the record by the CA's own
  function (:func:`jlis.jpki.holder.san_values`, JIS X 0208 substitution included). So a record
  with no change of 基本4情報 — a plain INITIAL load, a furigana or alias change, a 住民票コード
  change — revokes nothing, whatever its reason says, and a record that carries a change revokes
  whatever its reason says (a 職権修正 of the birth date, a 転居 within the municipality...).
- A record older than the certificate (``recorded_at`` before ``issued_at``) is ignored: the
  certificate was issued from newer data than the record.
- The authentication certificate survives moves and name changes and ends with the card: only a
  death ends it here (both certificates, as the card is void). 国外転出, the deletion of the
  住民票 and a 住民票コード change void the card, and the card helper (jlis.card.stream) then calls
  :meth:`Revocations.revoke_card`, which revokes whatever is still good; doing it twice is harmless.
- A 転出 revokes the signing certificate when it is received (facts §3.4: "on the move date"; a
  planned date in the future is not waited for — the register records the notice, we act on it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.clock import Clock
from jlis.errors import InvalidInput
from jlis.jpki import holder as holder_mod
from jlis.jpki.revocation import Reason, Revocations
from jlis.jpki.tables import AUTH, GOOD, HOLD, SIGN, CertificateRow
from jlis.juki.errors import MessageRefused
from jlis.juki.models import NATIONAL
from jlis.messaging import Message
from jlis.registry.events import TOPIC_IDENTITY, IdentityRecord
from jlis.registry.models import ChangeReason, Status

NODE_KIND = "jpki"
DESTINATION = "jpki"
ACTOR = "jpki-stream"
CHUNK = 500

# The four items of 基本4情報 as the signing certificate carries them.
COMPARED = (holder_mod.OID_NAME, holder_mod.OID_SEX, holder_mod.OID_BIRTH, holder_mod.OID_ADDRESS)


@dataclass(frozen=True)
class CertFacts:
    """What the decision needs of a certificate."""

    ca_kind: str
    issued_at: dt.datetime
    san: dict[x509.ObjectIdentifier, str]


def differs(record: IdentityRecord, san: dict[x509.ObjectIdentifier, str]) -> bool:
    """True when the record's 基本4情報 are not the ones in the certificate."""
    if not san:  # a signing certificate without its otherNames: nothing to compare, never revoke on it
        return False
    info = holder_mod.from_resident(record)
    try:
        renderings = [holder_mod.san_values(info), holder_mod.san_values(info, jisx0212=True)]
    except InvalidInput:  # the new data cannot even be put in a certificate: it is not the old data
        return True
    return not any(all(r[oid] == san.get(oid) for oid in COMPARED) for r in renderings)


def decide(record: IdentityRecord, cert: CertFacts) -> Reason | None:
    """Why ``record`` revokes ``cert``, or None. Pure."""
    if record.recorded_at < cert.issued_at:
        return None
    if record.reason is ChangeReason.DEATH:
        return Reason.CESSATION_OF_OPERATION
    if cert.ca_kind != SIGN:
        return None
    if record.reason is ChangeReason.MOVE_ABROAD:
        return Reason.CESSATION_OF_OPERATION
    if record.reason is ChangeReason.MOVE_OUT:
        return Reason.AFFILIATION_CHANGED
    if record.status == Status.REMOVED.value:
        return Reason.CESSATION_OF_OPERATION
    if differs(record, cert.san):
        return Reason.AFFILIATION_CHANGED
    return None


class JpkiStreamNode:
    """The relay handler of the ``jpki`` node kind."""

    def __init__(self, clock: Clock, *, actor: str = ACTOR) -> None:
        self.clock = clock
        self.actor = actor

    def __call__(self, session: Session, node: str, messages: list[Message]) -> None:
        self.apply_groups(session, [(node, messages)])

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]]) -> None:
        records: list[tuple[str, IdentityRecord]] = []
        for node, messages in groups:
            for m in messages:
                if m.topic != TOPIC_IDENTITY or m.source != NATIONAL:
                    raise MessageRefused(
                        node, m.source, m.topic, "JPKI takes identity records from the national server only"
                    )
                records.append((m.message_id, IdentityRecord.from_payload(m.payload)))
        if not records:
            return
        certs = _live_certificates(session, sorted({r.resident_code for _, r in records}))
        if not certs:
            return
        facts: dict[int, CertFacts] = {}
        items: list[tuple[CertificateRow, Reason, str]] = []
        for message_id, record in records:
            for row in certs.get(record.resident_code, ()):
                f = facts.get(row.id)
                if f is None:
                    f = facts[row.id] = _facts(row)
                reason = decide(record, f)
                if reason is not None:
                    items.append((row, reason, f"identity:{message_id}"))
        if items:
            Revocations(session, self.clock, actor=self.actor).revoke_each(items)


def _live_certificates(session: Session, codes: Sequence[str]) -> dict[str, list[CertificateRow]]:
    out: dict[str, list[CertificateRow]] = {}
    for i in range(0, len(codes), CHUNK):
        rows = session.scalars(
            select(CertificateRow)
            .where(
                CertificateRow.resident_code.in_(codes[i : i + CHUNK]),
                CertificateRow.status.in_((GOOD, HOLD)),
                CertificateRow.ca_kind.in_((SIGN, AUTH)),
            )
            .order_by(CertificateRow.id)
        )
        for row in rows:
            out.setdefault(row.resident_code, []).append(row)
    return out


def _facts(row: CertificateRow) -> CertFacts:
    san: dict[x509.ObjectIdentifier, str] = {}
    if row.ca_kind == SIGN:
        san = holder_mod.san_from_certificate(x509.load_der_x509_certificate(row.der))
    return CertFacts(row.ca_kind, row.issued_at, san)
