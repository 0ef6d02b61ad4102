"""The virtual chip through its APDU interface: every command, every status word, PIN counters,
signatures, persistence and voiding."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jlis.card.chip import apdu as A
from jlis.card.chip import digestinfo, files
from jlis.card.chip.chip import VirtualChip
from jlis.card.chip.errors import CardVoided, PinBlocked, WrongPin
from jlis.card.chip.face import parse_text_attributes, verification_number_b
from jlis.card.chip.files import PINS, PinKind
from jlis.errors import InvalidInput, RuleViolation


def tx(chip: VirtualChip, apdu: bytes | str) -> tuple[bytes, int]:
    raw = chip.transmit(bytes.fromhex(apdu) if isinstance(apdu, str) else apdu)
    return raw[:-2], int.from_bytes(raw[-2:], "big")


def sw(chip: VirtualChip, apdu: bytes | str) -> int:
    return tx(chip, apdu)[1]


def select(chip: VirtualChip, aid: bytes, fid: int | None = None) -> None:
    assert sw(chip, A.select_df(aid)) == 0x9000
    if fid is not None:
        assert sw(chip, A.select_ef(fid)) == 0x9000


def verify(chip: VirtualChip, kind: PinKind, pin: str) -> int:
    spec = PINS[kind]
    select(chip, spec.aid, spec.fid)
    return sw(chip, A.verify(pin.encode()))


def read_all(chip: VirtualChip) -> bytes:
    out = b""
    while True:
        data, status = tx(chip, A.read_binary(len(out), 256))
        if status == 0x6B00:
            return out
        assert status == 0x9000
        out += data
        if len(data) < 256:
            return out


# -- command parsing and dispatch ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("00A404", 0x6700),  # shorter than a header
        ("00A4040C000004", 0x6700),  # extended length
        ("00A4040C0AD392", 0x6700),  # Lc larger than the data
        ("00A4040C02D392F000", 0x6700),  # Lc smaller than the data (not a case-4 Le either)
        ("0CA4040C0AD392F000260100000001", 0x6E00),  # secure-messaging class: not supported
        ("A0B0000010", 0x6E00),
        ("00CA010000", 0x6D00),  # GET DATA: not implemented
        ("80B0000010", 0x6D00),  # READ BINARY in the proprietary class
        ("002A008003010203", 0x6D00),  # the signature command in the ISO class
    ],
)
def test_malformed_and_unsupported_commands(chip: VirtualChip, apdu: str, expected: int) -> None:
    assert sw(chip, apdu) == expected


def test_select_each_application(chip: VirtualChip) -> None:
    for aid in (files.JPKI_AID, files.TEXT_AID, files.VISUAL_AID, files.JUKI_AID, files.CARD_ID_AID):
        assert tx(chip, A.select_df(aid)) == (b"", 0x9000)


def test_select_errors(chip: VirtualChip) -> None:
    assert sw(chip, A.select_ef(0x0006)) == 0x6A82  # no DF selected yet
    assert (
        sw(chip, A.select_df(bytes.fromhex("D3921000000100010408"))) == 0x6A82
    )  # a corrupted AID from the wild
    assert sw(chip, "00A4040C") == 0x6700  # no AID
    assert sw(chip, "00A404000AD392F000260100000001") == 0x6A86  # FCI requested: only P2 = 0C
    assert sw(chip, "00A4080C020006") == 0x6A86  # select by path: not supported
    select(chip, files.JPKI_AID)
    assert sw(chip, A.select_ef(0x0099)) == 0x6A82
    assert sw(chip, A.select_ef(files.TEXT_PIN)) == 0x6A82  # an EF of another application
    assert sw(chip, "00A4020C0100") == 0x6700


def test_read_token_and_card_id(chip: VirtualChip) -> None:
    select(chip, files.JPKI_AID, files.JPKI_TOKEN)
    data, status = tx(chip, A.read_binary(0, 32))
    assert status == 0x9000
    assert data == b"JPKIAPICCTOKEN2" + b" " * 17
    select(chip, files.CARD_ID_AID, files.CARD_ID)
    assert tx(chip, A.read_binary(0, 256)) == (b"CARD0001", 0x9000)  # a short read at the end


def test_read_binary_offsets_and_lengths(chip: VirtualChip) -> None:
    select(chip, files.JPKI_AID, files.JPKI_AUTH_CERT)
    cert = chip.file(files.JPKI_AID, files.JPKI_AUTH_CERT)
    assert len(cert) > 300
    data, status = tx(chip, "00B0000000")  # Le = 00 means 256
    assert (data, status) == (cert[:256], 0x9000)
    assert tx(chip, A.read_binary(7, 5)) == (cert[7:12], 0x9000)
    assert tx(chip, A.read_binary(len(cert) - 3, 256)) == (cert[-3:], 0x9000)  # short read at the end
    assert sw(chip, A.read_binary(len(cert), 1)) == 0x6B00
    assert sw(chip, A.read_binary(0x7FFF, 1)) == 0x6B00
    assert read_all(chip) == cert
    assert sw(chip, "00B00000") == 0x6700  # no Le
    assert sw(chip, "00B000000100") == 0x6700  # data in a READ BINARY
    assert sw(chip, "00B0860010") == 0x6A86  # short EF identifier in P1


def test_read_without_current_ef(chip: VirtualChip) -> None:
    assert sw(chip, A.read_binary(0, 4)) == 0x6986
    select(chip, files.JPKI_AID)
    assert sw(chip, A.read_binary(0, 4)) == 0x6986


def test_keys_and_pins_are_never_readable(chip: VirtualChip) -> None:
    for fid in (files.JPKI_AUTH_KEY, files.JPKI_SIGN_KEY, files.JPKI_AUTH_PIN, files.JPKI_SIGN_PIN):
        select(chip, files.JPKI_AID, fid)
        assert sw(chip, A.read_binary(0, 16)) == 0x6982
    # Not even after the PIN that unlocks the key.
    assert verify(chip, PinKind.SIGN, "ABC123XYZ") == 0x9000
    assert sw(chip, A.select_ef(files.JPKI_SIGN_KEY)) == 0x9000
    assert sw(chip, A.read_binary(0, 16)) == 0x6982
    with pytest.raises(InvalidInput):
        chip.file(files.JPKI_AID, files.JPKI_SIGN_KEY)
    assert "PRIVATE" not in repr(chip)


def test_signing_certificate_needs_the_password(chip: VirtualChip) -> None:
    select(chip, files.JPKI_AID, files.JPKI_SIGN_CERT)
    assert sw(chip, A.read_binary(0, 7)) == 0x6982
    assert verify(chip, PinKind.SIGN, "ABC123XYZ") == 0x9000
    assert sw(chip, A.select_ef(files.JPKI_SIGN_CERT)) == 0x9000
    assert read_all(chip) == chip.file(files.JPKI_AID, files.JPKI_SIGN_CERT)
    # The free files of the JPKI AP need nothing.
    for fid in (files.JPKI_AUTH_CERT, files.JPKI_AUTH_CA_CERT, files.JPKI_SIGN_CA_CERT, files.JPKI_TOKEN):
        select(chip, files.JPKI_AID, fid)
        assert sw(chip, A.read_binary(0, 4)) == 0x9000


def test_the_auth_pin_does_not_open_the_signing_certificate(chip: VirtualChip) -> None:
    assert verify(chip, PinKind.AUTH, "1234") == 0x9000
    assert sw(chip, A.select_ef(files.JPKI_SIGN_CERT)) == 0x9000
    assert sw(chip, A.read_binary(0, 7)) == 0x6982


def test_selecting_a_df_resets_the_security_state(chip: VirtualChip) -> None:
    assert verify(chip, PinKind.SIGN, "ABC123XYZ") == 0x9000
    select(chip, files.JPKI_AID, files.JPKI_SIGN_CERT)  # the same DF, selected again
    assert sw(chip, A.read_binary(0, 7)) == 0x6982
    assert verify(chip, PinKind.SIGN, "ABC123XYZ") == 0x9000
    chip.reset()
    select(chip, files.JPKI_AID, files.JPKI_SIGN_CERT)
    assert sw(chip, A.read_binary(0, 7)) == 0x6982


def test_text_application(chip: VirtualChip) -> None:
    select(chip, files.TEXT_AID, files.TEXT_MY_NUMBER)
    assert sw(chip, A.read_binary(0, 17)) == 0x6982
    assert verify(chip, PinKind.TEXT, "2468") == 0x9000
    select_ef = A.select_ef(files.TEXT_MY_NUMBER)
    assert sw(chip, select_ef) == 0x9000
    data, status = tx(chip, A.read_binary(0, 17))
    assert status == 0x9000
    assert data == b"\xd0\x0c123456789018\xff\xff\xff"
    assert sw(chip, A.select_ef(files.TEXT_ATTRIBUTES)) == 0x9000
    attributes = parse_text_attributes(read_all(chip))
    assert (attributes.name, attributes.sex) == ("山田 花子", 2)
    assert read_all(chip).startswith(b"\xff\x20")


def test_text_application_opens_with_the_verification_numbers(chip: VirtualChip, kit: type) -> None:
    face = kit.make_face()
    assert verify(chip, PinKind.TEXT_A, "123456789018") == 0x9000
    assert sw(chip, A.select_ef(files.TEXT_MY_NUMBER)) == 0x9000
    assert sw(chip, A.read_binary(0, 17)) == 0x9000
    assert verify(chip, PinKind.TEXT_B, verification_number_b(face)) == 0x9000
    assert sw(chip, A.select_ef(files.TEXT_ATTRIBUTES)) == 0x9000
    assert sw(chip, A.read_binary(0, 17)) == 0x9000


def test_visual_application(chip: VirtualChip, kit: type) -> None:
    select(chip, files.VISUAL_AID, files.VISUAL_FACE)
    assert sw(chip, A.read_binary(0, 7)) == 0x6982
    b = verification_number_b(kit.make_face())
    assert b == "020401" + "2035" + "4321"  # 平成2年4月1日, expiry 2035, security code
    assert verify(chip, PinKind.VISUAL_B, b) == 0x9000
    assert sw(chip, A.select_ef(files.VISUAL_FACE)) == 0x9000
    assert read_all(chip) == chip.file(files.VISUAL_AID, files.VISUAL_FACE)
    assert verify(chip, PinKind.VISUAL_A, "123456789018") == 0x9000


def test_juki_application(chip: VirtualChip) -> None:
    select(chip, files.JUKI_AID, files.JUKI_RESIDENT_CODE)
    assert sw(chip, A.read_binary(0, 11)) == 0x6982
    assert verify(chip, PinKind.JUKI, "5678") == 0x9000
    assert sw(chip, A.select_ef(files.JUKI_RESIDENT_CODE)) == 0x9000
    assert tx(chip, A.read_binary(0, 11)) == (b"12345678901", 0x9000)


# -- VERIFY and the retry counters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "right", "wrong"),
    [
        (PinKind.AUTH, "1234", "0000"),
        (PinKind.SIGN, "ABC123XYZ", "ABC123XYQ"),
        (PinKind.JUKI, "5678", "0000"),
        (PinKind.TEXT, "2468", "0000"),
    ],
)
def test_pin_counter_blocks_and_only_a_reset_unblocks(
    chip: VirtualChip, kind: PinKind, right: str, wrong: str
) -> None:
    tries = PINS[kind].max_tries
    assert tries == (5 if kind is PinKind.SIGN else 3)
    spec = PINS[kind]
    select(chip, spec.aid, spec.fid)
    assert sw(chip, A.verify(None)) == 0x63C0 | tries  # the retry query
    assert sw(chip, A.verify(None)) == 0x63C0 | tries  # ... which costs nothing
    assert sw(chip, A.verify(wrong.encode())) == 0x63C0 | (tries - 1)
    assert sw(chip, A.verify(right.encode())) == 0x9000  # the right PIN resets the counter
    assert sw(chip, A.verify(None)) == 0x63C0 | tries
    for left in range(tries - 1, -1, -1):
        assert sw(chip, A.verify(wrong.encode())) == 0x63C0 | left  # the blocking attempt says 63C0
    assert sw(chip, A.verify(right.encode())) == 0x6983  # blocked: the right PIN no longer works
    assert sw(chip, A.verify(None)) == 0x6983
    assert chip.pin_tries_left(kind) == 0
    # Blocked survives a reset of the card and a round trip through storage.
    again = VirtualChip.from_bytes(chip.to_bytes())
    assert verify(again, kind, right) == 0x6983
    again.reset_pin(kind, right)
    assert verify(again, kind, right) == 0x9000
    assert again.pin_tries_left(kind) == tries


def test_wrong_pin_format_is_just_a_wrong_pin(chip: VirtualChip) -> None:
    spec = PINS[PinKind.AUTH]
    select(chip, spec.aid, spec.fid)
    assert sw(chip, A.verify(b"\x00\xffabc")) == 0x63C2
    assert sw(chip, A.verify(b"12345")) == 0x63C1
    assert sw(chip, A.verify(b"1234")) == 0x9000


def test_verify_errors(chip: VirtualChip, keygen: object) -> None:
    assert sw(chip, A.verify(b"1234")) == 0x6986  # no DF
    select(chip, files.JPKI_AID)
    assert sw(chip, A.verify(b"1234")) == 0x6986  # no EF
    select(chip, files.JPKI_AID, files.JPKI_TOKEN)
    assert sw(chip, A.verify(b"1234")) == 0x6981  # not a PIN EF
    select(chip, files.JPKI_AID, files.JPKI_AUTH_PIN)
    assert sw(chip, "0020008104" + b"1234".hex()) == 0x6A86
    assert sw(chip, "0020018004" + b"1234".hex()) == 0x6A86
    blank = VirtualChip.manufacture("BLANK", "rsa2048-sha256", keygen=keygen)  # type: ignore[arg-type]
    select(blank, files.JPKI_AID, files.JPKI_AUTH_PIN)
    assert sw(blank, A.verify(None)) == 0x6985  # no PIN set yet
    assert sw(blank, A.verify(b"1234")) == 0x6985


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from([PinKind.AUTH, PinKind.SIGN, PinKind.JUKI, PinKind.TEXT]),
            st.sampled_from(["right", "wrong", "query", "reload", "select"]),
        ),
        max_size=40,
    )
)
def test_counters_follow_the_model(chip: VirtualChip, steps: list[tuple[PinKind, str]]) -> None:
    """Any sequence of right and wrong PINs, queries, card reloads and re-selections: the counter is
    what the model says, and a blocked PIN never comes back."""
    right = {PinKind.AUTH: "1234", PinKind.SIGN: "ABC123XYZ", PinKind.JUKI: "5678", PinKind.TEXT: "2468"}
    model = {kind: PINS[kind].max_tries for kind in right}
    card = VirtualChip.from_bytes(chip.to_bytes())
    for kind, action in steps:
        if action == "reload":
            card = VirtualChip.from_bytes(card.to_bytes())
            continue
        spec = PINS[kind]
        select(card, spec.aid, spec.fid)
        if action == "select":
            continue
        if action == "query":
            status = sw(card, A.verify(None))
            assert status == (0x6983 if model[kind] == 0 else 0x63C0 | model[kind])
            continue
        value = right[kind] if action == "right" else "999999999"
        status = sw(card, A.verify(value.encode()))
        if model[kind] == 0:
            assert status == 0x6983
        elif action == "right":
            assert status == 0x9000
            model[kind] = PINS[kind].max_tries
        else:
            model[kind] -= 1
            assert status == 0x63C0 | model[kind]
        assert card.pin_tries_left(kind) == model[kind]


# -- CHANGE REFERENCE DATA ------------------------------------------------------------------------


def test_change_pin(chip: VirtualChip) -> None:
    select(chip, files.JPKI_AID, files.JPKI_SIGN_PIN)
    assert sw(chip, A.change_reference_data(b"NEWPASS1")) == 0x6982  # not verified
    assert sw(chip, A.verify(b"ABC123XYZ")) == 0x9000
    assert sw(chip, A.change_reference_data(b"lower1")) == 0x6A80  # lower case: wrong format
    assert sw(chip, A.change_reference_data(b"ABC12")) == 0x6A80  # too short
    assert sw(chip, A.change_reference_data(b"A" * 17)) == 0x6A80  # too long
    assert sw(chip, A.change_reference_data(b"\xff" * 8)) == 0x6A80
    assert sw(chip, "0024018000") == 0x6700  # Le only, no new PIN
    assert sw(chip, "0024008008" + b"NEWPASS1".hex()) == 0x6A86
    assert sw(chip, A.change_reference_data(b"NEWPASS1")) == 0x9000
    select(chip, files.JPKI_AID, files.JPKI_SIGN_PIN)
    assert sw(chip, A.verify(b"ABC123XYZ")) == 0x63C4
    assert sw(chip, A.verify(b"NEWPASS1")) == 0x9000


def test_change_four_digit_pin_format(chip: VirtualChip) -> None:
    assert verify(chip, PinKind.AUTH, "1234") == 0x9000
    assert sw(chip, A.change_reference_data(b"12345")) == 0x6A80
    assert sw(chip, A.change_reference_data(b"12a4")) == 0x6A80
    assert sw(chip, A.change_reference_data(b"9876")) == 0x9000
    assert verify(chip, PinKind.AUTH, "9876") == 0x9000


def test_change_errors(chip: VirtualChip) -> None:
    assert sw(chip, A.change_reference_data(b"1234")) == 0x6986
    select(chip, files.JPKI_AID, files.JPKI_AUTH_CERT)
    assert sw(chip, A.change_reference_data(b"1234")) == 0x6981
    assert verify(chip, PinKind.TEXT_A, "123456789018") == 0x9000
    assert sw(chip, A.change_reference_data(b"123456789018")) == 0x6985  # follows the card face
    spec = PINS[PinKind.AUTH]
    select(chip, spec.aid, spec.fid)
    for _ in range(3):
        sw(chip, A.verify(b"0000"))
    assert sw(chip, A.change_reference_data(b"1111")) == 0x6983


# -- COMPUTE DIGITAL SIGNATURE --------------------------------------------------------------------


@pytest.mark.parametrize("hash_alg", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
@pytest.mark.parametrize(
    ("slot", "kind", "pin"), [("sign", PinKind.SIGN, "ABC123XYZ"), ("auth", PinKind.AUTH, "1234")]
)
def test_rsa_signature_verifies(
    chip: VirtualChip, hash_alg: hashes.HashAlgorithm, slot: str, kind: PinKind, pin: str
) -> None:
    assert verify(chip, kind, pin) == 0x9000
    assert sw(chip, A.select_ef(files.KEY_EFS[slot])) == 0x9000
    message = b"a document to sign"
    signature, status = tx(chip, A.compute_digital_signature(digestinfo.of_data(hash_alg, message)))
    assert status == 0x9000
    assert len(signature) == 256
    public = chip.public_key(slot)  # type: ignore[arg-type]
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, message, padding.PKCS1v15(), hash_alg)


def test_p384_signature_verifies(ec_chip: VirtualChip) -> None:
    message = b"next-generation card"
    public = ec_chip.public_key("sign")
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert verify(ec_chip, PinKind.SIGN, "ABC123XYZ") == 0x9000
    assert sw(ec_chip, A.select_ef(files.JPKI_SIGN_KEY)) == 0x9000
    # A DigestInfo, as for RSA ...
    signature, status = tx(ec_chip, A.compute_digital_signature(digestinfo.of_data(hashes.SHA384(), message)))
    assert status == 0x9000
    public.verify(signature, message, ec.ECDSA(hashes.SHA384()))
    # ... or the bare hash.
    signature, status = tx(ec_chip, A.compute_digital_signature(hashlib.sha384(message).digest()))
    assert status == 0x9000
    public.verify(signature, message, ec.ECDSA(hashes.SHA384()))
    signature, status = tx(ec_chip, A.compute_digital_signature(hashlib.sha256(message).digest()))
    assert status == 0x9000
    public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    assert sw(ec_chip, A.compute_digital_signature(b"\x01" * 20)) == 0x6A80  # no hash is 20 bytes here


def test_signature_errors(chip: VirtualChip) -> None:
    info = digestinfo.of_data(hashes.SHA256(), b"x")
    assert sw(chip, A.compute_digital_signature(info)) == 0x6986  # nothing selected
    select(chip, files.JPKI_AID, files.JPKI_SIGN_KEY)
    assert sw(chip, A.compute_digital_signature(info)) == 0x6982  # PIN not verified
    assert verify(chip, PinKind.AUTH, "1234") == 0x9000
    assert sw(chip, A.select_ef(files.JPKI_SIGN_KEY)) == 0x9000
    assert sw(chip, A.compute_digital_signature(info)) == 0x6982  # the auth PIN does not unlock the sign key
    assert sw(chip, A.select_ef(files.JPKI_AUTH_CERT)) == 0x9000
    assert sw(chip, A.compute_digital_signature(info)) == 0x6981  # not a key EF
    assert sw(chip, A.select_ef(files.JPKI_AUTH_KEY)) == 0x9000
    assert sw(chip, A.compute_digital_signature(hashlib.sha256(b"x").digest())) == 0x6A80  # not a DigestInfo
    assert (
        sw(chip, A.compute_digital_signature(bytes.fromhex("3021300906052b0e03021d05000414") + bytes(20)))
        == 0x6A80
    )
    assert sw(chip, A.compute_digital_signature(info + b"\x00")) == 0x6A80  # trailing byte
    assert sw(chip, "802A008000") == 0x6700  # no DigestInfo
    assert sw(chip, "802A0000" + f"{len(info):02x}" + info.hex() + "00") == 0x6A86
    assert sw(chip, A.compute_digital_signature(info)) == 0x9000


# -- counter-side methods -------------------------------------------------------------------------


def test_manufacture(keygen: object) -> None:
    chip = VirtualChip.manufacture(None, "rsa2048-sha256", keygen=keygen)  # type: ignore[arg-type]
    assert chip.card_id is None and not chip.personalised
    assert chip.public_key("auth") != chip.public_key("sign")
    chip.bind("C-1")
    assert chip.card_id == "C-1"
    assert chip.file(files.CARD_ID_AID, files.CARD_ID) == b"C-1"
    with pytest.raises(RuleViolation):
        chip.bind("C-2")
    with pytest.raises(InvalidInput):
        VirtualChip.manufacture("bad id!", "rsa2048-sha256", keygen=keygen)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as err:
        VirtualChip.manufacture("C", "rsa1024", keygen=keygen)  # type: ignore[arg-type]
    assert err.value.field == "algorithm"
    with pytest.raises(InvalidInput) as err:
        VirtualChip.manufacture("C", "p384-sha384", keygen=lambda alg: rsa.generate_private_key(65537, 1024))
    assert err.value.field == "keygen"
    with pytest.raises(InvalidInput):
        chip.public_key("other")  # type: ignore[arg-type]


def test_manufacture_with_the_default_keygen() -> None:
    chip = VirtualChip.manufacture("EC1", "p384-sha384")
    assert isinstance(chip.public_key("sign"), ec.EllipticCurvePublicKey)


def test_personalise_once(chip: VirtualChip, kit: type) -> None:
    with pytest.raises(RuleViolation):
        chip.personalise(kit.make_face())


def test_install_certificates_checks_before_writing(chip: VirtualChip, kit: type) -> None:
    ca = kit.ISSUER_KEY
    good_auth = kit.make_cert(chip.public_key("auth"), ca)
    before = chip.to_bytes()
    with pytest.raises(InvalidInput) as err:
        chip.install_certificates(good_auth, good_auth, kit.make_cert(chip.public_key("auth"), ca), good_auth)
    assert err.value.field == "sign_cert_der"
    assert chip.to_bytes() == before
    with pytest.raises(InvalidInput):
        chip.install_certificates(b"not DER", good_auth)
    with pytest.raises(InvalidInput):
        chip.install_certificates(good_auth, b"\x30\x00")
    with pytest.raises(InvalidInput):
        chip.install_certificates(good_auth, good_auth, good_auth, None)
    assert chip.to_bytes() == before
    chip.install_certificates(good_auth, good_auth)  # without the signing pair (a holder under 15)
    assert chip.file(files.JPKI_AID, files.JPKI_AUTH_CERT) == good_auth


def test_set_pins_all_or_nothing(keygen: object) -> None:
    chip = VirtualChip.manufacture("C", "rsa2048-sha256", keygen=keygen)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as err:
        chip.set_pins("1234", "abc123", "5678", "2468")
    assert err.value.field == "sign_pin"
    assert not any(chip.pin_is_set(k) for k in ("auth", "sign", "juki", "text"))
    with pytest.raises(InvalidInput):
        chip.set_pins("123", "ABC123", "5678", "2468")
    chip.set_pins("1234", None, "5678", "2468")
    assert chip.pin_is_set("auth") and not chip.pin_is_set("sign")


def test_reset_pin_rules(chip: VirtualChip) -> None:
    with pytest.raises(InvalidInput):
        chip.reset_pin("text_a", "123456789018")
    with pytest.raises(InvalidInput):
        chip.reset_pin("nope", "1234")
    with pytest.raises(InvalidInput):
        chip.reset_pin("auth", "12345")
    with pytest.raises(InvalidInput):
        chip.pin_tries_left("nope")


def test_rewrite_address(chip: VirtualChip, kit: type) -> None:
    from jlis.card.chip.face import check_text_signature

    visual = chip.file(files.VISUAL_AID, files.VISUAL_FACE)
    with pytest.raises(WrongPin) as err:
        chip.rewrite_address("大阪府大阪市北区1-1", juki_pin="0000")
    assert err.value.tries_left == 2
    chip.rewrite_address("大阪府大阪市北区1-1", juki_pin="5678", issuer_key=kit.ISSUER_KEY)
    assert chip.pin_tries_left("juki") == 3
    text = chip.file(files.TEXT_AID, files.TEXT_ATTRIBUTES)
    attributes = parse_text_attributes(text)
    assert attributes.address == "大阪府大阪市北区1-1"
    assert attributes.name == "山田 花子"
    assert chip.file(files.VISUAL_AID, files.VISUAL_FACE) == visual  # the face stays as printed
    mn = chip.file(files.TEXT_AID, files.TEXT_MY_NUMBER)
    block = chip.file(files.TEXT_AID, files.TEXT_SIGNATURE)
    assert check_text_signature(mn, text, block, kit.ISSUER_KEY.public_key())
    for _ in range(3):
        with pytest.raises((WrongPin, PinBlocked)):
            chip.rewrite_address("x", juki_pin="0000")
    with pytest.raises(PinBlocked):
        chip.rewrite_address("x", juki_pin="5678")
    assert (
        parse_text_attributes(chip.file(files.TEXT_AID, files.TEXT_ATTRIBUTES)).address
        == "大阪府大阪市北区1-1"
    )
    with pytest.raises(InvalidInput):
        chip.rewrite_address(" ", juki_pin="5678")


def test_rewrite_address_needs_a_personalised_chip(keygen: object) -> None:
    blank = VirtualChip.manufacture("C", "rsa2048-sha256", keygen=keygen)  # type: ignore[arg-type]
    with pytest.raises(RuleViolation):
        blank.rewrite_address("somewhere", juki_pin="1234")


# -- persistence and voiding ----------------------------------------------------------------------


def test_round_trip(chip: VirtualChip) -> None:
    assert verify(chip, PinKind.AUTH, "0000") == 0x63C2
    assert verify(chip, PinKind.SIGN, "ABC123XYZ") == 0x9000
    blob = chip.to_bytes()
    again = VirtualChip.from_bytes(blob)
    assert again.to_bytes() == blob
    assert again.card_id == chip.card_id and again.algorithm == chip.algorithm
    assert again.public_key("sign").public_numbers() == chip.public_key("sign").public_numbers()  # type: ignore[union-attr]
    assert again.pin_tries_left("auth") == 2
    # Volatile state does not travel: the restored card is freshly inserted.
    select(again, files.JPKI_AID, files.JPKI_SIGN_CERT)
    assert sw(again, A.read_binary(0, 7)) == 0x6982
    assert b"1234" not in blob and b"ABC123XYZ" not in blob  # PINs are kept as salted digests


@pytest.mark.parametrize(
    "blob",
    [b"", b"{}", b"not json", b'{"format": "jlis-chip/1"}', b"[1]"],
)
def test_from_bytes_refuses_garbage(blob: bytes) -> None:
    with pytest.raises(InvalidInput):
        VirtualChip.from_bytes(blob)


def test_from_bytes_refuses_impossible_counters(chip: VirtualChip) -> None:
    import json

    doc = json.loads(chip.to_bytes())
    doc["pins"]["auth"]["tries_left"] = 9
    with pytest.raises(InvalidInput):
        VirtualChip.from_bytes(json.dumps(doc).encode())


def test_void(chip: VirtualChip, kit: type) -> None:
    chip.void()
    assert chip.voided
    assert sw(chip, A.select_df(files.JPKI_AID)) == 0x6A81
    assert sw(chip, A.select_ef(files.JPKI_TOKEN)) == 0x6A81
    assert sw(chip, A.read_binary(0, 4)) == 0x6985
    assert sw(chip, A.verify(b"1234")) == 0x6985
    assert sw(chip, A.compute_digital_signature(b"\x00" * 51)) == 0x6985
    assert sw(chip, "00CA000000") == 0x6D00  # still the same card for what it never supported
    again = VirtualChip.from_bytes(chip.to_bytes())
    assert again.voided
    assert sw(again, A.select_df(files.JPKI_AID)) == 0x6A81
    for call in (
        lambda: again.reset_pin("auth", "1234"),
        lambda: again.set_pins("1234", None, "5678", "2468"),
        lambda: again.rewrite_address("x", juki_pin="5678"),
        lambda: again.install_certificate("auth", b"", b""),
    ):
        with pytest.raises(CardVoided):
            call()


def test_verification_numbers_block_and_the_counter_restores_them(chip: VirtualChip) -> None:
    spec = PINS[PinKind.VISUAL_B]
    select(chip, spec.aid, spec.fid)
    for _ in range(spec.max_tries):
        sw(chip, A.verify(b"00000000000000"))
    assert sw(chip, A.verify(None)) == 0x6983
    chip.reset_verification_numbers()
    select(chip, spec.aid, spec.fid)
    assert sw(chip, A.verify(None)) == 0x63C0 | spec.max_tries
