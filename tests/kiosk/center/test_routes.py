"""The routes file: which certificate server each municipality issues through."""

from __future__ import annotations

import pytest

from jlis.kiosk.center.models import Server
from jlis.kiosk.center.routes import RouteError, load_routes, parse_routes


def test_packaged_routes() -> None:
    routes = load_routes()
    assert routes.server_for("141011") is Server.BCL
    assert routes.server_for("131016") is Server.OWN


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"default": {"server": "cloud"}}, "default.server"),
        ({"default": {"server": "own", "extra": 1}}, "default.extra"),
        ({"municipality": {"131017": {"server": "bcl"}}}, "municipality.131017"),
        ({"municipality": {"131016": "bcl"}}, "municipality.131016"),
        ({"municipality": ["131016"]}, "municipality"),
    ],
)
def test_bad_routes_name_the_entry(doc: dict[str, object], field: str) -> None:
    with pytest.raises(RouteError) as info:
        parse_routes(doc)
    assert info.value.field == field


def test_missing_file(tmp_path: object) -> None:
    from pathlib import Path

    with pytest.raises(RouteError):
        load_routes(Path(str(tmp_path)) / "nope.toml")
