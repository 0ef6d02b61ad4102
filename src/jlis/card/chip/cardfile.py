"""A card in a file, for a relying party's developer (``jlis card export``): the chip's state under
a passphrase, so the card can be used away from the J-LIS database — and keeps behaving like a
card: its PIN counters are written back to the file after every VERIFY or CHANGE REFERENCE DATA,
so a PIN blocked in development stays blocked (until the counter resets it and exports again).

File format (JSON)::

    {"format": "jlis-card/1", "card_id": "...", "algorithm": "...",
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1},
     "salt": "<base64>", "nonce": "<base64>", "ciphertext": "<base64>"}

The key is scrypt(passphrase, salt); the ciphertext is AES-256-GCM of ``VirtualChip.to_bytes()``
with the other fields (canonical JSON) as associated data, so editing the card id or the KDF
parameters is detected like editing the ciphertext.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from jlis.card.chip import apdu as A
from jlis.card.chip.chip import VirtualChip
from jlis.errors import InvalidInput

FORMAT = "jlis-card/1"
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSPHRASE = 8
# Bounds on what a file may ask of us (a hostile file must not make us allocate gigabytes).
_MAX_N = 2**20
_MAX_FILE = 1_000_000


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


class CardFile:
    """An opened card file: the chip, and the derived key to write it back.

    Use :meth:`transmit` as a reader's transport: state-changing commands are saved before the
    answer is returned (fails closed: if the file cannot be written, the caller gets no answer)."""

    def __init__(
        self,
        path: Path,
        chip: VirtualChip,
        key: bytes,
        salt: bytes,
        kdf: dict[str, Any],
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.path = Path(path)
        self.chip = chip
        self._key = key
        self._salt = salt
        self._kdf = kdf
        self._rng = rng

    @classmethod
    def create(
        cls,
        chip: VirtualChip,
        path: Path,
        passphrase: str,
        *,
        overwrite: bool = False,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> CardFile:
        if len(passphrase) < MIN_PASSPHRASE:
            raise InvalidInput("passphrase", f"at least {MIN_PASSPHRASE} characters")
        if chip.card_id is None:
            raise InvalidInput("chip", "bound to a card id")
        path = Path(path)
        if path.exists() and not overwrite:
            raise InvalidInput("path", "does not exist yet (or pass overwrite)")
        salt = rng(16)
        kdf = {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
        card = cls(path, chip, _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P), salt, kdf, rng)
        card.save()
        return card

    @classmethod
    def open(cls, path: Path, passphrase: str) -> CardFile:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise InvalidInput("path", "an existing card file") from None
        if len(raw) > _MAX_FILE:
            raise InvalidInput("card_file", "at most 1 MB")
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError("format")
            kdf = doc["kdf"]
            if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
                raise ValueError("kdf")
            n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
            if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
                raise ValueError("kdf parameters")
            salt = base64.b64decode(doc["salt"], validate=True)
            nonce = base64.b64decode(doc["nonce"], validate=True)
            ciphertext = base64.b64decode(doc["ciphertext"], validate=True)
            header = {k: doc[k] for k in ("format", "card_id", "algorithm", "kdf", "salt")}
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput("card_file", f"a {FORMAT} file") from exc
        key = _derive(passphrase, salt, n, r, p)
        try:
            blob = AESGCM(key).decrypt(nonce, ciphertext, _aad(header))
        except InvalidTag:
            raise InvalidInput("passphrase", "wrong passphrase, or the card file was altered") from None
        chip = VirtualChip.from_bytes(blob)
        if chip.card_id != doc["card_id"]:
            raise InvalidInput("card_file", "card id does not match its chip")
        return cls(path, chip, key, salt, dict(kdf))

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "card_id": self.chip.card_id,
            "algorithm": self.chip.algorithm,
            "kdf": self._kdf,
            "salt": base64.b64encode(self._salt).decode("ascii"),
        }

    def save(self) -> None:
        """Write the chip back (fresh nonce; atomic replace; mode 0600)."""
        header = self.header()
        nonce = self._rng(12)
        ciphertext = AESGCM(self._key).encrypt(nonce, self.chip.to_bytes(), _aad(header))
        doc = {
            **header,
            "nonce": base64.b64encode(nonce).decode("ascii"),
            "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
        }
        data = json.dumps(doc, indent=1).encode("ascii") + b"\n"
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def transmit(self, apdu: bytes) -> bytes:
        response = self.chip.transmit(apdu)
        if len(apdu) > 4 and apdu[0] == A.CLA_ISO and apdu[1] in (A.INS_VERIFY, A.INS_CHANGE_REFERENCE_DATA):
            self.save()  # a PIN counter or reference may have changed: persist before answering
        return response


def export_card(chip: VirtualChip, path: Path, passphrase: str, *, overwrite: bool = False) -> None:
    """Write ``chip`` to a new card file under ``passphrase`` (at least 8 characters)."""
    CardFile.create(chip, path, passphrase, overwrite=overwrite)


def load_card(path: Path, passphrase: str) -> VirtualChip:
    """The chip of a card file. InvalidInput for a wrong passphrase or an altered file."""
    return CardFile.open(path, passphrase).chip


def save_card(chip: VirtualChip, path: Path, passphrase: str) -> None:
    """Write ``chip`` back over its card file (e.g. after PIN attempts)."""
    CardFile.create(chip, path, passphrase, overwrite=True)


CARD_SUFFIX = ".jcard"
_CARD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class CardFileEntry:
    card_id: str
    path: Path


def card_files(directory: Path) -> list[CardFileEntry]:
    """The card files in ``directory`` (those ``jlis demo`` exported to ``<data dir>/cards``), by id;
    none when it does not exist. Only plain ids: a name never becomes a path the caller made up."""
    if not directory.is_dir():
        return []
    return [
        CardFileEntry(p.stem, p)
        for p in sorted(directory.glob(f"*{CARD_SUFFIX}"))
        if p.is_file() and _CARD_ID.match(p.stem)
    ]
