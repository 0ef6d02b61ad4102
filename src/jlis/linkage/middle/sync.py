"""Feeding a municipality's middle server from its register: the 住民票関係情報 replicas
(:func:`sync_juminhyo`), the synthetic tax / 児童手当 / 国保 / 介護保険 (and 年金) replicas of the demo
population (:func:`seed_replicas`), and the 符号一斉取得 of every addressee (:func:`link_all`).

The register is read only through :class:`jlis.registry.RegistryService` (``find_by_code``, an
audited read under the service's staff name) and :func:`jlis.registry.service.active_codes`; the
replicas go in through :class:`MiddleServer`, checked against their schemas like any business
system's registration.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import Clock
from jlis.errors import Forbidden, NotFound
from jlis.linkage.middle.models import (
    PersonFacts,
    RegisterFacts,
    juminhyo_replica,
    municipality_member,
    synthetic_medical_insurance,
    synthetic_pension,
    synthetic_replicas,
)
from jlis.linkage.middle.service import MiddleServer, check_code
from jlis.linkage.middle.tables import AddresseeRow
from jlis.registry import RegistryService, ResidentView, Status
from jlis.registry.service import active_codes

if TYPE_CHECKING:
    from jlis.container import Container

SYNC_ACTOR = "middle-sync"
SEED_ACTOR = "middle-seed"
PENSION_MEMBER = "nenkin"  # 日本年金機構
MEDICAL_MEMBER = "kyokai"  # 全国健康保険協会


def read_register(registry: RegistryService, extra_codes: Iterable[str] = ()) -> list[ResidentView]:
    """Every listed resident of the registry's municipality, plus the people of ``extra_codes`` (for
    example those the middle server knew, now removed), each read once through ``find_by_code``."""
    codes = list(dict.fromkeys([*active_codes(registry.s, registry.lg_code), *extra_codes]))
    views: list[ResidentView] = []
    for code in codes:
        try:
            views.append(registry.find_by_code(code))
        except NotFound:
            continue
    return [v for v in views if v.lg_code == registry.lg_code]


def _households(views: Sequence[ResidentView]) -> dict[int, list[ResidentView]]:
    out: dict[int, list[ResidentView]] = defaultdict(list)
    for v in views:
        if v.status is not Status.REMOVED:
            out[v.household_id].append(v)
    return out


def register_facts(view: ResidentView, household: Sequence[ResidentView]) -> RegisterFacts:
    head = next((m for m in household if m.is_head), None)
    return RegisterFacts(
        name=view.name.full,
        name_kana=view.name.full_kana,
        birth_date=view.birth_date,
        sex=view.sex.value,
        address=view.address.text,
        resident_since=view.resident_since,
        relationship=view.relationship,
        householder_name=head.name.full if head else None,
        household_size=len(household) or None,
        status=view.status.value,
        last_reason=view.last_reason.value,
    )


def sync_juminhyo(
    session: Session, clock: Clock, registry: RegistryService, *, actor: str = SYNC_ACTOR
) -> int:
    """住民票関係情報 replicas for every resident of the registry's municipality (and a new version for
    anyone the middle server knew who has since moved out or died). Idempotent: an unchanged
    住民票 stores nothing. Returns the number of new replica versions. Runs in the caller's
    transaction."""
    middle = MiddleServer(session, clock, municipality_member(registry.lg_code), actor=actor)
    known = session.execute(
        select(AddresseeRow.resident_code).where(AddresseeRow.member_id == middle.member_id)
    ).scalars()
    views = read_register(registry, known)
    households = _households(views)
    listed = {v.resident_code: v.id for v in views if v.status is not Status.REMOVED}
    middle.follow_register(listed)  # a 住民票コード変更 keeps the person's 宛名番号
    local_ids = middle.local_ids_for(v.resident_code for v in views)
    middle.follow_register(listed)  # and ties the newly numbered to the register
    written = 0
    for view in views:
        lid = local_ids[view.resident_code]
        facts = register_facts(view, households.get(view.household_id, []))
        if middle.register_replica_changed(lid, "juminhyo", juminhyo_replica(facts))[1]:
            written += 1
    return written


def sync_resident(
    session: Session, clock: Clock, registry: RegistryService, resident_id: int, *, actor: str = SYNC_ACTOR
) -> int:
    """:func:`sync_juminhyo` for one resident (the counter's 「住民票関係情報を更新」): the 住民票 and
    its household read through the register (audited), the replica registered. Returns the current
    version."""
    view = registry.get(resident_id, purpose="副本更新")
    household = [] if view.status is Status.REMOVED else registry.household_members(view.household_id)
    middle = MiddleServer(session, clock, municipality_member(registry.lg_code), actor=actor)
    if view.status is not Status.REMOVED:
        middle.follow_register({view.resident_code: view.id})
    lid = middle.local_id_for(view.resident_code)
    if view.status is not Status.REMOVED:
        middle.follow_register({view.resident_code: view.id})
    return middle.register_replica(lid, "juminhyo", juminhyo_replica(register_facts(view, household)))


@dataclass
class SeedReport:
    lg_code: str
    residents: int = 0
    written: dict[str, int] = field(default_factory=dict)  # category -> new versions


def person_facts(view: ResidentView, household: Sequence[ResidentView]) -> PersonFacts:
    children = (
        tuple(m.birth_date for m in household if m.id != view.id and m.relationship in ("子", "孫"))
        if view.is_head
        else ()
    )
    return PersonFacts(
        lg_code=view.lg_code,
        birth_date=view.birth_date,
        is_head=view.is_head,
        household_size=len(household),
        children_birth_dates=children,
    )


def seed_replicas(
    session: Session,
    clock: Clock,
    registry: RegistryService,
    *,
    seed: int = 0,
    agencies: bool = True,
    actor: str = SEED_ACTOR,
) -> SeedReport:
    """Synthetic 地方税, 児童手当, 国民健康保険 and 介護保険 replicas for every listed resident of the
    registry's municipality, and with ``agencies`` the agencies' replicas of them: 年金給付関係情報 at
    日本年金機構 (pension age) and 医療保険給付関係情報 at 全国健康保険協会 (about half of those under
    75 outside 国保). Deterministic: the same register and ``seed`` give the same replicas (each
    person's values come from a random source seeded by ``seed`` and their 住民票コード), and a second
    run stores nothing new. Runs in the caller's transaction.

    Demo shortcut: the agencies' 宛名番号 are numbered here from the 住民票コード, as if the agencies
    had their own records of these people; a real agency numbers its own."""
    middle = MiddleServer(session, clock, municipality_member(registry.lg_code), actor=actor)
    views = [v for v in read_register(registry) if v.status is not Status.REMOVED]
    households = _households(views)
    local_ids = middle.local_ids_for(v.resident_code for v in views)
    report = SeedReport(registry.lg_code, residents=len(views))
    today = clock.today()
    for_agencies: dict[tuple[str, str], list[tuple[str, dict[str, object]]]] = defaultdict(list)
    for view in views:
        facts = person_facts(view, households.get(view.household_id, []))
        rng = random.Random(f"{seed}:{view.resident_code}")
        replicas = synthetic_replicas(facts, rng, today)
        lid = local_ids[view.resident_code]
        for category, data in replicas.items():
            if middle.register_replica_changed(lid, category, data)[1]:
                report.written[category] = report.written.get(category, 0) + 1
        if not agencies:
            continue
        pension = synthetic_pension(facts, rng, today)
        if pension is not None:
            for_agencies[(PENSION_MEMBER, "pension")].append((view.resident_code, pension))
        medical = synthetic_medical_insurance(facts, rng, today, in_nhi="nhi" in replicas)
        if medical is not None:
            for_agencies[(MEDICAL_MEMBER, "medical_insurance")].append((view.resident_code, medical))
    for (member_id, category), rows in for_agencies.items():
        agency = MiddleServer(session, clock, member_id, actor=actor)
        agency_ids = agency.local_ids_for(code for code, _ in rows)
        for code, data in rows:
            if agency.register_replica_changed(agency_ids[code], category, data)[1]:
                report.written[category] = report.written.get(category, 0) + 1
    return report


def link_all(
    factory: sessionmaker[Session],
    clock: Clock,
    secret: bytes,
    member_id: str,
    *,
    progress: Callable[[int], None] | None = None,
    batch: int = 5000,
) -> object:
    """符号一斉取得 for every addressee of the member's middle server that has no 符号 yet: one
    :func:`jlis.linkage.hub.codes.acquire_codes_bulk` run whose sink stores each 符号 with its
    宛名番号 in the batch's transaction. Returns the hub's AcquisitionReport."""
    from jlis.db import transaction
    from jlis.linkage.hub.codes import acquire_codes_bulk
    from jlis.linkage.hub.members import get_member

    with transaction(factory) as s:
        middle = MiddleServer(s, clock, member_id, actor=SYNC_ACTOR)
        member = get_member(s, middle.member_id)
        pending = [rc for _lid, rc in middle.unlinked()]

    def sink(session: Session, pairs: Sequence[tuple[str, str]]) -> None:
        MiddleServer(session, clock, member_id, actor=SYNC_ACTOR).store_codes(pairs)

    return acquire_codes_bulk(
        factory, clock, secret, member, pending, progress=progress, batch=batch, sink=sink
    )


@dataclass
class DemoReport:
    juminhyo: int = 0  # new 住民票関係情報 versions
    seeded: dict[str, int] = field(default_factory=dict)  # category -> new versions
    linked: dict[str, int] = field(default_factory=dict)  # member id -> 符号 stored


def prepare_demo_replicas(
    container: Container,
    lg_codes: Sequence[str],
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> DemoReport:
    """The demo's middle servers in one call (idempotent): for each municipality the 住民票関係情報
    sync and the synthetic replicas (one transaction per municipality), then the 符号一斉取得 of each
    municipality and of the agencies with replicas (日本年金機構, 全国健康保険協会). Members the hub
    does not know (see ``ensure_standard_members``) are skipped at the linking step."""
    from jlis.db import transaction
    from jlis.linkage.hub.members import get_member

    report = DemoReport()
    for lg_code in lg_codes:
        with transaction(container.factory) as s:
            registry = container.registry(s, lg_code, SYNC_ACTOR)
            report.juminhyo += sync_juminhyo(s, container.clock, registry)
            seeded = seed_replicas(s, container.clock, registry, seed=seed)
        for category, n in seeded.written.items():
            report.seeded[category] = report.seeded.get(category, 0) + n
        if progress is not None:
            progress(f"lg-{lg_code}: replicas")
    for member_id in [*(municipality_member(c) for c in lg_codes), PENSION_MEMBER, MEDICAL_MEMBER]:
        with transaction(container.factory) as s:
            try:
                get_member(s, member_id).require_active()
            except (NotFound, Forbidden):
                continue
        linked: Any = link_all(container.factory, container.clock, container.secret, member_id)
        report.linked[member_id] = int(linked.issued)
        if progress is not None:
            progress(f"{member_id}: {linked.issued} 符号")
    return report


__all__ = [
    "DemoReport",
    "SeedReport",
    "check_code",
    "link_all",
    "prepare_demo_replicas",
    "read_register",
    "seed_replicas",
    "sync_juminhyo",
    "sync_resident",
]
