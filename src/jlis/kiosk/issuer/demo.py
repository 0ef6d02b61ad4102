"""The certificate server's synthetic data for a seeded population: 住民税 assessments, 印鑑登録 and
the 戸籍 at each resident's 本籍. Used by ``jlis kiosk issuer seed`` and the demo; idempotent and
deterministic for a seed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from jlis.card.service import tool_principal
from jlis.container import Container
from jlis.db import transaction
from jlis.kiosk.issuer.koseki import seed_koseki
from jlis.kiosk.issuer.policy import load_policies
from jlis.kiosk.issuer.rules import current_fiscal_year
from jlis.kiosk.issuer.seals import seed_seals
from jlis.kiosk.issuer.tax import seed_assessments

DEMO_SEED = "jlis-demo"


@dataclass
class SeedReport:
    assessments: dict[str, int] = field(default_factory=dict)
    seals: dict[str, int] = field(default_factory=dict)
    koseki: int = 0


def seed_issuer_data(
    built: Container,
    lg_codes: Sequence[str],
    *,
    year: int | None = None,
    seed: str = DEMO_SEED,
    seal_share: float = 0.3,
    progress: Callable[[str], None] | None = None,
) -> SeedReport:
    """``year`` defaults to the 年度 whose 所得・課税証明書 each municipality issues today."""
    report = SeedReport()
    policies = load_policies()
    today = built.clock.now().date()
    for lg in lg_codes:
        staff = tool_principal("cli", "jlis kiosk issuer (seed)", lg)
        fiscal = year if year is not None else current_fiscal_year(today, policies.for_municipality(lg))
        with transaction(built.factory) as s:
            report.assessments[lg] = seed_assessments(
                s, built.clock, lg, fiscal, staff, built.registry, seed=seed.encode()
            )
        with transaction(built.factory) as s:
            report.seals[lg] = seed_seals(
                s, built.clock, lg, staff, built.registry, seed=seed.encode(), share=seal_share
            )
        if progress is not None:
            progress(f"{lg}: {report.assessments[lg]} assessments for {fiscal}, {report.seals[lg]} 印鑑登録")
    with transaction(built.factory) as s:
        report.koseki = seed_koseki(
            s, built.clock, lg_codes, built.registry, built.geography, seed=seed.encode()
        )
    return report
