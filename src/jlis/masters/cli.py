"""``jlis masters ...``: browse the address masters and the legal table from a terminal.

Every listing prints a rich table, or JSON with ``--json`` (for scripts)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from jlis.errors import JlisError
from jlis.masters.geography import MunicipalityKind, load_geography
from jlis.masters.legal import IdentityItem, load_provision_table

app = typer.Typer(help="マスタ: prefectures, municipalities, towns (町字) and the provision table.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _console() -> Console:
    # Wide enough that Japanese names are not folded mid-word when output is piped.
    return Console(width=200) if not Console().is_terminal else Console()


def _fail(exc: JlisError) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(code=2)


def _emit(
    title: str, headers: Sequence[str], rows: list[list[str]], records: list[dict[str, Any]], as_json: bool
) -> None:
    """Print ``rows`` as a table, or ``records`` (the same data, typed) as JSON."""
    if as_json:
        typer.echo(json.dumps(records, ensure_ascii=False, indent=2))
        return
    table = Table(title=title)
    for header in headers:
        table.add_column(header, no_wrap=header in ("code", "town_id", "postal"))
    for row in rows:
        table.add_row(*row)
    _console().print(table)


@app.command()
def prefectures(as_json: JsonOpt = False) -> None:
    """The 47 prefectures."""
    geo = load_geography()
    records: list[dict[str, Any]] = []
    rows: list[list[str]] = []
    for p in geo.prefectures():
        munis = geo.municipalities(p.code)
        # 市区町村 as 総務省 counts them (the wards of a 政令市 excluded), and register-keeping bodies.
        count = sum(m.kind is not MunicipalityKind.WARD for m in munis)
        registers = sum(m.hosts_register for m in munis)
        records.append(
            {"code": p.code, "name": p.name, "kana": p.kana, "municipalities": count, "registers": registers}
        )
        rows.append([p.code, p.name, p.kana, str(count), str(registers)])
    _emit("都道府県", ["code", "name", "kana", "municipalities", "registers"], rows, records, as_json)


@app.command()
def municipalities(
    pref: Annotated[str | None, typer.Option("--pref", help="2-digit prefecture code, e.g. 13.")] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind", help="city, town, village, special_ward, designated_city, ward (or 市, 特別区, ...)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Municipalities (市区町村, 政令市 and their wards) with their 地方公共団体コード."""
    geo = load_geography()
    try:
        wanted = MunicipalityKind.parse(kind) if kind is not None else None
        munis = geo.municipalities(pref)
    except JlisError as exc:
        raise _fail(exc) from exc
    selected = [m for m in munis if wanted is None or m.kind is wanted]
    records = [
        {
            "lg_code": m.lg_code,
            "name": m.full_name,
            "kana": (m.county_kana or "") + m.kana,
            "kind": m.kind.value,
            "hosts_register": m.hosts_register,
            "parent_lg_code": m.parent_lg_code,
        }
        for m in selected
    ]
    rows = [[m.lg_code, m.full_name, (m.county_kana or "") + m.kana, m.kind.label] for m in selected]
    _emit(f"市区町村 ({len(rows)})", ["code", "name", "kana", "kind"], rows, records, as_json)


@app.command()
def towns(
    lg_code: Annotated[str, typer.Argument(help="6-digit 地方公共団体コード, e.g. 131016.")],
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="Name or kana, prefix or substring.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Show at most N towns.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The towns (町字) of one municipality."""
    geo = load_geography()
    try:
        muni = geo.municipality(lg_code)
        found = geo.find_towns(lg_code, query) if query else geo.towns(lg_code)
    except JlisError as exc:
        raise _fail(exc) from exc
    shown = found[:limit]
    records = [
        {"town_id": t.town_id, "name": t.name, "kana": t.kana, "postal_code": t.postal_code} for t in shown
    ]
    rows = [[t.town_id, t.name or "（町字なし）", t.kana, t.postal_code] for t in shown]
    title = f"{muni.full_name} 町字 ({len(shown)} of {len(found)})"
    _emit(title, ["town_id", "name", "kana", "postal"], rows, records, as_json)


@app.command("provision-table")
def provision_table(
    recipient: Annotated[str | None, typer.Option("--recipient", help="Only this agency id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """住基法 別表第一: who may receive which 本人確認情報 items for which affair."""
    try:
        table = load_provision_table()
        rules = table.rules_for(recipient) if recipient else table.rules()
    except JlisError as exc:
        raise _fail(exc) from exc
    order = list(IdentityItem)
    records = [
        {
            "recipient_id": r.recipient_id,
            "recipient_name": table.agency(r.recipient_id).name,
            "affair_id": r.affair_id,
            "affair_name": r.affair_name,
            "items": [i.value for i in sorted(r.items, key=order.index)],
            "basis": r.basis,
            "my_number_basis": r.my_number_basis,
        }
        for r in rules
    ]
    rows = [
        [
            f"{table.agency(r.recipient_id).name}\n({r.recipient_id})",
            f"{r.affair_name}\n({r.affair_id})",
            "・".join(i.label for i in sorted(r.items, key=order.index)),
            r.basis,
        ]
        for r in rules
    ]
    _emit(
        "本人確認情報の提供 (住基法別表第一)",
        ["recipient", "affair", "items", "basis"],
        rows,
        records,
        as_json,
    )
