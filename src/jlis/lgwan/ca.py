"""A minimal LGPKI organisation CA (組織認証局, facts §9.2): a self-signed root that issues 職責証明書
to municipalities, whose keys sign the municipality's official documents (the certificate PDFs of
コンビニ交付). A later issue completes LGPKI (application CA, bridge CA, 利用者証明書).

The profile (DNs, validity, key usage) is frozen data at the top of this module: the real LGPKI
profile (プロファイル設計書 v1.8) is not public in full, so our DNs are [L] and easy to change.

Keys live in a :class:`jlis.jpki.keystore.KeyStore` (``container.keystore``: encrypted PKCS#8 files or
a PKCS#11 token); the tables hold only ``key_ref``. The CA works in the caller's session and never
commits. Operations are recorded in the audit chain ``lgwan.ca``.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.clock import Clock
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.jpki.ca import key_usage, random_serial, root_builder
from jlis.jpki.keystore import CaSigner, KeyStore
from jlis.jpki.profile import Algorithm, algorithm_of
from jlis.jpki.validity import add_months
from jlis.lgwan.tables import GOOD, REVOKED, OrganisationCaRow, RoleCertificateRow

# --- Profile ([L]: our choice; see docs/lgwan.md) ---------------------------------------------------
ORGANISATION = "LGPKI"
CA_UNIT = "Organizational CA"
CA_COMMON_NAME = "jlis Organizational CA"
CA_YEARS = 10
ROLE_YEARS = 3  # a 職責証明書 is re-issued when the office-holder's term or the key ages
CA_LOG = AuditLog("lgwan.ca")
CRL_HOURS = 24
MAX_TITLE_LENGTH = 64
# RFC 5280 reasons an operator may give (x509.ReasonFlags values).
REVOCATION_REASONS = (
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
)


def ca_name(generation: int) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, CA_UNIT),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{CA_COMMON_NAME} G{generation}"),
        ]
    )


def role_name(lg_code: str, title: str) -> x509.Name:
    """Subject of a 職責証明書: the organisation (団体コード) and the office (職責名, UTF8String)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"LG{lg_code}"),
            x509.NameAttribute(NameOID.COMMON_NAME, title),
        ]
    )


def crl_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/lgwan/ca/crl"


def check_lg_code(lg_code: str) -> str:
    from jlis.masters.geography import is_valid_lg_code

    if not is_valid_lg_code(lg_code):
        raise InvalidInput("lg_code", "must be a valid 6-digit 地方公共団体コード")
    return lg_code


def check_title(title: str) -> str:
    title = (title or "").strip()
    if not title:
        raise InvalidInput("title", "must not be empty")
    if len(title) > MAX_TITLE_LENGTH:
        raise InvalidInput("title", f"at most {MAX_TITLE_LENGTH} characters")
    return title


@dataclass(frozen=True)
class RoleCertificate:
    """A 職責証明書 as the signing code needs it: the certificate, its key reference and its chain."""

    serial: str
    lg_code: str
    title: str
    key_ref: str
    certificate: x509.Certificate
    ca_certificate: x509.Certificate
    not_before: dt.datetime
    not_after: dt.datetime
    status: str
    revoked_at: dt.datetime | None = None


