"""機関別符号: J-LIS's values, the hub's codes and links, acquisition one by one and in bulk."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.linkage.hub.codes import (
    CODE_RE,
    HUB_LABEL,
    JLIS_LABEL,
    VALUE_RE,
    CodeGeneration,
    Hub,
    UnknownCode,
    _Mac,
    acquire,
    acquire_code,
    acquire_codes_bulk,
    derive_key,
)
from jlis.linkage.hub.tables import HubAcquisitionRow, HubCodeRow, JlisPersonRow

from .conftest import SECRET, Linkage, load_national, resident_codes

OTHER_SECRET = b"another-installation-secret-00000"


def count(s: Session, table: Any) -> int:
    return int(s.execute(select(func.count()).select_from(table)).scalar_one())


def test_the_fast_hmac_is_hmac() -> None:
    key = derive_key(SECRET, HUB_LABEL)
    mac = _Mac(key, b"prefix|")
    for message in (b"", b"x", b"0123456789" * 20):
        assert mac.digest(message) == hmac.digest(key, b"prefix|" + message, "sha256")


def test_jlis_and_hub_keys_are_separate_and_short_secrets_refused() -> None:
    assert derive_key(SECRET, JLIS_LABEL) != derive_key(SECRET, HUB_LABEL)
    assert derive_key(SECRET, JLIS_LABEL) == hmac.new(SECRET, b"linkage-jlis", hashlib.sha256).digest()
    with pytest.raises(ValueError, match="at least 16 bytes"):
        derive_key(b"short", JLIS_LABEL)


def test_a_code_is_stable_per_member_and_person(linkage: Linkage) -> None:
    a, b = linkage.people[:2]
    with transaction(linkage.factory) as s:
        first = acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, a)
        again = acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, a)
        other_member = acquire_code(s, linkage.clock, SECRET, linkage.nenkin, a)
        other_person = acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, b)
    assert CODE_RE.match(first)
    assert first == again
    assert len({first, other_member, other_person}) == 3
    with linkage.factory() as s:
        assert s.get(HubCodeRow, (linkage.chiyoda.id, first)) is not None
        assert count(s, HubCodeRow) == 3  # the repeat issued nothing new
        assert count(s, JlisPersonRow) == 0  # nobody changed code: values computed, not stored
        statuses = s.execute(select(HubAcquisitionRow.status, HubAcquisitionRow.issued)).all()
    assert [tuple(r) for r in statuses] == [("completed", 1)] * 4


def test_another_secret_gives_other_codes(linkage: Linkage) -> None:
    person = linkage.people[0]
    with transaction(linkage.factory) as s:
        ours = acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, person)
        theirs = acquire_code(s, linkage.clock, OTHER_SECRET, linkage.nenkin, person)
        value = CodeGeneration(s, SECRET, linkage.clock).value_for(person)
        assert CodeGeneration(s, OTHER_SECRET, linkage.clock).derive(person) != value
    assert ours != theirs


def test_the_hub_holds_no_resident_code_nor_the_value(linkage: Linkage) -> None:
    with transaction(linkage.factory) as s:
        for person in linkage.people[:5]:
            acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, person)
            acquire_code(s, linkage.clock, SECRET, linkage.nenkin, person)
    with linkage.factory() as s:
        gen = CodeGeneration(s, SECRET, linkage.clock)
        values = {gen.value_for(p) for p in linkage.people[:5]}
        hub_text = " ".join(
            " ".join(str(v) for v in row)
            for table in ("linkage_hub_codes", "linkage_hub_acquisitions")
            for row in s.execute(text(f"SELECT * FROM {table}"))
        )
    assert len(values) == 5
    for secret_thing in [*linkage.people[:5], *values]:
        assert secret_thing not in hub_text


def test_value_for_refuses_unknown_and_malformed_codes_and_writes_nothing(linkage: Linkage) -> None:
    unknown = resident_codes(1, seed=999)[0]
    assert unknown not in linkage.people
    with linkage.factory() as s:
        gen = CodeGeneration(s, SECRET, linkage.clock)
        with pytest.raises(NotFound) as exc:
            gen.value_for(unknown)
        assert exc.value.context["field"] == "住民票コード"
        with pytest.raises(InvalidInput, match="check digit"):
            gen.value_for(unknown[:10] + str((int(unknown[10]) + 1) % 10))
        with pytest.raises(InvalidInput, match="11 digits"):
            gen.value_for("123")
        assert count(s, JlisPersonRow) == 0


def test_a_refused_acquisition_leaves_no_serial(linkage: Linkage) -> None:
    unknown = resident_codes(1, seed=999)[0]
    with pytest.raises(NotFound), transaction(linkage.factory) as s:
        acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, unknown)
    with linkage.factory() as s:
        assert count(s, HubAcquisitionRow) == 0 and count(s, HubCodeRow) == 0


def test_jlis_records_each_hand_over_with_its_serial(linkage: Linkage) -> None:
    person = linkage.people[0]
    with transaction(linkage.factory) as s:
        issued = acquire(s, linkage.clock, SECRET, linkage.nenkin, person)
    assert len(issued.serial) == 12 and issued.member_id == "nenkin"
    with linkage.factory() as s:
        [entry] = AuditLog("linkage.jlis").entries(s)
        assert AuditLog("linkage.jlis").verify(s).ok
    assert entry.subject == "nenkin"
    assert entry.details == {"serial": issued.serial, "resident_code": person}


def test_translate_gives_the_targets_code_and_links_agree(linkage: Linkage) -> None:
    person, other = linkage.people[:2]
    with transaction(linkage.factory) as s:
        nenkin_code = acquire_code(s, linkage.clock, SECRET, linkage.nenkin, person)
        chiyoda_code = acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, person)
        other_code = acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, other)
        hub = Hub(s, SECRET, linkage.clock)
        assert hub.translate("nenkin", nenkin_code, linkage.chiyoda.id) == chiyoda_code
        assert hub.translate(linkage.chiyoda.id, chiyoda_code, "nenkin") == nenkin_code
        link = hub.person_link("nenkin", nenkin_code)
        assert hub.person_link(linkage.chiyoda.id, chiyoda_code) == link
        assert hub.person_link(linkage.chiyoda.id, other_code) != link
        # On demand: the portal had no code for the person yet.
        portal_code = hub.translate("nenkin", nenkin_code, "myna-portal")
        assert hub.person_link("myna-portal", portal_code) == link
        assert hub.code_for_link("myna-portal", link) == portal_code
        with pytest.raises(NotFound):
            hub.code_for_link("nobody", link)
        assert hub.translate("myna-portal", portal_code, "nenkin") == nenkin_code


def test_a_member_cannot_resolve_another_members_code(linkage: Linkage) -> None:
    person = linkage.people[0]
    with transaction(linkage.factory) as s:
        nenkin_code = acquire_code(s, linkage.clock, SECRET, linkage.nenkin, person)
    with linkage.factory() as s:
        hub = Hub(s, SECRET, linkage.clock)
        with pytest.raises(UnknownCode) as theirs:
            hub.translate(linkage.chiyoda.id, nenkin_code, "nenkin")
        with pytest.raises(UnknownCode) as nobodys:
            hub.translate(linkage.chiyoda.id, "A" * 32, "nenkin")
        # The same answer either way: nothing tells A that the code is B's.
        assert theirs.value.to_dict() == nobodys.value.to_dict()
        assert theirs.value.http_status == 404 and theirs.value.context["field"] == "code"
        with pytest.raises(UnknownCode):
            hub.person_link(linkage.chiyoda.id, nenkin_code)
        with pytest.raises(InvalidInput, match="32 upper-case hex"):
            hub.translate("nenkin", nenkin_code.lower(), linkage.chiyoda.id)
        with pytest.raises(NotFound) as exc:
            hub.translate("nenkin", nenkin_code, "lg-999999")
        assert exc.value.context["field"] == "to_member"
        assert count(s, HubCodeRow) == 1


def test_inactive_members_get_no_codes(linkage: Linkage) -> None:
    person = linkage.people[0]
    with transaction(linkage.factory) as s:
        nenkin_code = acquire_code(s, linkage.clock, SECRET, linkage.nenkin, person)
        off = linkage.members(s).set_active(linkage.chiyoda.id, False)
    with linkage.factory() as s:
        with pytest.raises(Forbidden):
            acquire_code(s, linkage.clock, SECRET, off, person)
        with pytest.raises(Forbidden) as exc:
            Hub(s, SECRET, linkage.clock).translate("nenkin", nenkin_code, off.id)
        assert exc.value.context["field"] == "to_member"


def test_issue_code_checks_the_value(linkage: Linkage) -> None:
    with linkage.factory() as s:
        hub = Hub(s, SECRET, linkage.clock)
        with pytest.raises(InvalidInput, match="generation_value"):
            hub.issue_code("nenkin", "not-a-value")
        value = CodeGeneration(s, SECRET, linkage.clock).value_for(linkage.people[0])
        assert hub.issue_code("nenkin", value) == hub.issue_code("nenkin", value)


def test_a_serial_is_completed_once_by_its_members_values(linkage: Linkage) -> None:
    with transaction(linkage.factory) as s:
        hub = Hub(s, SECRET, linkage.clock)
        gen = CodeGeneration(s, SECRET, linkage.clock)
        serial = hub.open_acquisition("nenkin", 2)
        v1, v2, v3 = (gen.value_for(p) for p in linkage.people[:3])
        with pytest.raises(InvalidInput, match="between 1 and 2"):
            hub.complete_acquisition(serial, [v1, v2, v3])
        issued = hub.complete_acquisition(serial, [v1, v2])
        assert issued.member_id == "nenkin" and issued.codes == (
            hub.issue_code("nenkin", v1),
            hub.issue_code("nenkin", v2),
        )
        with pytest.raises(RuleViolation, match="already completed"):
            hub.complete_acquisition(serial, [v3])
        with pytest.raises(NotFound):
            hub.complete_acquisition("000000009999", [v3])
        with pytest.raises(InvalidInput, match="12 digits"):
            hub.complete_acquisition("12", [v3])
        with pytest.raises(InvalidInput, match="at least one"):
            hub.open_acquisition("nenkin", 0)


def test_a_code_change_keeps_the_persons_codes(linkage: Linkage) -> None:
    old, new = linkage.people[0], resident_codes(1, seed=77)[0]
    with transaction(linkage.factory) as s:
        before = acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, old)
        gen = CodeGeneration(s, SECRET, linkage.clock)
        gen.record_code_change(old, new)
        gen.record_code_change(old, new)  # idempotent
        assert gen.value_for(new) == gen.value_for(old)
        assert acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, new) == before
        with pytest.raises(InvalidInput, match="must differ"):
            gen.record_code_change(new, new)


def test_a_code_change_recorded_before_any_acquisition(linkage: Linkage) -> None:
    old, new = resident_codes(2, seed=78)
    with transaction(linkage.factory) as s:
        gen = CodeGeneration(s, SECRET, linkage.clock)
        gen.record_code_change(old, new)
        assert gen.value_for(new) == gen.value_for(old) == gen.derive(old)


def test_two_people_cannot_be_merged_by_a_code_change(linkage: Linkage) -> None:
    a, b = linkage.people[:2]
    with transaction(linkage.factory) as s:
        gen = CodeGeneration(s, SECRET, linkage.clock)
        va, vb = gen.value_for(a), gen.value_for(b)
    with linkage.factory() as s:
        with pytest.raises(RuleViolation, match="another person"):
            CodeGeneration(s, SECRET, linkage.clock).record_code_change(a, b)
        assert CodeGeneration(s, SECRET, linkage.clock).value_for(b) == vb != va
    # Outside the national copy, a value already recorded for the new code says the same.
    c, d, e = resident_codes(3, seed=79)
    with transaction(linkage.factory) as s:
        gen = CodeGeneration(s, SECRET, linkage.clock)
        gen.record_code_change(c, d)
        with pytest.raises(RuleViolation, match="another person"):
            gen.record_code_change(e, d)


def test_bulk_acquisition_matches_single_acquisition(linkage: Linkage) -> None:
    unknown = resident_codes(1, seed=999)[0]
    people = linkage.people
    bad = ["123", people[0][:10] + str((int(people[0][10]) + 1) % 10)]
    stream = [*people[:7], unknown, *bad, people[0], *people[7:]]
    seen: list[tuple[str, str]] = []
    advanced: list[int] = []
    report = acquire_codes_bulk(
        linkage.factory,
        linkage.clock,
        SECRET,
        linkage.chiyoda,
        stream,
        batch=6,
        progress=advanced.append,
        sink=lambda _s, pairs: seen.extend(pairs),
    )
    assert report.requested == len(stream) == sum(advanced)
    # people[0] came twice, in two batches: answered twice, with the same code.
    assert report.issued == len(people) + 1 == len(seen)
    assert len(set(seen)) == len(people) and {c for c, _ in seen} == set(people)
    assert report.invalid == bad and report.unknown == [unknown]
    assert len(report.serials) == len(advanced) == 4
    with transaction(linkage.factory) as s:
        for resident_code, code in seen:
            assert acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, resident_code) == code
        assert count(s, HubCodeRow) == len(people)
        [entry, *_] = AuditLog("linkage.jlis").entries(s)
    assert entry.action == "values_bulk" and entry.details["serial"] == report.serials[0]
    assert entry.details["count"] == 6 and entry.details["unknown"] == 0
    again = acquire_codes_bulk(linkage.factory, linkage.clock, SECRET, linkage.chiyoda, people)
    assert again.issued == len(people) and not again.unknown
    with linkage.factory() as s:
        assert count(s, HubCodeRow) == len(people)


def test_bulk_acquisition_for_another_member_needs_no_new_values(linkage: Linkage) -> None:
    acquire_codes_bulk(linkage.factory, linkage.clock, SECRET, linkage.chiyoda, linkage.people)
    report = acquire_codes_bulk(linkage.factory, linkage.clock, SECRET, linkage.nenkin, linkage.people)
    assert report.issued == len(linkage.people)
    with linkage.factory() as s:
        assert count(s, HubCodeRow) == 2 * len(linkage.people)


def test_bulk_refuses_a_bad_batch_size_and_an_inactive_member(linkage: Linkage) -> None:
    with pytest.raises(InvalidInput, match="batch"):
        acquire_codes_bulk(linkage.factory, linkage.clock, SECRET, linkage.chiyoda, [], batch=0)
    with transaction(linkage.factory) as s:
        off = linkage.members(s).set_active("nenkin", False)
    with pytest.raises(Forbidden):
        acquire_codes_bulk(linkage.factory, linkage.clock, SECRET, off, linkage.people)


def test_bulk_follows_code_chains_in_the_national_copy(linkage: Linkage) -> None:
    extra = resident_codes(3, seed=31)
    load_national(linkage.factory, linkage.clock, extra)
    report = acquire_codes_bulk(linkage.factory, linkage.clock, SECRET, linkage.nenkin, extra)
    assert report.issued == 3 and not report.unknown


def test_a_batch_that_lost_a_race_is_retried_and_counted_once(linkage: Linkage) -> None:
    """A concurrent run of the same people (PostgreSQL lets two transactions both find a value
    missing) makes one commit fail on the key; the batch rolls back whole and runs again."""
    calls: list[int] = []

    def sink(_s: Session, pairs: Sequence[tuple[str, str]]) -> None:
        calls.append(len(pairs))
        if len(calls) == 1:
            raise IntegrityError("INSERT ...", {}, Exception("duplicate key"))

    report = acquire_codes_bulk(
        linkage.factory, linkage.clock, SECRET, linkage.chiyoda, linkage.people, sink=sink
    )
    assert calls == [len(linkage.people)] * 2
    assert report.issued == len(linkage.people) and len(report.serials) == 1
    with linkage.factory() as s:
        assert count(s, HubAcquisitionRow) == 1 and count(s, HubCodeRow) == len(linkage.people)

    def always(_s: Session, _pairs: Sequence[tuple[str, str]]) -> None:
        raise IntegrityError("INSERT ...", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        acquire_codes_bulk(
            linkage.factory, linkage.clock, SECRET, linkage.nenkin, linkage.people, sink=always
        )
    with linkage.factory() as s:
        assert count(s, HubCodeRow) == len(linkage.people)  # nothing of nenkin's


MEMBER_IDS = ("nenkin", "lg-131016", "lg-131041", "myna-portal")


@settings(max_examples=40, deadline=None)
@given(
    secret=st.binary(min_size=16, max_size=64),
    value=st.binary(min_size=16, max_size=16).map(bytes.hex),
)
def test_codes_differ_per_member_and_never_look_like_a_value(secret: bytes, value: str) -> None:
    hub = Hub(None, secret, None)  # type: ignore[arg-type]  # the pure parts need no session
    link = hub.link_of(value)
    codes = [hub.code_of(m, link) for m in MEMBER_IDS]
    assert len(set(codes)) == len(MEMBER_IDS)
    assert all(CODE_RE.match(c) for c in codes)
    assert VALUE_RE.match(link) and not CODE_RE.match(link) and link != value


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_member_resolves_a_code_it_was_not_given(linkage: Linkage, data: st.DataObject) -> None:
    """For any two members A ≠ B and any person, B's code means nothing to A; A's own code
    translates to B's and back."""
    a, b = data.draw(st.lists(st.sampled_from(MEMBER_IDS), min_size=2, max_size=2, unique=True))
    person = data.draw(st.sampled_from(linkage.people))
    with transaction(linkage.factory) as s:
        member_a = linkage.members(s).get(a)
        member_b = linkage.members(s).get(b)
        code_a = acquire_code(s, linkage.clock, SECRET, member_a, person)
        code_b = acquire_code(s, linkage.clock, SECRET, member_b, person)
        hub = Hub(s, SECRET, linkage.clock)
        assert code_a != code_b
        with pytest.raises(UnknownCode):
            hub.person_link(a, code_b)
        with pytest.raises(UnknownCode):
            hub.translate(a, code_b, b)
        assert hub.translate(a, code_a, b) == code_b
        assert hub.translate(b, code_b, a) == code_a


