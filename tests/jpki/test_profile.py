"""Profiles are data: algorithms, DNs and policy OIDs of facts §3.1–3.2 and §3.8."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from jlis.errors import InvalidInput
from jlis.jpki import profile
from jlis.jpki.profile import CURRENT, NEXT_GEN, Algorithm
from jlis.jpki.tables import AUTH, CARD, PHONE, SIGN


def test_generated_keys_have_the_profile_shape() -> None:
    rsa_key = profile.generate_private_key(Algorithm.RSA2048_SHA256)
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 2048
    assert rsa_key.public_key().public_numbers().e == 65537
    ec_key = profile.generate_private_key(Algorithm.P384_SHA384)
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey) and isinstance(ec_key.curve, ec.SECP384R1)
    assert profile.algorithm_of(rsa_key.public_key()) is Algorithm.RSA2048_SHA256
    assert profile.algorithm_of(ec_key) is Algorithm.P384_SHA384


def test_hash_follows_the_algorithm() -> None:
    assert isinstance(profile.hash_algorithm(Algorithm.RSA2048_SHA256), hashes.SHA256)
    assert isinstance(profile.hash_algorithm(Algorithm.P384_SHA384), hashes.SHA384)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(lambda: rsa.generate_private_key(65537, 1024), id="rsa-1024"),
        pytest.param(lambda: rsa.generate_private_key(3, 2048), id="rsa-e3"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), id="p-256"),
    ],
)
def test_other_key_shapes_are_refused(key) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as err:
        profile.algorithm_of(key())
    assert err.value.field == "public_key"


def test_profiles() -> None:
    assert CURRENT.algorithm is Algorithm.RSA2048_SHA256 and CURRENT.cert_years == 5
    assert NEXT_GEN.algorithm is Algorithm.P384_SHA384 and NEXT_GEN.cert_years == 10
    assert NEXT_GEN.card_extra_months == 1
    assert profile.profile_for(Algorithm.P384_SHA384) is NEXT_GEN
    assert profile.profile_for("rsa2048-sha256") is CURRENT
    assert profile.profile_named("next-gen") is NEXT_GEN
    with pytest.raises(InvalidInput):
        profile.profile_for("dsa")
    with pytest.raises(InvalidInput):
        profile.profile_named("old")


def test_policy_oids() -> None:
    assert CURRENT.policy(SIGN).dotted_string == "1.2.392.200149.8.5.1.1.20"
    assert CURRENT.policy(AUTH, CARD).dotted_string == "1.2.392.200149.8.5.1.3.30"
    assert CURRENT.policy(SIGN, PHONE).dotted_string == "1.2.392.200149.8.5.1.1.40"
    assert CURRENT.policy(AUTH, PHONE) == profile.POLICY_PHONE_AUTH != CURRENT.policy(AUTH)
    assert profile.POLICY_SIGN_TEST.dotted_string == "1.2.392.200149.8.5.1.0.20"
    with pytest.raises(InvalidInput):
        CURRENT.policy("root")
    with pytest.raises(InvalidInput):
        CURRENT.policy(SIGN, "watch")


def test_ca_names_differ_only_in_the_purpose_unit() -> None:
    sign, auth = profile.ca_name(SIGN), profile.ca_name(AUTH)
    assert sign.rfc4514_string() == (
        "OU=Japan Agency for Local Authority Information Systems,OU=JPKI for digital signature,O=JPKI,C=JP"
    )
    assert next(a.value for a in auth.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)) == (
        "JPKI for user authentication"
    )


def test_crl_partition_name() -> None:
    name = profile.crl_partition_name(SIGN, "Tokyo", "Kiyose-shi")
    assert name.rfc4514_string() == (
        "CN=Kiyose-shi,OU=Tokyo,OU=CRL Distribution Points,OU=JPKI for digital signature,O=JPKI,C=JP"
    )
