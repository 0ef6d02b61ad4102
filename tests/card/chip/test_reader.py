"""The reader-style client, driving a chip with APDUs only."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from jlis.card.chip import apdu as A
from jlis.card.chip import files
from jlis.card.chip.chip import VirtualChip
from jlis.card.chip.errors import CardError, CardVoided, PinBlocked, WrongPin
from jlis.card.chip.face import check_text_signature, verification_number_b
from jlis.card.chip.reader import CardReader
from jlis.errors import InvalidInput


class Recorder:
    """A transport that remembers every command, to check the reader uses APDUs only."""

    def __init__(self, chip: VirtualChip) -> None:
        self.chip = chip
        self.commands: list[bytes] = []

    def __call__(self, apdu: bytes) -> bytes:
        self.commands.append(apdu)
        return self.chip.transmit(apdu)


def test_token_card_id_and_certificates(chip: VirtualChip) -> None:
    reader = CardReader(chip.transmit)
    assert reader.read_token() == "JPKIAPICCTOKEN2"
    assert reader.read_card_id() == "CARD0001"
    auth = reader.read_certificate("auth")
    assert auth == chip.file(files.JPKI_AID, files.JPKI_AUTH_CERT)
    x509.load_der_x509_certificate(auth)
    assert reader.read_certificate("auth_ca") == chip.file(files.JPKI_AID, files.JPKI_AUTH_CA_CERT)
    assert reader.read_certificate("sign_ca") == chip.file(files.JPKI_AID, files.JPKI_SIGN_CA_CERT)
    with pytest.raises(CardError) as err:
        reader.read_certificate("sign")
    assert err.value.sw == 0x6982
    assert reader.read_certificate("sign", "ABC123XYZ") == chip.file(files.JPKI_AID, files.JPKI_SIGN_CERT)
    with pytest.raises(InvalidInput):
        reader.read_certificate("other")  # type: ignore[arg-type]


def test_reads_in_chunks_with_offsets(chip: VirtualChip) -> None:
    recorder = Recorder(chip)
    CardReader(recorder).read_certificate("auth")
    reads = [c for c in recorder.commands if c[1] == A.INS_READ_BINARY]
    assert reads[0] == A.read_binary(0, 7)  # the head first, to learn the length
    assert len(reads) >= 3  # then the rest in chunks of at most 256


def test_pins_and_retries(chip: VirtualChip) -> None:
    reader = CardReader(chip.transmit)
    assert reader.retries("auth") == 3
    assert reader.retries("sign") == 5
    with pytest.raises(WrongPin) as err:
        reader.verify_pin("sign", "WRONG1")
    assert err.value.tries_left == 4
    assert reader.retries("sign") == 4
    assert reader.verify_pin("sign", "ABC123XYZ") == 5
    for left in (2, 1):
        with pytest.raises(WrongPin) as err:
            reader.verify_pin("auth", "0000")
        assert err.value.tries_left == left
    with pytest.raises(PinBlocked):
        reader.verify_pin("auth", "0000")
    with pytest.raises(PinBlocked):
        reader.verify_pin("auth", "1234")
    assert reader.retries("auth") == 0
    with pytest.raises(InvalidInput):
        reader.retries("nope")


def test_sign_and_verify_rsa(chip: VirtualChip) -> None:
    reader = CardReader(chip.transmit)
    for slot, pin in (("sign", "ABC123XYZ"), ("auth", "1234")):
        signature = reader.sign(slot, b"challenge", pin)  # type: ignore[arg-type]
        public = chip.public_key(slot)  # type: ignore[arg-type]
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, b"challenge", padding.PKCS1v15(), hashes.SHA256())
    digest = hashes.Hash(hashes.SHA512())
    digest.update(b"doc")
    signature = reader.sign("sign", digest.finalize(), "ABC123XYZ", hashes.SHA512(), prehashed=True)
    public = chip.public_key("sign")
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, b"doc", padding.PKCS1v15(), hashes.SHA512())
    with pytest.raises(WrongPin):
        reader.sign("sign", b"x", "WRONG1")


def test_sign_p384(ec_chip: VirtualChip) -> None:
    reader = CardReader(ec_chip.transmit)
    signature = reader.sign("auth", b"login", "1234", hashes.SHA384())
    public = ec_chip.public_key("auth")
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, b"login", ec.ECDSA(hashes.SHA384()))


def test_sign_with_a_pin_verified_before(chip: VirtualChip) -> None:
    reader = CardReader(chip.transmit)
    reader.select_jpki()
    reader.verify_pin("sign", "ABC123XYZ")
    from jlis.card.chip import digestinfo

    info = digestinfo.of_data(hashes.SHA256(), b"x")
    assert len(reader.sign_digest_info("sign", info, None)) == 256
    with pytest.raises(CardError) as err:
        CardReader(chip.transmit).sign_digest_info("auth", info, None)
    assert err.value.sw == 0x6982


def test_text_and_visual(chip: VirtualChip, kit: type) -> None:
    reader = CardReader(chip.transmit)
    assert reader.read_my_number("2468") == "123456789018"
    attributes = reader.read_attributes("2468")
    assert attributes.birth_date == dt.date(1990, 4, 1)
    assert attributes.address == "東京都千代田区霞が関二丁目1番2号"
    face = kit.make_face()
    assert reader.read_my_number(verification_number_b(face), with_="text_b") == "123456789018"
    mn, attrs, block = reader.read_text_signature("2468")
    assert check_text_signature(mn, attrs, block, kit.ISSUER_KEY.public_key())
    assert not check_text_signature(mn.replace(b"1", b"2"), attrs, block, kit.ISSUER_KEY.public_key())
    visual = reader.read_visual(verification_number_b(face))
    assert visual.expires_on == dt.date(2035, 4, 1)
    assert visual.security_code == "4321"
    assert visual.photo.startswith(b"\x89PNG")
    assert reader.read_visual("123456789018").birth_date == dt.date(1990, 4, 1)
    with pytest.raises(WrongPin):
        reader.read_attributes("0000")
    with pytest.raises(InvalidInput):
        reader.read_my_number("1234", with_="auth")


def test_change_pin(chip: VirtualChip) -> None:
    reader = CardReader(chip.transmit)
    reader.change_pin("text", "2468", "1357")
    assert reader.read_my_number("1357") == "123456789018"
    with pytest.raises(InvalidInput):
        reader.change_pin("text", "1357", "12")
    with pytest.raises(InvalidInput):
        reader.change_pin("text_a", "123456789018", "123456789018")
    with pytest.raises(WrongPin):
        reader.change_pin("sign", "WRONG1", "NEWPASS1")
    reader.change_pin("sign", "ABC123XYZ", "NEWPASS1")
    assert reader.verify_pin("sign", "NEWPASS1") == 5


def test_voided_card(chip: VirtualChip) -> None:
    chip.void()
    with pytest.raises(CardVoided):
        CardReader(chip.transmit).read_certificate("auth")


def test_blank_card_reports_missing_data(keygen: object) -> None:
    blank = VirtualChip.manufacture("BLANK", "rsa2048-sha256", keygen=keygen)  # type: ignore[arg-type]
    reader = CardReader(blank.transmit)
    assert reader.read_token() == "JPKIAPICCTOKEN2"
    with pytest.raises(CardError) as err:
        reader.read_certificate("auth")
    assert err.value.sw == 0x6B00
    with pytest.raises(CardError) as err:
        reader.verify_pin("auth", "1234")
    assert err.value.sw == 0x6985
