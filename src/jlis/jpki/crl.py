"""Certificate revocation lists (RFC 5280 §5) of every CA generation: the full list, one partition
per municipality, and the ARL of each CA kind.

- Full CRL ``(kind, generation)``: every revoked or held certificate of that generation. No
  issuingDistributionPoint: it covers the whole scope of the generation.
- Partition ``(kind, generation, lg_code)``: the certificates whose CRL distribution point is that
  municipality's (``CertificateRow.lg_code``, the holder's municipality at issue), with an
  issuingDistributionPoint (critical) whose fullName is exactly the certificate's distribution
  point (:func:`jlis.jpki.ca.partition_names`) and onlyContainsUserCerts, so a verifier matches
  the two (RFC 5280 §6.3.3 (b)(2)(i)).
- ARL ``kind``: the revoked CA generations of that kind, signed by the active generation, with an
  issuingDistributionPoint of onlyContainsCACerts.

thisUpdate/nextUpdate: issued daily as the real JPKI does (nextUpdate = thisUpdate + 1 day), and
re-issued at once when a revocation changes the list. An entry stays until one CRL after its
certificate expired (RFC 5280 §3.3: an entry must appear on one CRL issued beyond the validity
period), then drops off. Reason codes follow RFC 5280 §5.3.1; ``unspecified`` is left out, as the
RFC recommends; a held certificate has reason certificateHold.

The CRL number must grow for each new CRL of a scope (§5.2.3). There is no counter table: the
number is ``(feed sequence << 40) | thisUpdate in Unix seconds``, where the feed sequence is the
last entry of the ``jpki.revocation`` chain the list reflects. Both parts only grow, so the number
grows across processes too, without a shared counter.

Performance: ``cryptography``'s CRL builder copies its list on every added entry (quadratic: 32 s for
100,000 entries), so the TBSCertList is encoded here by hand — a flat, simple DER structure — and
signed with :meth:`CaSigner.sign_bytes`. A list of 1,000,000 entries takes a few seconds.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID
from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import Clock
from jlis.db import read_only
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.jpki.keystore import CaSigner, KeyStore
from jlis.jpki.profile import Algorithm
from jlis.jpki.revocation import REASON_CODES, Action, Reason, changes_since, feed_head
from jlis.jpki.tables import AUTH, HOLD, REVOKED, SIGN, CaGenerationRow, CertificateRow
from jlis.jpki.urls import arl_url

CRL_PERIOD = dt.timedelta(days=1)  # daily, as JPKI publishes
# A cached list is re-issued once it is this old, so whatever is served has at least half its
# period left before nextUpdate.
REFRESH_AFTER = dt.timedelta(hours=12)
FEED_LIMIT = 100_000  # changes read at once; more than that and every cached list is rebuilt
UTC = dt.UTC

# ------------------------------------------------------------------------------------------ DER


def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + der_length(len(content)) + content


def der_integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("only non-negative integers are encoded here")
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # a leading 0 keeps it positive
    if len(body) > 1 and body[0] == 0 and body[1] < 0x80:
        body = body[1:]
    return tlv(0x02, body)


def der_time(at: dt.datetime) -> bytes:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5), in whole seconds."""
    at = at.astimezone(UTC)
    if at.year < 2050:
        return tlv(0x17, at.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(0x18, at.strftime("%Y%m%d%H%M%SZ").encode())


def der_extension(oid: x509.ObjectIdentifier, value: bytes, critical: bool = False) -> bytes:
    body = tlv(0x06, oid_body(oid.dotted_string))
    if critical:
        body += b"\x01\x01\xff"
    return tlv(0x30, body + tlv(0x04, value))


def oid_body(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


# AlgorithmIdentifier of the signature, per profile algorithm.
SIGNATURE_ALGORITHMS = {
    # sha256WithRSAEncryption, parameters NULL (RFC 4055 §5)
    Algorithm.RSA2048_SHA256: bytes.fromhex("300d06092a864886f70d01010b0500"),
    # ecdsa-with-SHA384, parameters absent (RFC 5758 §3.2)
    Algorithm.P384_SHA384: bytes.fromhex("300a06082a8648ce3d040303"),
}


def signature_algorithm(signer: CaSigner) -> bytes:
    return SIGNATURE_ALGORITHMS[Algorithm(signer.algorithm)]


def signed(tbs: bytes, signer: CaSigner) -> bytes:
    """SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }: a CRL, certificate or OCSP
    BasicOCSPResponse body share this shape."""
    return tlv(0x30, tbs + signature_algorithm(signer) + tlv(0x03, b"\x00" + signer.sign_bytes(tbs)))


_REASON_EXTENSIONS: dict[str, bytes] = {
    reason.value: tlv(0x30, der_extension(CRLEntryExtensionOID.CRL_REASON, tlv(0x0A, bytes((code,)))))
    for reason, code in REASON_CODES.items()
    if reason is not Reason.UNSPECIFIED
}


class Entry(NamedTuple):
    """One revoked certificate on a list. The raw forms are what the database hands back, so a
    list of a million entries is encoded without building a million datetimes and ints."""

    serial: int | str  # int, or lower-case hex as stored
    revoked_at: dt.datetime | str  # aware datetime, or SQLite's stored UTC text
    reason: str | None  # Reason value; None or "unspecified" → no reasonCode


def _time_der(value: dt.datetime | str) -> bytes:
    if isinstance(value, dt.datetime):
        return der_time(value)
    # SQLite text of UtcDateTime: "YYYY-MM-DD HH:MM:SS[.ffffff]", naive UTC.
    v = value
    if int(v[:4]) < 2050:
        return tlv(0x17, f"{v[2:4]}{v[5:7]}{v[8:10]}{v[11:13]}{v[14:16]}{v[17:19]}Z".encode())
    return tlv(0x18, f"{v[:4]}{v[5:7]}{v[8:10]}{v[11:13]}{v[14:16]}{v[17:19]}Z".encode())


def _serial_der(serial: int | str) -> bytes:
    if isinstance(serial, int):
        return der_integer(serial)
    body = bytes.fromhex(serial if len(serial) % 2 == 0 else "0" + serial)
    if body[0] & 0x80:
        body = b"\x00" + body
    return b"\x02" + der_length(len(body)) + body


def encode_entries(entries: Iterable[Entry] | Iterable[tuple[Any, Any, Any]]) -> bytes:
    """The content of revokedCertificates (without its SEQUENCE header). Hot loop of a 1M list."""
    times: dict[Any, bytes] = {}
    parts: list[bytes] = []
    append = parts.append
    reasons = _REASON_EXTENSIONS
    for serial, at, reason in entries:
        t = times.get(at)
        if t is None:
            t = times[at] = _time_der(at)
        body = _serial_der(serial) + t
        if reason:
            ext = reasons.get(reason)
            if ext is not None:
                body += ext
        append(b"\x30" + der_length(len(body)) + body)
    return b"".join(parts)


def build_crl(
    *,
    issuer: x509.Certificate,
    signer: CaSigner,
    entries: Iterable[Entry],
    this_update: dt.datetime,
    next_update: dt.datetime,
    number: int,
    idp: x509.IssuingDistributionPoint | None = None,
) -> bytes:
    """A signed CRL (DER). Pure apart from the signer."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    extensions = der_extension(ExtensionOID.AUTHORITY_KEY_IDENTIFIER, aki.public_bytes())
    extensions += der_extension(ExtensionOID.CRL_NUMBER, x509.CRLNumber(number).public_bytes())
    if idp is not None:
        extensions += der_extension(
            ExtensionOID.ISSUING_DISTRIBUTION_POINT, idp.public_bytes(), critical=True
        )
    revoked = encode_entries(entries)
    tbs = (
        b"\x02\x01\x01"  # version v2
        + signature_algorithm(signer)
        + issuer.subject.public_bytes()
        + der_time(this_update)
        + der_time(next_update)
        + (tlv(0x30, revoked) if revoked else b"")  # absent, not empty, when nothing is revoked
        + tlv(0xA0, tlv(0x30, extensions))
    )
    return signed(tlv(0x30, tbs), signer)


def crl_number(feed_seq: int, this_update: dt.datetime) -> int:
    return (feed_seq << 40) | int(this_update.timestamp())


# ------------------------------------------------------------------------------------- publisher


@dataclass(frozen=True)
class Scope:
    """Which list: ``generation`` None is the ARL of ``ca_kind``; ``lg_code`` a partition."""

    ca_kind: str
    generation: int | None
    lg_code: str | None = None

    @property
    def label(self) -> str:
        if self.generation is None:
            return "arl"
        return f"g{self.generation}" + (f"/{self.lg_code}" if self.lg_code else "")


@dataclass
class CrlDocument:
    scope: Scope
    der: bytes
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    entries: int
    feed_seq: int
    build_seconds: float
    generation_id: int  # the generation that signed it (for an ARL: the signer, not the scope)
    stale: bool = field(default=False)


SignerFor = Callable[[CaGenerationRow], CaSigner]


def keystore_signers(keystore: KeyStore) -> SignerFor:
    """The signer of a generation from the key store, checked once against its certificate (fails
    closed: a mixed-up key_ref would publish lists nobody can verify)."""
    checked: dict[int, CaSigner] = {}
    lock = threading.Lock()

    def signer_for(row: CaGenerationRow) -> CaSigner:
        signer = checked.get(row.id)
        if signer is None:
            signer = keystore.signer(row.key_ref)
            cert = x509.load_der_x509_certificate(row.certificate_der)
            if signer.public_key() != cert.public_key():
                raise RuleViolation("key_ref", f"key does not match CA {row.ca_kind} g{row.generation}")
            with lock:
                checked[row.id] = signer
        return signer

    return signer_for


class CrlPublisher:
    """Builds and caches the lists of one database, per process (thread-safe).

    Before serving a cached list it reads the head of the revocation change feed (one primary-key
    read) and, if it moved, the new changes: a list they touch is rebuilt. So a revocation committed
    by any process is on the next list served, and an unchanged list is served from memory."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        clock: Clock,
        signer_for: SignerFor,
        base_url: str,
        *,
        period: dt.timedelta = CRL_PERIOD,
        refresh_after: dt.timedelta = REFRESH_AFTER,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.signer_for = signer_for
        self.base_url = base_url.rstrip("/")
        self.period = period
        self.refresh_after = refresh_after
        self._docs: dict[Scope, CrlDocument] = {}
        self._seen_seq = 0
        self._lock = threading.Lock()
        self._build_locks: dict[Scope, threading.Lock] = {}
        self._names: dict[tuple[int, str], list[x509.GeneralName]] = {}

    # -- public ------------------------------------------------------------------------------------

    def crl(self, ca_kind: str, generation: int, lg_code: str | None = None) -> CrlDocument:
        _check_kind(ca_kind)
        if lg_code is not None and (len(lg_code) != 6 or not lg_code.isdigit()):
            raise InvalidInput("lg_code", "must be 6 digits")
        return self._get(Scope(ca_kind, generation, lg_code))

    def arl(self, ca_kind: str) -> CrlDocument:
        _check_kind(ca_kind)
        return self._get(Scope(ca_kind, None))

    def cached(self) -> list[CrlDocument]:
        """What this process holds, for the freshness page (after marking what changed)."""
        with self.factory() as s:
            self._sync(read_only(s))
        with self._lock:
            return sorted(
                self._docs.values(),
                key=lambda d: (d.scope.ca_kind, d.scope.generation or 0, d.scope.lg_code or ""),
            )

    # -- internals ---------------------------------------------------------------------------------

    def _get(self, scope: Scope) -> CrlDocument:
        with self.factory() as s:
            read_only(s)
            head = self._sync(s)
            doc = self._docs.get(scope)
            if doc is not None and self._fresh(doc):
                return doc
            with self._lock:
                build_lock = self._build_locks.setdefault(scope, threading.Lock())
            with build_lock:  # one build per list at a time; the others wait for it
                doc = self._docs.get(scope)
                if doc is not None and self._fresh(doc):
                    return doc
                doc = self._build(s, scope, head)
                with self._lock:
                    self._docs[scope] = doc
                return doc

    def _fresh(self, doc: CrlDocument) -> bool:
        return not doc.stale and self.clock.now() - doc.this_update < self.refresh_after

    def _sync(self, s: Session) -> int:
        """Mark the lists touched by changes after the last seen one as stale; return the head."""
        head = feed_head(s)
        if head <= self._seen_seq:
            return head
        changes = changes_since(s, self._seen_seq, limit=FEED_LIMIT)
        with self._lock:
            if len(changes) >= FEED_LIMIT:  # too many to sort out: rebuild everything
                for doc in self._docs.values():
                    doc.stale = True
            for c in changes:
                for doc in self._docs.values():
                    if doc.scope.ca_kind != c.ca_kind:
                        continue
                    if c.action is Action.REVOKE_CA:
                        doc.stale = doc.stale or doc.scope.generation is None
                    elif (
                        doc.scope.generation is not None
                        and doc.generation_id == c.ca_generation_id
                        and doc.scope.lg_code in (None, c.lg_code)
                    ):
                        doc.stale = True
            self._seen_seq = max(self._seen_seq, head)
        return head

    def _build(self, s: Session, scope: Scope, head: int) -> CrlDocument:
        started = time.perf_counter()
        now = self.clock.now().astimezone(UTC).replace(microsecond=0)
        if scope.generation is None:
            issuer_row = _arl_issuer(s, scope.ca_kind)
            entries = _arl_entries(s, scope.ca_kind)
            idp = x509.IssuingDistributionPoint(
                full_name=[x509.UniformResourceIdentifier(arl_url(self.base_url, scope.ca_kind))],
                relative_name=None,
                only_contains_user_certs=False,
                only_contains_ca_certs=True,
                only_some_reasons=None,
                indirect_crl=False,
                only_contains_attribute_certs=False,
            )
        else:
            issuer_row = _generation(s, scope.ca_kind, scope.generation)
            entries = _entries(s, issuer_row.id, scope.lg_code, cutoff=now - self.period)
            idp = None
            if scope.lg_code is not None:
                idp = self._partition_idp(s, issuer_row, scope.lg_code)
        issuer = x509.load_der_x509_certificate(issuer_row.certificate_der)
        der = build_crl(
            issuer=issuer,
            signer=self.signer_for(issuer_row),
            entries=entries,
            this_update=now,
            next_update=now + self.period,
            number=crl_number(head, now),
            idp=idp,
        )
        return CrlDocument(
            scope=scope,
            der=der,
            number=crl_number(head, now),
            this_update=now,
            next_update=now + self.period,
            entries=len(entries),
            feed_seq=head,
            build_seconds=time.perf_counter() - started,
            generation_id=issuer_row.id,
        )

    def _partition_idp(self, s: Session, gen: CaGenerationRow, lg_code: str) -> x509.IssuingDistributionPoint:
        names = self._names.get((gen.id, lg_code))
        if names is None:
            names = self._names[(gen.id, lg_code)] = _partition_names_of(s, gen, lg_code, self.base_url)
        return x509.IssuingDistributionPoint(
            full_name=names,
            relative_name=None,
            only_contains_user_certs=True,
            only_contains_ca_certs=False,
            only_some_reasons=None,
            indirect_crl=False,
            only_contains_attribute_certs=False,
        )


def _check_kind(ca_kind: str) -> None:
    if ca_kind not in (SIGN, AUTH):
        raise InvalidInput("ca_kind", "must be sign or auth")


def _generation(s: Session, ca_kind: str, generation: int) -> CaGenerationRow:
    row = s.scalars(
        select(CaGenerationRow).where(
            CaGenerationRow.ca_kind == ca_kind, CaGenerationRow.generation == generation
        )
    ).one_or_none()
    if row is None:
        raise NotFound("CA generation", f"{ca_kind} g{generation}")
    return row


def _arl_issuer(s: Session, ca_kind: str) -> CaGenerationRow:
    """The newest generation still in service signs the ARL of its kind."""
    row = s.scalars(
        select(CaGenerationRow)
        .where(CaGenerationRow.ca_kind == ca_kind, CaGenerationRow.revoked_at.is_(None))
        .order_by(CaGenerationRow.active.desc(), CaGenerationRow.generation.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFound("CA generation", f"{ca_kind} (none in service to sign the ARL)")
    return row


def _arl_entries(s: Session, ca_kind: str) -> list[Entry]:
    rows = s.execute(
        select(CaGenerationRow.certificate_der, CaGenerationRow.revoked_at, CaGenerationRow.revocation_reason)
        .where(CaGenerationRow.ca_kind == ca_kind, CaGenerationRow.revoked_at.is_not(None))
        .order_by(CaGenerationRow.generation)
    )
    return [
        Entry(x509.load_der_x509_certificate(der).serial_number, at, reason)
        for der, at, reason in rows
        if at is not None
    ]


def _entries(s: Session, generation_id: int, lg_code: str | None, *, cutoff: dt.datetime) -> list[Entry]:
    c = CertificateRow
    # The time column is read raw (SQLite: its stored UTC text) and encoded without a datetime:
    # that is half the time of a million-entry list.
    stmt = select(c.serial, type_coerce(c.revoked_at, String), c.revocation_reason).where(
        c.ca_generation_id == generation_id,
        c.status.in_((REVOKED, HOLD)),
        c.not_after >= cutoff,
        c.revoked_at.is_not(None),
    )
    if lg_code is not None:
        stmt = stmt.where(c.lg_code == lg_code)
    return [Entry(*row) for row in s.execute(stmt.order_by(c.id))]


def _partition_names_of(
    s: Session, gen: CaGenerationRow, lg_code: str, base_url: str
) -> list[x509.GeneralName]:
    """The distribution point names the certificates of this partition carry: read from one of
    them (so the list matches what was issued, whatever the base URL was then), else computed."""
    der = s.execute(
        select(CertificateRow.der)
        .where(CertificateRow.ca_generation_id == gen.id, CertificateRow.lg_code == lg_code)
        .limit(1)
    ).scalar()
    if der is not None:
        cert = x509.load_der_x509_certificate(der)
        try:
            dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
            for dp in dps:
                if dp.full_name:
                    return list(dp.full_name)
        except x509.ExtensionNotFound:
            pass
    from jlis.jpki.ca import partition_names

    try:
        return partition_names(base_url, gen.ca_kind, gen.generation, lg_code)
    except Exception:  # not a municipality of the masters
        raise NotFound("CRL partition", f"{gen.ca_kind} g{gen.generation}/{lg_code}") from None
