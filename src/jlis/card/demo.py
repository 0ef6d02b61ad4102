"""The demo's card holders: the JPKI CAs and OCSP responders, a registered verifier, and a few
residents who went through the whole card flow (application → batch → shipment → 交付通知書 →
delivery with PINs and both certificates), exported as card files a relying party can use at once.

Key generation is the slow part (two key pairs per card), so the demo issues a handful of cards,
not one per resident; `jlis card pool` and the production API make more on demand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from jlis.auth.models import Principal
from jlis.card.applications import ApplicationForm, Channel
from jlis.card.documents import Document
from jlis.card.pins import PinSet
from jlis.card.service import CardService, card_transaction, deps_from_container, tool_principal
from jlis.card.tables import CardRow
from jlis.container import Container
from jlis.db import read_only
from jlis.registry.models import Status
from jlis.registry.tables import ResidentRow

# Printed by `jlis demo`; for a demo only.
DEMO_PINS = PinSet(sign_password="JLIS2026", auth_pin="1234", juki_pin="1234", text_pin="1234")
DEMO_CARD_PASSPHRASE = "jlis-demo"
DEMO_VERIFIER = "demo-bank"
ADULT = 20  # the demo's holders are adults, so every card carries a signing certificate

OPERATOR = tool_principal("jlis-demo", "jlis demo")


def staff_of(lg_code: str) -> Principal:
    return tool_principal("jlis-demo", "jlis demo", lg_code)


@dataclass(frozen=True)
class DemoCard:
    card_id: str
    lg_code: str
    name: str
    file: Path


def ensure_jpki(container: Container, *, verifier_password: str) -> None:
    """Both CAs (generation 1), a responder certificate per generation, and the demo verifier."""
    from jlis.jpki.ocsp import ensure_responders
    from jlis.jpki.tables import VerifierRow
    from jlis.jpki.verifiers import VerifierRegistry

    deps = deps_from_container(container)
    with card_transaction(container.factory) as s:
        ca = deps.ca(s)
        ca.ensure()
        s.flush()
        ensure_responders(s, container.clock, container.keystore, ca.signer_for)
        if s.get(VerifierRow, DEMO_VERIFIER) is None:
            VerifierRegistry(s, container.clock, actor=OPERATOR.actor).register(
                verifier_id=DEMO_VERIFIER,
                name="デモ銀行 (署名検証者・利用者証明検証者)",
                signature_verifier=True,
                user_verifier=True,
                basis="主務大臣認定事業者 (デモ)",
                agreement_no="DEMO-0001",
                agreement_date=container.clock.today(),
                username=f"verifier-{DEMO_VERIFIER}",
                password=verifier_password,
            )


def issue_demo_cards(container: Container, *, count: int, out_dir: Path) -> list[DemoCard]:
    """``count`` adult residents (spread over the municipalities) get a delivered card, exported to
    ``out_dir``; a second run finds the cards and exports nothing new."""
    from jlis.card.chip.cardfile import export_card

    deps = deps_from_container(container)
    existing = _existing(container, out_dir)
    if existing is not None:
        return existing
    born_before = container.clock.today() - dt.timedelta(days=366 * ADULT)
    with container.factory() as s:
        read_only(s)
        # One query, spread over municipalities: the first residents of each, round robin.
        rows = s.scalars(
            select(ResidentRow)
            .where(ResidentRow.status == Status.ACTIVE.value, ResidentRow.birth_date < born_before)
            .order_by(ResidentRow.id)
            .limit(count * 50)
        ).all()
    chosen: list[ResidentRow] = []
    by_lg: dict[str, list[ResidentRow]] = {}
    for r in rows:
        by_lg.setdefault(r.lg_code, []).append(r)
    while len(chosen) < count and any(by_lg.values()):
        for lg in sorted(by_lg):
            if by_lg[lg] and len(chosen) < count:
                chosen.append(by_lg[lg].pop(0))
    with card_transaction(container.factory) as s:
        svc = CardService(s, deps, OPERATOR)
        for r in chosen:
            svc.apply(
                ApplicationForm(
                    lg_code=r.lg_code,
                    my_number=r.my_number,
                    family_name=r.family_name,
                    given_name=r.given_name,
                    birth_date=r.birth_date,
                    channel=Channel.POST,
                )
            )
        batch = svc.production.produce(limit=max(count, 1))
        svc.production.ship(batch_id=batch.batch_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    made: list[DemoCard] = []
    for card in batch.cards:
        with card_transaction(container.factory) as s:
            svc = CardService(s, deps, staff_of(card.lg_code))
            notice = svc.counter.send_notice(card.id)
            svc.counter.deliver(card.id, documents=[Document.NOTICE, Document.PASSPORT], pins=DEMO_PINS)
            path = out_dir / f"{card.id}.jcard"
            export_card(svc.chips.load(card.id), path, DEMO_CARD_PASSPHRASE, overwrite=True)
            made.append(DemoCard(card.id, card.lg_code, notice.name, path))
    return made


def _existing(container: Container, out_dir: Path) -> list[DemoCard] | None:
    """The cards of an earlier run (with their files), or None when there are none."""
    with container.factory() as s:
        read_only(s)
        cards = s.scalars(select(CardRow).order_by(CardRow.id)).all()
        if not cards:
            return None
        return [
            DemoCard(c.id, c.lg_code, "", out_dir / f"{c.id}.jcard")
            for c in cards
            if (out_dir / f"{c.id}.jcard").is_file()
        ]
