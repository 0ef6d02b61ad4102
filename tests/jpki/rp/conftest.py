"""A throwaway JPKI-shaped PKI made with ``cryptography`` alone: roots per purpose and generation,
end-entity certificates with the real extensions' shape, CRLs and OCSP answers. The SDK's unit tests
use it so that they do not depend on the CA code; the integration tests use the real CA."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jlis.card.chip import VirtualChip
from jlis.card.chip.reader import CardReader
from jlis.clock import JST, FixedClock
from jlis.jpki import profile
from jlis.jpki.rp import identity
from jlis.jpki.rp.http import HttpReply

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST)
BASE = "http://jlis.test"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_for(alg: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    return rsa_key() if alg == "rsa" else ec.generate_private_key(ec.SECP384R1())


def _hash(key: object) -> hashes.HashAlgorithm:
    return hashes.SHA256() if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) else hashes.SHA384()


def sign_bytes(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, data: bytes, hash_name: str) -> bytes:
    h = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}[hash_name]
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), h)
    return key.sign(data, ec.ECDSA(h))


@dataclass
class Root:
    kind: str
    generation: int
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert: x509.Certificate


@dataclass
class Leaf:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    root: Root


@dataclass
class Pki:
    now: dt.datetime = NOW
    roots: dict[tuple[str, int], Root] = field(default_factory=dict)
    _serials: itertools.count[int] = field(default_factory=lambda: itertools.count(0x1000))

    def root(self, kind: str, generation: int = 1, alg: str = "rsa") -> Root:
        if (kind, generation) in self.roots:
            return self.roots[(kind, generation)]
        key = key_for(alg)
        name = profile.ca_name(kind)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(generation)
            .not_valid_before(self.now - dt.timedelta(days=365 * generation))
            .not_valid_after(self.now + dt.timedelta(days=365 * 20))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, _hash(key))
        )
        root = Root(kind, generation, key, cert)
        self.roots[(kind, generation)] = root
        return root

    def leaf(
        self,
        root: Root,
        *,
        alg: str = "rsa",
        purpose: str | None = None,
        holder: dict[str, str] | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        lg_code: str = "131016",
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
        public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None = None,
        policy: str | None = None,
        aki: bool = True,
    ) -> Leaf:
        purpose = purpose or root.kind
        if public_key is None:
            key = key or key_for(alg)
            public_key = key.public_key()
        if purpose == "sign":
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                    x509.NameAttribute(NameOID.LOCALITY_NAME, "Tokyo"),
                    x509.NameAttribute(NameOID.LOCALITY_NAME, "Chiyoda-ku"),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"20261126100000{next(self._serials)}A"),
                ]
            )
            ku = x509.KeyUsage(True, True, False, False, False, False, False, False, False)
            pol = policy or profile.POLICY_SIGN.dotted_string
        else:
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"AUTH{next(self._serials)}X"),
                ]
            )
            ku = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
            pol = policy or profile.POLICY_AUTH.dotted_string
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(root.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or self.now - dt.timedelta(days=30))
            .not_valid_after(not_after or self.now + dt.timedelta(days=365 * 4))
            .add_extension(ku, critical=True)
            .add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(pol), None)]),
                critical=True,
            )
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(crl_uri(root, lg_code))], None, None, None
                        )
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(f"{BASE}/jpki/ocsp/{root.kind}"),
                        )
                    ]
                ),
                critical=False,
            )
        )
        if aki:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        if purpose == "sign":
            values = holder or default_holder()
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.OtherName(x509.ObjectIdentifier(oid), core.UTF8String(v).dump())
                        for oid, v in values.items()
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(root.key, _hash(root.key))
        return Leaf(key, cert, root)  # type: ignore[arg-type]  # key None: it lives on a chip

    def crl(
        self,
        root: Root,
        revoked: list[tuple[x509.Certificate, x509.ReasonFlags | None]] = (),  # type: ignore[assignment]
        *,
        lg_code: str | None = None,
        this_update: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
        signer: Root | None = None,
    ) -> x509.CertificateRevocationList:
        signer = signer or root
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(root.cert.subject)
            .last_update(this_update or self.now - dt.timedelta(hours=1))
            .next_update(next_update or self.now + dt.timedelta(days=1))
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if lg_code is not None:
            builder = builder.add_extension(
                x509.IssuingDistributionPoint(
                    [x509.UniformResourceIdentifier(crl_uri(root, lg_code))],
                    None,
                    False,
                    False,
                    None,
                    False,
                    False,
                ),
                critical=True,
            )
        for cert, reason in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(self.now - dt.timedelta(hours=2))
            )
            if reason is not None:
                entry = entry.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(signer.key, _hash(signer.key))

    def responder(self, root: Root) -> Leaf:
        key = key_for("rsa")
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                        x509.NameAttribute(NameOID.COMMON_NAME, f"OCSP {root.kind} g{root.generation}"),
                    ]
                )
            )
            .issuer_name(root.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .sign(root.key, _hash(root.key))
        )
        return Leaf(key, cert, root)

    def ocsp_answer(
        self,
        leaf: Leaf,
        *,
        status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
        reason: x509.ReasonFlags | None = None,
        responder: Leaf | None = None,
        nonce: bytes | None = None,
        next_update: dt.datetime | None = None,
        this_update: dt.datetime | None = None,
    ) -> bytes:
        responder = responder or self.responder(leaf.root)
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=leaf.cert,
            issuer=leaf.root.cert,
            algorithm=hashes.SHA1(),
            cert_status=status,
            this_update=this_update or self.now - dt.timedelta(minutes=10),
            next_update=next_update or self.now + dt.timedelta(hours=1),
            revocation_time=self.now - dt.timedelta(hours=2)
            if status is ocsp.OCSPCertStatus.REVOKED
            else None,
            revocation_reason=reason,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder.cert).certificates(
            [responder.cert]
        )
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        resp = builder.sign(responder.key, hashes.SHA256())
        return resp.public_bytes(serialization.Encoding.DER)


def crl_uri(root: Root, lg_code: str) -> str:
    return f"{BASE}/jpki/crl/{root.kind}/g{root.generation}/{lg_code}.crl"


def default_holder() -> dict[str, str]:
    name, address = "山田　太郎", "東京都千代田区千代田１－１"
    return {
        identity.OID_NAME: name,
        identity.OID_NAME_MAP: "0" * len(name),
        identity.OID_SEX: "1",
        identity.OID_BIRTH: "419900102",
        identity.OID_ADDRESS: address,
        identity.OID_ADDRESS_MAP: "0" * len(address),
    }


@pytest.fixture(scope="session")
def pki() -> Pki:
    """One PKI for the session: RSA key generation is the slow part, so roots are shared."""
    return Pki()


@pytest.fixture
def rp_clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def key_signer() -> Callable[[Leaf], Callable[[bytes, str], bytes]]:
    return lambda leaf: lambda data, h: sign_bytes(leaf.key, data, h)


class FakeFetcher:
    """A :class:`jlis.jpki.rp.http.Fetcher` answering from a dict of URL → handler; records calls."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[bytes | None, dict[str, str]], HttpReply]] = {}
        self.calls: list[tuple[str, str, bytes | None, dict[str, str]]] = []

    def serve(self, url: str, body: bytes, status: int = 200) -> None:
        self.routes[url] = lambda _b, _h: HttpReply(status, "application/octet-stream", body)

    def get(self, url: str, headers: Mapping[str, str]) -> HttpReply:
        self.calls.append(("GET", url, None, dict(headers)))
        if url not in self.routes:
            return HttpReply(404, "text/plain", b"")
        return self.routes[url](None, dict(headers))

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpReply:
        self.calls.append(("POST", url, body, dict(headers)))
        if url not in self.routes:
            return HttpReply(404, "text/plain", b"")
        return self.routes[url](body, dict(headers))


