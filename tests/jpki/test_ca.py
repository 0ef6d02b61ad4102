"""The two CAs: roots and generations, rollover, and end-entity certificates as in facts §3.1–3.3,
parsed back with cryptography and checked by openssl."""

from __future__ import annotations

import datetime as dt
import random
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID, SignatureAlgorithmOID
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import JST, FixedClock
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.jpki import holder as h
from jlis.jpki.ca import CertificationAuthority, load_certificate, partition_names
from jlis.jpki.holder import HolderInfo
from jlis.jpki.keystore import FileKeyStore, SoftwareSigner
from jlis.jpki.profile import CURRENT, NEXT_GEN, Algorithm, ca_name, generate_private_key
from jlis.jpki.tables import AUTH, GOOD, PHONE, SIGN, CaGenerationRow, CertificateRow
from jlis.jpki.validity import card_expiry

from .conftest import BASE_URL, KIYOSE

RSA = Algorithm.RSA2048_SHA256
P384 = Algorithm.P384_SHA384
ISSUED_ON = dt.date(2026, 11, 26)


def make_ca(
    session: Session, clock: FixedClock, keystore: FileKeyStore, seed: int = 1
) -> CertificationAuthority:
    return CertificationAuthority(session, clock, keystore, BASE_URL, rng=random.Random(seed))


def issue(
    ca: CertificationAuthority, kind: str, holder: HolderInfo, alg: Algorithm = RSA, **kw: Any
) -> tuple[CertificateRow, x509.Certificate]:
    profile = CURRENT if alg is RSA else NEXT_GEN
    key = generate_private_key(alg)
    expires = card_expiry(holder.birth_date, ISSUED_ON, profile)
    row = ca.issue(
        kind,
        key.public_key(),
        holder,
        card_id="CARD-1",
        card_expires_on=expires,
        profile=profile,
        **kw,
    )
    return row, load_certificate(row)


def ext(cert: x509.Certificate, cls: type[Any]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(cls)


def pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs))
    return path


def openssl_verify(tmp_path: Path, roots: list[x509.Certificate], cert: x509.Certificate, *extra: str) -> str:
    ca_file = pem(tmp_path / "roots.pem", *roots)
    ee_file = pem(tmp_path / "ee.pem", cert)
    out = subprocess.run(
        [
            "openssl",
            "verify",
            "-attime",
            str(int(dt.datetime(2027, 1, 1, tzinfo=JST).timestamp())),
            "-CAfile",
            str(ca_file),
            *extra,
            str(ee_file),
        ],
        capture_output=True,
        text=True,
    )
    return out.stdout + out.stderr


# --- roots and generations ------------------------------------------------------------------------


