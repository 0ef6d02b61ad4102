"""``jlis linkage``: the information linkage's commands, one group over the hub, the exchange and the
middle servers (each sub-package owns its commands)."""

from __future__ import annotations

import typer

from jlis.linkage.exchange import cli as exchange_cli
from jlis.linkage.hub import cli as hub_cli
from jlis.linkage.middle import cli as middle_cli

app = typer.Typer(
    help="情報連携: members, 機関別符号, queries, 情報提供等記録, middle servers", no_args_is_help=True
)
app.add_typer(hub_cli.members_app, name="members")
app.add_typer(hub_cli.codes_app, name="codes")
app.command("query")(exchange_cli.query)
app.add_typer(exchange_cli.records_app, name="records")
app.add_typer(middle_cli.app, name="middle", help="自治体中間サーバー: 副本・宛名番号・符号")
