"""Settings from environment variables, with an optional TOML config file.

Precedence: environment > config file (``JLIS_CONFIG`` or ``./jlis.toml``) > defaults.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

ENV_PREFIX = "JLIS_"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("jlis-data")
    database_url: str = ""
    key_dir: Path = field(default=Path(""))
    listen_host: str = "127.0.0.1"
    listen_port: int = 8000
    # The J-LIS secret behind the My Number derivation (番号法 §8(2)); generated into key_dir if absent.
    secret_file: str = "mynumber-derivation.key"
    # The address relying parties reach this instance at: certificates carry it in their CRL
    # distribution points and AIA (OCSP). Empty: http://<listen_host>:<listen_port>.
    public_url: str = ""
    # PKCS#11 module for the CA keys (e.g. /usr/lib/softhsm/libsofthsm2.so); empty: keys are files,
    # encrypted under the key directory.
    pkcs11_module: str = ""
    pkcs11_token: str = "jlis-ca"
    pkcs11_pin: str = ""

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'jlis.sqlite3'}"

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.listen_host}:{self.listen_port}").rstrip("/")

    @property
    def resolved_key_dir(self) -> Path:
        return self.key_dir if str(self.key_dir) not in ("", ".") else self.data_dir / "keys"


def _from_mapping(base: Settings, values: Mapping[str, object]) -> Settings:
    changes: dict[str, object] = {}
    for key, raw in values.items():
        key = key.lower()
        if key in ("data_dir", "key_dir"):
            changes[key] = Path(str(raw))
        elif key in ("database_url", "public_url", "pkcs11_module", "pkcs11_token", "pkcs11_pin"):
            changes[key] = str(raw)
        elif key == "listen":
            host, _, port = str(raw).rpartition(":")
            changes["listen_host"], changes["listen_port"] = host or base.listen_host, int(port)
        elif key == "listen_host":
            changes[key] = str(raw)
        elif key == "listen_port":
            changes[key] = int(str(raw))
    return replace(base, **changes)  # type: ignore[arg-type]


def load_settings(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    env = dict(os.environ if env is None else env)
    settings = Settings()
    config_path = Path(env.get("JLIS_CONFIG", "jlis.toml"))
    if config_path.is_file():
        with config_path.open("rb") as fh:
            settings = _from_mapping(settings, tomllib.load(fh).get("jlis", {}))
    from_env = {k[len(ENV_PREFIX) :]: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    settings = _from_mapping(settings, from_env)
    return _from_mapping(settings, {k: v for k, v in overrides.items() if v is not None})
