"""``jlis card ...``: the card system from the command line, for scripting a demo and for developers
(the lead mounts ``app`` as ``jlis card``).

The CLI is a trusted local tool: J-LIS commands (apply by post, produce, ship, suspend, export,
express, pool) act as the J-LIS operator ``cli``; counter commands (notice, deliver, lift) act as
staff ``cli`` of the municipality holding the card. Everything goes through the same service and
checks as the API and the pages. Exit status 2 with the item and the rule on a refusal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from sqlalchemy.orm import Session

from jlis.auth.models import Principal
from jlis.card.service import tool_principal
from jlis.cli.options import container
from jlis.errors import JlisError

if TYPE_CHECKING:
    from jlis.card.service import CardService

app = typer.Typer(
    help="マイナンバーカード: application, production, delivery, hotline, card files.", no_args_is_help=True
)

T = TypeVar("T")

DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", help="Overrides the configured database (JLIS_DATABASE_URL).")
]
OPERATOR = tool_principal("cli", "jlis card (CLI)")


def staff_of(lg_code: str) -> Principal:
    return tool_principal("cli", "jlis card (CLI)", lg_code)


def _run(
    database_url: str | None,
    principal: Principal | Callable[[Session], Principal],
    action: Callable[[CardService], T],
) -> T:
    """One action in one transaction. ``principal`` may depend on the card (counter commands)."""
    from jlis.card.service import CardService, card_transaction, deps_from_container

    with container(database_url) as built:
        deps = deps_from_container(built)
        with card_transaction(built.factory) as s:
            who = principal if isinstance(principal, Principal) else principal(s)
            return action(CardService(s, deps, who))


def _holding_staff(card_id: str) -> Callable[[Session], Principal]:
    def find(session: Session) -> Principal:
        from jlis.card.tables import CardRow
        from jlis.errors import NotFound

        card = session.get(CardRow, card_id)
        if card is None:
            raise NotFound("カード", card_id)
        return staff_of(card.lg_code)

    return find


def _date(value: str, field: str) -> dt.date:
    from jlis.registry.models import parse_date

    try:
        return parse_date(field, value)
    except JlisError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None


@app.command()
def apply(
    lg_code: Annotated[str, typer.Option("--lg-code", help="住所地の地方公共団体コード")],
    my_number: Annotated[str, typer.Option("--my-number", help="個人番号 (12 digits)")],
    family: Annotated[str, typer.Option("--family", help="氏")],
    birth: Annotated[str, typer.Option("--birth", help="生年月日 YYYY-MM-DD")],
    given: Annotated[str, typer.Option("--given", help="名")] = "",
    channel: Annotated[str, typer.Option("--channel", help="post | online | counter")] = "post",
    express: Annotated[str | None, typer.Option("--express", help="特急発行の事由 (counter only)")] = None,
    event_date: Annotated[str | None, typer.Option("--event-date", help="特急発行の事由発生日")] = None,
    reissue: Annotated[str | None, typer.Option("--reissue", help="renewal, lost, damaged, ...")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """交付申請: checked against the 住民票; prints the 申請書ID and the fee."""
    from jlis.card.applications import ApplicationForm, Channel, ExpressCase, ReissueReason

    ch = Channel.parse(channel)
    form = ApplicationForm(
        lg_code=lg_code,
        my_number=my_number,
        family_name=family,
        given_name=given,
        birth_date=_date(birth, "生年月日"),
        channel=ch,
        express=ExpressCase.parse(express) if express else None,
        express_event_date=_date(event_date, "特急発行の事由発生日") if event_date else None,
        reissue=ReissueReason.parse(reissue) if reissue else None,
    )
    who = staff_of(lg_code) if ch is Channel.COUNTER else OPERATOR
    app_view = _run(database_url, who, lambda svc: svc.apply(form))
    target = f" target {app_view.target_date}" if app_view.target_date else ""
    typer.echo(f"{app_view.id} accepted fee {app_view.fee_yen} yen{target}")


@app.command()
def produce(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Applications in the batch")] = 100,
    algorithm: Annotated[str | None, typer.Option("--algorithm", help="rsa2048-sha256 | p384-sha384")] = None,
    express_only: Annotated[bool, typer.Option("--express-only")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """製造: one batch of accepted applications (特急発行 first). Prints the batch and its cards."""
    result = _run(
        database_url,
        OPERATOR,
        lambda svc: svc.production.produce(limit=limit, algorithm=algorithm, express_only=express_only),
    )
    typer.echo(f"batch {result.batch_id}: {len(result.cards)} cards, {len(result.rejected)} rejected")
    for c in result.cards:
        typer.echo(f"  {c.id} {c.lg_code} expires {c.expires_on}{' express' if c.express else ''}")
    for app_id, why in result.rejected:
        typer.echo(f"  rejected {app_id}: {why}")


@app.command()
def ship(
    batch_id: Annotated[str | None, typer.Argument(help="The batch to ship")] = None,
    card: Annotated[list[str] | None, typer.Option("--card", help="A card id (repeatable) instead")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """発送: a batch's manufactured cards (or named cards) leave for their municipalities."""
    cards = _run(
        database_url,
        OPERATOR,
        lambda svc: svc.production.ship(batch_id=batch_id, card_ids=list(card) if card else None),
    )
    for c in cards:
        typer.echo(f"{c.id} shipped to {c.lg_code}")


