"""The OCSP responder of JPKI (RFC 6960), with no HTTP in sight: bytes of a request in, bytes of a
response out. ``jlis.jpki.api`` is the HTTP adapter.

Who signs: each CA generation delegates to a responder certificate of its own (RFC 6960 §4.2.2.2:
issued by that generation's key, extendedKeyUsage id-kp-OCSPSigning, id-pkix-ocsp-nocheck, short
lived and renewed automatically), kept in ``jpki_ocsp_responders`` with its key in the CA key store.
The responder certificate travels in every response, so a client needs only the CA's root.

Answers:

- ``good`` / ``revoked`` (time and reason; a held certificate is revoked with certificateHold) /
  ``unknown`` (a serial the generation never issued);
- ``unauthorized`` (RFC 6960 §2.3) for an issuer that is not one of this CA kind's generations;
- ``malformedRequest`` for anything that does not parse, is too large, carries an oversized nonce
  or more than :data:`MAX_CERT_IDS` certificates; ``internalError`` if an answer cannot be made,
  ``tryLater`` if the status-query log cannot be written. Never an exception.

Speed. Without a nonce the answer is *pre-signed*: the signed response of each (hash algorithm,
generation, serial) is kept in memory, signed on issuance (:func:`jlis.jpki.revocation.notify_issued`)
or on the first query, and re-signed when its status changes or it is older than
:data:`REFRESH_AFTER`. The hot path is a parse of the request and a dict look-up. A request with a
nonce is signed live (the nonce must be echoed under the signature).

Freshness. A status change committed in this process drops the cached answer before the
committing call returns (the listener of jlis.jpki.revocation), and a background thread re-signs it.
A change committed by another process is seen through the revocation change feed, polled every
``poll_interval`` seconds (0.5 s by default): that is the only window in which a cached answer can
lag a revocation, and only in a process other than the one that revoked.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote

from asn1crypto import keys as akeys
from asn1crypto import ocsp as aocsp
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp as cocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, OCSPExtensionOID
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import Clock
from jlis.db import read_only, transaction
from jlis.jpki.crl import SignerFor, der_extension, der_integer, oid_body, signature_algorithm, tlv
from jlis.jpki.keystore import CaSigner, KeyStore
from jlis.jpki.profile import CA_UNIT, ORGANISATION, Algorithm
from jlis.jpki.revocation import (
    REASON_CODES,
    Action,
    IssuedCertificate,
    Reason,
    StatusChange,
    changes_since,
    feed_head,
    subscribe,
    unsubscribe,
)
from jlis.jpki.tables import GOOD, HOLD, REVOKED, CaGenerationRow, CertificateRow, OcspResponderRow

log = logging.getLogger(__name__)
UTC = dt.UTC

MAX_REQUEST_BYTES = 10 * 1024  # an OCSP request for a few certificates is a few hundred bytes
MAX_CERT_IDS = 20
MAX_NONCE_BYTES = 32  # RFC 8954 §2.1
RESPONSE_VALIDITY = dt.timedelta(days=1)  # nextUpdate - thisUpdate, as the daily CRL
REFRESH_AFTER = dt.timedelta(hours=1)  # a cached answer older than this is signed again
RESPONDER_LIFETIME = dt.timedelta(days=90)  # id-pkix-ocsp-nocheck: keep the certificate short-lived
RESPONDER_RENEW_BEFORE = dt.timedelta(days=30)
DEFAULT_CACHE_LIMIT = 500_000  # signed answers kept in memory (~2 kB each with the responder cert)
ISSUER_RELOAD_INTERVAL = 5.0  # seconds between reloads of the generations on an unknown issuer


class ResponseStatus:
    """OCSPResponseStatus (RFC 6960 §4.2.1)."""

    SUCCESSFUL = 0
    MALFORMED_REQUEST = 1
    INTERNAL_ERROR = 2
    TRY_LATER = 3
    SIG_REQUIRED = 5
    UNAUTHORIZED = 6

    NAMES: ClassVar[dict[int, str]] = {
        0: "successful",
        1: "malformedRequest",
        2: "internalError",
        3: "tryLater",
        5: "sigRequired",
        6: "unauthorized",
    }


def error_response(status: int) -> bytes:
    """An unsigned OCSPResponse with only a status (no responseBytes)."""
    return tlv(0x30, tlv(0x0A, bytes((status,))))


MALFORMED = error_response(ResponseStatus.MALFORMED_REQUEST)
INTERNAL_ERROR = error_response(ResponseStatus.INTERNAL_ERROR)
TRY_LATER = error_response(ResponseStatus.TRY_LATER)
UNAUTHORIZED = error_response(ResponseStatus.UNAUTHORIZED)

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# AlgorithmIdentifier of each hash as it appears in a CertID (parameters NULL, as openssl sends).
_HASH_OIDS = {
    "sha1": "1.3.14.3.2.26",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}
_BASIC = bytes.fromhex("06092b0601050507300101")  # OID id-pkix-ocsp-basic


def _oid_der(dotted: str) -> bytes:
    return tlv(0x06, oid_body(dotted))


def _read_tlv(der: bytes, at: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``at``; ValueError past ``end``."""
    if at + 2 > end:
        raise ValueError("truncated")
    tag, first = der[at], der[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 3 or at + n > end:
            raise ValueError("bad length")
        length = int.from_bytes(der[at : at + n], "big")
        if length < 0x80 or der[at] == 0:  # DER: the shortest length form only
            raise ValueError("non-minimal length")
        at += n
    if at + length > end:
        raise ValueError("truncated")
    return tag, at, at + length


_OID_HASH_NAMES = {_oid_der(oid): name for name, oid in _HASH_OIDS.items()}


def simple_cert_id(der: bytes) -> tuple[str, bytes, bytes, int] | None:
    """(hash name, issuerNameHash, issuerKeyHash, serial) of a request for one certificate with no
    extension and no signature (what RFC 5019 clients send), read straight from the DER; None for
    anything else, which then takes the full parser. The hot path of the responder: cryptography's
    OCSPRequest re-parses the whole request for each property it is asked."""
    try:
        end = len(der)
        tag, at, outer_end = _read_tlv(der, 0, end)
        if tag != 0x30 or outer_end != end:
            return None
        tag, at, tbs_end = _read_tlv(der, at, outer_end)
        if tag != 0x30 or tbs_end != outer_end:  # no optionalSignature
            return None
        tag, start, stop = _read_tlv(der, at, tbs_end)
        if tag == 0xA0:  # version: only v1 (0) exists
            at = stop
            tag, start, stop = _read_tlv(der, at, tbs_end)
        if tag != 0x30 or stop != tbs_end:  # requestList, with no requestorName or requestExtensions
            return None
        tag, at, req_end = _read_tlv(der, start, stop)
        if tag != 0x30 or req_end != stop:  # exactly one Request
            return None
        tag, at, cid_end = _read_tlv(der, at, req_end)
        if tag != 0x30 or cid_end != req_end:  # a CertID and no singleRequestExtensions
            return None
        tag, alg_start, alg_end = _read_tlv(der, at, cid_end)
        if tag != 0x30:
            return None
        tag, _, oid_end = _read_tlv(der, alg_start, alg_end)
        name = _OID_HASH_NAMES.get(der[alg_start:oid_end]) if tag == 0x06 else None
        if name is None or der[oid_end:alg_end] not in (b"", b"\x05\x00"):
            return None
        tag, nh_start, nh_end = _read_tlv(der, alg_end, cid_end)
        if tag != 0x04:
            return None
        tag, kh_start, kh_end = _read_tlv(der, nh_end, cid_end)
        if tag != 0x04:
            return None
        tag, sn_start, sn_end = _read_tlv(der, kh_end, cid_end)
        if tag != 0x02 or sn_end != cid_end or sn_start == sn_end:
            return None
        if sn_end - sn_start > 1 and (der[sn_start], der[sn_start + 1] >> 7) in ((0, 0), (0xFF, 1)):
            return None  # DER: the shortest two's-complement form only
        serial = int.from_bytes(der[sn_start:sn_end], "big", signed=True)
        return name, der[nh_start:nh_end], der[kh_start:kh_end], serial
    except ValueError:
        return None


_HASH_ALG_DER = {name: tlv(0x30, _oid_der(oid) + b"\x05\x00") for name, oid in _HASH_OIDS.items()}


def gtime(at: dt.datetime) -> bytes:
    """GeneralizedTime, whole seconds, UTC (RFC 6960 uses GeneralizedTime throughout)."""
    return tlv(0x18, at.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode())


# ------------------------------------------------------------------------------------- requests


class MalformedRequest(ValueError):
    pass


@dataclass(frozen=True)
class CertQuery:
    hash_name: str  # sha1 / sha256 / sha384 / sha512, or the dotted OID of an unsupported one
    name_hash: bytes
    key_hash: bytes
    serial: int

    def cert_id_der(self) -> bytes:
        alg = _HASH_ALG_DER.get(self.hash_name)
        if alg is None:  # pragma: no cover - only supported hashes reach a signed answer
            raise ValueError(self.hash_name)
        return tlv(
            0x30, alg + tlv(0x04, self.name_hash) + tlv(0x04, self.key_hash) + der_integer(self.serial)
        )


@dataclass(frozen=True)
class ParsedRequest:
    queries: tuple[CertQuery, ...]
    nonce: bytes | None  # the nonce value (inside the extension's OCTET STRING)


def parse_request(der: bytes) -> ParsedRequest:
    """The certificates asked about and the nonce. Raises :class:`MalformedRequest`."""
    if not der or len(der) > MAX_REQUEST_BYTES:
        raise MalformedRequest("empty or too large")
    try:
        req = cocsp.load_der_ocsp_request(der)
    except NotImplementedError:  # cryptography parses one certificate per request only
        return _parse_many(der)
    except ValueError as exc:
        raise MalformedRequest(str(exc)) from None
    try:
        try:
            hash_name = req.hash_algorithm.name
        except UnsupportedAlgorithm:
            hash_name = "unsupported"
        query = CertQuery(hash_name, req.issuer_name_hash, req.issuer_key_hash, req.serial_number)
        nonce = None
        for ext in req.extensions:
            if ext.oid == OCSPExtensionOID.NONCE:
                nonce = ext.value.nonce
    except (ValueError, TypeError) as exc:
        raise MalformedRequest(str(exc)) from None
    _check_nonce(nonce)
    _check_serials((query,))
    return ParsedRequest((query,), nonce)


def _parse_many(der: bytes) -> ParsedRequest:
    try:
        req = aocsp.OCSPRequest.load(der, strict=True)
        tbs = req["tbs_request"]
        items = list(tbs["request_list"])
        if not items or len(items) > MAX_CERT_IDS:
            raise MalformedRequest("too many certificates in one request")
        queries = []
        for item in items:
            cid = item["req_cert"]
            name = cid["hash_algorithm"]["algorithm"].native
            queries.append(
                CertQuery(
                    name if name in _HASHES else "unsupported",
                    cid["issuer_name_hash"].native,
                    cid["issuer_key_hash"].native,
                    cid["serial_number"].native,
                )
            )
        nonce = None
        for ext in tbs["request_extensions"] or []:
            if ext["extn_id"].dotted == OCSPExtensionOID.NONCE.dotted_string:
                nonce = ext["extn_value"].parsed.native
        _check_nonce(nonce)
        _check_serials(tuple(queries))
        return ParsedRequest(tuple(queries), nonce)
    except MalformedRequest:
        raise
    except Exception as exc:  # asn1crypto raises many kinds on garbage
        raise MalformedRequest(str(exc)) from None


def _check_serials(queries: tuple[CertQuery, ...]) -> None:
    # RFC 5280 §4.1.2.2: a serial is a positive integer of at most 20 octets (we accept a little
    # more, for certificates of other CAs that got it wrong, and answer them as not ours).
    if any(q.serial <= 0 or q.serial.bit_length() > 256 for q in queries):
        raise MalformedRequest("a serial number must be a positive integer")


def _check_nonce(nonce: bytes | None) -> None:
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_BYTES:
        raise MalformedRequest(f"a nonce must be 1 to {MAX_NONCE_BYTES} octets")


def decode_get_path(encoded: str) -> bytes:
    """The DER of a GET request: URL-decoded base64 (standard or URL-safe, padding optional)."""
    text = unquote(encoded).strip().strip("/")
    if not text or len(text) > MAX_REQUEST_BYTES * 2:
        raise MalformedRequest("empty or too large")
    text = text.replace("-", "+").replace("_", "/").replace(" ", "+")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise MalformedRequest("not base64") from None


# ------------------------------------------------------------------------------------- statuses


@dataclass(frozen=True)
class CertStatus:
    status: str  # GOOD, HOLD, REVOKED or "unknown"
    revoked_at: dt.datetime | None = None
    reason: str | None = None

    @property
    def result(self) -> str:
        """As the status-query log records it."""
        if self.status in (REVOKED, HOLD):
            return f"revoked:{self.reason or Reason.UNSPECIFIED.value}"[:32]
        return "good" if self.status == GOOD else "unknown"


UNKNOWN = CertStatus("unknown")
_REASON_VALUES = frozenset(r.value for r in Reason)


def _status_der(st: CertStatus) -> bytes:
    if st.status == GOOD:
        return b"\x80\x00"
    if st.status in (REVOKED, HOLD) and st.revoked_at is not None:
        body = gtime(st.revoked_at)
        code = REASON_CODES.get(Reason(st.reason)) if st.reason in _REASON_VALUES else None
        if code:  # unspecified (0) is left out, as on the CRL
            body += tlv(0xA0, tlv(0x0A, bytes((code,))))
        return tlv(0xA1, body)
    return b"\x82\x00"


# ------------------------------------------------------------------------------------- responders


@dataclass
class Issuer:
    """One CA generation as the responder knows it."""

    generation_id: int
    ca_kind: str
    generation: int
    algorithm: str
    certificate: x509.Certificate
    # (hash name) → (name hash, key hash) of this generation's certificate
    hashes: dict[str, tuple[bytes, bytes]]
    # On the ARL: the responder no longer speaks for it (the verifier's ARL check refuses the
    # whole generation), so its certificates get ``unauthorized``.
    revoked: bool = False


@dataclass
class Delegate:
    """The responder certificate of one generation and the signer of its key."""

    row_id: int
    certificate_der: bytes
    not_after: dt.datetime
    key_hash: bytes  # SHA-1 of the responder's public key (ResponderID byKey)
    signer: CaSigner


def _issuer_hashes(cert: x509.Certificate) -> dict[str, tuple[bytes, bytes]]:
    name = cert.subject.public_bytes()
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    key_bits = _subject_public_key_bits(spki)
    return {h: (hashlib.new(h, name).digest(), hashlib.new(h, key_bits).digest()) for h in _HASHES}


def _subject_public_key_bits(spki: bytes) -> bytes:
    """The BIT STRING contents (without the unused-bits octet) of a SubjectPublicKeyInfo."""
    return bytes(akeys.PublicKeyInfo.load(spki)["public_key"].contents[1:])


def responder_name(ca_kind: str, generation: int) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, CA_UNIT[ca_kind]),
            x509.NameAttribute(NameOID.COMMON_NAME, f"OCSP Responder G{generation}"),
        ]
    )


