"""A reader-style client: it drives a card through APDUs only, the way a relying party's software
drives a real card through PC/SC. ``transport`` is any callable that sends one command APDU and
returns the response (``VirtualChip.transmit``, or a PC/SC adapter for a real card).

Selecting a DF resets the card's security state, so the reader remembers which DF is selected and
selects again only when it must: ``verify_pin`` followed by a read or a signature in the same
application keeps the PIN verified.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from cryptography.hazmat.primitives import hashes

from jlis.card.chip import apdu as A
from jlis.card.chip import digestinfo, files, tlv
from jlis.card.chip.apdu import SW, Response
from jlis.card.chip.errors import CardError, CardVoided, PinBlocked, WrongPin
from jlis.card.chip.face import (
    TextAttributes,
    VisualFace,
    parse_my_number,
    parse_text_attributes,
    parse_visual_face,
)
from jlis.card.chip.files import PINS, PinKind
from jlis.errors import InvalidInput

Transport = Callable[[bytes], bytes]
CertificateSlot = Literal["auth", "sign", "auth_ca", "sign_ca"]

_CERT_EFS: dict[str, int] = {
    "auth": files.JPKI_AUTH_CERT,
    "sign": files.JPKI_SIGN_CERT,
    "auth_ca": files.JPKI_AUTH_CA_CERT,
    "sign_ca": files.JPKI_SIGN_CA_CERT,
}
_CHUNK = 256
_MAX_EF = 0x7FFF  # READ BINARY offsets are 15 bits


class CardReader:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._df: bytes | None = None

    # -- low level -------------------------------------------------------------------------------

    def send(self, command: bytes) -> Response:
        return Response.parse(self._transport(command))

    def _expect_ok(self, command: bytes, action: str) -> Response:
        response = self.send(command)
        if response.sw != SW.OK:
            raise CardError(response.sw, action)
        return response

    def select_df(self, aid: bytes, *, force: bool = False) -> None:
        if self._df == aid and not force:
            return
        self._df = None
        response = self.send(A.select_df(aid))
        if response.sw == SW.FUNCTION_NOT_SUPPORTED:
            raise CardVoided("(card in the reader)")
        if response.sw != SW.OK:
            raise CardError(response.sw, f"SELECT {aid.hex().upper()}")
        self._df = aid

    def select_jpki(self) -> None:
        self.select_df(files.JPKI_AID)

    def select_ef(self, fid: int) -> None:
        self._expect_ok(A.select_ef(fid), f"SELECT EF {fid:04X}")

    def read_binary(self, offset: int, length: int) -> bytes:
        response = self.send(A.read_binary(offset, length))
        if response.sw != SW.OK:
            raise CardError(response.sw, f"READ BINARY at {offset}")
        return response.data

    def read_current_ef(self, max_length: int = _MAX_EF) -> bytes:
        """The whole current EF: read the first bytes, find the TLV's length, read the rest (facts
        §2.5). Reading stops early at the end of the file (a short read or 6B00)."""
        head = self.read_binary(0, 7)
        try:
            total = tlv.total_length(head)
        except ValueError:
            total = None
        want = min(total if total is not None else max_length, max_length)
        out = bytearray(head)
        if len(head) < 7:  # the whole file was shorter than the first read
            return bytes(out[:want])
        while len(out) < want:
            n = min(_CHUNK, want - len(out))
            response = self.send(A.read_binary(len(out), n))
            if response.sw == SW.OFFSET_BEYOND_EF:
                break
            if response.sw != SW.OK:
                raise CardError(response.sw, f"READ BINARY at {len(out)}")
            out += response.data
            if len(response.data) < n:
                break
        return bytes(out[:want])

    def read_ef(self, aid: bytes, fid: int) -> bytes:
        self.select_df(aid)
        self.select_ef(fid)
        return self.read_current_ef()

    # -- PINs ------------------------------------------------------------------------------------

    def verify_pin(self, which: str, pin: str) -> int:
        """VERIFY a PIN (``auth``, ``sign``, ``juki``, ``text``, or a verification number
        ``text_a``/``text_b``/``visual_a``/``visual_b``). Returns the tries left (the full count);
        raises :class:`WrongPin` with the tries left, or :class:`PinBlocked`."""
        kind = _kind(which)
        spec = PINS[kind]
        self.select_df(spec.aid)
        self.select_ef(spec.fid)
        response = self.send(A.verify(pin.encode("utf-8")))
        _raise_for_verify(kind, response.sw)
        return spec.max_tries

    def retries(self, which: str) -> int:
        """Tries left on a PIN (0 when blocked), by the retry query; nothing is decremented."""
        kind = _kind(which)
        spec = PINS[kind]
        self.select_df(spec.aid)
        self.select_ef(spec.fid)
        sw = self.send(A.verify(None)).sw
        if sw == SW.AUTH_BLOCKED:
            return 0
        if A.is_retries_sw(sw):
            return sw & 0x0F
        raise CardError(sw, f"retry query of the {kind.value} PIN")

    def change_pin(self, which: str, old: str, new: str) -> None:
        """VERIFY the old PIN, then CHANGE REFERENCE DATA to the new one (checked by the card;
        a malformed new PIN is refused with InvalidInput and changes nothing)."""
        kind = _kind(which)
        if not PINS[kind].holder_set:
            raise InvalidInput("which", "one of auth, sign, juki, text")
        if not files.pin_format_ok(kind, new):
            raise InvalidInput(f"new_{kind.value}_pin", PINS[kind].rule)
        self.verify_pin(kind, old)
        self._expect_ok(A.change_reference_data(new.encode("ascii")), f"CHANGE REFERENCE DATA {kind.value}")

    # -- JPKI ------------------------------------------------------------------------------------

    def read_token(self) -> str:
        self.select_jpki()
        self.select_ef(files.JPKI_TOKEN)
        return self.read_binary(0, files.TOKEN_LENGTH).decode("ascii").rstrip(" ")

    def read_certificate(self, slot: CertificateSlot, pin: str | None = None) -> bytes:
        """The DER certificate of a slot. The signing certificate needs the signing password."""
        if slot not in _CERT_EFS:
            raise InvalidInput("slot", "one of auth, sign, auth_ca, sign_ca")
        self.select_jpki()
        if slot == "sign" and pin is not None:
            self.verify_pin("sign", pin)
        self.select_ef(_CERT_EFS[slot])
        return self.read_current_ef()

    def sign(
        self,
        slot: Literal["auth", "sign"],
        data: bytes,
        pin: str,
        hash: hashes.HashAlgorithm | None = None,
        *,
        prehashed: bool = False,
    ) -> bytes:
        """Sign ``data`` (or, with ``prehashed``, a digest of ``hash``) with a slot's key: the host
        builds the DigestInfo, the card signs it. Default hash SHA-256."""
        hash_alg = hash or hashes.SHA256()
        info = digestinfo.encode(hash_alg, data) if prehashed else digestinfo.of_data(hash_alg, data)
        return self.sign_digest_info(slot, info, pin)

    def sign_digest_info(self, slot: Literal["auth", "sign"], digest_info: bytes, pin: str | None) -> bytes:
        """COMPUTE DIGITAL SIGNATURE over a prepared DigestInfo (or, on an ECDSA card, a bare
        hash). With ``pin`` None the PIN must already be verified in this session."""
        if slot not in files.KEY_EFS:
            raise InvalidInput("slot", "auth or sign")
        self.select_jpki()
        if pin is not None:
            self.verify_pin(slot, pin)
        self.select_ef(files.KEY_EFS[slot])
        response = self.send(A.compute_digital_signature(digest_info))
        if response.sw != SW.OK:
            raise CardError(response.sw, f"COMPUTE DIGITAL SIGNATURE {slot}")
        return response.data

    # -- text and visual applications ------------------------------------------------------------

    def read_my_number(self, pin: str, *, with_: str = "text") -> str:
        """The My Number from the text application, after its PIN (or ``with_="text_b"`` and
        照合番号B)."""
        self._verify_text(pin, with_)
        self.select_ef(files.TEXT_MY_NUMBER)
        return parse_my_number(self.read_binary(0, files.MY_NUMBER_EF_LENGTH))

    def read_attributes(self, pin: str, *, with_: str = "text") -> TextAttributes:
        self._verify_text(pin, with_)
        self.select_ef(files.TEXT_ATTRIBUTES)
        return parse_text_attributes(self.read_current_ef())

    def read_text_signature(self, pin: str, *, with_: str = "text") -> tuple[bytes, bytes, bytes]:
        """EF 0001, 0002 and 0003 of the text application, to check the issuer's signature."""
        self._verify_text(pin, with_)
        out = []
        for fid in (files.TEXT_MY_NUMBER, files.TEXT_ATTRIBUTES, files.TEXT_SIGNATURE):
            self.select_ef(fid)
            out.append(self.read_current_ef())
        return out[0], out[1], out[2]

    def read_visual(self, verification_number: str) -> VisualFace:
        """The visual application's face, after 照合番号B (14 digits) or A (the 12-digit My Number)."""
        kind = "visual_a" if len(verification_number) == 12 else "visual_b"
        self.select_df(files.VISUAL_AID, force=True)
        self.verify_pin(kind, verification_number)
        self.select_ef(files.VISUAL_FACE)
        return parse_visual_face(self.read_current_ef())

    def read_card_id(self) -> str:
        self.select_df(files.CARD_ID_AID)
        self.select_ef(files.CARD_ID)
        return self.read_binary(0, 256).decode("ascii")

    def _verify_text(self, pin: str, with_: str) -> None:
        kind = _kind(with_)
        if PINS[kind].aid != files.TEXT_AID:
            raise InvalidInput("with_", "text, text_a or text_b")
        self.select_df(files.TEXT_AID, force=True)
        self.verify_pin(kind, pin)


def _kind(which: str) -> PinKind:
    try:
        return PinKind(which)
    except ValueError:
        raise InvalidInput("which", f"one of {', '.join(k.value for k in PinKind)}") from None


def _raise_for_verify(kind: PinKind, sw: int) -> None:
    if sw == SW.OK:
        return
    if sw == SW.AUTH_BLOCKED:
        raise PinBlocked(kind.value)
    if A.is_retries_sw(sw):
        left = sw & 0x0F
        if left == 0:
            raise PinBlocked(kind.value)
        raise WrongPin(kind.value, left)
    raise CardError(sw, f"VERIFY {kind.value}")
