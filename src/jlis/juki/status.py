"""Propagation state of the network, for the J-LIS operator's page: per prefecture, how many messages
wait at each hop, how many records each copy holds and when it last applied something.

Counts of records come from the per-node counters (``juki_nodes``), never from counting rows. Pending
messages are counted in the relay's outbox, read only, by destination: every query is an index seek
on (destination, seq): it holds only what waits (delivered messages leave it).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.juki.models import (
    CS,
    FUHYO_NATIONAL,
    FUHYO_PREF,
    HONSEKI,
    NATIONAL,
    PREF,
    cs_node,
    fuhyo_pref_node,
    honseki_node,
    node_parts,
    pref_node,
)
from jlis.juki.tables import nodes
from jlis.masters import Geography, load_geography
from jlis.messaging import pending_counts


@dataclass(frozen=True)
class PrefectureState:
    pref_code: str
    name: str
    pending_to_cs: int  # register → CS of this prefecture's municipalities
    pending_cs_to_pref: int  # CS → 都道府県サーバ
    pending_pref_to_national: int  # 都道府県サーバ → 全国サーバ
    records: int  # records in the prefecture's copy
    applied: int  # messages the prefecture server has applied
    last_applied_at: dt.datetime | None
    fuhyo_pending_to_honseki: int  # register → 附票 of the 本籍地s in this prefecture
    fuhyo_pending_honseki_to_pref: int  # 本籍地 → 附票都道府県サーバ
    fuhyo_pending_pref_to_national: int  # 附票都道府県サーバ → 附票全国サーバ
    fuhyo_records: int
    fuhyo_last_applied_at: dt.datetime | None

    @property
    def pending(self) -> int:
        return self.pending_to_cs + self.pending_cs_to_pref + self.pending_pref_to_national

    @property
    def fuhyo_pending(self) -> int:
        return (
            self.fuhyo_pending_to_honseki
            + self.fuhyo_pending_honseki_to_pref
            + self.fuhyo_pending_pref_to_national
        )


@dataclass(frozen=True)
class NationalState:
    records: int  # 機構保存本人確認情報 (superseded codes included)
    applied: int
    last_applied_at: dt.datetime | None
    pending: int  # messages on their way at any hop of 本人確認情報
    fuhyo_records: int
    fuhyo_applied: int
    fuhyo_last_applied_at: dt.datetime | None
    fuhyo_pending: int


@dataclass(frozen=True)
class NetworkState:
    prefectures: tuple[PrefectureState, ...]
    national: NationalState


def propagation_state(session: Session, geography: Geography | None = None) -> list[PrefectureState]:
    """One line per prefecture (all 47, in code order)."""
    return list(network_state(session, geography).prefectures)


def national_state(session: Session, geography: Geography | None = None) -> NationalState:
    return network_state(session, geography).national


def network_state(session: Session, geography: Geography | None = None) -> NetworkState:
    geo = geography or load_geography()
    prefs = geo.prefectures()
    lgs = [m.lg_code for m in geo.municipalities(hosting_only=True)]
    destinations = (
        [cs_node(lg) for lg in lgs]
        + [honseki_node(lg) for lg in lgs]
        + [pref_node(p.code) for p in prefs]
        + [fuhyo_pref_node(p.code) for p in prefs]
        + [NATIONAL, FUHYO_NATIONAL]
    )
    waiting = pending_counts(session, destinations)
    by_hop: Counter[tuple[str, str]] = Counter()  # (hop, pref_code) -> pending messages
    for (destination, source), n in waiting.items():
        kind, ident = node_parts(destination)
        if kind in (CS, HONSEKI):
            by_hop[(kind, ident[:2])] += n  # a 地方公共団体コード starts with its prefecture's code
        elif kind in (PREF, FUHYO_PREF):
            by_hop[(kind, ident)] += n
        elif kind in (NATIONAL, FUHYO_NATIONAL):
            by_hop[(kind, node_parts(source)[1])] += n

    counters = {r.node: r for r in session.execute(select(nodes))}

    def counter(node: str) -> tuple[int, int, dt.datetime | None]:
        r = counters.get(node)
        return (r.records, r.applied, r.last_applied_at) if r else (0, 0, None)

    states = []
    for p in prefs:
        records, applied, last = counter(pref_node(p.code))
        f_records, _f_applied, f_last = counter(fuhyo_pref_node(p.code))
        states.append(
            PrefectureState(
                pref_code=p.code,
                name=p.name,
                pending_to_cs=by_hop[(CS, p.code)],
                pending_cs_to_pref=by_hop[(PREF, p.code)],
                pending_pref_to_national=by_hop[(NATIONAL, p.code)],
                records=records,
                applied=applied,
                last_applied_at=last,
                fuhyo_pending_to_honseki=by_hop[(HONSEKI, p.code)],
                fuhyo_pending_honseki_to_pref=by_hop[(FUHYO_PREF, p.code)],
                fuhyo_pending_pref_to_national=by_hop[(FUHYO_NATIONAL, p.code)],
                fuhyo_records=f_records,
                fuhyo_last_applied_at=f_last,
            )
        )
    n_records, n_applied, n_last = counter(NATIONAL)
    f_records, f_applied, f_last = counter(FUHYO_NATIONAL)
    national = NationalState(
        records=n_records,
        applied=n_applied,
        last_applied_at=n_last,
        pending=sum(s.pending for s in states),
        fuhyo_records=f_records,
        fuhyo_applied=f_applied,
        fuhyo_last_applied_at=f_last,
        fuhyo_pending=sum(s.fuhyo_pending for s in states),
    )
    return NetworkState(tuple(states), national)
