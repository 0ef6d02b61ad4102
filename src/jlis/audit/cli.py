"""``jlis audit ...``: verify the chains and show entries (the lead mounts ``app`` under ``jlis``)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from jlis.audit.service import AuditEntry, AuditLog, list_chains
from jlis.cli.options import DatabaseOpt, database_session

app = typer.Typer(help="Append-only, hash-chained audit logs.", no_args_is_help=True)

ChainOpt = Annotated[str | None, typer.Option("--chain", help="One chain (default: every chain).")]


def _chains(session: Session, chain: str | None) -> list[str]:
    if chain is None:
        return list_chains(session)
    if chain not in list_chains(session):
        typer.echo(f"error: no such chain: {chain}", err=True)
        raise typer.Exit(2)
    return [chain]


@app.command()
def verify(chain: ChainOpt = None, database_url: DatabaseOpt = None) -> None:
    """Recompute every hash; exit 1 if any chain was tampered with."""
    tampered = False
    with database_session(database_url, reader=True) as session:
        names = _chains(session, chain)
        if not names:
            typer.echo("no audit chains")
        for name in names:
            result = AuditLog(name).verify(session)
            if result.ok:
                typer.echo(f"ok: {result.checked} entries (chain {name})")
            else:
                tampered = True
                where = f", entry seq {result.first_bad_seq}" if result.first_bad_seq is not None else ""
                typer.echo(f"TAMPERED: chain {name}{where}: {result.reason}")
    if tampered:
        raise typer.Exit(1)


def _line(entry: AuditEntry) -> str:
    details = json.dumps(entry.details, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return "\t".join(
        [
            entry.chain,
            str(entry.seq),
            entry.at.isoformat(),
            entry.actor,
            entry.action,
            entry.subject or "-",
            details,
        ]
    )


@app.command()
def show(
    chain: ChainOpt = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Only this subject (住民票コード).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many entries per chain.")] = 50,
    newest_first: Annotated[bool, typer.Option("--newest-first", help="Latest entries first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Print entries: chain, seq, time (JST), actor, action, subject, details (tab-separated)."""
    with database_session(database_url, reader=True) as session:
        for name in _chains(session, chain):
            for entry in AuditLog(name).entries(
                session, subject=subject, limit=limit, newest_first=newest_first
            ):
                if as_json:
                    record = {
                        "chain": entry.chain,
                        "seq": entry.seq,
                        "at": entry.at.isoformat(),
                        "actor": entry.actor,
                        "action": entry.action,
                        "subject": entry.subject,
                        "details": entry.details,
                        "hash": entry.hash,
                    }
                    typer.echo(json.dumps(record, ensure_ascii=False, sort_keys=True))
                else:
                    typer.echo(_line(entry))