@pytest.fixture
def fetcher() -> FakeFetcher:
    return FakeFetcher()


SIGN_PASSWORD = "ABC123"
AUTH_PIN = "1234"


@dataclass
class Card:
    chip: VirtualChip
    sign: Leaf
    auth: Leaf

    @property
    def reader(self) -> CardReader:
        return CardReader(self.chip.transmit)


def make_card(pki: Pki, alg: str = "rsa", generation: int = 1) -> Card:
    """A virtual card whose certificates this throwaway PKI issued for the chip's own keys."""
    chip = VirtualChip.manufacture(
        f"TEST{next(pki._serials)}", "rsa2048-sha256" if alg == "rsa" else "p384-sha384"
    )
    sign_root, auth_root = pki.root("sign", generation, alg), pki.root("auth", generation, alg)
    sign = pki.leaf(sign_root, public_key=chip.public_key("sign"))  # type: ignore[arg-type]
    auth = pki.leaf(auth_root, public_key=chip.public_key("auth"))  # type: ignore[arg-type]
    der = serialization.Encoding.DER
    chip.install_certificates(
        auth.cert.public_bytes(der),
        auth_root.cert.public_bytes(der),
        sign.cert.public_bytes(der),
        sign_root.cert.public_bytes(der),
    )
    chip.set_pins(AUTH_PIN, SIGN_PASSWORD, "5678", "9012")
    return Card(chip, sign, auth)


@pytest.fixture(scope="session")
def rsa_card(pki: Pki) -> Card:
    return make_card(pki, "rsa")


@pytest.fixture(scope="session")
def ec_card(pki: Pki) -> Card:
    return make_card(pki, "ec", generation=3)
