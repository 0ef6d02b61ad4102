"""`jlis demo`: the whole national stack in one process on SQLite, with a synthetic population."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from jlis.container import Container
from jlis.settings import load_settings

if TYPE_CHECKING:
    from jlis.card.demo import DemoCard

DEMO_CARD_HOLDERS = 6  # two RSA key pairs each: a handful keeps the first start quick

console = Console()


def prepare_demo(
    data_dir: Path,
    *,
    residents: int,
    municipalities: int,
    card_holders: int = DEMO_CARD_HOLDERS,
    host: str | None = None,
    port: int | None = None,
) -> tuple[Container, list[tuple[str, str, str]], list[DemoCard]]:
    """Migrate, seed when empty, create the demo accounts, the CAs and a few card holders; return
    the container, the accounts and the exported demo cards."""
    from jlis.auth.service import DEMO_PASSWORD, ensure_demo_users
    from jlis.card.demo import DEMO_VERIFIER, ensure_jpki, issue_demo_cards
    from jlis.cli.main import run_seed
    from jlis.migrate import upgrade
    from jlis.registry.tables import ResidentRow
    from jlis.seed import choose_municipalities

    # The listen address is the public URL that certificates carry (CRL and OCSP), unless
    # JLIS_PUBLIC_URL says otherwise.
    settings = load_settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'jlis.sqlite3'}",
        listen_host=host,
        listen_port=port,
    )
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
    with console.status("JPKI: CAs, OCSP responders, the demo verifier, and card holders"):
        ensure_jpki(container, verifier_password=DEMO_PASSWORD)
        cards = issue_demo_cards(container, count=card_holders, out_dir=data_dir / "cards")
    users.append((f"verifier-{DEMO_VERIFIER}", DEMO_PASSWORD, "署名検証者・利用者証明検証者 (デモ銀行)"))
    with console.status("情報連携: members, middle servers, replicas and 機関別符号"):
        users += prepare_linkage(container, lg_codes)
    with console.status("コンビニ交付: the organisation CA, 職責証明書, 住民税, 印鑑登録, 戸籍"):
        prepare_kiosk(container, lg_codes)
    return container, users, cards


def prepare_kiosk(container: Container, lg_codes: list[str]) -> None:
    """The organisation CA with a 職責証明書 for each municipality (they sign certificate PDFs), the
    certificate server's synthetic data (once), and the issuance center with the demo's kiosk.
    Idempotent."""
    from jlis.db import transaction
    from jlis.kiosk.center.service import ensure_center
    from jlis.kiosk.issuer.demo import seed_issuer_data
    from jlis.kiosk.issuer.tables import TaxAssessmentRow
    from jlis.kiosk.screen.adapter import DEFAULT_KIOSK_ID, DEFAULT_KIOSK_NAME
    from jlis.lgwan.ca import ensure_organisation_pki

    with transaction(container.factory) as s:
        ensure_organisation_pki(
            s,
            container.clock,
            container.keystore,
            container.settings.resolved_public_url,
            lg_codes,
            actor="demo",
            rng=container.rng,
        )
    with container.factory() as s:
        seeded = s.execute(select(TaxAssessmentRow.resident_code).limit(1)).first() is not None
    if not seeded:
        seed_issuer_data(container, lg_codes)
    with transaction(container.factory) as s:
        ensure_center(s, container.clock, container, kiosks={DEFAULT_KIOSK_ID: DEFAULT_KIOSK_NAME})


def prepare_linkage(container: Container, lg_codes: list[str]) -> list[tuple[str, str, str]]:
    """The linkage members (agencies, the seeded municipalities, マイナポータル) with their accounts,
    and the middle servers filled: 住民票関係情報 from the register, synthetic replicas, and every
    member's 機関別符号. Idempotent; the middle servers are filled once (a restart finds them so)."""
    from jlis.auth.service import DEMO_PASSWORD
    from jlis.db import transaction
    from jlis.linkage.hub.members import ensure_standard_members
    from jlis.linkage.middle.sync import prepare_demo_replicas
    from jlis.linkage.middle.tables import ReplicaRow

    with transaction(container.factory) as s:
        filled = s.execute(select(ReplicaRow.id).limit(1)).first() is not None
        members = ensure_standard_members(
            s,
            container.clock,
            key_dir=container.settings.resolved_key_dir,
            lg_codes=lg_codes,
            geography=container.geography,
            password=DEMO_PASSWORD,
        )
    if not filled:
        prepare_demo_replicas(container, lg_codes, seed=0)
    return [(f"linkage-{m.id}", DEMO_PASSWORD, f"情報連携の機関 ({m.name})") for m in members]


def run_demo(*, data_dir: Path, host: str, port: int, residents: int, municipalities: int) -> None:
    import uvicorn

    from jlis.card.demo import DEMO_CARD_PASSPHRASE, DEMO_PINS
    from jlis.web import create_app

    container, users, cards = prepare_demo(
        data_dir, residents=residents, municipalities=municipalities, host=host, port=port
    )
    table = Table(title=f"jlis demo — http://{host}:{port}/ (API: http://{host}:{port}/docs)")
    for col in ("user", "password", "who"):
        table.add_column(col)
    for user, password, who in users:
        table.add_row(user, password, who)
    console.print(table)
    if cards:
        pins = DEMO_PINS
        card_table = Table(
            title=(
                f"demo cards (passphrase {DEMO_CARD_PASSPHRASE}; 署名用 {pins.sign_password}, "
                f"利用者証明用・住基・券面入力補助 {pins.auth_pin})"
            )
        )
        for col in ("card", "municipality", "holder", "file"):
            card_table.add_column(col)
        for c in cards:
            card_table.add_row(c.card_id, c.lg_code, c.name, str(c.file))
        console.print(card_table)
        console.print(
            f"with a card: マイナポータル http://{host}:{port}/portal · コンビニ交付 http://{host}:{port}/kiosk"
        )
    uvicorn.run(create_app(container, relay_worker=True), host=host, port=port, log_level="warning")
