"""Chips at rest: each chip's state (keys included) sealed with AES-256-GCM under the chip-storage
key of the key directory, in ``card_chips``; and a pool of blank chips manufactured ahead of time in
``card_chip_pool``, because key generation is the slow part of production (two RSA-2048 keys, about
50–100 ms each).

Sealed blob: ``01 || nonce (12) || ciphertext+tag``; associated data ``jlis-chip:<chip id>`` for a
card's chip and ``jlis-chip-pool:<algorithm>`` for a pooled one, so a blob copied onto another row
does not open. The key file ``chip-storage.key`` (32 random bytes, mode 0600) is created on first use.

The card issuer key (``card-issuer.key``) signs the text application's signature block and the
visual application's face (see ``face.py``): one RSA-2048 key per installation, PKCS#8 encrypted
with a passphrase derived from the chip-storage key.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.card.chip.chip import Keygen, VirtualChip, parse_algorithm
from jlis.card.tables import ChipPoolRow, ChipRow
from jlis.clock import Clock, SystemClock
from jlis.codes.derivation import load_or_create_secret
from jlis.errors import InvalidInput, NotFound

KEY_FILE = "chip-storage.key"
ISSUER_KEY_FILE = "card-issuer.key"
_VERSION = b"\x01"
_NONCE = 12
CARD = "card"
PHONE = "phone"


def storage_key(key_dir: Path) -> bytes:
    """The chip-storage key of ``key_dir`` (created, 32 random bytes, mode 0600, if absent)."""
    key = load_or_create_secret(Path(key_dir) / KEY_FILE)
    if len(key) != 32:
        raise ValueError(f"{Path(key_dir) / KEY_FILE} must hold 32 bytes, not {len(key)}")
    return key


class Sealer:
    """AES-GCM sealing of chip blobs; pure apart from the nonce source."""

    def __init__(self, key: bytes, rng: Callable[[int], bytes] = os.urandom) -> None:
        self._aead = AESGCM(key)
        self._rng = rng

    def seal(self, aad: str, blob: bytes) -> bytes:
        nonce = self._rng(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, blob, aad.encode("utf-8"))

    def unseal(self, aad: str, sealed: bytes) -> bytes:
        # Fails closed: a wrong key, another row's blob or any altered byte refuses to open.
        if len(sealed) < 1 + _NONCE + 16 or sealed[:1] != _VERSION:
            raise InvalidInput("chip", "not a sealed chip blob")
        try:
            return self._aead.decrypt(sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :], aad.encode("utf-8"))
        except InvalidTag:
            raise InvalidInput("chip", "sealed under another key, for another chip, or altered") from None


def _chip_aad(chip_id: str) -> str:
    return f"jlis-chip:{chip_id}"


def _pool_aad(algorithm: str) -> str:
    return f"jlis-chip-pool:{algorithm}"


class ChipStore:
    """Chips of one database session. The caller commits; every method leaves the session as one
    unit of work (a taken pool chip and its new card row go in the same transaction)."""

    def __init__(
        self,
        session: Session,
        key_dir: Path,
        *,
        clock: Clock | None = None,
        keygen: Keygen | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._session = session
        self._key_dir = Path(key_dir)
        self._sealer = Sealer(storage_key(self._key_dir), rng)
        self._clock = clock or SystemClock()
        self._keygen = keygen
        self._rng = rng

    # -- cards' chips -----------------------------------------------------------------------------

    def save(self, chip: VirtualChip, *, kind: str = CARD, card_id: str | None = None) -> None:
        """Insert or update a chip under its own id (``chip.card_id``). For a phone key store, the
        chip's id is e.g. ``<card id>-phone``, ``kind`` is ``phone`` and ``card_id`` the card's."""
        chip_id = chip.card_id
        if chip_id is None:
            raise InvalidInput("chip", "bound to a card id before it is stored")
        if kind not in (CARD, PHONE):
            raise InvalidInput("kind", "card or phone")
        owner = card_id or chip_id
        if len(owner) > 32:
            raise InvalidInput("card_id", "at most 32 characters")
        blob = self._sealer.seal(_chip_aad(chip_id), chip.to_bytes())
        row = self._session.get(ChipRow, chip_id)
        now = self._clock.now()
        if row is None:
            self._session.add(ChipRow(id=chip_id, card_id=owner, kind=kind, blob=blob, updated_at=now))
        else:
            row.blob = blob
            row.updated_at = now
        self._session.flush()

    def load(self, chip_id: str) -> VirtualChip:
        row = self._session.get(ChipRow, chip_id)
        if row is None:
            raise NotFound("chip", chip_id)
        chip = VirtualChip.from_bytes(self._sealer.unseal(_chip_aad(chip_id), row.blob))
        if chip.card_id != chip_id:  # fails closed on a row whose content names another chip
            raise InvalidInput("chip", "stored chip does not carry its row's id")
        return chip

    def exists(self, chip_id: str) -> bool:
        return self._session.get(ChipRow, chip_id) is not None

    def chips_of(self, card_id: str) -> list[str]:
        """Ids of the chips (card and phone) stored for a card."""
        return list(
            self._session.scalars(select(ChipRow.id).where(ChipRow.card_id == card_id).order_by(ChipRow.id))
        )

    # -- the pool ---------------------------------------------------------------------------------

    def manufacture(self, algorithm: str) -> VirtualChip:
        """A blank, unbound chip, keys generated now (the slow path)."""
        return VirtualChip.manufacture(None, algorithm, keygen=self._keygen, rng=self._rng)

    def fill_pool(self, n: int, algorithm: str) -> int:
        """Manufacture ``n`` blank chips into the pool (flushed, not committed). Returns ``n``."""
        if n < 0:
            raise InvalidInput("n", "not negative")
        for _ in range(n):
            self.add_to_pool(self.manufacture(algorithm))
        return n

    def add_to_pool(self, chip: VirtualChip) -> None:
        if chip.card_id is not None or chip.personalised:
            raise InvalidInput("chip", "a blank, unbound chip")
        blob = self._sealer.seal(_pool_aad(chip.algorithm), chip.to_bytes())
        self._session.add(ChipPoolRow(algorithm=chip.algorithm, blob=blob, created_at=self._clock.now()))
        self._session.flush()

    def pool_size(self, algorithm: str | None = None) -> int:
        query = select(func.count()).select_from(ChipPoolRow)
        if algorithm is not None:
            query = query.where(ChipPoolRow.algorithm == parse_algorithm(algorithm))
        return int(self._session.scalar(query) or 0)

    def take_from_pool(
        self, card_id: str, algorithm: str, *, kind: str = CARD, owner: str | None = None
    ) -> VirtualChip:
        """A chip for ``card_id``: the oldest pooled blank chip of ``algorithm`` (manufactured now if
        the pool is empty), bound to the card and saved in ``card_chips`` in the same transaction as
        the pool row's removal. On PostgreSQL concurrent takers skip each other's locked rows."""
        if self.exists(card_id):
            raise InvalidInput("card_id", "has no chip yet")
        algorithm = parse_algorithm(algorithm)
        row = self._session.scalars(
            select(ChipPoolRow)
            .where(ChipPoolRow.algorithm == algorithm)
            .order_by(ChipPoolRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            chip = self.manufacture(algorithm)
        else:
            chip = VirtualChip.from_bytes(self._sealer.unseal(_pool_aad(row.algorithm), row.blob))
            self._session.delete(row)
        chip.bind(card_id)
        self.save(chip, kind=kind, card_id=owner)
        return chip

    # -- the card issuer key ----------------------------------------------------------------------

    def issuer_key(self) -> rsa.RSAPrivateKey:
        return card_issuer_key(self._key_dir)


def fill_pool(
    factory: sessionmaker[Session],
    key_dir: Path,
    n: int,
    algorithm: str,
    *,
    batch: int = 10,
    clock: Clock | None = None,
    keygen: Keygen | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Fill the pool from a background thread: its own sessions, a commit every ``batch`` chips so
    a demo can take chips while the pool grows. ``stop`` ends it early. Returns the chips added."""
    added = 0
    while added < n and not (stop is not None and stop.is_set()):
        count = min(batch, n - added)
        with factory() as session:
            store = ChipStore(session, key_dir, clock=clock, keygen=keygen)
            store.fill_pool(count, algorithm)
            session.commit()
        added += count
    return added


