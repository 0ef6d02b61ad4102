"""Which certificate server each municipality issues through: its own, or the shared one of the
自治体基盤クラウド (BCL). Data: ``data/routes.toml`` (a change of route is a data change)."""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jlis.codes import LgCode
from jlis.errors import InvalidInput
from jlis.kiosk.center.models import Server
from jlis.masters.datafile import read_toml


class RouteError(InvalidInput):
    """The routes file breaks a rule: ``field`` names the entry."""


@dataclass(frozen=True)
class RouteBook:
    default: Server
    overrides: Mapping[str, Server]

    def server_for(self, lg_code: str) -> Server:
        return self.overrides.get(str(LgCode.parse(lg_code)), self.default)


def default_routes_path() -> Path:
    return Path(str(importlib.resources.files("jlis.kiosk.center") / "data" / "routes.toml"))


def load_routes(path: Path | None = None) -> RouteBook:
    """The routes file (the packaged one without ``path``, read once per process)."""
    if path is None:
        return _default()
    return _load(path)


@functools.cache
def _default() -> RouteBook:
    return _load(default_routes_path())


def _load(path: Path) -> RouteBook:
    return parse_routes(read_toml(path, lambda rule: RouteError("routes", rule)))


def parse_routes(doc: Mapping[str, Any]) -> RouteBook:
    default = _server(doc.get("default", {}), "default")
    overrides: dict[str, Server] = {}
    munis = doc.get("municipality", {})
    if not isinstance(munis, Mapping):
        raise RouteError("municipality", "must be a table of 地方公共団体コード")
    for code, entry in munis.items():
        try:
            lg = str(LgCode.parse(str(code)))
        except InvalidInput:
            raise RouteError(f"municipality.{code}", "must be a valid 地方公共団体コード") from None
        overrides[lg] = _server(entry, f"municipality.{code}")
    return RouteBook(default, overrides)


def _server(entry: object, name: str) -> Server:
    if not isinstance(entry, Mapping):
        raise RouteError(name, 'must be a table with server = "own" or "bcl"')
    unknown = set(entry) - {"server"}
    if unknown:
        raise RouteError(f"{name}.{sorted(unknown)[0]}", "unknown key (only 'server')")
    try:
        return Server(entry.get("server", Server.OWN.value))
    except ValueError:
        raise RouteError(f"{name}.server", 'must be "own" or "bcl"') from None
