"""The two certification authorities of JPKI (署名用 and 利用者証明用), with their generations, and the
issuance of end-entity certificates shaped like the real ones (facts §3.1–3.3).

Each CA is a single-tier hierarchy of self-signed roots. A rollover makes a new generation: the same DN,
a new key, a new root certificate. Every certificate carries an authorityKeyIdentifier equal to the
subjectKeyIdentifier of the generation that signed it, so a verifier picks the right root by DN and
then by key identifier.

The CA works in the caller's session and never commits: issuing a certificate is one step of a larger
transaction (a card delivery), which commits or rolls back as a whole.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.clock import Clock
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.jpki import holder as holder_mod
from jlis.jpki.holder import HolderInfo
from jlis.jpki.keystore import CaSigner, KeyStore
from jlis.jpki.profile import (
    CA_YEARS,
    CURRENT,
    ORGANISATION,
    Algorithm,
    CardProfile,
    algorithm_of,
    ca_name,
    checked_public_key,
    crl_partition_name,
    issuer_alt_name,
)
from jlis.jpki.tables import AUTH, CARD, GOOD, PHONE, SIGN, CaGenerationRow, CertificateRow
from jlis.jpki.urls import ca_cert_url, crl_url, ocsp_url
from jlis.jpki.validity import add_months, certificate_not_after

CA_KINDS = (SIGN, AUTH)
SERIAL_BITS = 128  # 16 octets of randomness (RFC 5280 allows up to 20 octets)
AUTH_CN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
AUTH_CN_LENGTH = 23  # like the test card's "997794E9AGCIEG13221003A" (facts §3.2)


def check_ca_kind(ca_kind: str) -> str:
    if ca_kind not in CA_KINDS:
        raise InvalidInput("ca_kind", "must be sign or auth")
    return ca_kind


def random_serial(rng: random.Random) -> int:
    """A positive serial of 16 random octets (never 0)."""
    while True:
        serial = rng.getrandbits(SERIAL_BITS)
        if serial:
            return serial


def serial_hex(serial: int) -> str:
    """How serials are stored (``CertificateRow.serial``): lower-case hex, no leading zeros."""
    return format(serial, "x")


def load_certificate(row: CertificateRow | CaGenerationRow) -> x509.Certificate:
    der = row.certificate_der if isinstance(row, CaGenerationRow) else row.der
    return x509.load_der_x509_certificate(der)


def partition_names(base_url: str, ca_kind: str, generation: int, lg_code: str) -> list[x509.GeneralName]:
    """The fullName of one municipality's CRL distribution point: the directoryName of facts §3.2 and
    the HTTP URL of that partition. A partition CRL's issuingDistributionPoint must carry the same
    names (RFC 5280 §6.3.3 (b)(2)(i): openssl's -crl_check matches them)."""
    place = holder_mod.locality(lg_code)
    return [
        x509.DirectoryName(crl_partition_name(ca_kind, place.prefecture, place.municipality)),
        x509.UniformResourceIdentifier(crl_url(base_url, ca_kind, generation, lg_code)),
    ]


def crl_distribution_points(
    base_url: str, ca_kind: str, generation: int, lg_code: str
) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=partition_names(base_url, ca_kind, generation, lg_code),
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )


def authority_information_access(
    base_url: str, ca_kind: str, generation: int
) -> x509.AuthorityInformationAccess:
    return x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(ocsp_url(base_url, ca_kind)),
            ),
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(ca_cert_url(base_url, ca_kind, generation)),
            ),
        ]
    )


