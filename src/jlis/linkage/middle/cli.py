"""``jlis linkage middle ...``: a municipality's middle server from the command line (the lead mounts
``app``). A trusted local tool acting as staff ``cli`` of the municipality named by ``--lg-code``:
its reads are audited under that name like any staff read. Exit status 2 with the item and the rule
on a refusal.

- ``schemas``: the categories and items of the replica schemas (no database);
- ``sync``: 住民票関係情報 replicas from the register;
- ``seed``: synthetic 地方税 / 児童手当 / 国保 / 介護保険 (and the agencies' 年金, 医療保険) replicas;
- ``register``: one replica from JSON, as a business system would;
- ``link``: 符号一斉取得 for every addressee without a 符号, with a progress bar;
- ``show``: a person's current replicas (or one category's versions).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jlis.cli.options import DatabaseOpt, container
from jlis.db import transaction

app = typer.Typer(help="自治体中間サーバー: replicas (副本), 宛名番号 and 符号.", no_args_is_help=True)
console = Console()
ACTOR = "cli"

LgOpt = Annotated[str, typer.Option("--lg-code", help="地方公共団体コード (6 digits)")]


def _lg(lg_code: str) -> str:
    """The checked 団体コード; a bad one is exit status 2 with the rule, like any refusal."""
    from jlis.codes import LgCode
    from jlis.errors import JlisError

    try:
        return str(LgCode.parse(lg_code))
    except JlisError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None


@app.command()
def schemas() -> None:
    """The replica categories, who keeps them, and their items."""
    from jlis.linkage.middle.schemas import load_replica_schemas

    for schema in load_replica_schemas().values():
        table = Table(title=f"{schema.id} {schema.label} (holders: {', '.join(schema.holders)})")
        for col in ("item", "label", "type", "required", "choices"):
            table.add_column(col)
        for name, spec in schema.items.items():
            table.add_row(
                name, spec.label, spec.type.value, "yes" if spec.required else "", " ".join(spec.choices)
            )
        console.print(table)


@app.command()
def sync(lg_code: LgOpt, database_url: DatabaseOpt = None) -> None:
    """住民票関係情報 replicas for every resident of the municipality (idempotent)."""
    from jlis.linkage.middle.sync import sync_juminhyo

    code = _lg(lg_code)
    with container(database_url) as built, transaction(built.factory) as s:
        written = sync_juminhyo(s, built.clock, built.registry(s, code, ACTOR), actor=ACTOR)
    typer.echo(f"lg-{code}: {written} 住民票関係情報 replica version(s) written")


@app.command()
def seed(
    lg_code: LgOpt,
    seed: Annotated[int, typer.Option("--seed", help="The same seed gives the same replicas")] = 0,
    agencies: Annotated[
        bool, typer.Option("--agencies/--no-agencies", help="年金 at 日本年金機構, 医療保険 at 協会けんぽ")
    ] = True,
    database_url: DatabaseOpt = None,
) -> None:
    """Synthetic replicas for the demo population of the municipality (deterministic)."""
    from jlis.linkage.middle.sync import seed_replicas

    code = _lg(lg_code)
    with container(database_url) as built, transaction(built.factory) as s:
        report = seed_replicas(
            s, built.clock, built.registry(s, code, ACTOR), seed=seed, agencies=agencies, actor=ACTOR
        )
    written = ", ".join(f"{k} {v}" for k, v in sorted(report.written.items())) or "nothing new"
    typer.echo(f"lg-{code}: {report.residents} residents; written: {written}")


@app.command()
def register(
    lg_code: LgOpt,
    resident_code: Annotated[str, typer.Option("--resident-code", help="住民票コード")],
    category: Annotated[str, typer.Option("--category", help="e.g. local_tax")],
    data: Annotated[str, typer.Option("--data", help='JSON object, e.g. {"tax_year": 2026, ...}')],
    database_url: DatabaseOpt = None,
) -> None:
    """Register one replica (validated against its schema); prints the 宛名番号 and the version."""
    from jlis.errors import InvalidInput
    from jlis.linkage.middle.models import municipality_member
    from jlis.linkage.middle.service import MiddleServer

    code = _lg(lg_code)
    with container(database_url) as built:
        try:
            values = json.loads(data)
        except ValueError:
            raise InvalidInput("data", "must be a JSON object") from None
        if not isinstance(values, dict):
            raise InvalidInput("data", "must be a JSON object")
        with transaction(built.factory) as s:
            middle = MiddleServer(s, built.clock, municipality_member(code), actor=ACTOR)
            lid = middle.local_id_for(resident_code)
            version = middle.register_replica(lid, category, values)
    typer.echo(f"{lid} {category} version {version}")


@app.command()
def link(
    lg_code: Annotated[
        str | None, typer.Option("--lg-code", help="地方公共団体コード (a municipality)")
    ] = None,
    member: Annotated[str | None, typer.Option("--member", help="or a member id, e.g. nenkin")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, max=100_000)] = 5000,
    database_url: DatabaseOpt = None,
) -> None:
    """符号一斉取得: a 符号 for every 宛名番号 without one (run ``sync`` / ``seed`` first to number
    the people), at a municipality's or an agency's middle server."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from jlis.errors import InvalidInput
    from jlis.linkage.middle.models import check_member_id, municipality_member
    from jlis.linkage.middle.service import MiddleServer
    from jlis.linkage.middle.sync import link_all

    with container(database_url) as built:
        if (lg_code is None) == (member is None):
            raise InvalidInput("--member", "give exactly one of --lg-code and --member")
        member_id = municipality_member(_lg(lg_code)) if lg_code else check_member_id(member or "")
        with transaction(built.factory) as s:
            total = len(MiddleServer(s, built.clock, member_id, actor=ACTOR).unlinked())
        with Progress(
            TextColumn("[bold]符号を取得中"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("link", total=total)
            report = link_all(
                built.factory,
                built.clock,
                built.secret,
                member_id,
                batch=batch,
                progress=lambda n: progress.advance(task, n),
            )
    issued = getattr(report, "issued", 0)
    unknown = len(getattr(report, "unknown", []))
    typer.echo(f"{member_id}: {issued} 符号 stored, {unknown} unknown to J-LIS")


@app.command()
def show(
    lg_code: LgOpt,
    resident_code: Annotated[str, typer.Option("--resident-code", help="住民票コード")],
    category: Annotated[str | None, typer.Option("--category", help="One category, every version")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """A person's current replicas (an audited read), or every version of one category."""
    from jlis.errors import NotFound
    from jlis.linkage.middle.models import LOCAL_ID_FIELD, municipality_member
    from jlis.linkage.middle.service import MiddleServer

    code = _lg(lg_code)
    with container(database_url) as built, transaction(built.factory) as s:
        middle = MiddleServer(s, built.clock, municipality_member(code), actor=ACTOR)
        lid = middle.find_local_id(resident_code)
        if lid is None:
            raise NotFound(LOCAL_ID_FIELD, f"住民票コード {resident_code}")
        replicas = middle.history(lid, category) if category else middle.replicas(lid, purpose="照会")
        linked = middle.code_for(lid) is not None
    typer.echo(f"団体内統合宛名番号 {lid} (符号 {'取得済' if linked else '未取得'})")
    if not replicas:
        typer.echo("副本なし")
    for replica in replicas:
        schema = middle.schemas[replica.category]
        table = Table(
            title=f"{schema.label} 第{replica.version}版 ({replica.registered_at:%Y-%m-%d %H:%M} UTC)"
        )
        table.add_column("項目")
        table.add_column("値")
        for name, spec in schema.items.items():
            if name in replica.data:
                table.add_row(spec.label, spec.display(replica.data[name]))
        console.print(table)
