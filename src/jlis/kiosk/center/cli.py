"""``jlis kiosk center ...`` (the lead mounts ``app``): the issuance center from the command line.

- ``setup [--kiosk ID=名前 ...]`` — the center as a registered 利用者証明検証者, the BCL's
  職責証明書, and kiosks (their bearer tokens are printed once);
- ``kiosk-add ID 名前`` / ``kiosk-disable ID`` — kiosks;
- ``issue --card FILE --passphrase P --pin 1234 --kind resident --out FILE.pdf`` — one certificate
  with a card file, through the whole center (the CLI acts as the kiosk ``cli``);
- ``log`` — the issuance log (no personal data in it);
- ``sweep`` — housekeeping: expired sessions and quotes, and certificate numbers left without a
  document past the timeout settled (``issued`` or ``void``).

A refusal prints its code and Japanese message and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jlis.cli.options import DatabaseOpt, container
from jlis.db import transaction
from jlis.kiosk.content import CertificateKind

app = typer.Typer(
    help="証明書交付センター: kiosks, one issuance with a card file, the log", no_args_is_help=True
)

CLI_KIOSK = "cli"
ACTOR = "cli"


def _parse_kiosks(values: list[str]) -> dict[str, str]:
    kiosks: dict[str, str] = {}
    for value in values:
        kid, sep, name = value.partition("=")
        if not sep or not kid or not name:
            raise typer.BadParameter(f"{value!r}: use ID=名前", param_hint="--kiosk")
        kiosks[kid] = name
    return kiosks


@app.command()
def setup(
    kiosk: Annotated[
        list[str] | None, typer.Option("--kiosk", help="ID=名前 of a kiosk (repeatable)")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Register the center (verifier ``kiosk-center``), the BCL's 職責証明書 and the kiosks."""
    from jlis.kiosk.center.service import ensure_center

    with container(database_url) as built, transaction(built.factory) as s:
        done = ensure_center(s, built.clock, built, kiosks=_parse_kiosks(kiosk or []), actor=ACTOR)
    typer.echo(f"verifier: {done.verifier_id}; BCL 職責証明書: {done.bcl_role_serial}")
    for kid, token in done.kiosk_tokens.items():
        typer.echo(f"kiosk {kid}: token {token}  (shown once)")


@app.command("kiosk-add")
def kiosk_add(
    kiosk_id: Annotated[str, typer.Argument(help="端末の ID (英数字と -)")],
    name: Annotated[str, typer.Argument(help="設置店舗と号機")],
    database_url: DatabaseOpt = None,
) -> None:
    """Register a kiosk and print its bearer token (shown once)."""
    from jlis.kiosk.center.service import register_kiosk

    with container(database_url) as built, transaction(built.factory) as s:
        token = register_kiosk(s, built.clock, kiosk_id, name, actor=ACTOR)
    typer.echo(token)


@app.command("kiosk-disable")
def kiosk_disable(kiosk_id: str, database_url: DatabaseOpt = None) -> None:
    from jlis.kiosk.center.service import set_kiosk_active

    with container(database_url) as built, transaction(built.factory) as s:
        set_kiosk_active(s, built.clock, kiosk_id, False, actor=ACTOR)
    typer.echo(f"kiosk {kiosk_id} disabled")


