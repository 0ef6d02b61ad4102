"""The virtual My Number card chip: four applications and the card-ID DF, PIN counters, two key
pairs generated on the chip, and an ISO 7816-4 APDU interface (facts §2).

The chip is a plain object with no I/O: ``transmit`` answers one command APDU the way the card does,
``to_bytes``/``from_bytes`` carry its persistent state (the store seals it), and a handful of
methods stand for what the card-issuing system and the municipal counter do with their own
terminals (manufacture, personalise, install certificates, set and reset PINs, rewrite the address,
void). What persists: keys, file contents, PIN reference data (salted SHA-256) and retry counters,
the voided flag. What does not: the selected DF/EF and the verified PINs — a chip restored from bytes
is a card just inserted in a reader.

Private keys never leave the object: no method returns them, only ``to_bytes`` (for the sealed
store and the passphrase-protected card file) writes them out.

Voiding (廃止): after ``void()`` every SELECT answers 6A81 (function not supported: the
applications are terminated) and every other command 6985 (conditions of use not satisfied, as
there is no current DF); the counter methods raise :class:`CardVoided`. A voided card is never revived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from jlis.card.chip import apdu as A
from jlis.card.chip import digestinfo, files
from jlis.card.chip import face as F
from jlis.card.chip.apdu import SW, ApduError, Command
from jlis.card.chip.errors import CardVoided, PinBlocked, WrongPin
from jlis.card.chip.files import APPLICATIONS, PINS, Application, EfKind, EfSpec, PinKind
from jlis.errors import InvalidInput, RuleViolation

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
Keygen = Callable[[Any], PrivateKey]
Slot = Literal["auth", "sign"]
SLOTS: tuple[Slot, Slot] = ("auth", "sign")

FORMAT = "jlis-chip/1"
_CARD_ID = re.compile(r"[A-Za-z0-9_.:-]{1,40}")


def _default_keygen(algorithm: Any) -> PrivateKey:
    from jlis.jpki.profile import generate_private_key

    return generate_private_key(algorithm)


def parse_algorithm(value: str) -> str:
    """The jlis.jpki.profile.Algorithm named by ``value`` (InvalidInput for any other)."""
    from jlis.jpki.profile import Algorithm

    return Algorithm.parse(str(value))


@dataclass
class _Pin:
    digest: bytes | None  # salted SHA-256 of the reference value; None while not set
    tries_left: int


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


class VirtualChip:
    """One card's chip. Build it with :meth:`manufacture` or :meth:`from_bytes`."""

    def __init__(
        self,
        *,
        card_id: str | None,
        algorithm: str,
        keys: dict[str, PrivateKey],
        data: dict[tuple[bytes, int], bytes],
        pins: dict[PinKind, _Pin],
        salt: bytes,
        voided: bool = False,
    ) -> None:
        self._card_id = card_id
        self._algorithm = algorithm
        self._keys = keys
        self._data = data
        self._pins = pins
        self._salt = salt
        self._voided = voided
        # Volatile state: lost on reset, cleared by a SELECT of a DF.
        self._df: Application | None = None
        self._ef: EfSpec | None = None
        self._verified: set[PinKind] = set()

    def __repr__(self) -> str:
        return f"VirtualChip(card_id={self._card_id!r}, algorithm={self._algorithm!r}, voided={self._voided})"

    # -- manufacture -------------------------------------------------------------------------------

    @classmethod
    def manufacture(
        cls,
        card_id: str | None,
        algorithm: str,
        *,
        keygen: Keygen | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> VirtualChip:
        """A blank chip of ``algorithm`` (a jlis.jpki.profile.Algorithm value) with its
        authentication and signing key pairs generated on it and the JPKI token written.

        ``card_id`` may be None for a pooled chip; :meth:`bind` gives it one later. ``keygen``
        (default ``jlis.jpki.profile.generate_private_key``) receives the Algorithm."""
        alg = parse_algorithm(algorithm)
        gen = keygen or _default_keygen
        keys: dict[str, PrivateKey] = {slot: gen(alg) for slot in SLOTS}
        for slot, key in keys.items():
            _check_key(alg, key, slot)
        chip = cls(
            card_id=None,
            algorithm=str(alg),
            keys=keys,
            data={},
            pins={kind: _Pin(None, spec.max_tries) for kind, spec in PINS.items()},
            salt=rng(16),
        )
        chip._write(files.JPKI_AID, files.JPKI_TOKEN, files.TOKEN_TEXT.ljust(files.TOKEN_LENGTH, b" "))
        if card_id is not None:
            chip.bind(card_id)
        return chip

    def bind(self, card_id: str) -> None:
        """Give a pooled blank chip its card id (written to the card-ID DF). Only once."""
        if not _CARD_ID.fullmatch(card_id):
            raise InvalidInput("card_id", "1 to 40 characters A-Z, a-z, 0-9, _ . : -")
        if self._card_id is not None:
            raise RuleViolation("card_id", "a chip is bound to one card only")
        self._card_id = card_id
        self._write(files.CARD_ID_AID, files.CARD_ID, card_id.encode("ascii"))

    @property
    def card_id(self) -> str | None:
        return self._card_id

    @property
    def algorithm(self) -> str:
        return self._algorithm

    @property
    def voided(self) -> bool:
        return self._voided

    @property
    def personalised(self) -> bool:
        return (files.TEXT_AID, files.TEXT_MY_NUMBER) in self._data

    def public_key(self, slot: Slot) -> PublicKey:
        if slot not in SLOTS:
            raise InvalidInput("slot", "auth or sign")
        return self._keys[slot].public_key()

    def file(self, aid: bytes, fid: int) -> bytes:
        """The content of a data EF, for the counter and tests (keys and PINs are never files)."""
        app = APPLICATIONS.get(aid)
        spec = app.ef(fid) if app else None
        if spec is None or spec.kind is not EfKind.DATA:
            raise InvalidInput("fid", "a data EF of one of the card's applications")
        return self._data.get((aid, fid), b"")

    # -- personalisation (the card-issuing system / the counter) -----------------------------------

    def personalise(self, face: F.CardFace, *, issuer_key: F.IssuerKey | None = None) -> None:
        """Write the card face: the text and visual applications, 照合番号A/B, and the 住民票コード
        to the 住基AP when given. Once per chip (an address change goes through
        :meth:`rewrite_address`). ``issuer_key`` signs text EF 0003 and visual element 40."""
        self._live()
        if self.personalised:
            raise RuleViolation("chip", "already personalised")
        my_number = F.my_number_ef(face.my_number)
        attributes = F.text_attributes_ef(face)
        signature = F.text_signature_ef(my_number, attributes, issuer_key)
        visual = F.visual_face_ef(face, issuer_key)
        b = F.verification_number_b(face)
        self._write(files.TEXT_AID, files.TEXT_MY_NUMBER, my_number)
        self._write(files.TEXT_AID, files.TEXT_ATTRIBUTES, attributes)
        self._write(files.TEXT_AID, files.TEXT_SIGNATURE, signature)
        self._write(files.VISUAL_AID, files.VISUAL_FACE, visual)
        if face.resident_code is not None:
            self._write(files.JUKI_AID, files.JUKI_RESIDENT_CODE, face.resident_code.encode("ascii"))
        for kind, value in (
            (PinKind.TEXT_A, face.my_number),
            (PinKind.VISUAL_A, face.my_number),
            (PinKind.TEXT_B, b),
            (PinKind.VISUAL_B, b),
        ):
            self._set_pin(kind, value)

    def install_certificates(
        self,
        auth_cert_der: bytes,
        auth_ca_der: bytes,
        sign_cert_der: bytes | None = None,
        sign_ca_der: bytes | None = None,
    ) -> None:
        """Write the certificates issued at delivery. The signing pair is optional (not issued by
        default to a holder under 15). Each end-entity certificate must certify this chip's key;
        everything is checked before anything is written."""
        self._live()
        if (sign_cert_der is None) != (sign_ca_der is None):
            raise InvalidInput("sign_ca_der", "given together with the signing certificate")
        writes = self._certificate_writes("auth", auth_cert_der, auth_ca_der)
        if sign_cert_der is not None and sign_ca_der is not None:
            writes += self._certificate_writes("sign", sign_cert_der, sign_ca_der)
        for fid, content in writes:
            self._write(files.JPKI_AID, fid, content)

    def install_certificate(self, slot: Slot, cert_der: bytes, ca_der: bytes) -> None:
        """Write (or replace, on renewal) one slot's certificate and its CA certificate."""
        self._live()
        for fid, content in self._certificate_writes(slot, cert_der, ca_der):
            self._write(files.JPKI_AID, fid, content)

    def _certificate_writes(self, slot: Slot, cert_der: bytes, ca_der: bytes) -> list[tuple[int, bytes]]:
        if slot not in SLOTS:
            raise InvalidInput("slot", "auth or sign")
        try:
            cert = x509.load_der_x509_certificate(cert_der)
        except ValueError:
            raise InvalidInput(f"{slot}_cert_der", "a DER X.509 certificate") from None
        try:
            x509.load_der_x509_certificate(ca_der)
        except ValueError:
            raise InvalidInput(f"{slot}_ca_der", "a DER X.509 certificate") from None
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if cert.public_key().public_bytes(der, spki) != self.public_key(slot).public_bytes(der, spki):
            raise InvalidInput(f"{slot}_cert_der", f"must certify the chip's {slot} key")
        if slot == "auth":
            return [(files.JPKI_AUTH_CERT, bytes(cert_der)), (files.JPKI_AUTH_CA_CERT, bytes(ca_der))]
        return [(files.JPKI_SIGN_CERT, bytes(cert_der)), (files.JPKI_SIGN_CA_CERT, bytes(ca_der))]

    def set_pins(self, auth_pin: str, sign_password: str | None, juki_pin: str, text_pin: str) -> None:
        """The holder sets the four PINs at delivery (the signing password may be absent when no
        signing certificate is issued). All are checked before any is written."""
        self._live()
        wanted = {
            PinKind.AUTH: auth_pin,
            PinKind.SIGN: sign_password,
            PinKind.JUKI: juki_pin,
            PinKind.TEXT: text_pin,
        }
        for kind, value in wanted.items():
            if value is not None:
                _check_pin_format(kind, value)
        for kind, value in wanted.items():
            if value is not None:
                self._set_pin(kind, value)

    def reset_pin(self, which: str, new: str) -> None:
        """The counter resets a PIN (blocked or forgotten) after an identity check: new value, full
        counter. Only the four holder PINs; the verification numbers follow the card face."""
        self._live()
        kind = _holder_pin(which)
        _check_pin_format(kind, new)
        self._set_pin(kind, new)

    def reset_verification_numbers(self) -> None:
        """The counter restores the tries of 照合番号A/B (their values follow the card face)."""
        self._live()
        for kind in files.FACE_PINS:
            self._pins[kind].tries_left = PINS[kind].max_tries

    def pin_tries_left(self, which: str) -> int:
        """The retry counter as the counter terminal shows it (0 = blocked)."""
        try:
            kind = PinKind(which)
        except ValueError:
            raise InvalidInput("which", f"one of {', '.join(k.value for k in PinKind)}") from None
        return self._pins[kind].tries_left

    def pin_is_set(self, which: str) -> bool:
        return self._pins[_holder_pin(which)].digest is not None

    def rewrite_address(
        self, new_address: str, *, juki_pin: str, issuer_key: F.IssuerKey | None = None
    ) -> None:
        """継続利用 after a move: the counter, with the holder's 住民基本台帳用 PIN, rewrites the
        address in the text application (and re-signs EF 0003 with ``issuer_key``). The visual
        application keeps the face as printed: a move is endorsed on the back (追記欄).

        A wrong PIN decrements the 住基 counter and raises :class:`WrongPin`; a blocked one raises
        :class:`PinBlocked` (reset it with :meth:`reset_pin` first)."""
        self._live()
        if not new_address or not new_address.strip():
            raise InvalidInput("address", "must not be empty")
        if len(new_address.encode("utf-8")) > 1000:
            raise InvalidInput("address", "at most 1000 bytes of UTF-8")
        if not self.personalised:
            raise RuleViolation("chip", "not personalised yet")
        sw = self._verify(PinKind.JUKI, juki_pin.encode("utf-8", "replace"))
        self._verified.discard(PinKind.JUKI)  # the counter's session ends with the rewrite
        _raise_for_pin(PinKind.JUKI, sw)
        attributes = F.replace_address(self._data[(files.TEXT_AID, files.TEXT_ATTRIBUTES)], new_address)
        my_number = self._data[(files.TEXT_AID, files.TEXT_MY_NUMBER)]
        self._write(files.TEXT_AID, files.TEXT_ATTRIBUTES, attributes)
        self._write(
            files.TEXT_AID, files.TEXT_SIGNATURE, F.text_signature_ef(my_number, attributes, issuer_key)
        )

    def void(self) -> None:
        """廃止: terminate every application. Irreversible."""
        self._voided = True
        self._df = None
        self._ef = None
        self._verified.clear()

    def reset(self) -> None:
        """A card reset (removed from the reader): volatile state is lost."""
        self._df = None
        self._ef = None
        self._verified.clear()

    # -- APDU interface ---------------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        """Answer one command APDU with response data followed by SW1 SW2."""
        try:
            cmd = Command.parse(apdu)
        except ApduError as exc:
            return exc.sw.to_bytes(2, "big")
        data, sw = self._dispatch(cmd)
        return data + int(sw).to_bytes(2, "big")

    def _dispatch(self, cmd: Command) -> tuple[bytes, int]:
        if cmd.cla == A.CLA_ISO:
            handler = {
                A.INS_SELECT: self._select,
                A.INS_READ_BINARY: self._read_binary,
                A.INS_VERIFY: self._verify_apdu,
                A.INS_CHANGE_REFERENCE_DATA: self._change_reference_data,
            }.get(cmd.ins)
        elif cmd.cla == A.CLA_PROPRIETARY:
            handler = {A.INS_COMPUTE_DIGITAL_SIGNATURE: self._compute_signature}.get(cmd.ins)
        else:
            return b"", SW.CLA_NOT_SUPPORTED
        if handler is None:
            return b"", SW.INS_NOT_SUPPORTED
        if self._voided:
            return b"", SW.FUNCTION_NOT_SUPPORTED if cmd.ins == A.INS_SELECT else SW.CONDITIONS_NOT_SATISFIED
        return handler(cmd)

    def _select(self, cmd: Command) -> tuple[bytes, int]:
        if cmd.p2 != 0x0C:  # only "no response data" is supported, as the card's readers send
            return b"", SW.INCORRECT_P1P2
        if cmd.p1 == 0x04:
            if not cmd.data:
                return b"", SW.WRONG_LENGTH
            app = APPLICATIONS.get(cmd.data)
            if app is None:
                return b"", SW.FILE_NOT_FOUND
            # Selecting a DF resets the security state, as on the real card.
            self._df, self._ef = app, None
            self._verified.clear()
            return b"", SW.OK
        if cmd.p1 == 0x02:
            if len(cmd.data) != 2:
                return b"", SW.WRONG_LENGTH
            ef = self._df.ef(int.from_bytes(cmd.data, "big")) if self._df else None
            if ef is None:
                return b"", SW.FILE_NOT_FOUND
            self._ef = ef
            return b"", SW.OK
        return b"", SW.INCORRECT_P1P2

    def _read_binary(self, cmd: Command) -> tuple[bytes, int]:
        if cmd.data or cmd.le is None:
            return b"", SW.WRONG_LENGTH
        if cmd.p1 & 0x80:  # short EF identifier in P1: not supported by this card
            return b"", SW.INCORRECT_P1P2
        if self._df is None or self._ef is None:
            return b"", SW.NO_CURRENT_EF
        ef = self._ef
        # Fails closed: keys and PIN reference data have no read access condition at all.
        if ef.kind is not EfKind.DATA or (ef.access and not ef.access & self._verified):
            return b"", SW.SECURITY_NOT_SATISFIED
        content = self._data.get((self._df.aid, ef.fid), b"")
        offset = (cmd.p1 << 8) | cmd.p2
        if offset >= len(content):
            return b"", SW.OFFSET_BEYOND_EF
        return content[offset : offset + cmd.le], SW.OK  # a short read at the end of the file

    def _current_pin(self) -> tuple[PinKind | None, int]:
        if self._df is None or self._ef is None:
            return None, SW.NO_CURRENT_EF
        if self._ef.kind is not EfKind.PIN:
            return None, SW.INCOMPATIBLE_FILE
        (kind,) = self._ef.access
        return kind, SW.OK

    def _verify_apdu(self, cmd: Command) -> tuple[bytes, int]:
        if cmd.p1 != 0x00 or cmd.p2 != 0x80:
            return b"", SW.INCORRECT_P1P2
        kind, sw = self._current_pin()
        if kind is None:
            return b"", sw
        if not cmd.data:  # retry query
            pin = self._pins[kind]
            if pin.digest is None:
                return b"", SW.CONDITIONS_NOT_SATISFIED
            return b"", SW.AUTH_BLOCKED if pin.tries_left == 0 else A.retries_sw(pin.tries_left)
        return b"", self._verify(kind, cmd.data)

    def _verify(self, kind: PinKind, value: bytes) -> int:
        """Compare a PIN. Right: counter back to full, PIN verified. Wrong: one try less (63Cx, the
        blocking attempt answering 63C0); blocked: 6983 without comparing."""
        pin = self._pins[kind]
        if pin.digest is None:
            return SW.CONDITIONS_NOT_SATISFIED
        if pin.tries_left == 0:
            return SW.AUTH_BLOCKED
        if hmac.compare_digest(self._pin_digest(kind, value), pin.digest):
            pin.tries_left = PINS[kind].max_tries
            self._verified.add(kind)
            return SW.OK
        pin.tries_left -= 1
        self._verified.discard(kind)
        return A.retries_sw(pin.tries_left)

    def _change_reference_data(self, cmd: Command) -> tuple[bytes, int]:
        if cmd.p1 != 0x01 or cmd.p2 != 0x80:
            return b"", SW.INCORRECT_P1P2
        kind, sw = self._current_pin()
        if kind is None:
            return b"", sw
        if not PINS[kind].holder_set:
            return b"", SW.CONDITIONS_NOT_SATISFIED  # verification numbers follow the card face
        if self._pins[kind].tries_left == 0:
            return b"", SW.AUTH_BLOCKED
        if kind not in self._verified:
            return b"", SW.SECURITY_NOT_SATISFIED
        if not cmd.data:
            return b"", SW.WRONG_LENGTH
        try:
            new = cmd.data.decode("ascii")
        except UnicodeDecodeError:
            return b"", SW.WRONG_DATA
        if not files.pin_format_ok(kind, new):
            return b"", SW.WRONG_DATA
        self._set_pin(kind, new)
        self._verified.add(kind)
        return b"", SW.OK

    def _compute_signature(self, cmd: Command) -> tuple[bytes, int]:
        if cmd.p1 != 0x00 or cmd.p2 != 0x80:
            return b"", SW.INCORRECT_P1P2
        if self._df is None or self._ef is None:
            return b"", SW.NO_CURRENT_EF
        if self._ef.kind is not EfKind.KEY:
            return b"", SW.INCOMPATIBLE_FILE
        if not self._ef.access & self._verified:
            return b"", SW.SECURITY_NOT_SATISFIED
        if not cmd.data:
            return b"", SW.WRONG_LENGTH
        key = self._keys[files.SLOT_BY_KEY_EF[self._ef.fid]]
        return _sign(key, cmd.data)

    # -- persistence ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The persistent state, private keys included, in clear: seal it before storing
        (``ChipStore``, ``cardfile``)."""
        doc = {
            "format": FORMAT,
            "card_id": self._card_id,
            "algorithm": self._algorithm,
            "voided": self._voided,
            "salt": _b64(self._salt),
            "keys": {
                slot: _b64(
                    key.private_bytes(
                        serialization.Encoding.DER,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                )
                for slot, key in self._keys.items()
            },
            "files": {
                f"{aid.hex().upper()}/{fid:04X}": _b64(v) for (aid, fid), v in sorted(self._data.items())
            },
            "pins": {
                kind.value: {"digest": _b64(p.digest) if p.digest else None, "tries_left": p.tries_left}
                for kind, p in self._pins.items()
            },
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, blob: bytes) -> VirtualChip:
        """A chip from :meth:`to_bytes`. Meant for blobs that were sealed (store, card file): the RSA
        keys' consistency check is skipped for speed. InvalidInput for anything malformed."""
        try:
            doc = json.loads(blob)
            if doc.get("format") != FORMAT:
                raise ValueError("format")
            keys: dict[str, PrivateKey] = {}
            for slot in SLOTS:
                # The blob was sealed by us (AES-GCM store or passphrase file) and the key checked
                # when generated; RSA's consistency check costs ~150 ms a key, on every load.
                key = serialization.load_der_private_key(
                    _unb64(doc["keys"][slot]), password=None, unsafe_skip_rsa_key_validation=True
                )
                if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                    raise ValueError("key type")
                keys[slot] = key
            data: dict[tuple[bytes, int], bytes] = {}
            for name, value in doc["files"].items():
                aid_hex, fid_hex = name.split("/")
                data[(bytes.fromhex(aid_hex), int(fid_hex, 16))] = _unb64(value)
            pins: dict[PinKind, _Pin] = {}
            for kind in PinKind:
                entry = doc["pins"][kind.value]
                tries = int(entry["tries_left"])
                if not 0 <= tries <= PINS[kind].max_tries:
                    raise ValueError("tries")
                pins[kind] = _Pin(_unb64(entry["digest"]) if entry["digest"] else None, tries)
            return cls(
                card_id=doc["card_id"],
                algorithm=str(doc["algorithm"]),
                keys=keys,
                data=data,
                pins=pins,
                salt=_unb64(doc["salt"]),
                voided=bool(doc["voided"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput("chip", "a serialised jlis-chip/1 chip") from exc

    # -- internals --------------------------------------------------------------------------------

    def _live(self) -> None:
        if self._voided:
            raise CardVoided(self._card_id or "(unbound)")

    def _write(self, aid: bytes, fid: int, content: bytes) -> None:
        self._data[(aid, fid)] = content

    def _pin_digest(self, kind: PinKind, value: bytes) -> bytes:
        return hashlib.sha256(self._salt + kind.value.encode("ascii") + b"\x00" + value).digest()

    def _set_pin(self, kind: PinKind, value: str) -> None:
        self._pins[kind] = _Pin(self._pin_digest(kind, value.encode("ascii")), PINS[kind].max_tries)


def _sign(key: PrivateKey, payload: bytes) -> tuple[bytes, int]:
    """COMPUTE DIGITAL SIGNATURE. RSA: PKCS#1 v1.5 over the DigestInfo as given (SHA-1/256/384/512).
    ECDSA (next-generation profile): a DigestInfo or a bare SHA-256/384/512 hash; the answer is the
    DER ECDSA-Sig-Value (what X.509 and CMS carry), not the raw r||s some cards return."""
    if isinstance(key, rsa.RSAPrivateKey):
        try:
            hash_alg, digest = digestinfo.decode(payload)
        except ValueError:
            return b"", SW.WRONG_DATA
        return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hash_alg)), SW.OK
    try:
        hash_alg, digest = digestinfo.decode(payload)
    except ValueError:
        raw = digestinfo.hash_for_raw_digest(payload)
        if raw is None:
            return b"", SW.WRONG_DATA
        hash_alg, digest = raw, payload
    return key.sign(digest, ec.ECDSA(utils.Prehashed(hash_alg))), SW.OK


def _check_key(algorithm: str, key: PrivateKey, slot: str) -> None:
    from jlis.jpki.profile import algorithm_of

    try:
        matches = algorithm_of(key) == algorithm
    except InvalidInput:
        matches = False
    if not matches:
        raise InvalidInput("keygen", f"the {slot} key does not match {algorithm}")


def _holder_pin(which: str) -> PinKind:
    try:
        kind = PinKind(which)
    except ValueError:
        kind = None
    if kind is None or not PINS[kind].holder_set:
        raise InvalidInput("which", "one of auth, sign, juki, text")
    return kind


def _check_pin_format(kind: PinKind, value: str) -> None:
    if not isinstance(value, str) or not files.pin_format_ok(kind, value):
        raise InvalidInput(f"{kind.value}_pin", PINS[kind].rule)


def _raise_for_pin(kind: PinKind, sw: int) -> None:
    if sw == SW.OK:
        return
    if sw == SW.AUTH_BLOCKED or sw == A.retries_sw(0):
        raise PinBlocked(kind.value)
    if A.is_retries_sw(sw):
        raise WrongPin(kind.value, sw & 0x0F)
    raise RuleViolation(f"{kind.value}_pin", "not set on this chip")


__all__ = ["SLOTS", "Keygen", "PrivateKey", "PublicKey", "Slot", "VirtualChip"]
