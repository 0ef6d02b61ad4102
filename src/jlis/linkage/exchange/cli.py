"""``jlis linkage query ...`` and ``jlis linkage records verify|show|purge``.

The lead mounts :func:`query` as ``jlis linkage query`` and :data:`records_app` as ``jlis linkage
records`` (:data:`app` holds both for a stand-alone mount).

``query`` is a trusted local tool acting as the member's client: it reads the member's request key
(the installation's sealed copy), builds and MACs the request, and sends it through the same hub
path as the API, in one transaction. A refusal is recorded, then reported with exit status 2.

``records verify`` recomputes every keeper's hash chain (exit 1 if one is broken); ``records
purge`` deletes one keeper's records older than a date, and refuses a date within the 7 years of
retention; ``records show`` prints a keeper's records (the CLI is a J-LIS operator tool).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Annotated

import typer
from rich.console import Console

from jlis.cli.options import container
from jlis.clock import JST
from jlis.db import read_only, transaction
from jlis.errors import InvalidInput
from jlis.linkage.exchange import records as store
from jlis.linkage.exchange.api import answer_json, record_json
from jlis.linkage.exchange.models import DisclosurePolicy, Outcome, sign_request
from jlis.linkage.exchange.service import ACCESS_LOG, exchange_hub

app = typer.Typer(help="情報連携: queries and 情報提供等記録.", no_args_is_help=True)
records_app = typer.Typer(help="情報提供等記録: verify, show, purge.", no_args_is_help=True)
app.add_typer(records_app, name="records")
console = Console()

DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", help="Overrides the configured database (JLIS_DATABASE_URL).")
]


@app.command("query")
def query(
    member: Annotated[str, typer.Option("--member", "-m", help="The requester (e.g. nenkin, lg-131016).")],
    code: Annotated[str, typer.Option("--code", help="The requester's own 符号 for the person.")],
    affair: Annotated[str, typer.Option("--affair", help="事務 (e.g. pension_benefit).")],
    provider: Annotated[str, typer.Option("--provider", help="情報提供者 (e.g. lg-131016).")],
    category: Annotated[str, typer.Option("--category", help="特定個人情報の種類 (e.g. local_tax).")],
    items: Annotated[str, typer.Option("--items", help="Comma-separated item names.")],
    request_id: Annotated[str | None, typer.Option("--request-id", help="Default: a fresh one.")] = None,
    disclosure: Annotated[
        str, typer.Option("--disclosure", help="immediate | deferred | never")
    ] = "immediate",
    disclose_after: Annotated[str | None, typer.Option("--disclose-after", help="YYYY-MM-DD")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """情報照会: ask a provider through the hub, as MEMBER (exit 2 on a refusal, which is recorded)."""
    with container(database_url) as c:
        try:
            policy = DisclosurePolicy(disclosure)
        except ValueError:
            raise InvalidInput("disclosure", "must be one of immediate, deferred, never") from None
        try:
            after = dt.date.fromisoformat(disclose_after) if disclose_after else None
        except ValueError:
            raise InvalidInput("disclose_after", "must be a date (YYYY-MM-DD)") from None
        from jlis.linkage.hub.members import MemberService, get_member

        with transaction(c.factory) as s:
            requester = get_member(s, member)
            key = MemberService(s, c.clock, actor="cli", key_dir=c.settings.resolved_key_dir).request_key(
                requester.id
            )
            request = sign_request(
                key,
                requester.id,
                request_id=request_id or f"cli-{c.clock.now():%Y%m%d%H%M%S}-{secrets.token_hex(4)}",
                requester_code=code,
                affair=affair,
                provider_id=provider,
                category=category,
                items=[i.strip() for i in items.split(",") if i.strip()],
                sent_at=c.clock.now(),
                disclosure=policy,
                disclose_after=after,
            )
            answer = exchange_hub(s, c).query(requester, request)
    if as_json:
        typer.echo(json.dumps(answer_json(answer), ensure_ascii=False, sort_keys=True))
    elif answer.outcome is Outcome.PROVIDED:
        console.print(f"提供 (exchange {answer.exchange_no}):")
        for name, value in answer.data.items():
            console.print(f"  {name}: {value}")
    elif answer.outcome is Outcome.NO_MATCH:
        console.print(f"該当なし (exchange {answer.exchange_no})")
    if answer.outcome is Outcome.REFUSED:
        assert answer.reason is not None
        typer.echo(
            f"refused (exchange {answer.exchange_no}, recorded): {answer.reason.value}: {answer.message}",
            err=True,
        )
        raise typer.Exit(2)


KeeperOpt = Annotated[str | None, typer.Option("--keeper", "-k", help="One keeper (default: every one).")]


@records_app.command("verify")
def verify(keeper: KeeperOpt = None, database_url: DatabaseOpt = None) -> None:
    """Recompute every hash of each keeper's chain; exit 1 if one was tampered with."""
    broken = False
    with container(database_url) as c, c.factory() as s, s.begin():
        read_only(s)
        names = [keeper] if keeper else store.keepers(s)
        if not names:
            typer.echo("no exchange records")
        for name in names:
            result = store.verify(s, name)
            if result.ok:
                typer.echo(f"ok: {result.checked} records (keeper {name})")
            else:
                broken = True
                typer.echo(f"TAMPERED: keeper {name}, record seq {result.first_bad_seq}: {result.reason}")
    if broken:
        raise typer.Exit(1)


@records_app.command("show")
def show(
    keeper: Annotated[str, typer.Option("--keeper", "-k", help="hub, or a member id.")],
    person: Annotated[str | None, typer.Option("--person", help="The keeper's own name for them.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """A keeper's records, newest first: seq, exchange, requested, requester, provider, affair,
    category, items, outcome, disclosure (tab-separated)."""
    with container(database_url) as c, transaction(c.factory) as s:
        rows = store.records(s, keeper, person=person, limit=limit, newest_first=True)
        ACCESS_LOG.append(
            s,
            at=c.clock.now(),
            actor="cli",
            action="read_records",
            subject=None,
            details={
                "system": "linkage",
                "keeper": keeper,
                "by_person": person is not None,
                "records": len(rows),
            },
        )
    if as_json:
        for r in rows:
            typer.echo(json.dumps(record_json(r), ensure_ascii=False, sort_keys=True))
        return
    for r in rows:  # tab-separated, like ``jlis audit show``
        typer.echo(
            "\t".join(
                [
                    str(r.seq),
                    str(r.exchange_no),
                    r.requested_at.isoformat(),
                    r.requester_id,
                    r.provider_id,
                    r.affair,
                    r.category,
                    ",".join(r.items),
                    r.outcome.value + (f":{r.reason.value}" if r.reason else ""),
                    r.disclosure.value,
                ]
            )
        )


@records_app.command("purge")
def purge(
    keeper: Annotated[str, typer.Option("--keeper", "-k", help="hub, or a member id.")],
    before: Annotated[str, typer.Option("--before", help="Delete records recorded before this date.")],
    database_url: DatabaseOpt = None,
) -> None:
    """Retention: delete KEEPER's records older than BEFORE (refused within 7 years; exit 2)."""
    with container(database_url) as c:
        try:
            day = dt.date.fromisoformat(before)
        except ValueError:
            raise InvalidInput("before", "must be a date (YYYY-MM-DD)") from None
        with transaction(c.factory) as s:
            n = store.purge(
                s, keeper, before=dt.datetime.combine(day, dt.time(), tzinfo=JST), now=c.clock.now()
            )
    typer.echo(f"purged {n} records of keeper {keeper} recorded before {day.isoformat()}")
