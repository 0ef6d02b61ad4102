"""The ``jlis`` command. Each system mounts its own sub-commands; this module adds the
cross-cutting ones: ``db``, ``seed``, ``demo`` and ``serve``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from jlis.audit.cli import app as audit_app
from jlis.auth.cli import app as users_app
from jlis.bcl.cli import app as bcl_app
from jlis.card.cli import app as card_app
from jlis.codes.cli import app as codes_app
from jlis.jpki.cli import app as jpki_app
from jlis.juki.cli import app as juki_app
from jlis.kiosk.cli import app as kiosk_app
from jlis.lgwan.cli import app as lgwan_app
from jlis.linkage.cli import app as linkage_app
from jlis.masters.cli import app as masters_app
from jlis.settings import load_settings

app = typer.Typer(help="jlis: the J-LIS systems for local government, runnable.", no_args_is_help=True)
app.add_typer(codes_app, name="codes", help="個人番号・住民票コード・団体コード・法人番号")
app.add_typer(masters_app, name="masters", help="Prefectures, municipalities, towns, legal tables")
app.add_typer(audit_app, name="audit", help="Hash-chained audit logs")
app.add_typer(juki_app, name="juki", help="住基ネット: relay, provision, disclosure")
app.add_typer(users_app, name="users", help="Staff, operator and agency accounts")
app.add_typer(card_app, name="card", help="マイナンバーカード: application, production, delivery, export")
app.add_typer(jpki_app, name="jpki", help="公的個人認証: relying-party tools (sign, verify, login)")
app.add_typer(
    linkage_app, name="linkage", help="情報連携: 機関別符号, 情報照会, 情報提供等記録, 中間サーバー"
)
app.add_typer(kiosk_app, name="kiosk", help="コンビニ交付: certificate server and certificate PDFs")
app.add_typer(lgwan_app, name="lgwan", help="LGWAN/LGPKI: the organisation CA and 職責証明書")
app.add_typer(bcl_app, name="bcl", help="自治体基盤クラウド: backups, disasters, 罹災証明書")
db_app = typer.Typer(help="Database schema (Alembic migrations)")
app.add_typer(db_app, name="db")
console = Console()


def _settings(database_url: str | None, data_dir: Path | None = None):  # type: ignore[no-untyped-def]
    return load_settings(database_url=database_url, data_dir=data_dir)


@db_app.command("upgrade")
def db_upgrade(
    revision: str = typer.Argument("head"),
    database_url: str = typer.Option(None, help="Overrides JLIS_DATABASE_URL"),
) -> None:
    """Migrate the database to REVISION (default: the newest)."""
    from jlis.migrate import upgrade

    settings = _settings(database_url)
    upgrade(settings.resolved_database_url, revision)
    console.print(f"database at {revision}: {settings.resolved_database_url}")


@db_app.command("current")
def db_current(database_url: str = typer.Option(None)) -> None:
    from jlis.migrate import current

    console.print(current(_settings(database_url).resolved_database_url) or "(empty)")


def run_seed(container, lg_codes: list[str], residents: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    from jlis.seed import Seeder

    seeder = Seeder(
        container.factory, clock=container.clock, geography=container.geography, secret=container.secret
    )
    with Progress(
        TextColumn("[bold]住民を作成中"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("seed", total=residents)
        report = seeder.run(lg_codes, residents, seed=seed, progress=lambda n: progress.advance(task, n))
    rate = report.residents / report.seconds if report.seconds else 0.0
    console.print(
        f"seeded {report.residents:,} residents in {report.households:,} households across "
        f"{len(lg_codes)} municipalities in {report.seconds:.1f} s ({rate:,.0f}/s)"
    )


@app.command()
def seed(
    municipalities: int = typer.Option(4, "--municipalities", "-m", min=1, help="How many municipalities"),
    residents: int = typer.Option(2000, "--residents", "-r", min=1, help="How many residents in all"),
    lg_code: list[str] = typer.Option(None, "--lg-code", help="Exact municipalities (repeatable)"),
    random_seed: int = typer.Option(0, "--seed", help="Same seed, same people"),
    database_url: str = typer.Option(None),
) -> None:
    """Seed a synthetic population (Faker ja_JP, real addresses from the town master)."""
    from jlis.container import Container
    from jlis.migrate import upgrade
    from jlis.seed import choose_municipalities

    settings = _settings(database_url)
    upgrade(settings.resolved_database_url)
    container = Container(settings)
    codes = list(lg_code) if lg_code else choose_municipalities(container.geography, municipalities)
    for code in codes:
        container.geography.municipality(code)
    run_seed(container, codes, residents, random_seed)


@app.command()
def demo(
    port: int = typer.Option(8000, "--port", "-p"),
    data_dir: Path = typer.Option(Path("jlis-data"), "--data-dir", "-d"),
    host: str = typer.Option("127.0.0.1", "--host"),
    residents: int = typer.Option(2000, "--residents", help="Population seeded into an empty database"),
    municipalities: int = typer.Option(4, "--municipalities"),
) -> None:
    """Run the whole national stack in one process on SQLite, seeding it when empty."""
    from jlis.demo import run_demo

    run_demo(data_dir=data_dir, host=host, port=port, residents=residents, municipalities=municipalities)


@app.command()
def serve(
    host: str = typer.Option(None, "--host"),
    port: int = typer.Option(None, "--port"),
    database_url: str = typer.Option(None),
    relay: bool = typer.Option(True, help="Run the network relay in this process"),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Worker processes (e.g. one per core: OCSP answers scale with them)"
    ),
) -> None:
    """Serve the pages and the API on the configured database (no seeding)."""
    import os

    import uvicorn

    from jlis.container import Container
    from jlis.web import create_app

    settings = _settings(database_url)
    container = Container(settings)
    address = {
        "host": host or settings.listen_host,
        "port": port or settings.listen_port,
        "log_level": "info",
    }
    if workers == 1:
        uvicorn.run(create_app(container, relay_worker=relay), **address)  # type: ignore[arg-type]
        return
    from jlis.juki.network import RelayWorker
    from jlis.stack import build_stack_relay

    if database_url:  # the workers read their settings from the environment they inherit
        os.environ["JLIS_DATABASE_URL"] = database_url
    worker = RelayWorker(build_stack_relay(container)) if relay else None
    if worker is not None:
        worker.start()
    try:
        uvicorn.run("jlis.web.asgi:app_from_environment", factory=True, workers=workers, **address)  # type: ignore[arg-type]
    finally:
        if worker is not None:
            worker.stop()


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
