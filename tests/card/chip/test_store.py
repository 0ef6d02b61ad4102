"""The sealed chip store and the chip pool, on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.card.chip import store as S
from jlis.card.chip.chip import VirtualChip
from jlis.card.chip.store import ChipStore, Sealer, card_issuer_key, fill_pool, start_pool_filler, storage_key
from jlis.card.tables import ChipPoolRow, ChipRow
from jlis.clock import FixedClock
from jlis.errors import InvalidInput, NotFound


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    key = storage_key(tmp_path / "keys")
    assert len(key) == 32
    path = tmp_path / "keys" / S.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert storage_key(tmp_path / "keys") == key


def test_short_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / S.KEY_FILE).write_bytes(bytes(20))
    with pytest.raises(ValueError):
        storage_key(tmp_path)


def test_sealer() -> None:
    sealer = Sealer(bytes(32))
    sealed = sealer.seal("jlis-chip:A", b"state")
    assert b"state" not in sealed
    assert sealer.unseal("jlis-chip:A", sealed) == b"state"
    for aad, blob in (
        ("jlis-chip:B", sealed),  # another row
        ("jlis-chip:A", sealed[:-1] + bytes([sealed[-1] ^ 1])),  # altered
        ("jlis-chip:A", b"\x02" + sealed[1:]),  # unknown version
        ("jlis-chip:A", b"\x01"),
    ):
        with pytest.raises(InvalidInput):
            sealer.unseal(aad, blob)
    with pytest.raises(InvalidInput):
        Sealer(bytes([1]) * 32).unseal("jlis-chip:A", sealed)


def test_save_and_load(
    factory: sessionmaker[Session], tmp_path: Path, clock: FixedClock, chip: VirtualChip
) -> None:
    with factory() as session:
        store = ChipStore(session, tmp_path, clock=clock)
        store.save(chip)
        session.commit()
    with factory() as session:
        row = session.get(ChipRow, "CARD0001")
        assert row is not None and row.kind == "card" and row.card_id == "CARD0001"
        assert b"JPKIAPICCTOKEN2" not in row.blob and b"PRIVATE" not in row.blob
        loaded = ChipStore(session, tmp_path, clock=clock).load("CARD0001")
    assert loaded.to_bytes() == chip.to_bytes()
    # A PIN attempt, saved again, is still there after the next load.
    loaded.reset_pin("auth", "4321")
    with factory() as session:
        store = ChipStore(session, tmp_path, clock=clock)
        store.save(loaded)
        session.commit()
        assert store.load("CARD0001").to_bytes() == loaded.to_bytes()
        assert store.chips_of("CARD0001") == ["CARD0001"]
        with pytest.raises(NotFound):
            store.load("NOPE")


def test_another_key_dir_cannot_open(
    factory: sessionmaker[Session], tmp_path: Path, clock: FixedClock, chip: VirtualChip
) -> None:
    with factory() as session:
        ChipStore(session, tmp_path / "a", clock=clock).save(chip)
        session.commit()
        with pytest.raises(InvalidInput):
            ChipStore(session, tmp_path / "b", clock=clock).load("CARD0001")


def test_a_blob_moved_to_another_row_does_not_open(
    factory: sessionmaker[Session], tmp_path: Path, clock: FixedClock, chip: VirtualChip, kit: type
) -> None:
    other = kit.build_chip(kit.RSA, kit.cached_keygen(), card_id="CARD0002")
    with factory() as session:
        store = ChipStore(session, tmp_path, clock=clock)
        store.save(chip)
        store.save(other)
        session.commit()
        first = session.get(ChipRow, "CARD0001")
        second = session.get(ChipRow, "CARD0002")
        assert first is not None and second is not None
        second.blob = first.blob
        session.commit()
        with pytest.raises(InvalidInput):
            store.load("CARD0002")


def test_phone_chip(
    factory: sessionmaker[Session], tmp_path: Path, clock: FixedClock, keygen: object
) -> None:
    phone = VirtualChip.manufacture("CARD0001-phone", "rsa2048-sha256", keygen=keygen)  # type: ignore[arg-type]
    with factory() as session:
        store = ChipStore(session, tmp_path, clock=clock)
        store.save(phone, kind="phone", card_id="CARD0001")
        session.commit()
        assert store.chips_of("CARD0001") == ["CARD0001-phone"]
        with pytest.raises(InvalidInput):
            store.save(phone, kind="watch")
        with pytest.raises(InvalidInput):
            store.save(VirtualChip.manufacture(None, "rsa2048-sha256", keygen=keygen))  # type: ignore[arg-type]


def test_pool(factory: sessionmaker[Session], tmp_path: Path, clock: FixedClock, keygen: object) -> None:
    with factory() as session:
        store = ChipStore(session, tmp_path, clock=clock, keygen=keygen)  # type: ignore[arg-type]
        assert store.fill_pool(3, "rsa2048-sha256") == 3
        store.fill_pool(1, "p384-sha384")
        session.commit()
        assert store.pool_size("rsa2048-sha256") == 3 and store.pool_size() == 4
        pooled = session.scalars(select(ChipPoolRow).order_by(ChipPoolRow.id)).first()
        assert pooled is not None
        first_blob = pooled.blob
        chip = store.take_from_pool("CARD0001", "rsa2048-sha256")
        session.commit()
    assert chip.card_id == "CARD0001" and chip.algorithm == "rsa2048-sha256" and not chip.personalised
    with factory() as session:
        store = ChipStore(session, tmp_path, clock=clock, keygen=keygen)  # type: ignore[arg-type]
        assert store.pool_size("rsa2048-sha256") == 2
        assert store.load("CARD0001").public_key("auth") == chip.public_key("auth")
        # The oldest pooled chip was the one taken.
        assert Sealer(storage_key(tmp_path)).unseal("jlis-chip-pool:rsa2048-sha256", first_blob)
        with pytest.raises(InvalidInput):
            store.take_from_pool("CARD0001", "rsa2048-sha256")  # already has a chip
        with pytest.raises(InvalidInput):
            store.take_from_pool("CARD0009", "dsa")
        with pytest.raises(InvalidInput):
            store.fill_pool(-1, "rsa2048-sha256")
        with pytest.raises(InvalidInput):
            store.add_to_pool(chip)  # bound already


def test_empty_pool_manufactures_now(
    factory: sessionmaker[Session], tmp_path: Path, clock: FixedClock, keygen: object
) -> None:
    with factory() as session:
        store = ChipStore(session, tmp_path, clock=clock, keygen=keygen)  # type: ignore[arg-type]
        chip = store.take_from_pool("CARD0005", "p384-sha384")
        session.commit()
        assert store.pool_size() == 0
        assert store.load("CARD0005").algorithm == "p384-sha384"
        assert chip.card_id == "CARD0005"


def test_fill_pool_in_background(
    factory: sessionmaker[Session], tmp_path: Path, clock: FixedClock, keygen: object
) -> None:
    assert fill_pool(factory, tmp_path, 5, "p384-sha384", batch=2, clock=clock, keygen=keygen) == 5  # type: ignore[arg-type]
    thread, stop = start_pool_filler(factory, tmp_path, 7, "p384-sha384", batch=1, clock=clock, keygen=keygen)  # type: ignore[arg-type]
    thread.join(timeout=60)
    assert not thread.is_alive()
    with factory() as session:
        assert ChipStore(session, tmp_path, clock=clock).pool_size("p384-sha384") == 7
    stopped = threading.Event()
    stopped.set()
    assert fill_pool(factory, tmp_path, 5, "p384-sha384", clock=clock, keygen=keygen, stop=stopped) == 0  # type: ignore[arg-type]
    assert stop is not None


def test_card_issuer_key(tmp_path: Path) -> None:
    key = card_issuer_key(tmp_path)
    path = tmp_path / S.ISSUER_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"ENCRYPTED" in path.read_bytes()
    assert card_issuer_key(tmp_path).private_numbers() == key.private_numbers()


def test_take_is_undone_with_its_transaction(
    factory: sessionmaker[Session], tmp_path: Path, clock: FixedClock, keygen: object
) -> None:
    with factory() as session:
        store = ChipStore(session, tmp_path, clock=clock, keygen=keygen)  # type: ignore[arg-type]
        store.fill_pool(1, "p384-sha384")
        session.commit()
        store.take_from_pool("CARD0001", "p384-sha384")
        session.rollback()
        assert store.pool_size() == 1 and not store.exists("CARD0001")


def test_concurrent_takers_get_different_chips(
    factory: sessionmaker[Session], tmp_path: Path, clock: FixedClock, keygen: object
) -> None:
    with factory() as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
        ChipStore(session, tmp_path, clock=clock, keygen=keygen).fill_pool(2, "p384-sha384")  # type: ignore[arg-type]
        session.commit()
    with factory() as first, factory() as second:
        a = ChipStore(first, tmp_path, clock=clock, keygen=keygen).take_from_pool("CARD0001", "p384-sha384")  # type: ignore[arg-type]
        b = ChipStore(second, tmp_path, clock=clock, keygen=keygen).take_from_pool("CARD0002", "p384-sha384")  # type: ignore[arg-type]
        first.commit()
        second.commit()
    assert a.public_key("auth") != b.public_key("auth")
    with factory() as session:
        assert ChipStore(session, tmp_path, clock=clock).pool_size() == 0


def test_card_issuer_key_is_reread_when_the_file_changes(tmp_path: Path) -> None:
    first = card_issuer_key(tmp_path)
    (tmp_path / S.ISSUER_KEY_FILE).unlink()
    second = card_issuer_key(tmp_path)
    assert second.private_numbers() != first.private_numbers()
    assert card_issuer_key(tmp_path) is second