class OrganisationCA:
    """The organisation CA over one database session. ``rng`` supplies serial numbers."""

    def __init__(
        self,
        session: Session,
        clock: Clock,
        keystore: KeyStore,
        base_url: str,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.session = session
        self.clock = clock
        self.keystore = keystore
        self.base_url = base_url.rstrip("/")
        self.rng = rng if rng is not None else random.SystemRandom()

    # -- the CA itself ------------------------------------------------------------------------------

    def generations(self) -> list[OrganisationCaRow]:
        return list(self.session.scalars(select(OrganisationCaRow).order_by(OrganisationCaRow.generation)))

    def active(self) -> OrganisationCaRow:
        row = self.session.scalars(
            select(OrganisationCaRow)
            .where(OrganisationCaRow.active.is_(True))
            .order_by(OrganisationCaRow.generation.desc())
            .limit(1)
        ).first()
        if row is None:
            raise NotFound("organisation CA", "active generation (run `jlis lgwan ca init`)")
        return row

    def ensure(
        self, algorithm: Algorithm = Algorithm.RSA2048_SHA256, *, actor: str = "system"
    ) -> OrganisationCaRow:
        """Generation 1 if there is none yet; otherwise the active generation. Idempotent."""
        existing = self.session.scalars(select(OrganisationCaRow).limit(1)).first()
        if existing is not None:
            return self.active()
        return self._new_generation(1, algorithm, actor)

    def rollover(self, algorithm: Algorithm | None = None, *, actor: str) -> OrganisationCaRow:
        """A new root that issues from now on; the old ones stay trusted for what they signed."""
        rows = self.generations()
        if algorithm is None:
            algorithm = Algorithm(rows[-1].algorithm) if rows else Algorithm.RSA2048_SHA256
        for row in rows:
            row.active = False
        return self._new_generation((rows[-1].generation if rows else 0) + 1, algorithm, actor)

    def _new_generation(self, n: int, algorithm: Algorithm, actor: str) -> OrganisationCaRow:
        now = self.clock.now().replace(microsecond=0)
        label = f"lgpki-org-ca-g{n}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
        key_ref = self.keystore.create(algorithm, label)
        signer = self.keystore.signer(key_ref)
        public = signer.public_key()
        name = ca_name(n)
        not_after = dt.datetime.combine(add_months(now.date(), 12 * CA_YEARS), now.timetz())
        cert = signer.sign_certificate(root_builder(name, public, random_serial(self.rng), now, not_after))
        row = OrganisationCaRow(
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
        CA_LOG.append(
            self.session,
            at=now,
            actor=actor,
            action="ca.generation",
            subject=f"g{n}",
            details={"algorithm": algorithm.value, "not_after": not_after.isoformat()},
        )
        return row

    def ca_certificate(self, row: OrganisationCaRow | None = None) -> x509.Certificate:
        return x509.load_der_x509_certificate((row or self.active()).certificate_der)

    def trust_anchors(self) -> list[x509.Certificate]:
        """Every generation's root: what a verifier of municipal documents trusts."""
        return [x509.load_der_x509_certificate(r.certificate_der) for r in self.generations()]

    def _ca_signer(self, row: OrganisationCaRow) -> CaSigner:
        signer = self.keystore.signer(row.key_ref)
        # Fails closed: a key store key that is not the root's would sign unverifiable certificates.
        if signer.public_key() != self.ca_certificate(row).public_key():
            raise RuleViolation("key_ref", f"key does not match organisation CA g{row.generation}")
        return signer

    # -- 職責証明書 ------------------------------------------------------------------------------------

    def issue_role(
        self,
        lg_code: str,
        title: str,
        *,
        actor: str,
        algorithm: Algorithm = Algorithm.RSA2048_SHA256,
    ) -> RoleCertificate:
        """A new key for ``lg_code``'s office ``title`` in the key store and its certificate. An
        earlier certificate of the same municipality stays valid for the documents it signed."""
        check_lg_code(lg_code)
        title = check_title(title)
        gen = self.active()
        ca_signer = self._ca_signer(gen)
        ca_cert = self.ca_certificate(gen)
        now = self.clock.now().replace(microsecond=0)
        not_after = min(
            dt.datetime.combine(add_months(now.date(), 12 * ROLE_YEARS), now.timetz()), gen.not_after
        )
        label = f"lgpki-role-{lg_code}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
        key_ref = self.keystore.create(algorithm, label)
        public = self.keystore.signer(key_ref).public_key()
        serial = random_serial(self.rng)
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(role_name(lg_code, title))
            .issuer_name(ca_cert.subject)
            .public_key(public)
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                # nonRepudiation: a 職責 signature commits the office
                key_usage(digital_signature=True, non_repudiation=True),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
            )
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(crl_url(self.base_url))],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
        )
        cert = ca_signer.sign_certificate(builder)
        row = RoleCertificateRow(
            ca_generation_id=gen.id,
            serial=format(serial, "x"),
            lg_code=lg_code,
            title=title,
            key_ref=key_ref,
            der=cert.public_bytes(Encoding.DER),
            not_before=now,
            not_after=not_after,
            issued_at=now,
            status=GOOD,
        )
        self.session.add(row)
        self.session.flush()
        CA_LOG.append(
            self.session,
            at=now,
            actor=actor,
            action="role.issue",
            subject=row.serial,
            details={"lg_code": lg_code, "title": title, "not_after": not_after.isoformat()},
        )
        return self._view(row, ca_cert)

    def ensure_role(self, lg_code: str, title: str, *, actor: str) -> RoleCertificate:
        """The municipality's current 職責証明書, issuing one if it has none that is good and unexpired."""
        try:
            return self.role_for(lg_code)
        except NotFound:
            return self.issue_role(lg_code, title, actor=actor)

    def role_for(self, lg_code: str) -> RoleCertificate:
        """The newest good, unexpired 職責証明書 of ``lg_code`` (NotFound if none)."""
        check_lg_code(lg_code)
        now = self.clock.now()
        row = self.session.scalars(
            select(RoleCertificateRow)
            .where(
                RoleCertificateRow.lg_code == lg_code,
                RoleCertificateRow.status == GOOD,
                RoleCertificateRow.not_after > now,
                RoleCertificateRow.not_before <= now,
            )
            .order_by(RoleCertificateRow.issued_at.desc(), RoleCertificateRow.id.desc())
            .limit(1)
        ).first()
        if row is None:
            raise NotFound("職責証明書", lg_code)
        return self._view(row)

    def roles(self, lg_code: str | None = None) -> list[RoleCertificate]:
        stmt = select(RoleCertificateRow).order_by(RoleCertificateRow.lg_code, RoleCertificateRow.issued_at)
        if lg_code is not None:
            stmt = stmt.where(RoleCertificateRow.lg_code == check_lg_code(lg_code))
        return [self._view(r) for r in self.session.scalars(stmt)]

    def role_signer(self, role: RoleCertificate) -> CaSigner:
        """The signer of a 職責 key; checks it matches the certificate (fails closed)."""
        signer = self.keystore.signer(role.key_ref)
        if signer.public_key() != role.certificate.public_key():
            raise RuleViolation("key_ref", f"key does not match 職責証明書 {role.serial}")
        if algorithm_of(signer.public_key()) is not signer.algorithm:  # pragma: no cover - store invariant
            raise RuleViolation("key_ref", "key store algorithm mismatch")
        return signer

    def revoke(self, serial: str, reason: str, *, actor: str) -> RoleCertificate:
        if reason not in REVOCATION_REASONS:
            raise InvalidInput("reason", f"must be one of {', '.join(REVOCATION_REASONS)}")
        row = self.session.scalars(
            select(RoleCertificateRow).where(RoleCertificateRow.serial == serial.lower())
        ).first()
        if row is None:
            raise NotFound("職責証明書", serial)
        if row.status == REVOKED:
            raise RuleViolation("serial", "already revoked")
        now = self.clock.now().replace(microsecond=0)
        row.status = REVOKED
        row.revoked_at = now
        row.revocation_reason = reason
        self.session.flush()
        CA_LOG.append(
            self.session,
            at=now,
            actor=actor,
            action="role.revoke",
            subject=row.serial,
            details={"lg_code": row.lg_code, "reason": reason},
        )
        return self._view(row)

    def crl(self, row: OrganisationCaRow | None = None) -> x509.CertificateRevocationList:
        """A complete CRL of one generation (the active one by default), valid for ``CRL_HOURS``."""
        gen = row or self.active()
        ca_cert = self.ca_certificate(gen)
        now = self.clock.now().replace(microsecond=0)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(hours=CRL_HOURS))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
                ),
                critical=False,
            )
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        )
        revoked = self.session.scalars(
            select(RoleCertificateRow).where(
                RoleCertificateRow.ca_generation_id == gen.id, RoleCertificateRow.status == REVOKED
            )
        )
        for r in revoked:
            assert r.revoked_at is not None
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(r.serial, 16))
                .revocation_date(r.revoked_at)
                .add_extension(
                    x509.CRLReason(x509.ReasonFlags(r.revocation_reason or "unspecified")), critical=False
                )
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return self._ca_signer(gen).sign_crl(builder)

    def _view(self, row: RoleCertificateRow, ca_cert: x509.Certificate | None = None) -> RoleCertificate:
        if ca_cert is None:
            gen = self.session.get(OrganisationCaRow, row.ca_generation_id)
            assert gen is not None
            ca_cert = self.ca_certificate(gen)
        return RoleCertificate(
            serial=row.serial,
            lg_code=row.lg_code,
            title=row.title,
            key_ref=row.key_ref,
            certificate=x509.load_der_x509_certificate(row.der),
            ca_certificate=ca_cert,
            not_before=row.not_before,
            not_after=row.not_after,
            status=row.status,
            revoked_at=row.revoked_at,
        )


def default_title(lg_code: str) -> str:
    """The 職責 of a municipality's head as printed on its certificates: 都道府県名 + 市区町村名 + 長
    (東京都千代田区長, 北海道札幌市中央区長)."""
    from jlis.masters import load_geography

    geo = load_geography()
    muni = geo.municipality(check_lg_code(lg_code))
    return f"{geo.prefecture(muni.pref_code).name}{muni.full_name}長"


def ensure_organisation_pki(
    session: Session,
    clock: Clock,
    keystore: KeyStore,
    base_url: str,
    lg_codes: list[str] | tuple[str, ...],
    *,
    actor: str = "setup",
    rng: random.Random | None = None,
) -> list[RoleCertificate]:
    """The organisation CA and a current 職責証明書 (of the head: :func:`default_title`) for each
    of ``lg_codes``; idempotent. For the demo and for deployments wiring コンビニ交付."""
    ca = OrganisationCA(session, clock, keystore, base_url, rng=rng)
    ca.ensure(actor=actor)
    return [ca.ensure_role(lg, default_title(lg), actor=actor) for lg in lg_codes]