def test_batch_links_and_codes_for_the_exchange(linkage: Linkage) -> None:
    people = linkage.people[:4]
    with transaction(linkage.factory) as s:
        nenkin = [acquire_code(s, linkage.clock, SECRET, linkage.nenkin, p) for p in people]
        chiyoda_first = acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, people[0])
        hub = Hub(s, SECRET, linkage.clock)
        links = hub.person_links("nenkin", [*nenkin, chiyoda_first, "A" * 32, "bad", nenkin[0]])
        # Only nenkin's own codes resolve; another member's, unknown and malformed ones are left out.
        assert links == {c: hub.person_link("nenkin", c) for c in nenkin}
        codes = hub.codes_for_links(linkage.chiyoda.id, [links[c] for c in nenkin])
        assert codes[links[nenkin[0]]] == chiyoda_first  # already issued: the same code
        for c in nenkin:
            assert hub.translate("nenkin", c, linkage.chiyoda.id) == codes[links[c]]
        assert hub.code_for_link(linkage.chiyoda.id, links[nenkin[1]]) == codes[links[nenkin[1]]]
        with pytest.raises(InvalidInput, match="link"):
            hub.codes_for_links("nenkin", ["NOT-A-LINK"])
        with pytest.raises(InvalidInput, match="link"):
            hub.code_for_link("nenkin", nenkin[0])  # a code is not a link
        assert hub.person_links("nenkin", []) == {}


def test_a_refusal_committed_anyway_is_on_record_as_refused(linkage: Linkage) -> None:
    unknown = resident_codes(1, seed=999)[0]
    with transaction(linkage.factory) as s, pytest.raises(NotFound):
        acquire_code(s, linkage.clock, SECRET, linkage.chiyoda, unknown)
        # The caller goes on (e.g. a middle server recording its own failure) and commits.
    with linkage.factory() as s:
        row = s.execute(select(HubAcquisitionRow)).scalar_one()
        assert (row.status, row.issued, row.member_id) == ("refused", 0, linkage.chiyoda.id)
        assert count(s, HubCodeRow) == 0
        hub = Hub(s, SECRET, linkage.clock)
        with pytest.raises(RuleViolation, match="not pending"):
            hub.refuse_acquisition(f"{row.serial:012d}")
