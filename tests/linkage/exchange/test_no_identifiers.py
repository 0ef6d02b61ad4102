"""Issue 5 §8, as a property: whatever members send each other through the hub — lawful queries,
queries outside the table, another member's code, replays, tampered requests — no answer or refusal,
no exchange record (at the requester, the provider or the hub), no request log and no audit entry
of the linkage contains a 住民票コード or a 個人番号. Only J-LIS's own tables (the national copy, the
code-generation values) and the municipality's side of its middle server hold them."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from jlis.audit.tables import AuditEntryRow
from jlis.db import transaction
from jlis.errors import JlisError
from jlis.linkage.exchange.tables import ExchangeRecordRow, QueryRequestRow

from .conftest import CHIYODA, PENSION, SHINJUKU, TAX, World, identity

# (requester, affair, provider, category, items): lawful ones and ones outside the table.
ASKS = [
    ("nenkin", "pension_benefit", CHIYODA, "local_tax", ["tax_year", "total_income"]),
    (SHINJUKU, "child_allowance", CHIYODA, "child_allowance", ["eligible", "children"]),
    (SHINJUKU, "ltc", "nenkin", "pension", ["receiving"]),
    ("jasso", "pension_benefit", CHIYODA, "local_tax", ["tax_year"]),  # not the requester's affair
    ("nenkin", "pension_benefit", CHIYODA, "child_allowance", ["eligible"]),  # category not allowed
]
step = st.tuples(
    st.integers(0, len(ASKS) - 1),
    st.integers(0, 3),  # which person
    st.sampled_from(["plain", "replay", "tamper", "foreign_code"]),
)


# J-LIS's own record of the values it handed the hub names the 住民票コード it turned into each one:
# that is J-LIS's side of the chain (facts §5.2), the one place besides the national copy that may.
JLIS_CHAIN = "linkage.jlis"


def _blob(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _replicas(world: World) -> None:
    if getattr(world, "replicas_done", False):
        return
    for person in world.people:
        world.replica(CHIYODA, person, "local_tax", TAX)
        world.replica(
            CHIYODA, person, "child_allowance", {"eligible": True, "children": 1, "status": "paying"}
        )
        world.replica("nenkin", person, "pension", PENSION)
    world.replicas_done = True  # type: ignore[attr-defined]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=10))
def test_no_identifier_leaves_jlis_or_the_hub(world: World, steps: list[tuple[int, int, str]]) -> None:
    """The world persists across examples (hypothesis shares the fixture): traffic accumulates,
    and after each example everything written so far is scanned again."""
    _replicas(world)
    identifiers = set(world.people) | {identity(p, world.clock.now()).my_number for p in world.people}
    messages: list[str] = []
    sent = []
    for ask, who, how in steps:
        requester, affair, provider, category, items = ASKS[ask]
        person = world.people[who]
        if how == "replay" and sent:
            requester, request = sent[-1]
        else:
            code = world.code("kyokai", person) if how == "foreign_code" else None
            request = world.request(
                requester, person, affair=affair, provider=provider, category=category, items=items, code=code
            )
            if how == "tamper":  # changed after signing: the MAC no longer matches
                request = dataclasses.replace(request, items=(*request.items, "per_capita_levy"))
            sent.append((requester, request))
        try:
            with transaction(world.factory) as s:
                answer = world.hub(s).query(world.members[requester], request)
            messages.append(_blob(dataclasses.asdict(answer)))
        except JlisError as exc:  # a refusal is a message too
            messages.append(_blob(exc.to_dict()))
    members = set(world.members)
    with world.factory() as s:
        logs = [_blob(r.__dict__) for r in s.scalars(select(ExchangeRecordRow))]
        logs += [_blob(r.__dict__) for r in s.scalars(select(QueryRequestRow))]
        logs += [
            _blob(r.__dict__)
            for r in s.scalars(select(AuditEntryRow))
            if r.chain != JLIS_CHAIN and (r.actor in members or r.chain.startswith("linkage"))
        ]
    assert messages and logs
    for text in messages + logs:
        leaked = sorted(x for x in identifiers if x in text)
        assert not leaked, f"{leaked} in {text[:400]}"
