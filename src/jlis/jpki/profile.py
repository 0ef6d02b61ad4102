"""Certificate profiles of the public certification service (facts §3.1–3.3, §3.8).

Everything that describes *what* a JPKI certificate looks like — algorithms, DNs, policy OIDs, the
validity rules' parameters — is frozen data here, so that a change of the (partly [M]-confidence)
facts is a change of one constant. ``jlis.jpki.ca`` turns a profile into certificates.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import NameOID

from jlis.errors import InvalidInput
from jlis.jpki.tables import AUTH, CARD, PHONE, SIGN


class Algorithm(enum.StrEnum):
    """Key and signature algorithm of a CA generation or a card. Values are stored in the database."""

    RSA2048_SHA256 = "rsa2048-sha256"  # today's card and CAs: RSA-2048, e = 65537, PKCS#1 v1.5
    P384_SHA384 = "p384-sha384"  # the next-generation card (facts §3.8): ECDSA P-384 with SHA-384

    @classmethod
    def parse(cls, value: str) -> Algorithm:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(a.value for a in cls)
            raise InvalidInput("algorithm", f"must be one of {choices}") from None


RSA_PUBLIC_EXPONENT = 65537
RSA_KEY_SIZE = 2048


def generate_private_key(alg: Algorithm) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if alg is Algorithm.RSA2048_SHA256:
        return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_SIZE)
    return ec.generate_private_key(ec.SECP384R1())


# The only key shapes a JPKI CA or card has.
CaPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def hash_algorithm(alg: Algorithm) -> hashes.SHA256 | hashes.SHA384:
    return hashes.SHA256() if alg is Algorithm.RSA2048_SHA256 else hashes.SHA384()


def algorithm_of(key: PublicKeyTypes | PrivateKeyTypes) -> Algorithm:
    """The algorithm a key belongs to; any other key is refused (fails closed: we never sign for a
    key shape the profile does not describe)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    return _algorithm_of_public(public)


def checked_public_key(key: PublicKeyTypes | PrivateKeyTypes) -> CaPublicKey:
    """``key`` (or its public half) if it is RSA-2048 (e = 65537) or ECDSA P-384, else InvalidInput."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    _algorithm_of_public(public)
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return public


def _algorithm_of_public(key: object) -> Algorithm:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size == RSA_KEY_SIZE and key.public_numbers().e == RSA_PUBLIC_EXPONENT:
            return Algorithm.RSA2048_SHA256
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):
        return Algorithm.P384_SHA384
    raise InvalidInput("public_key", "must be RSA-2048 (e = 65537) or ECDSA P-384")


# --- Names ---------------------------------------------------------------------------------------

# The production DNs (facts §3.1). The real test hierarchy uses O=JPKI-TEST; we keep O=JPKI so that
# relying-party code written against us matches production DNs, and tell the two apart by the policy
# OID and by trust store instead (docs/jpki.md).
ORGANISATION = "JPKI"
AGENCY_OU = "Japan Agency for Local Authority Information Systems"
CA_UNIT = {SIGN: "JPKI for digital signature", AUTH: "JPKI for user authentication"}
CRL_DP_UNIT = "CRL Distribution Points"
ISSUER_ALT_ORGANISATION = "公的個人認証サービス"  # IssuerAltName DirName O (UTF8String), facts §3.1


def ca_name(ca_kind: str, organisation: str = ORGANISATION) -> x509.Name:
    """Subject and issuer of every generation of one CA: the DN never changes across a rollover."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, CA_UNIT[ca_kind]),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, AGENCY_OU),
        ]
    )


def issuer_alt_name() -> x509.IssuerAlternativeName:
    return x509.IssuerAlternativeName(
        [
            x509.DirectoryName(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ISSUER_ALT_ORGANISATION),
                    ]
                )
            )
        ]
    )


