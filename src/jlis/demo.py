"""`jlis demo`: the whole national stack in one process on SQLite, with a synthetic population."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from jlis.container import Container
from jlis.settings import load_settings

console = Console()


def prepare_demo(
    data_dir: Path, *, residents: int, municipalities: int
) -> tuple[Container, list[tuple[str, str, str]]]:
    """Migrate, seed when empty, create the demo accounts; return the container and the accounts."""
    from jlis.auth.service import ensure_demo_users
    from jlis.cli.main import run_seed
    from jlis.migrate import upgrade
    from jlis.registry.tables import ResidentRow
    from jlis.seed import choose_municipalities

    settings = load_settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'jlis.sqlite3'}")
    upgrade(settings.resolved_database_url)
    container = Container(settings)
    with container.factory() as s:
        seeded = s.execute(select(ResidentRow.lg_code).distinct()).scalars().all()
        count = s.execute(select(func.count()).select_from(ResidentRow)).scalar_one()
    if count == 0:
        lg_codes = choose_municipalities(container.geography, municipalities)
        run_seed(container, lg_codes, residents, seed=0)
    else:
        lg_codes = sorted(seeded)
        console.print(f"using the existing population: {count:,} residents in {data_dir}")
    users = ensure_demo_users(container.factory, container.geography, container.provision_table, lg_codes)
    return container, users


def run_demo(*, data_dir: Path, host: str, port: int, residents: int, municipalities: int) -> None:
    import uvicorn

    from jlis.web import create_app

    container, users = prepare_demo(data_dir, residents=residents, municipalities=municipalities)
    table = Table(title=f"jlis demo — http://{host}:{port}/ (API: http://{host}:{port}/docs)")
    for col in ("user", "password", "who"):
        table.add_column(col)
    for user, password, who in users:
        table.add_row(user, password, who)
    console.print(table)
    uvicorn.run(create_app(container, relay_worker=True), host=host, port=port, log_level="warning")