def test_ensure_creates_both_roots_once(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        ca.ensure()
        s.commit()
    with factory() as s:
        rows = s.scalars(select(CaGenerationRow).order_by(CaGenerationRow.ca_kind)).all()
        assert [(r.ca_kind, r.generation, r.active, r.algorithm) for r in rows] == [
            (AUTH, 1, True, RSA.value),
            (SIGN, 1, True, RSA.value),
        ]
        for row in rows:
            assert row.key_ref.startswith("file:jpki-" + row.ca_kind + "-g1-")
            assert jpki_keystore.path_for(row.key_ref).exists()


@pytest.mark.parametrize("kind", [SIGN, AUTH])
def test_root_certificate_profile(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, kind: str
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        row = ca.active(kind)
        cert = ca.ca_certificate(row)
    assert cert.subject == cert.issuer == ca_name(kind)
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    cert.verify_directly_issued_by(cert)
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    ski = ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
    assert cert.not_valid_before_utc == clock.now()
    assert cert.not_valid_after_utc.date() == dt.date(2046, 11, 26)
    assert row.not_after == cert.not_valid_after_utc
    assert 0 < cert.serial_number < 2**128


def test_rollover_keeps_the_dn_with_a_new_key_and_aki_links_each_certificate(
    factory: sessionmaker[Session],
    clock: FixedClock,
    jpki_keystore: FileKeyStore,
    jpki_holder: HolderInfo,
    tmp_path: Path,
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        _, old_cert = issue(ca, SIGN, jpki_holder)
        g1 = ca.active(SIGN)
        clock.advance(days=30)
        g2 = ca.rollover(SIGN)
        _, new_cert = issue(ca, SIGN, jpki_holder)
        s.commit()
        assert (g1.active, g2.active, g2.generation) == (False, True, 2)
        assert ca.active(SIGN).id == g2.id
        assert [g.generation for g in ca.generations(SIGN)] == [1, 2]
        assert ca.generation(SIGN, 1).id == g1.id
        # A verifier's question, "which generation issued this?", answered by AKI.
        assert ca.generation_for(old_cert).id == g1.id and ca.generation_for(new_cert).id == g2.id
        assert ca.generation_for(ca.ca_certificate(g2)).id == g2.id
        assert ca.active(AUTH).generation == 1  # the other CA is untouched
        root1, root2 = ca.ca_certificate(g1), ca.ca_certificate(g2)
    assert root1.subject == root2.subject and root1.public_key() != root2.public_key()
    for cert, root in ((old_cert, root1), (new_cert, root2)):
        aki = ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier
        assert aki == ext(root, x509.SubjectKeyIdentifier).value.digest
        cert.verify_directly_issued_by(root)
        # Both roots in one trust store: openssl must pick the right generation.
        assert ": OK" in openssl_verify(tmp_path, [root1, root2], cert)
    with pytest.raises(InvalidSignature):  # the wrong generation's key does not verify
        new_cert.verify_directly_issued_by(root1)
    assert ext(new_cert, x509.AuthorityInformationAccess).value[1].access_location.value.endswith("/g2.cer")


def test_rollover_alongside_keeps_the_other_algorithm_issuing(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, jpki_holder: HolderInfo
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        g2 = ca.rollover(AUTH, P384, alongside=True)
        assert ca.active(AUTH, RSA).generation == 1 and ca.active(AUTH).id == g2.id
        row_rsa, cert_rsa = issue(ca, AUTH, jpki_holder, RSA)
        row_ec, cert_ec = issue(ca, AUTH, jpki_holder, P384)
        assert (row_rsa.ca_generation_id, row_ec.ca_generation_id) == (ca.active(AUTH, RSA).id, g2.id)
        assert cert_ec.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
        assert cert_rsa.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
        ca.rollover(AUTH)  # not alongside: only the new generation issues
        assert [g.active for g in ca.generations(AUTH)] == [False, False, True]


def test_unknown_generation(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        with pytest.raises(NotFound):
            ca.active(SIGN)
        ca.ensure(P384)
        with pytest.raises(NotFound):
            ca.active(SIGN, RSA)
        with pytest.raises(NotFound):
            ca.generation(SIGN, 2)
        with pytest.raises(InvalidInput):
            ca.generations("root")


# --- end-entity certificates ------------------------------------------------------------------------


def test_signing_certificate_profile(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, jpki_holder: HolderInfo
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        row, cert = issue(ca, SIGN, jpki_holder)
        root = ca.ca_certificate(ca.active(SIGN))
        s.commit()
        gen = ca.active(SIGN).generation
    cert.verify_directly_issued_by(root)
    assert cert.version is x509.Version.v3
    assert cert.issuer == root.subject
    # Subject: C=JP, L=<prefecture>, L=<municipality>, CN=<timestamp + sequence + window>.
    assert [(a.oid, a.value) for a in cert.subject] == [
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.LOCALITY_NAME, "Tokyo"),
        (NameOID.LOCALITY_NAME, "Kiyose-shi"),
        (NameOID.COMMON_NAME, row.subject_cn),
    ]
    assert row.subject_cn.startswith("20261126100000") and row.subject_cn.endswith(KIYOSE)
    assert len(row.subject_cn) == 26 and row.subject_cn.isdigit()
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert not (ku.value.key_encipherment or ku.value.key_cert_sign or ku.value.crl_sign)
    pol = ext(cert, x509.CertificatePolicies)
    assert pol.critical and [p.policy_identifier.dotted_string for p in pol.value] == [
        "1.2.392.200149.8.5.1.1.20"
    ]
    ian = ext(cert, x509.IssuerAlternativeName)
    [dirname] = ian.value.get_values_for_type(x509.DirectoryName)
    assert dirname.rfc4514_string() == "O=公的個人認証サービス,C=JP"
    assert dirname.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0]._type.name == "UTF8String"
    san = ext(cert, x509.SubjectAlternativeName)
    assert not san.critical
    assert [n.type_id.dotted_string for n in san.value] == [f"1.2.392.200149.8.5.5.{i}" for i in range(1, 7)]
    assert all(n.value[0] == 0x0C for n in san.value.get_values_for_type(x509.OtherName))  # UTF8String
    assert h.san_from_certificate(cert) == h.san_values(jpki_holder)
    [dp] = ext(cert, x509.CRLDistributionPoints).value
    assert dp.full_name == partition_names(BASE_URL, SIGN, gen, KIYOSE)
    assert dp.full_name[0].value.rfc4514_string() == (
        "CN=Kiyose-shi,OU=Tokyo,OU=CRL Distribution Points,OU=JPKI for digital signature,O=JPKI,C=JP"
    )
    assert dp.full_name[1].value == f"{BASE_URL}/jpki/crl/sign/g{gen}/{KIYOSE}.crl"
    aia = ext(cert, x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, f"{BASE_URL}/jpki/ocsp/sign"),
        (AuthorityInformationAccessOID.CA_ISSUERS, f"{BASE_URL}/jpki/ca/sign/g{gen}.cer"),
    ]
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        cert.public_key()
    )
    # Validity: from now to the 5th birthday after issue (17 February 2031), end of the day JST.
    assert cert.not_valid_before_utc == clock.now()
    assert cert.not_valid_after_utc == dt.datetime(2031, 2, 17, 23, 59, 59, tzinfo=JST)
    assert (row.not_before, row.not_after) == (cert.not_valid_before_utc, cert.not_valid_after_utc)


def test_authentication_certificate_profile(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, jpki_holder: HolderInfo
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        row, cert = issue(ca, AUTH, jpki_holder)
        root = ca.ca_certificate(ca.active(AUTH))
    cert.verify_directly_issued_by(root)
    assert [a.oid for a in cert.subject] == [NameOID.COUNTRY_NAME, NameOID.COMMON_NAME]
    assert re.fullmatch(r"[0-9A-Z]{23}", row.subject_cn)
    ku = ext(cert, x509.KeyUsage).value
    assert ku.digital_signature and not ku.content_commitment
    pol = ext(cert, x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in pol] == ["1.2.392.200149.8.5.1.3.30"]
    with pytest.raises(x509.ExtensionNotFound):  # no personal data in the authentication certificate
        ext(cert, x509.SubjectAlternativeName)
    assert h.san_from_certificate(cert) == {}
    [dp] = ext(cert, x509.CRLDistributionPoints).value
    assert "OU=JPKI for user authentication" in dp.full_name[0].value.rfc4514_string()
    assert ext(cert, x509.IssuerAlternativeName).value


def test_row_is_added_not_committed(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, jpki_holder: HolderInfo
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        s.commit()
        row, cert = issue(ca, SIGN, jpki_holder)
        assert row in s
        assert row.status == GOOD and row.holder == "card" and row.card_id == "CARD-1"
        assert row.resident_code == jpki_holder.resident_code and row.lg_code == KIYOSE
        assert row.serial == format(cert.serial_number, "x") and row.serial == row.serial.lower()
        assert row.issued_at == clock.now() and row.der == cert.public_bytes(Encoding.DER)
        s.rollback()
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(CertificateRow)) == 0


def test_serials_come_from_the_injected_rng(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, jpki_holder: HolderInfo
) -> None:
    key = generate_private_key(RSA).public_key()
    expires = card_expiry(jpki_holder.birth_date, ISSUED_ON, CURRENT)
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        s.commit()
        serials = []
        for _ in range(2):
            ca.rng = random.Random(42)
            row = ca.issue(SIGN, key, jpki_holder, card_id="C", card_expires_on=expires)
            serials.append((row.serial, row.subject_cn))
            s.rollback()
    expected = random.Random(42).getrandbits(128)
    assert serials[0] == serials[1] and serials[0][0] == format(expected, "x")
    assert len(bytes.fromhex(serials[0][0].rjust(32, "0"))) == 16


def test_phone_certificates_carry_their_own_policy(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, jpki_holder: HolderInfo
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        sign_row, sign_cert = issue(ca, SIGN, jpki_holder, holder_kind=PHONE)
        _, auth_cert = issue(ca, AUTH, jpki_holder, holder_kind=PHONE)
    assert sign_row.holder == PHONE
    assert ext(sign_cert, x509.CertificatePolicies).value[0].policy_identifier.dotted_string == (
        "1.2.392.200149.8.5.1.1.40"
    )
    assert ext(auth_cert, x509.CertificatePolicies).value[0].policy_identifier == CURRENT.phone_auth_policy


def test_next_generation_profile(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, jpki_holder: HolderInfo
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure(P384)
        _row, cert = issue(ca, SIGN, jpki_holder, P384)
        root = ca.ca_certificate(ca.active(SIGN))
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert (
        root.signature_algorithm_oid
        == cert.signature_algorithm_oid
        == SignatureAlgorithmOID.ECDSA_WITH_SHA384
    )
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)
    cert.verify_directly_issued_by(root)
    # Card: 10th birthday after issue + 1 month; the certificate runs with it.
    assert cert.not_valid_after_utc == dt.datetime(2036, 3, 17, 23, 59, 59, tzinfo=JST)


def test_next_generation_card_under_an_rsa_root_is_issued_by_it(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, jpki_holder: HolderInfo
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        _, cert = issue(ca, AUTH, jpki_holder, P384)
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        cert.verify_directly_issued_by(ca.ca_certificate(ca.active(AUTH)))


# --- refusals ---------------------------------------------------------------------------------------


def test_refusals_leave_nothing(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, jpki_holder: HolderInfo
) -> None:
    rsa_key = generate_private_key(RSA).public_key()
    expires = card_expiry(jpki_holder.birth_date, ISSUED_ON, CURRENT)
    cases: list[tuple[dict[str, object], type[Exception], str]] = [
        ({"ca_kind": "root"}, InvalidInput, "ca_kind"),
        ({"public_key": generate_private_key(P384).public_key()}, InvalidInput, "public_key"),
        ({"public_key": rsa.generate_private_key(65537, 1024).public_key()}, InvalidInput, "public_key"),
        ({"holder_kind": "watch"}, InvalidInput, "holder_kind"),
        ({"card_id": ""}, InvalidInput, "card_id"),
        ({"card_expires_on": dt.date(2026, 11, 1)}, InvalidInput, "card_expires_on"),
        ({"holder": replace(jpki_holder, lg_code="999999")}, InvalidInput, "地方公共団体コード"),
        ({"holder": replace(jpki_holder, address="東" * 201)}, InvalidInput, "住所"),
    ]
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        s.commit()
        for change, error, field in cases:
            args: dict[str, Any] = {
                "ca_kind": SIGN,
                "public_key": rsa_key,
                "holder": jpki_holder,
                "card_id": "C",
                "card_expires_on": expires,
                **change,
            }
            with pytest.raises(error) as err:
                ca.issue(
                    args.pop("ca_kind"),
                    args.pop("public_key"),
                    args.pop("holder"),
                    **args,
                )
            assert getattr(err.value, "field", None) == field, change
        assert not s.new
        s.commit()
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(CertificateRow)) == 0


def test_a_generation_never_signs_beyond_its_own_life(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, jpki_holder: HolderInfo
) -> None:
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure(P384)
        clock.advance(days=365 * 15)
        key = generate_private_key(P384).public_key()
        today = clock.today()
        with pytest.raises(RuleViolation) as err:
            ca.issue(
                SIGN,
                key,
                jpki_holder,
                card_id="C",
                profile=NEXT_GEN,
                card_expires_on=card_expiry(jpki_holder.birth_date, today, NEXT_GEN),
            )
        assert err.value.field == "ca_generation"
        ca.rollover(SIGN)
        ca.issue(
            SIGN,
            key,
            jpki_holder,
            card_id="C",
            profile=NEXT_GEN,
            card_expires_on=card_expiry(jpki_holder.birth_date, today, NEXT_GEN),
        )


def test_a_key_ref_pointing_at_another_key_is_refused(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore
) -> None:
    with factory() as s:
        make_ca(s, clock, jpki_keystore).ensure()
        s.commit()
        sign, auth = (
            make_ca(s, clock, jpki_keystore).active(SIGN),
            make_ca(s, clock, jpki_keystore).active(AUTH),
        )
        sign.key_ref = auth.key_ref
        with pytest.raises(RuleViolation) as err:
            make_ca(s, clock, jpki_keystore).signer_for(sign)
        assert err.value.field == "key_ref"


def test_ca_keys_are_decrypted_once(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore, jpki_holder: HolderInfo
) -> None:
    class Counting(FileKeyStore):
        loads = 0

        def signer(self, key_ref: str) -> SoftwareSigner:
            if key_ref not in self._signers:
                Counting.loads += 1
            return super().signer(key_ref)

    with factory() as s:
        make_ca(s, clock, jpki_keystore).ensure()
        s.commit()
    store = Counting(jpki_keystore.key_dir)  # a restart: nothing cached yet
    key = generate_private_key(RSA).public_key()
    expires = card_expiry(jpki_holder.birth_date, ISSUED_ON, CURRENT)
    for _ in range(3):  # one CA object per request, as a web handler would make
        with factory() as s:
            ca = make_ca(s, clock, store)
            for kind in (SIGN, AUTH):
                ca.issue(kind, key, jpki_holder, card_id="C", card_expires_on=expires)
    assert Counting.loads == 2


# --- an independent checker: openssl ----------------------------------------------------------------


@pytest.mark.parametrize("alg", list(Algorithm))
def test_openssl_verifies_with_the_partition_crl(
    factory: sessionmaker[Session],
    clock: FixedClock,
    jpki_keystore: FileKeyStore,
    jpki_holder: HolderInfo,
    tmp_path: Path,
    alg: Algorithm,
) -> None:
    """A partition CRL whose issuingDistributionPoint repeats the certificate's distribution point names
    (what the revocation service publishes) is accepted by openssl -crl_check, and a revoked serial
    on it is refused."""
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure(alg)
        gen = ca.active(SIGN)
        root = ca.ca_certificate(gen)
        _, good = issue(ca, SIGN, jpki_holder, alg)
        _, bad = issue(ca, SIGN, jpki_holder, alg)
        now = clock.now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(root.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(days=60))
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    ext(root, x509.SubjectKeyIdentifier).value
                ),
                critical=False,
            )
            .add_extension(
                x509.IssuingDistributionPoint(
                    full_name=partition_names(BASE_URL, SIGN, gen.generation, KIYOSE),
                    relative_name=None,
                    only_contains_user_certs=True,
                    only_contains_ca_certs=False,
                    only_some_reasons=None,
                    indirect_crl=False,
                    only_contains_attribute_certs=False,
                ),
                critical=True,
            )
            .add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(bad.serial_number).revocation_date(now).build()
            )
        )
        crl = ca.signer_for(gen).sign_crl(builder)
    crl_file = tmp_path / "crl.pem"
    crl_file.write_bytes(crl.public_bytes(Encoding.PEM))
    assert ": OK" in openssl_verify(tmp_path, [root], good, "-crl_check", "-CRLfile", str(crl_file))
    refused = openssl_verify(tmp_path, [root], bad, "-crl_check", "-CRLfile", str(crl_file))
    assert "certificate revoked" in refused


def test_generation_for_unknown_issuer(
    factory: sessionmaker[Session], clock: FixedClock, jpki_keystore: FileKeyStore
) -> None:
    key = generate_private_key(P384)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else")])
    now = clock.now()
    stranger = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    impostor = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_name(SIGN))  # our DN, someone else's key, no AKI
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    with factory() as s:
        ca = make_ca(s, clock, jpki_keystore)
        ca.ensure()
        with pytest.raises(NotFound):
            ca.generation_for(stranger)
        with pytest.raises(NotFound):
            ca.generation_for(impostor)