def crl_partition_name(ca_kind: str, pref_romaji: str, muni_romaji: str) -> x509.Name:
    """directoryName of one municipality's CRL partition (facts §3.2, [M])."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, CA_UNIT[ca_kind]),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, CRL_DP_UNIT),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, pref_romaji),
            x509.NameAttribute(NameOID.COMMON_NAME, muni_romaji),
        ]
    )


# --- Policies ------------------------------------------------------------------------------------

JPKI_ARC = "1.2.392.200149.8.5"
POLICY_SIGN = x509.ObjectIdentifier("1.2.392.200149.8.5.1.1.20")  # 署名用 (facts §3.2, [H])
POLICY_SIGN_TEST = x509.ObjectIdentifier("1.2.392.200149.8.5.1.0.20")  # the real test hierarchy
POLICY_AUTH = x509.ObjectIdentifier("1.2.392.200149.8.5.1.3.30")  # 利用者証明用 ([M])
POLICY_PHONE_SIGN = x509.ObjectIdentifier("1.2.392.200149.8.5.1.1.40")  # スマホ用署名 ([L])
# スマホ用利用者証明: no public source. Chosen by analogy with the signing pair (card .20 → phone .40,
# so auth .30 → .50) and flagged [L] in docs/jpki.md; change it here when the real value is known.
POLICY_PHONE_AUTH = x509.ObjectIdentifier("1.2.392.200149.8.5.1.3.50")


@dataclass(frozen=True)
class CardProfile:
    """What one kind of card gets: its key algorithm, validity rules and policies.

    Validity (facts §10, §3.8): the card runs to the ``card_years_adult``-th birthday after issue for
    a holder aged ``adult_age`` or more on the day of issue, else to the ``card_years_minor``-th, plus
    ``card_extra_months``; certificates run to the ``cert_years``-th birthday after issue plus
    ``cert_extra_months``, never beyond the card.
    """

    name: str
    algorithm: Algorithm
    cert_years: int
    card_years_adult: int
    card_years_minor: int = 5
    adult_age: int = 18
    card_extra_months: int = 0
    cert_extra_months: int = 0
    sign_policy: x509.ObjectIdentifier = POLICY_SIGN
    auth_policy: x509.ObjectIdentifier = POLICY_AUTH
    phone_sign_policy: x509.ObjectIdentifier = POLICY_PHONE_SIGN
    phone_auth_policy: x509.ObjectIdentifier = POLICY_PHONE_AUTH
    # Facts §3.3 keeps JIS level 1/2 "and 補助漢字" in names; the brief and most sources say JIS X 0208
    # only. Off by default: JIS X 0212 is what older readers display worst.
    allow_jisx0212: bool = False

    def policy(self, ca_kind: str, holder_kind: str = CARD) -> x509.ObjectIdentifier:
        if ca_kind not in (SIGN, AUTH):
            raise InvalidInput("ca_kind", "must be sign or auth")
        if holder_kind == CARD:
            return self.sign_policy if ca_kind == SIGN else self.auth_policy
        if holder_kind == PHONE:
            return self.phone_sign_policy if ca_kind == SIGN else self.phone_auth_policy
        raise InvalidInput("holder_kind", "must be card or phone")


CURRENT = CardProfile(name="current", algorithm=Algorithm.RSA2048_SHA256, cert_years=5, card_years_adult=10)
# 次期個人番号カード (facts §3.8, [M]): ECDSA P-384, card to the 10th birthday + 1 month, certificates
# for 10 years — taken as "to the card's expiry", so the two end together.
NEXT_GEN = CardProfile(
    name="next-gen",
    algorithm=Algorithm.P384_SHA384,
    cert_years=10,
    card_years_adult=10,
    card_extra_months=1,
    cert_extra_months=1,
)
PROFILES = {p.name: p for p in (CURRENT, NEXT_GEN)}

# CA generations. A generation issues for a few years and must outlive every certificate it signed:
# 20 years covers a 10-year next-generation certificate issued late in a generation's life.
CA_YEARS = 20


def profile_for(alg: Algorithm | str) -> CardProfile:
    alg = Algorithm.parse(alg) if isinstance(alg, str) else alg
    return CURRENT if alg is Algorithm.RSA2048_SHA256 else NEXT_GEN


def profile_named(name: str) -> CardProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InvalidInput("profile", f"must be one of {', '.join(PROFILES)}") from None
