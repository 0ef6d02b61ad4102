"""Settings: defaults, a TOML file, and the environment over both."""

from __future__ import annotations

from pathlib import Path

from jlis.settings import load_settings


def test_defaults_put_everything_under_the_data_dir() -> None:
    s = load_settings(env={})
    assert s.resolved_database_url == "sqlite:///jlis-data/jlis.sqlite3"
    assert s.resolved_key_dir == Path("jlis-data/keys")
    assert (s.listen_host, s.listen_port) == ("127.0.0.1", 8000)


def test_config_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "jlis.toml"
    config.write_text(
        '[jlis]\ndatabase_url = "postgresql+psycopg://u@db/jlis"\n'
        'key_dir = "/srv/keys"\nlisten = "0.0.0.0:9000"\n',
        encoding="utf-8",
    )
    s = load_settings(env={"JLIS_CONFIG": str(config)})
    assert s.resolved_database_url == "postgresql+psycopg://u@db/jlis"
    assert s.resolved_key_dir == Path("/srv/keys") and (s.listen_host, s.listen_port) == ("0.0.0.0", 9000)
    s = load_settings(
        env={"JLIS_CONFIG": str(config), "JLIS_LISTEN": "127.0.0.1:8080", "JLIS_DATA_DIR": "/d"}
    )
    assert (s.listen_host, s.listen_port) == ("127.0.0.1", 8080)
    assert (
        s.resolved_database_url == "postgresql+psycopg://u@db/jlis"
    )  # the file's URL still wins over the default


def test_explicit_overrides_win(tmp_path: Path) -> None:
    s = load_settings(env={"JLIS_DATABASE_URL": "sqlite:///x.db"}, data_dir=tmp_path)
    assert s.resolved_database_url == "sqlite:///x.db" and s.resolved_key_dir == tmp_path / "keys"