def issue_responder(
    session: Session,
    clock: Clock,
    keystore: KeyStore,
    generation: CaGenerationRow,
    ca_signer: CaSigner,
    *,
    lifetime: dt.timedelta = RESPONDER_LIFETIME,
) -> OcspResponderRow:
    """A new delegated responder certificate for ``generation`` (in the caller's transaction)."""
    now = clock.now().astimezone(UTC).replace(microsecond=0)
    ca_cert = x509.load_der_x509_certificate(generation.certificate_der)
    alg = Algorithm(generation.algorithm)
    label = (
        f"jpki-ocsp-{generation.ca_kind}-g{generation.generation}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
    )
    key_ref = keystore.create(alg, label)
    public = keystore.signer(key_ref).public_key()
    not_after = min(now + lifetime, generation.not_after.astimezone(UTC))
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(responder_name(generation.ca_kind, generation.generation))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    cert = ca_signer.sign_certificate(builder)
    row = OcspResponderRow(
        ca_generation_id=generation.id,
        certificate_der=cert.public_bytes(Encoding.DER),
        key_ref=key_ref,
        not_before=now,
        not_after=not_after,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def ensure_responders(
    session: Session,
    clock: Clock,
    keystore: KeyStore,
    signer_for: SignerFor,
    *,
    renew_before: dt.timedelta = RESPONDER_RENEW_BEFORE,
) -> list[OcspResponderRow]:
    """A current responder certificate for every generation still in service: one is issued where
    there is none or the newest ends within ``renew_before``. Returns the rows in use."""
    now = clock.now()
    out = []
    gens = session.scalars(
        select(CaGenerationRow).where(CaGenerationRow.revoked_at.is_(None)).order_by(CaGenerationRow.id)
    ).all()
    for gen in gens:
        if gen.not_after <= now:
            continue
        row = session.scalars(
            select(OcspResponderRow)
            .where(OcspResponderRow.ca_generation_id == gen.id)
            .order_by(OcspResponderRow.not_after.desc())
            .limit(1)
        ).first()
        if row is None or (row.not_after - now < renew_before and row.not_after < gen.not_after):
            row = issue_responder(session, clock, keystore, gen, signer_for(gen))
        out.append(row)
    return out


# ------------------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Answer:
    """What the HTTP adapter sends (``der``) and what the status-query log records."""

    der: bytes
    status: int  # ResponseStatus
    ca_kind: str | None = None
    serials: tuple[str, ...] = ()
    results: tuple[str, ...] = ()

    @property
    def result(self) -> str:
        if self.status != ResponseStatus.SUCCESSFUL:
            return ResponseStatus.NAMES.get(self.status, "error")
        return ",".join(self.results)[:32]

    @property
    def serial(self) -> str | None:
        return self.serials[0] if self.serials else None


class OcspResponder:
    """The responder of one database, for this process (thread-safe). Call :meth:`start` to begin
    polling the change feed and re-signing in the background, :meth:`stop` at the end."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        clock: Clock,
        keystore: KeyStore,
        signer_for: SignerFor,
        *,
        cache_limit: int = DEFAULT_CACHE_LIMIT,
        poll_interval: float = 0.5,
        refresh_after: dt.timedelta = REFRESH_AFTER,
        validity: dt.timedelta = RESPONSE_VALIDITY,
    ) -> None:
        self.factory = factory
        self.engine: Engine = factory.kw["bind"]
        self.clock = clock
        self.keystore = keystore
        self.signer_for = signer_for
        self.cache_limit = cache_limit
        self.poll_interval = poll_interval
        self.refresh_after = refresh_after
        self.validity = validity
        self._issuers: dict[tuple[str, bytes, bytes], Issuer] = {}
        self._by_generation: dict[int, Issuer] = {}
        self._delegates: dict[int, Delegate] = {}
        self._statuses: dict[tuple[int, int], CertStatus] = {}
        # (hash name, generation id, serial) → (signed response, this_update)
        self._answers: dict[tuple[str, int, int], tuple[bytes, dt.datetime]] = {}
        self._resign: deque[tuple[str, int, int]] = deque()
        self._lock = threading.RLock()
        self._seen_seq = 0
        self._issuers_loaded_at = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = {"hits": 0, "signed": 0, "misses": 0}
        self.load()
        subscribe(self)

    # -- life --------------------------------------------------------------------------------------

    def load(self) -> None:
        """(Re)load the generations and their responder certificates (issuing those missing)."""
        with transaction(self.factory) as s:
            rows = ensure_responders(s, self.clock, self.keystore, self.signer_for)
            gens = {g.id: g for g in s.scalars(select(CaGenerationRow)).all()}
            head = feed_head(s)
        issuers: dict[tuple[str, bytes, bytes], Issuer] = {}
        by_gen: dict[int, Issuer] = {}
        for gen in gens.values():
            cert = x509.load_der_x509_certificate(gen.certificate_der)
            issuer = Issuer(
                gen.id,
                gen.ca_kind,
                gen.generation,
                gen.algorithm,
                cert,
                _issuer_hashes(cert),
                revoked=gen.revoked_at is not None,
            )
            by_gen[gen.id] = issuer
            for h, (nh, kh) in issuer.hashes.items():
                issuers[(h, nh, kh)] = issuer
        delegates = {}
        for row in rows:
            signer = self.keystore.signer(row.key_ref)
            key_hash = x509.SubjectKeyIdentifier.from_public_key(signer.public_key()).digest
            delegates[row.ca_generation_id] = Delegate(
                row.id, row.certificate_der, row.not_after, key_hash, signer
            )
        with self._lock:
            changed = {g for g, d in delegates.items() if self._delegates.get(g, d).row_id != d.row_id}
            changed |= {g for g, i in by_gen.items() if i.revoked}
            self._issuers, self._by_generation, self._delegates = issuers, by_gen, delegates
            if changed:  # answers signed by a replaced responder are dropped, not served
                for key in [k for k in self._answers if k[1] in changed]:
                    self._answers.pop(key, None)
            if not self._seen_seq:
                self._seen_seq = head
            self._issuers_loaded_at = time.monotonic()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="jpki-ocsp", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        unsubscribe(self)

    def _run(self) -> None:
        last_load = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sync()
                self._drain_resign()
                if time.monotonic() - last_load > 3600:  # renew responder certificates in time
                    self.load()
                    last_load = time.monotonic()
            except Exception:
                log.exception("OCSP background round failed; retrying")
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    # -- change notifications ----------------------------------------------------------------------

    def status_changed(self, engine: Engine, changes: Sequence[StatusChange]) -> None:
        """In-process listener: called right after a revocation commits."""
        if engine is not self.engine:
            return
        self._apply(changes)

    def issued(self, engine: Engine, certificates: Sequence[IssuedCertificate]) -> None:
        if engine is not self.engine:
            return
        with self._lock:
            for c in certificates:
                key = (c.ca_generation_id, int(c.serial, 16))
                self._statuses[key] = CertStatus(c.status, c.revoked_at, c.revocation_reason)
                self._resign.append(("sha1", *key))
        self._wake.set()

    def sync(self) -> int:
        """Apply the changes other processes committed since the last poll; returns how many."""
        with self.factory() as s:
            read_only(s)
            head = feed_head(s)
            if head <= self._seen_seq:
                return 0
            changes = changes_since(s, self._seen_seq)
        self._apply(changes)
        return len(changes)

    def _apply(self, changes: Sequence[StatusChange]) -> None:
        reload = False
        with self._lock:
            for c in changes:
                if c.action is Action.REVOKE_CA:
                    reload = True
                    continue
                key = (c.ca_generation_id, int(c.serial, 16))
                new = CertStatus(c.status, c.revoked_at, c.reason)
                old = self._statuses.get(key)
                self._statuses[key] = new
                if old == new:
                    continue
                for h in _HASHES:
                    if self._answers.pop((h, *key), None) is not None:
                        self._resign.append((h, *key))
            if changes:
                self._seen_seq = max(self._seen_seq, max(c.seq for c in changes))
        if reload:
            self.load()
        self._wake.set()

    def _drain_resign(self) -> None:
        while self._resign and not self._stop.is_set():
            h, gen_id, serial = self._resign.popleft()
            issuer = self._by_generation.get(gen_id)
            if issuer is None or (h, gen_id, serial) in self._answers:
                continue
            nh, kh = issuer.hashes[h]
            try:
                self._presigned(issuer, CertQuery(h, nh, kh, serial))
            except Exception:
                log.exception("re-signing an OCSP answer failed")

    def prewarm(
        self, ca_kind: str | None = None, *, hash_name: str = "sha1", limit: int | None = None
    ) -> int:
        """Load every certificate's status and sign its answer now (e.g. before a benchmark or at
        start-up of a busy responder). Returns the number of answers signed."""
        c = CertificateRow
        stmt = select(c.ca_generation_id, c.serial, c.status, c.revoked_at, c.revocation_reason)
        if ca_kind is not None:
            stmt = stmt.where(c.ca_kind == ca_kind)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.factory() as s:
            read_only(s)
            rows = s.execute(stmt).all()
        n = 0
        for gen_id, serial, status, at, reason in rows:
            issuer = self._by_generation.get(gen_id)
            if issuer is None:
                continue
            key = (gen_id, int(serial, 16))
            self._statuses[key] = CertStatus(status, at, reason)
            nh, kh = issuer.hashes[hash_name]
            self._presigned(issuer, CertQuery(hash_name, nh, kh, key[1]))
            n += 1
        return n

    # -- answering ---------------------------------------------------------------------------------

    def cached(self, ca_kind: str, der: bytes) -> Answer | None:
        """The hot path: a pre-signed, fresh answer from memory, or None when the request needs more
        (a nonce, a miss, a database read, an error answer): then call :meth:`answer`."""
        if len(der) > MAX_REQUEST_BYTES:
            return None
        cert_id = simple_cert_id(der)
        if cert_id is None:
            return None
        h, name_hash, key_hash, serial = cert_id
        issuer = self._issuers.get((h, name_hash, key_hash))
        if issuer is None or issuer.ca_kind != ca_kind or issuer.revoked or serial <= 0:
            return None
        hit = self._answers.get((h, issuer.generation_id, serial))
        if hit is None or self.clock.now() - hit[1] >= self.refresh_after:
            return None
        st = self._statuses.get((issuer.generation_id, serial))
        if st is None:
            return None
        self.stats["hits"] += 1
        return Answer(hit[0], ResponseStatus.SUCCESSFUL, ca_kind, (format(serial, "x"),), (st.result,))

    def answer(self, ca_kind: str, der: bytes) -> Answer:
        """Any request, any outcome: never raises."""
        try:
            parsed = parse_request(der)
        except MalformedRequest:
            return Answer(MALFORMED, ResponseStatus.MALFORMED_REQUEST, ca_kind)
        try:
            return self._answer(ca_kind, parsed)
        except Exception:
            log.exception("OCSP answer failed")
            return Answer(INTERNAL_ERROR, ResponseStatus.INTERNAL_ERROR, ca_kind)

    def _answer(self, ca_kind: str, parsed: ParsedRequest) -> Answer:
        issuers = [self._issuer_for(q) for q in parsed.queries]
        if any(i is None or i.ca_kind != ca_kind or i.revoked for i in issuers):
            return Answer(UNAUTHORIZED, ResponseStatus.UNAUTHORIZED, ca_kind, _serials(parsed))
        gens = {i.generation_id for i in issuers if i is not None}
        if len(gens) != 1:  # each generation has its own responder: one cannot sign for two
            return Answer(UNAUTHORIZED, ResponseStatus.UNAUTHORIZED, ca_kind, _serials(parsed))
        issuer = issuers[0]
        assert issuer is not None
        if parsed.nonce is None and len(parsed.queries) == 1:
            der, st = self._presigned(issuer, parsed.queries[0])
            return Answer(der, ResponseStatus.SUCCESSFUL, ca_kind, _serials(parsed), (st.result,))
        statuses = [self._status(issuer, q.serial) for q in parsed.queries]
        self.stats["signed"] += 1
        der = self._sign(issuer, list(zip(parsed.queries, statuses, strict=True)), parsed.nonce)
        return Answer(
            der, ResponseStatus.SUCCESSFUL, ca_kind, _serials(parsed), tuple(s.result for s in statuses)
        )

    def _issuer_for(self, q: CertQuery) -> Issuer | None:
        if q.hash_name not in _HASHES:
            return None
        issuer = self._issuers.get((q.hash_name, q.name_hash, q.key_hash))
        if issuer is None and time.monotonic() - self._issuers_loaded_at > ISSUER_RELOAD_INTERVAL:
            self.load()  # a generation made by another process since we loaded (rate-limited)
            issuer = self._issuers.get((q.hash_name, q.name_hash, q.key_hash))
        return issuer

    def _status(self, issuer: Issuer, serial: int) -> CertStatus:
        key = (issuer.generation_id, serial)
        st = self._statuses.get(key)
        if st is not None:
            return st
        self.stats["misses"] += 1
        with self.factory() as s:
            read_only(s)
            row = s.execute(
                select(
                    CertificateRow.status, CertificateRow.revoked_at, CertificateRow.revocation_reason
                ).where(
                    CertificateRow.ca_generation_id == issuer.generation_id,
                    CertificateRow.serial == format(serial, "x"),
                )
            ).first()
        if row is None:
            return UNKNOWN  # not cached: a certificate issued a moment later must not read unknown
        st = CertStatus(*row)
        with self._lock:
            self._statuses.setdefault(key, st)
        return st

    def _presigned(self, issuer: Issuer, q: CertQuery) -> tuple[bytes, CertStatus]:
        key = (q.hash_name, issuer.generation_id, q.serial)
        st = self._status(issuer, q.serial)
        hit = self._answers.get(key)
        if hit is not None and self.clock.now() - hit[1] < self.refresh_after:
            return hit[0], st
        now = self.clock.now()
        der = self._sign(issuer, [(q, st)], None, now=now)
        if st.status == "unknown":
            return der, st
        with self._lock:
            # A change applied while we signed wins: keep our answer only if the status is the same.
            if self._statuses.get((issuer.generation_id, q.serial)) == st:
                if len(self._answers) >= self.cache_limit:
                    self._answers.pop(next(iter(self._answers)), None)
                self._answers[key] = (der, now)
        self.stats["signed"] += 1
        return der, st

    def _sign(
        self,
        issuer: Issuer,
        items: list[tuple[CertQuery, CertStatus]],
        nonce: bytes | None,
        *,
        now: dt.datetime | None = None,
    ) -> bytes:
        delegate = self._delegates.get(issuer.generation_id)
        if delegate is None:
            raise LookupError(f"no responder for generation {issuer.generation_id}")
        at = (now or self.clock.now()).astimezone(UTC).replace(microsecond=0)
        singles = b"".join(
            tlv(0x30, q.cert_id_der() + _status_der(st) + gtime(at) + tlv(0xA0, gtime(at + self.validity)))
            for q, st in items
        )
        data = tlv(0xA2, tlv(0x04, delegate.key_hash)) + gtime(at) + tlv(0x30, singles)
        if nonce is not None:
            ext = der_extension(OCSPExtensionOID.NONCE, tlv(0x04, nonce))
            data += tlv(0xA1, tlv(0x30, ext))
        tbs = tlv(0x30, data)
        basic = tlv(
            0x30,
            tbs
            + signature_algorithm(delegate.signer)
            + tlv(0x03, b"\x00" + delegate.signer.sign_bytes(tbs))
            + tlv(0xA0, tlv(0x30, delegate.certificate_der)),
        )
        response_bytes = tlv(0x30, _BASIC + tlv(0x04, basic))
        return tlv(0x30, b"\x0a\x01\x00" + tlv(0xA0, response_bytes))

    # -- for the pages -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "answers": len(self._answers),
            "statuses": len(self._statuses),
            "seen_seq": self._seen_seq,
            "responders": {
                gid: {"not_after": d.not_after, "generation": self._by_generation[gid].generation}
                for gid, d in self._delegates.items()
                if gid in self._by_generation
            },
            **self.stats,
        }


def _serials(parsed: ParsedRequest) -> tuple[str, ...]:
    return tuple(format(q.serial, "x") for q in parsed.queries)