@app.command()
def notice(
    card_id: Annotated[str, typer.Argument()],
    database_url: DatabaseOpt = None,
) -> None:
    """交付通知書: the holding municipality mails it (the card then waits at the counter)."""
    n = _run(database_url, _holding_staff(card_id), lambda svc: svc.counter.send_notice(card_id))
    typer.echo(f"{n.card.id} 交付通知書 sent to {n.name} ({n.address}), collect by {n.collect_by}")


@app.command()
def deliver(
    card_id: Annotated[str, typer.Argument()],
    auth_pin: Annotated[str, typer.Option("--auth-pin", help="利用者証明用 (4 digits)")],
    juki_pin: Annotated[str, typer.Option("--juki-pin", help="住民基本台帳用 (4 digits)")],
    text_pin: Annotated[str, typer.Option("--text-pin", help="券面事項入力補助用 (4 digits)")],
    sign_password: Annotated[
        str | None, typer.Option("--sign-password", help="署名用 (6-16 A-Z0-9); omit for no signing cert")
    ] = None,
    document: Annotated[
        list[str] | None,
        typer.Option("--document", help="本人確認書類 (repeatable; default notice + passport)"),
    ] = None,
    representative: Annotated[
        str | None, typer.Option("--representative", help="法定代理人 (under 15)")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """交付 at the counter: identity check, the four PINs, both certificates issued onto the chip."""
    from jlis.card.counter import Delivery
    from jlis.card.documents import parse_documents
    from jlis.card.pins import PinSet

    def action(svc: CardService) -> Delivery:
        pins = PinSet.checked(sign_password, auth_pin, juki_pin, text_pin)
        docs = parse_documents(document or ["notice", "passport"])
        return svc.counter.deliver(card_id, documents=docs, pins=pins, representative=representative)

    d = _run(database_url, _holding_staff(card_id), action)
    signed = f", sign {d.sign_serial}" if d.sign_serial else ""
    typer.echo(f"{card_id} delivered: auth {d.auth_serial}{signed}")


@app.command()
def suspend(
    lg_code: Annotated[str, typer.Option("--lg-code")],
    family: Annotated[str, typer.Option("--family")],
    birth: Annotated[str, typer.Option("--birth")],
    given: Annotated[str, typer.Option("--given")] = "",
    card_id: Annotated[str | None, typer.Option("--card-id")] = None,
    reason: Annotated[str, typer.Option("--reason", help="lost | stolen | other")] = "lost",
    database_url: DatabaseOpt = None,
) -> None:
    """一時停止 (the hotline): the caller's card is suspended and its certificates held."""
    from jlis.card.hotline import Caller, SuspensionReason

    caller = Caller(lg_code, family, given, _date(birth, "生年月日"), card_id)
    why = SuspensionReason.parse(reason)
    view = _run(database_url, OPERATOR, lambda svc: svc.hotline.suspend(caller, why))
    typer.echo(f"{view.id} suspended")


@app.command()
def lift(
    card_id: Annotated[str, typer.Argument()],
    document: Annotated[list[str] | None, typer.Option("--document")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """一時停止の解除 at the holding municipality's counter (the card itself must be shown)."""
    from jlis.card.documents import parse_documents

    docs = parse_documents(document or ["my_number_card"])
    view = _run(
        database_url,
        _holding_staff(card_id),
        lambda svc: svc.counter.lift_suspension(card_id, documents=docs),
    )
    typer.echo(f"{view.id} {view.state.value}")


@app.command("list")
def list_cards(
    lg_code: Annotated[str, typer.Option("--lg-code")],
    state: Annotated[str | None, typer.Option("--state")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """The cards a municipality holds (each read is audited)."""
    from jlis.card.api import parse_state

    wanted = parse_state(state)
    cards = _run(database_url, OPERATOR, lambda svc: svc.cards(lg_code, state=wanted))
    if not cards:
        typer.echo("no cards")
    for c in cards:
        typer.echo(f"{c.id}\t{c.state.value}\t{c.resident_code}\texpires {c.expires_on}\t{c.application_id}")


@app.command()
def express(
    open_only: Annotated[bool, typer.Option("--open", help="Only those not shipped yet")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """特急発行 against its one-week target (late and at-risk cards first)."""
    items = _run(database_url, OPERATOR, lambda svc: svc.production.express_report(only_open=open_only))
    order = {"late": 0, "at_risk": 1, "missed": 2, "on_track": 3, "met": 4}
    for i in sorted(items, key=lambda i: (order[i.status.value], i.target_date)):
        typer.echo(
            f"{i.status.value}\t{i.target_date}\t{i.application_id}\t{i.card_id or '-'}\t{i.case.value}"
        )


@app.command()
def export(
    card_id: Annotated[str, typer.Argument()],
    out: Annotated[Path, typer.Argument(help="The card file to write")],
    passphrase: Annotated[
        str | None,
        typer.Option("--passphrase", envvar="JLIS_CARD_PASSPHRASE", help="At least 8 characters (prompted)"),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """A card file for a relying party's developer (used by ``jlis jpki sign|login --card``)."""
    from jlis.card.chip.cardfile import export_card

    secret = passphrase or typer.prompt("passphrase", hide_input=True, confirmation_prompt=True)

    def action(svc: CardService) -> None:
        svc.require_operator()
        card = svc.get(card_id, purpose="カードファイル出力")  # audited: the file holds the holder's data
        export_card(svc.chips.load(card.id), out, secret, overwrite=overwrite)

    _run(database_url, OPERATOR, action)
    typer.echo(f"{card_id} exported to {out}")


@app.command()
def pool(
    count: Annotated[int, typer.Option("--count", min=1, max=100_000, help="Blank chips to add")] = 20,
    algorithm: Annotated[str, typer.Option("--algorithm")] = "rsa2048-sha256",
    database_url: DatabaseOpt = None,
) -> None:
    """Fill the pool of pre-manufactured blank chips (key generation ahead of production)."""
    from jlis.card.chip.store import fill_pool

    with container(database_url) as built:
        added = fill_pool(built.factory, built.settings.resolved_key_dir, count, algorithm)
    typer.echo(f"added {added} blank {algorithm} chips to the pool")