@app.command()
def issue(
    card: Annotated[
        Path, typer.Option("--card", exists=True, dir_okay=False, help="カードのファイル (.jcard)")
    ],
    pin: Annotated[str, typer.Option("--pin", help="利用者証明用の暗証番号 (4桁)")],
    out: Annotated[Path, typer.Option("--out", help="PDF の書き出し先")],
    passphrase: Annotated[
        str, typer.Option("--passphrase", help="カードのファイルのパスフレーズ")
    ] = "jlis-demo",
    kind: Annotated[CertificateKind, typer.Option("--kind", help="証明書の種類")] = CertificateKind.RESIDENT,
    household: Annotated[bool, typer.Option("--household", help="世帯全員")] = False,
    honseki: Annotated[bool, typer.Option("--honseki", help="本籍を記載")] = False,
    relationship: Annotated[bool, typer.Option("--relationship", help="続柄を記載")] = False,
    copies: Annotated[int, typer.Option("--copies", min=1, max=10, help="部数")] = 1,
    honseki_lg_code: Annotated[
        str | None, typer.Option("--honseki-lg-code", help="戸籍・附票の本籍地 (市区町村コード)")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """One certificate through the whole center with a card file, as the kiosk ``cli`` would."""
    from jlis.jpki.api import RevocationServices
    from jlis.kiosk.center.card import card_answer
    from jlis.kiosk.center.errors import CenterRefused
    from jlis.kiosk.center.service import IssuanceCenter, ensure_center
    from jlis.kiosk.issuer.models import IssueOptions
    from jlis.linkage.portal.client import open_card

    with container(database_url) as built:
        with transaction(built.factory) as s:
            ensure_center(s, built.clock, built, kiosks={CLI_KIOSK: "コマンドライン"}, actor=ACTOR)
        services = RevocationServices(built)
        services.start()
        try:
            center = IssuanceCenter(built, services)
            reader = open_card(card, passphrase)
            try:
                challenge = center.open_session(CLI_KIOSK)
                session = center.authenticate(challenge, card_answer(center, challenge, reader, pin))
                options = IssueOptions(
                    household=household, show_honseki=honseki, show_relationship=relationship
                )
                quote = center.request(session, kind, options, copies, honseki_lg_code=honseki_lg_code)
                typer.echo(f"{session.municipality}: {quote.kind.label} {quote.copies}通 {quote.fee}円")
                issued = center.issue(session, center.pay(quote))
                center.close(session)
            except CenterRefused as exc:
                typer.echo(f"refused ({exc.code}): {exc.message}", err=True)
                raise typer.Exit(2) from None
        finally:
            services.stop()
    out.write_bytes(issued.pdf)
    typer.echo(f"証明書番号 {issued.certificate_number}  照合番号 {issued.verification_code}")
    typer.echo(f"{issued.verify_url}")
    typer.echo(f"SHA-256 {issued.sha256} → {out}")


@app.command()
def log(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 20, database_url: DatabaseOpt = None
) -> None:
    """The newest entries of the issuance log."""
    from sqlalchemy import select

    from jlis.db import read_only
    from jlis.kiosk.center.tables import CenterLogRow

    with container(database_url) as built, built.factory() as s:
        read_only(s)
        rows = s.scalars(select(CenterLogRow).order_by(CenterLogRow.id.desc()).limit(limit)).all()
        for r in rows:
            typer.echo(
                f"{r.finished_at:%Y-%m-%d %H:%M:%S} {r.kiosk_id} {r.stage} {r.outcome} {r.code or '-'} "
                f"{r.lg_code or '-'} {r.server or '-'} {r.kind or '-'} x{r.copies or 0} "
                f"{r.charged}円 {r.certificate_number or ''}"
            )


@app.command()
def sweep(
    minutes: Annotated[
        int, typer.Option("--minutes", min=1, help="a number without a document after this is void")
    ] = 10,
    database_url: DatabaseOpt = None,
) -> None:
    """Expired sessions and quotes deleted; numbered issuance rows past the timeout settled."""
    import datetime as dt

    from jlis.kiosk.center.service import sweep_center

    total_issued = total_void = 0
    with container(database_url) as built:
        while True:  # a batch per transaction (short: SQLite has one writer)
            with transaction(built.factory) as s:
                issued, voided = sweep_center(s, built.clock, undelivered_after=dt.timedelta(minutes=minutes))
            total_issued, total_void = total_issued + issued, total_void + voided
            if issued + voided == 0:
                break
    typer.echo(f"settled: {total_issued} issued, {total_void} void")