def key_usage(
    *, digital_signature: bool = False, non_repudiation: bool = False, ca: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def root_builder(
    name: x509.Name,
    public: CertificatePublicKeyTypes,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    """A self-signed root generation: CA, no subordinate CAs, certificate and CRL signing only.
    Generations share one DN: the AKI (= own SKI) lets path builders match a root by key, not by
    name alone. Used by the JPKI CAs and by the organisation CA of LGPKI (``jlis.lgwan``)."""
    ski = x509.SubjectKeyIdentifier.from_public_key(public)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )


class CertificationAuthority:
    """Both JPKI CAs over one database session.

    ``rng`` supplies serial numbers and subject ids (``random.SystemRandom`` unless injected). Signers
    and parsed CA certificates are cached per generation for the life of the object; the key store
    caches decrypted keys across objects.
    """

    def __init__(
        self,
        session: Session,
        clock: Clock,
        keystore: KeyStore,
        base_url: str,
        *,
        rng: random.Random | None = None,
        organisation: str = ORGANISATION,
    ) -> None:
        self.session = session
        self.clock = clock
        self.keystore = keystore
        self.base_url = base_url.rstrip("/")
        self.rng = rng if rng is not None else random.SystemRandom()
        self.organisation = organisation
        self._signers: dict[int, CaSigner] = {}
        self._certs: dict[int, x509.Certificate] = {}

    # -- generations ---------------------------------------------------------------------------------

    def generations(self, ca_kind: str) -> list[CaGenerationRow]:
        check_ca_kind(ca_kind)
        stmt = (
            select(CaGenerationRow)
            .where(CaGenerationRow.ca_kind == ca_kind)
            .order_by(CaGenerationRow.generation)
        )
        return list(self.session.scalars(stmt))

    def generation(self, ca_kind: str, n: int) -> CaGenerationRow:
        check_ca_kind(ca_kind)
        row = self.session.scalars(
            select(CaGenerationRow).where(CaGenerationRow.ca_kind == ca_kind, CaGenerationRow.generation == n)
        ).one_or_none()
        if row is None:
            raise NotFound("CA generation", f"{ca_kind} g{n}")
        return row

    def active(self, ca_kind: str, algorithm: Algorithm | None = None) -> CaGenerationRow:
        """The newest generation that issues certificates (of ``algorithm``, if given)."""
        check_ca_kind(ca_kind)
        stmt = select(CaGenerationRow).where(
            CaGenerationRow.ca_kind == ca_kind, CaGenerationRow.active.is_(True)
        )
        if algorithm is not None:
            stmt = stmt.where(CaGenerationRow.algorithm == algorithm.value)
        row = self.session.scalars(stmt.order_by(CaGenerationRow.generation.desc()).limit(1)).first()
        if row is None:
            what = ca_kind if algorithm is None else f"{ca_kind} {algorithm.value}"
            raise NotFound("active CA generation", what)
        return row

    def ensure(self, algorithm: Algorithm = Algorithm.RSA2048_SHA256) -> None:
        """Create generation 1 of each CA that has none yet. Idempotent; never replaces a generation."""
        for kind in CA_KINDS:
            exists = self.session.scalars(
                select(CaGenerationRow.id).where(CaGenerationRow.ca_kind == kind).limit(1)
            ).first()
            if exists is None:
                self._new_generation(kind, 1, algorithm)

    def rollover(
        self, ca_kind: str, algorithm: Algorithm | None = None, *, alongside: bool = False
    ) -> CaGenerationRow:
        """A new generation of ``ca_kind``: same DN, new key, new root. It becomes the active one.

        ``algorithm`` defaults to that of the newest active generation. With ``alongside`` the active
        generations of *other* algorithms keep issuing (e.g. a next-generation P-384 root introduced
        while RSA cards are still delivered); otherwise every earlier generation stops issuing. Old
        generations stay valid for the certificates they signed.
        """
        check_ca_kind(ca_kind)
        rows = self.generations(ca_kind)
        if algorithm is None:
            actives = [r for r in rows if r.active]
            algorithm = Algorithm(actives[-1].algorithm) if actives else Algorithm.RSA2048_SHA256
        for row in rows:
            if row.active and (not alongside or row.algorithm == algorithm.value):
                row.active = False
        return self._new_generation(ca_kind, (rows[-1].generation if rows else 0) + 1, algorithm)

    def _new_generation(self, ca_kind: str, n: int, algorithm: Algorithm) -> CaGenerationRow:
        now = self.clock.now().replace(microsecond=0)
        key_ref = self._create_key(ca_kind, n, algorithm, now)
        signer = self.keystore.signer(key_ref)
        public = signer.public_key()
        name = ca_name(ca_kind, self.organisation)
        not_after = dt.datetime.combine(add_months(now.date(), 12 * CA_YEARS), now.timetz())
        builder = root_builder(name, public, random_serial(self.rng), now, not_after)
        cert = signer.sign_certificate(builder)
        row = CaGenerationRow(
            ca_kind=ca_kind,
            generation=n,
            algorithm=algorithm.value,
            certificate_der=cert.public_bytes(Encoding.DER),
            key_ref=key_ref,
            not_before=now,
            not_after=not_after,
            active=True,
            created_at=now,
        )
        self.session.add(row)
        self.session.flush()
        self._signers[row.id] = signer
        self._certs[row.id] = cert
        return row

    def _create_key(self, ca_kind: str, n: int, algorithm: Algorithm, now: dt.datetime) -> str:
        # The label says what the key is; the suffix keeps a key store reused across databases (a
        # dev reset, a test run) from colliding with an old generation's key, which is never replaced.
        # It comes from the OS, not the injected rng: a seeded rng would replay the same labels.
        label = f"jpki-{ca_kind}-g{n}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
        return self.keystore.create(algorithm, label)

    def ca_certificate(self, row: CaGenerationRow) -> x509.Certificate:
        cert = self._certs.get(row.id)
        if cert is None:
            cert = self._certs[row.id] = load_certificate(row)
        return cert

    def signer_for(self, row: CaGenerationRow) -> CaSigner:
        """The signer of one generation; checks once that the key store's key is the certificate's
        (fails closed: a mixed-up key_ref would otherwise sign certificates nobody can verify)."""
        signer = self._signers.get(row.id)
        if signer is None:
            signer = self.keystore.signer(row.key_ref)
            if signer.public_key() != self.ca_certificate(row).public_key():
                raise RuleViolation("key_ref", f"key does not match CA {row.ca_kind} g{row.generation}")
            self._signers[row.id] = signer
        return signer

    def generation_for(self, cert: x509.Certificate) -> CaGenerationRow:
        """The generation that issued ``cert``: the kind by issuer DN, then the generation by
        authorityKeyIdentifier (facts §3.1), or by signature if the certificate carries no AKI.
        A lookup, not a validation: the caller still verifies the signature against the result."""
        kinds = [k for k in CA_KINDS if cert.issuer == ca_name(k, self.organisation)]
        if not kinds:
            raise NotFound("CA", cert.issuer.rfc4514_string())
        try:
            key_id = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        except x509.ExtensionNotFound:
            key_id = None
        for row in self.generations(kinds[0]):
            ca_cert = self.ca_certificate(row)
            if key_id is not None:
                ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
                if ski.digest == key_id:
                    return row
                continue
            try:
                cert.verify_directly_issued_by(ca_cert)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return row
        raise NotFound("CA generation", f"{kinds[0]} for {cert.issuer.rfc4514_string()}")

    def trust_anchors(self, ca_kind: str) -> list[x509.Certificate]:
        """Every generation's root of one kind (a trust store is per kind, never both)."""
        return [self.ca_certificate(r) for r in self.generations(ca_kind) if r.revoked_at is None]

    # -- issuance ------------------------------------------------------------------------------------

    def issue(
        self,
        ca_kind: str,
        public_key: PublicKeyTypes,
        holder: HolderInfo,
        *,
        card_id: str,
        holder_kind: str = CARD,
        card_expires_on: dt.date,
        profile: CardProfile = CURRENT,
    ) -> CertificateRow:
        """Issue a signing or authentication certificate for ``public_key`` and add its row (status
        GOOD) to the session. The caller commits; call ``session.flush()`` if you need ``row.id``."""
        check_ca_kind(ca_kind)
        if holder_kind not in (CARD, PHONE):
            raise InvalidInput("holder_kind", "must be card or phone")
        if not card_id or len(card_id) > 32:
            raise InvalidInput("card_id", "1–32 characters")
        subject_key = checked_public_key(public_key)
        if algorithm_of(subject_key) is not profile.algorithm:
            raise InvalidInput(
                "public_key", f"must be a {profile.algorithm.value} key for profile {profile.name}"
            )
        gen = self._issuing_generation(ca_kind, profile.algorithm)
        signer = self.signer_for(gen)
        now = self.clock.now().replace(microsecond=0)
        not_after = certificate_not_after(holder.birth_date, now.date(), card_expires_on, profile)
        if not_after > gen.not_after:
            raise RuleViolation(
                "ca_generation",
                f"{ca_kind} g{gen.generation} expires before the certificate would; roll it over",
            )
        place = holder_mod.locality(holder.lg_code)
        serial = random_serial(self.rng)
        if ca_kind == SIGN:
            cn = self._sign_cn(now, holder.lg_code)
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                    x509.NameAttribute(NameOID.LOCALITY_NAME, place.prefecture),
                    x509.NameAttribute(NameOID.LOCALITY_NAME, place.municipality),
                    x509.NameAttribute(NameOID.COMMON_NAME, cn),
                ]
            )
        else:
            cn = "".join(self.rng.choice(AUTH_CN_ALPHABET) for _ in range(AUTH_CN_LENGTH))
            subject = x509.Name(
                [x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
            )
        ca_cert = self.ca_certificate(gen)
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(subject_key)
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(not_after)
            .add_extension(key_usage(digital_signature=True, non_repudiation=ca_kind == SIGN), critical=True)
            .add_extension(
                x509.CertificatePolicies(
                    [x509.PolicyInformation(profile.policy(ca_kind, holder_kind), None)]
                ),
                critical=True,
            )
            .add_extension(issuer_alt_name(), critical=False)
            .add_extension(
                crl_distribution_points(self.base_url, ca_kind, gen.generation, holder.lg_code),
                critical=False,
            )
            .add_extension(
                authority_information_access(self.base_url, ca_kind, gen.generation), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
        )
        if ca_kind == SIGN:
            values = holder_mod.san_values(holder, jisx0212=profile.allow_jisx0212)
            builder = builder.add_extension(holder_mod.subject_alt_name(values), critical=False)
        cert = signer.sign_certificate(builder)
        row = CertificateRow(
            ca_kind=ca_kind,
            ca_generation_id=gen.id,
            serial=serial_hex(serial),
            holder=holder_kind,
            card_id=card_id,
            resident_code=holder.resident_code,
            lg_code=holder.lg_code,
            subject_cn=cn,
            not_before=now,
            not_after=not_after,
            issued_at=now,
            der=cert.public_bytes(Encoding.DER),
            status=GOOD,
        )
        self.session.add(row)
        return row

    def _issuing_generation(self, ca_kind: str, algorithm: Algorithm) -> CaGenerationRow:
        """The active generation of the card's algorithm, or else the newest active one (a P-384 card
        under an RSA root is a valid chain; a deployment that wants P-384 roots rolls over)."""
        try:
            return self.active(ca_kind, algorithm)
        except NotFound:
            return self.active(ca_kind)

    def _sign_cn(self, now: dt.datetime, lg_code: str) -> str:
        """Issuance timestamp (JST) + sequence + reception window (facts §3.2, [M]). J-LIS's sequence
        counter is internal to it; ours is 6 random digits, which keeps issuance free of a shared
        counter row. The window is the municipality's code."""
        return f"{now:%Y%m%d%H%M%S}{self.rng.randrange(1_000_000):06d}{lg_code}"
