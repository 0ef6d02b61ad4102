"""``jlis juki ...``: run the relay, disclose a resident's provision log (the lead mounts ``app``)."""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated

import typer

from jlis.cli.options import DatabaseOpt, container, database_session
from jlis.clock import SystemClock

app = typer.Typer(help="住基ネット: relay, provision log disclosure.", no_args_is_help=True)


@app.command()
def relay(
    once: Annotated[bool, typer.Option("--once", help="Deliver what is pending, then exit.")] = False,
    batch: Annotated[
        int | None, typer.Option("--batch", min=1, max=10_000, help="Messages per round [default: 5000].")
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, help="Seconds between idle rounds.")
    ] = 0.5,
    part: Annotated[
        str | None,
        typer.Option(
            "--part",
            help="Deliver only to 'juki' (住基ネット and the change stream) or 'fuhyo' (the 附票 "
            "system), beside a second relay for the other part.",
        ),
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Deliver the outbox to the CSs, prefecture servers, J-LIS and the 附票 nodes, and the national
    change stream to JPKI (revocation) and the card system."""
    from jlis.juki.network import BATCH, PARTS, RelayWorker
    from jlis.stack import build_stack_relay

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    batch = batch or BATCH
    if part is not None and part not in PARTS:
        raise typer.BadParameter(f"must be one of {', '.join(sorted(PARTS))}", param_hint="--part")
    with container(database_url) as built:
        # In a process of its own the relay plans its rounds outside SQLite's write lock.
        r = build_stack_relay(built, plan_rounds=True, part=part)
        if once:
            started = time.perf_counter()
            n = r.drain(batch)
            took = time.perf_counter() - started
            typer.echo(f"delivered {n} messages in {took:.2f} s ({r.stats.duplicates} repeats ignored)")
            return
        worker = RelayWorker(r, interval=interval, batch=batch)
        worker.start()
        typer.echo("relay running; Ctrl-C stops it")
        try:
            while worker.is_alive():
                worker.join(1.0)
        except KeyboardInterrupt:
            worker.stop()


@app.command()
def disclose(
    resident_code: Annotated[str, typer.Argument(help="住民票コード (11 digits)")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    requested_by: Annotated[
        str, typer.Option("--requested-by", help="Who asks (written to the access log).")
    ] = ("J-LIS"),
    database_url: DatabaseOpt = None,
) -> None:
    """Every provision of a resident's 本人確認情報 (their disclosure request), across code changes."""
    from jlis.juki.provision import ProvisionService
    from jlis.masters import load_provision_table

    with database_session(database_url) as s:
        entries = ProvisionService(s, SystemClock(), load_provision_table()).disclose(
            resident_code, requested_by=requested_by
        )
    if not entries:
        typer.echo("提供記録なし (no provision recorded)")
    for e in entries:
        if as_json:
            row = {
                "seq": e.seq,
                "at": e.at.isoformat(),
                "resident_code": e.resident_code,
                "recipient": e.recipient,
                "recipient_name": e.recipient_name,
                "affair": e.affair,
                "affair_name": e.affair_name,
                "items": list(e.items),
                "outcome": e.outcome.value,
                "key": e.key,
                "function": e.function,
                "source": e.source,
            }
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            typer.echo(
                "\t".join(
                    [
                        e.at.strftime("%Y-%m-%d %H:%M:%S"),
                        e.recipient_name or e.recipient,
                        e.affair_name or e.affair,
                        e.outcome.label,
                        ",".join(e.items) or "-",
                        e.resident_code or "-",
                    ]
                )
            )
