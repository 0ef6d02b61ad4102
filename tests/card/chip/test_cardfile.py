"""Card files for relying-party developers: export, load, wrong passphrase, tampering, and PIN
counters that persist in the file."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from jlis.card.chip.cardfile import FORMAT, CardFile, export_card, load_card, save_card
from jlis.card.chip.chip import VirtualChip
from jlis.card.chip.errors import PinBlocked, WrongPin
from jlis.card.chip.reader import CardReader
from jlis.errors import InvalidInput

PASSPHRASE = "correct horse battery"


def test_export_and_load(tmp_path: Path, chip: VirtualChip) -> None:
    path = tmp_path / "card.json"
    export_card(chip, path, PASSPHRASE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT and doc["card_id"] == "CARD0001"
    assert doc["kdf"] == {"name": "scrypt", "n": 2**15, "r": 8, "p": 1}
    assert set(doc) == {"format", "card_id", "algorithm", "kdf", "salt", "nonce", "ciphertext"}
    loaded = load_card(path, PASSPHRASE)
    assert loaded.to_bytes() == chip.to_bytes()
    assert CardReader(loaded.transmit).read_my_number("2468") == "123456789018"


def test_export_refuses_to_overwrite_and_short_passphrases(tmp_path: Path, chip: VirtualChip) -> None:
    path = tmp_path / "card.json"
    export_card(chip, path, PASSPHRASE)
    with pytest.raises(InvalidInput) as err:
        export_card(chip, path, PASSPHRASE)
    assert err.value.field == "path"
    export_card(chip, path, PASSPHRASE, overwrite=True)
    with pytest.raises(InvalidInput) as err:
        export_card(chip, tmp_path / "other.json", "short")
    assert err.value.field == "passphrase"
    assert not (tmp_path / "other.json").exists()


def test_wrong_passphrase(tmp_path: Path, chip: VirtualChip) -> None:
    path = tmp_path / "card.json"
    export_card(chip, path, PASSPHRASE)
    with pytest.raises(InvalidInput) as err:
        load_card(path, "wrong passphrase")
    assert err.value.field == "passphrase"


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "card_id", "algorithm", "salt", "kdf"])
def test_tampered_file(tmp_path: Path, chip: VirtualChip, field: str) -> None:
    path = tmp_path / "card.json"
    export_card(chip, path, PASSPHRASE)
    doc = json.loads(path.read_text())
    if field in ("ciphertext", "nonce", "salt"):
        raw = bytearray(base64.b64decode(doc[field]))
        raw[-1] ^= 1
        doc[field] = base64.b64encode(bytes(raw)).decode()
    elif field == "kdf":
        doc["kdf"]["n"] = 2**14
    else:
        doc[field] = "CARD0002" if field == "card_id" else "p384-sha384"
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput):
        load_card(path, PASSPHRASE)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"[]",
        b'{"format": "jlis-card/2"}',
        b'{"format": "jlis-card/1", "kdf": {"name": "pbkdf2"}}',
        json.dumps(
            {
                "format": "jlis-card/1",
                "card_id": "X",
                "algorithm": "rsa2048-sha256",
                "kdf": {"name": "scrypt", "n": 2**30, "r": 8, "p": 1},  # would need 1 TiB: refused
                "salt": "",
                "nonce": "",
                "ciphertext": "",
            }
        ).encode(),
        b"x" * 1_000_001,
    ],
)
def test_malformed_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "card.json"
    path.write_bytes(content)
    with pytest.raises(InvalidInput):
        load_card(path, PASSPHRASE)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as err:
        load_card(tmp_path / "none.json", PASSPHRASE)
    assert err.value.field == "path"


def test_blocked_pin_stays_blocked_in_the_file(tmp_path: Path, chip: VirtualChip) -> None:
    path = tmp_path / "card.json"
    export_card(chip, path, PASSPHRASE)
    for attempt in range(3):
        card = CardFile.open(path, PASSPHRASE)  # a new process each time
        with pytest.raises((WrongPin, PinBlocked)):
            CardReader(card.transmit).verify_pin("auth", "0000")
        assert load_card(path, PASSPHRASE).pin_tries_left("auth") == 2 - attempt
    card = CardFile.open(path, PASSPHRASE)
    with pytest.raises(PinBlocked):
        CardReader(card.transmit).verify_pin("auth", "1234")
    # The explicit save works too (the counter resets the PIN, the developer exports again).
    chip2 = load_card(path, PASSPHRASE)
    chip2.reset_pin("auth", "1234")
    save_card(chip2, path, PASSPHRASE)
    assert CardReader(load_card(path, PASSPHRASE).transmit).verify_pin("auth", "1234") == 3


def test_reads_do_not_rewrite_the_file(tmp_path: Path, chip: VirtualChip) -> None:
    path = tmp_path / "card.json"
    export_card(chip, path, PASSPHRASE)
    before = path.read_bytes()
    card = CardFile.open(path, PASSPHRASE)
    reader = CardReader(card.transmit)
    reader.read_certificate("auth")
    assert reader.retries("auth") == 3
    assert path.read_bytes() == before


def test_card_files_lists_plain_ids_only(tmp_path: Path) -> None:
    from jlis.card.chip.cardfile import card_files

    assert card_files(tmp_path / "missing") == []
    for name in ("A1B2.jcard", "bad name.jcard", "notes.txt", "x..y.jcard"):
        (tmp_path / name).write_bytes(b"{}")
    (tmp_path / "dir.jcard").mkdir()
    assert [(c.card_id, c.path.name) for c in card_files(tmp_path)] == [("A1B2", "A1B2.jcard")]