def start_pool_filler(
    factory: sessionmaker[Session],
    key_dir: Path,
    target: int,
    algorithm: str,
    *,
    batch: int = 10,
    clock: Clock | None = None,
    keygen: Keygen | None = None,
) -> tuple[threading.Thread, threading.Event]:
    """A daemon thread that tops the pool up to ``target`` chips of ``algorithm``; set the returned
    event to stop it after its current batch."""
    stop = threading.Event()

    def run() -> None:
        with factory() as session:
            have = ChipStore(session, key_dir, clock=clock, keygen=keygen).pool_size(algorithm)
        fill_pool(
            factory,
            key_dir,
            max(0, target - have),
            algorithm,
            batch=batch,
            clock=clock,
            keygen=keygen,
            stop=stop,
        )

    thread = threading.Thread(target=run, name=f"chip-pool-{algorithm}", daemon=True)
    thread.start()
    return thread, stop


_issuer_cache: dict[tuple[str, int, int], rsa.RSAPrivateKey] = {}
_issuer_lock = threading.Lock()


def card_issuer_key(key_dir: Path) -> rsa.RSAPrivateKey:
    """The installation's card issuer key (created on first use, mode 0600). Decrypting it costs
    ~200 ms, so it is kept per process, keyed by the file's identity (a replaced file is reread)."""
    path = Path(key_dir) / ISSUER_KEY_FILE
    with _issuer_lock:
        if path.exists():
            st = path.stat()
            ident = (str(path.resolve()), st.st_ino, st.st_mtime_ns)
            cached = _issuer_cache.get(ident)
            if cached is not None:
                return cached
        key = _load_or_create_issuer_key(Path(key_dir))
        st = path.stat()
        _issuer_cache[(str(path.resolve()), st.st_ino, st.st_mtime_ns)] = key
        return key


def _load_or_create_issuer_key(key_dir: Path) -> rsa.RSAPrivateKey:
    path = key_dir / ISSUER_KEY_FILE
    password = hashlib.sha256(b"jlis-card-issuer|" + storage_key(key_dir)).hexdigest().encode("ascii")
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another process won the race: use its key
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=password)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA key")
    return loaded
