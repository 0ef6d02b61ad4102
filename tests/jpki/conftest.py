"""Fixtures of the JPKI CA tests. Names start with ``jpki_`` because other JPKI tests share this
directory."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jlis.jpki.holder import HolderInfo
from jlis.jpki.keystore import FileKeyStore

from ..conftest import require_or_skip

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
KIYOSE = "132217"  # 東京都清瀬市: the municipality of the real certificate in facts §3.2
BASE_URL = "http://jlis.test:8000"


@pytest.fixture
def jpki_keystore(tmp_path: Path) -> FileKeyStore:
    return FileKeyStore(tmp_path / "keys")


@pytest.fixture
def jpki_holder() -> HolderInfo:
    return HolderInfo(
        resident_code="12345678901",
        lg_code=KIYOSE,
        family_name="髙橋",
        given_name="𠮷郎",
        sex="male",
        birth_date=dt.date(1990, 2, 17),
        address="東京都清瀬市松山1丁目2番3号",
    )


@dataclass(frozen=True)
class SoftHsm:
    module: str
    token: str
    pin: str
    conf: Path


@pytest.fixture(scope="session")
def jpki_softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A fresh SoftHSM2 token in a temporary directory, for the whole session (SoftHSM reads its
    configuration once per process, at C_Initialize)."""
    require_or_skip(
        Path(SOFTHSM_MODULE).exists() and shutil.which("softhsm2-util") is not None, "SoftHSM2 (softhsm2)"
    )
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "jlis-test-ca",
            "--so-pin",
            "87654321",
            "--pin",
            "123456",
        ],
        check=True,
        capture_output=True,
    )
    import pkcs11

    lib = pkcs11.lib(SOFTHSM_MODULE)
    lib.reinitialize()  # in case another test loaded SoftHSM with another configuration
    yield SoftHsm(SOFTHSM_MODULE, "jlis-test-ca", "123456", conf)
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous
