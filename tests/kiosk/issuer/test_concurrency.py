"""Binding under concurrency: many requests for different residents at once, each in its own
transaction, and each content names exactly its own requester and request id; a request id fired
twice at the same moment is answered once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from jlis.db import transaction
from jlis.kiosk.content import CertificateContent, CertificateKind
from jlis.kiosk.issuer.errors import IssuanceRefused
from jlis.kiosk.issuer.models import IssueOptions
from jlis.kiosk.issuer.tables import IssuanceRow

from .conftest import IssuerWorld

N = 96
THREADS = 16


def _issue(world: IssuerWorld, code: str, request_id: str) -> CertificateContent | str:
    try:
        with transaction(world.factory) as s:
            return world.server(s).issue_content(
                code, CertificateKind.RESIDENT, IssueOptions(), request_id, world.clock.now()
            )
    except IssuanceRefused as exc:
        return exc.code


def test_each_content_names_its_own_requester(world: IssuerWorld) -> None:
    people = [
        world.person(given=f"太郎{i:03d}", given_kana="タロウ", banchi=f"{i + 1}番1号") for i in range(N)
    ]
    world.next_day()
    expected = {f"kiosk-{i:06d}": p for i, p in enumerate(people)}
    with ThreadPoolExecutor(THREADS) as pool:
        results = dict(
            zip(
                expected,
                pool.map(lambda item: _issue(world, item[1].resident_code, item[0]), expected.items()),
                strict=True,
            )
        )
    mismatches = []
    for request_id, content in results.items():
        person = expected[request_id]
        assert isinstance(content, CertificateContent), content
        if content.subject_name != person.name.full or content.request_id != request_id:
            mismatches.append(request_id)
        printed = {r.value for s in content.sections for r in s.rows if r.label == "氏名"}
        if printed != {person.name.full}:
            mismatches.append(request_id)
    assert mismatches == []
    assert len({c.certificate_number for c in results.values() if isinstance(c, CertificateContent)}) == N
    with world.factory() as s:
        rows = s.execute(select(IssuanceRow)).scalars().all()
    assert {(r.request_id, r.resident_code) for r in rows} == {
        (rid, p.resident_code) for rid, p in expected.items()
    }


def test_a_request_id_fired_twice_at_once_is_answered_once(world: IssuerWorld) -> None:
    people = [
        world.person(given=f"花子{i:02d}", given_kana="ハナコ", banchi=f"{i + 1}番2号") for i in range(8)
    ]
    world.next_day()
    jobs = [(p.resident_code, f"twin-{i // 2:06d}") for i, p in enumerate(people)]  # pairs share an id
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda job: _issue(world, *job), jobs))
    for pair in range(4):
        a, b = results[2 * pair], results[2 * pair + 1]
        outcomes = sorted(type(x).__name__ for x in (a, b))
        assert outcomes == ["CertificateContent", "str"], (a, b)
        assert "request_replayed" in (a, b)
    assert world.count(IssuanceRow) == 4
