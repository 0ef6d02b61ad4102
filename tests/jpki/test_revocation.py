"""Revocation of certificates: the state machine, idempotence, hold and release, whole cards, CA
generations, the audit chain that doubles as the change feed, and the after-commit listeners."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.auth.models import Principal, PrincipalKind
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.jpki.profile import Algorithm
from jlis.jpki.revocation import (
    REVOCATION_CHAIN,
    Action,
    IssuedCertificate,
    Reason,
    Revocations,
    StatusChange,
    changes_since,
    feed_head,
    normalise_serial,
    notify_issued,
    subscribe,
    transition,
    unsubscribe,
)
from jlis.jpki.tables import AUTH, GOOD, HOLD, PHONE, REVOKED, SIGN, CaGenerationRow

from .revocation_fixtures import Pki, holder, key_pool

STAFF = Principal(1, "staff-131016", PrincipalKind.MUNICIPAL_STAFF, "窓口", lg_code="131016")
OPERATOR = Principal(2, "jlis-operator", PrincipalKind.JLIS_OPERATOR, "運用者")


@pytest.fixture
def pki(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[Pki]:
    with Pki.start(factory, clock, tmp_path) as p:
        yield p


def _revocations(pki: Pki, s: Session) -> Revocations:
    return Revocations(s, pki.clock, actor="test")


def _log(pki: Pki) -> list[Any]:
    with pki.factory() as s:
        return AuditLog(REVOCATION_CHAIN).entries(s)


# ----------------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    ("status", "action", "after"),
    [
        (GOOD, Action.REVOKE, REVOKED),
        (HOLD, Action.REVOKE, REVOKED),
        (REVOKED, Action.REVOKE, None),
        (GOOD, Action.HOLD, HOLD),
        (HOLD, Action.HOLD, None),
        (REVOKED, Action.HOLD, None),
        (HOLD, Action.RELEASE, GOOD),
        (GOOD, Action.RELEASE, None),
    ],
)
def test_transition(status: str, action: Action, after: str | None) -> None:
    assert transition(status, action) == after


def test_a_revoked_certificate_is_never_released() -> None:
    with pytest.raises(RuleViolation, match="cannot be restored"):
        transition(REVOKED, Action.RELEASE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(255, "ff"), ("00FF", "ff"), ("0x0a:bc", "abc"), ("DEADbeef", "deadbeef")],
)
def test_serials_are_normalised_as_stored(value: str | int, expected: str) -> None:
    assert normalise_serial(value) == expected


@pytest.mark.parametrize("value", ["", "xyz", "0", 0, -5, "f" * 43, 1 << 170, None])
def test_bad_serials_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        normalise_serial(value)
    assert err.value.field == "serial"


def test_reason_codes_are_rfc5280() -> None:
    assert Reason.KEY_COMPROMISE.code == 1
    assert Reason.AFFILIATION_CHANGED.code == 3
    assert Reason.CERTIFICATE_HOLD.code == 6
    assert Reason.PRIVILEGE_WITHDRAWN.code == 9


# ----------------------------------------------------------------------------------- revoke


def test_revoke_records_status_reason_cause_and_audit(pki: Pki) -> None:
    sign, auth = pki.card()
    with transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        assert svc.revoke(svc.certificate(SIGN, sign.serial), Reason.AFFILIATION_CHANGED, "identity:m1")
    row = pki.row(sign.id)
    assert (row.status, row.revocation_reason, row.revocation_cause) == (
        REVOKED,
        "affiliationChanged",
        "identity:m1",
    )
    assert row.revoked_at == pki.clock.now()
    assert pki.row(auth.id).status == GOOD
    (entry,) = _log(pki)
    assert entry.action == "revoke" and entry.actor == "test" and entry.subject == sign.resident_code
    assert entry.details["serial"] == sign.serial and entry.details["cause"] == "identity:m1"
    assert entry.details["previous"] == GOOD and entry.details["lg_code"] == sign.lg_code


def test_a_repeated_event_revokes_once(pki: Pki) -> None:
    sign, _ = pki.card()
    for _ in range(3):
        with transaction(pki.factory) as s:
            svc = _revocations(pki, s)
            svc.revoke(svc.certificate(SIGN, sign.serial), Reason.AFFILIATION_CHANGED, "identity:m1")
    assert len(_log(pki)) == 1


def test_a_second_different_event_changes_nothing(pki: Pki) -> None:
    sign, _ = pki.card()
    with transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        svc.revoke(svc.certificate(SIGN, sign.serial), Reason.AFFILIATION_CHANGED, "identity:m1")
    first = pki.row(sign.id)
    pki.clock.advance(hours=1)
    with transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        assert not svc.revoke(svc.certificate(SIGN, sign.serial), Reason.KEY_COMPROMISE, "holder")
    again = pki.row(sign.id)
    assert (again.revoked_at, again.revocation_reason, again.revocation_cause) == (
        first.revoked_at,
        "affiliationChanged",
        "identity:m1",
    )
    assert len(_log(pki)) == 1


@pytest.mark.parametrize("reason", ["certificateHold", "cACompromise", "removeFromCRL", "bogus"])
def test_a_certificate_is_not_revoked_for_a_reason_of_another_kind(pki: Pki, reason: str) -> None:
    sign, _ = pki.card()
    with transaction(pki.factory) as s, pytest.raises(InvalidInput) as err:
        svc = _revocations(pki, s)
        svc.revoke(svc.certificate(SIGN, sign.serial), reason, "x")
    assert err.value.field == "reason"
    assert pki.row(sign.id).status == GOOD


@pytest.mark.parametrize("cause", ["", "   ", "x" * 121])
def test_a_cause_is_required_and_bounded(pki: Pki, cause: str) -> None:
    sign, _ = pki.card()
    with transaction(pki.factory) as s, pytest.raises(InvalidInput) as err:
        svc = _revocations(pki, s)
        svc.revoke(svc.certificate(SIGN, sign.serial), Reason.UNSPECIFIED, cause)
    assert err.value.field == "cause"
    assert pki.row(sign.id).status == GOOD and _log(pki) == []


def test_a_failed_transaction_leaves_nothing(pki: Pki) -> None:
    sign, _ = pki.card()
    with pytest.raises(RuntimeError), transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        svc.revoke(svc.certificate(SIGN, sign.serial), Reason.KEY_COMPROMISE, "holder")
        raise RuntimeError("crash after the revocation")
    assert pki.row(sign.id).status == GOOD and _log(pki) == []


def test_revoke_each_applies_the_first_event_per_certificate(pki: Pki) -> None:
    sign, auth = pki.card()
    with transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        a, b = svc.certificate(SIGN, sign.serial), svc.certificate(AUTH, auth.serial)
        changed = svc.revoke_each(
            [
                (a, Reason.AFFILIATION_CHANGED, "identity:1"),
                (a, Reason.KEY_COMPROMISE, "identity:2"),
                (b, "cessationOfOperation", "identity:2"),
            ]
        )
    assert {c.id for c in changed} == {sign.id, auth.id}
    assert pki.row(sign.id).revocation_cause == "identity:1"
    assert pki.row(auth.id).revocation_reason == "cessationOfOperation"


# ----------------------------------------------------------------------------------- look-ups


def test_certificate_lookup(pki: Pki) -> None:
    sign, _ = pki.card()
    with pki.factory() as s:
        svc = _revocations(pki, s)
        assert svc.certificate(SIGN, sign.serial.upper()).id == sign.id
        assert svc.certificate(SIGN, int(sign.serial, 16), generation=1).id == sign.id
        with pytest.raises(NotFound):
            svc.certificate(AUTH, sign.serial)
        with pytest.raises(NotFound):
            svc.certificate(SIGN, sign.serial, generation=2)
        with pytest.raises(InvalidInput):
            svc.certificate("root", sign.serial)


# ----------------------------------------------------------------------------------- hold / release


def test_hold_then_release_at_the_counter(pki: Pki) -> None:
    sign, _ = pki.card()
    with transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        assert svc.hold(svc.certificate(SIGN, sign.serial), "hotline:call-1")
        assert not svc.hold(svc.certificate(SIGN, sign.serial), "hotline:call-2")
    row = pki.row(sign.id)
    assert (row.status, row.revocation_reason) == (HOLD, "certificateHold")
    with transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        assert svc.release(svc.certificate(SIGN, sign.serial), staff=STAFF, cause="counter:1")
    row = pki.row(sign.id)
    assert (row.status, row.revoked_at, row.revocation_reason, row.revocation_cause) == (
        GOOD,
        None,
        None,
        None,
    )
    actions = [(e.action, e.actor) for e in _log(pki)]
    assert actions == [("hold", "test"), ("release", STAFF.username)]


@pytest.mark.parametrize("who", [OPERATOR, None, "staff"])
def test_only_municipal_staff_release_a_hold(pki: Pki, who: Any) -> None:
    sign, _ = pki.card()
    with transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        svc.hold(svc.certificate(SIGN, sign.serial), "hotline:1")
    with transaction(pki.factory) as s, pytest.raises(Forbidden):
        svc = _revocations(pki, s)
        svc.release(svc.certificate(SIGN, sign.serial), staff=who, cause="counter:1")
    assert pki.row(sign.id).status == HOLD


def test_a_held_certificate_can_still_be_revoked_but_a_revoked_one_not_held(pki: Pki) -> None:
    sign, auth = pki.card()
    with transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        svc.hold(svc.certificate(SIGN, sign.serial), "hotline:1")
        assert svc.revoke(svc.certificate(SIGN, sign.serial), Reason.KEY_COMPROMISE, "lost:confirmed")
        svc.revoke(svc.certificate(AUTH, auth.serial), Reason.KEY_COMPROMISE, "lost:confirmed")
        assert not svc.hold(svc.certificate(AUTH, auth.serial), "hotline:2")
    assert pki.row(sign.id).revocation_reason == "keyCompromise"
    with transaction(pki.factory) as s, pytest.raises(RuleViolation):
        svc = _revocations(pki, s)
        svc.release(svc.certificate(SIGN, sign.serial), staff=STAFF, cause="counter")


# ----------------------------------------------------------------------------------- cards


def test_revoke_card_revokes_its_certificates_and_its_phones(pki: Pki) -> None:
    who = holder()
    sign, auth = pki.card(who, card_id="card-a")
    phone = pki.issue(SIGN, who, card_id="card-a", holder_kind=PHONE)
    other_sign, other_auth = pki.card(holder(), card_id="card-b")
    with transaction(pki.factory) as s:
        changed = _revocations(pki, s).revoke_card("card-a", Reason.CESSATION_OF_OPERATION, "card:void")
    assert {c.id for c in changed} == {sign.id, auth.id, phone.id}
    assert {pki.row(i).status for i in (sign.id, auth.id, phone.id)} == {REVOKED}
    assert {pki.row(i).status for i in (other_sign.id, other_auth.id)} == {GOOD}
    with transaction(pki.factory) as s:
        assert _revocations(pki, s).revoke_card("card-a", Reason.SUPERSEDED, "card:again") == []


def test_revoke_card_of_some_kinds_only(pki: Pki) -> None:
    sign, auth = pki.card(card_id="card-a")
    with transaction(pki.factory) as s:
        _revocations(pki, s).revoke_card("card-a", Reason.AFFILIATION_CHANGED, "x", kinds=(SIGN,))
    assert (pki.row(sign.id).status, pki.row(auth.id).status) == (REVOKED, GOOD)


def test_hold_card_and_release_card(pki: Pki) -> None:
    sign, auth = pki.card(card_id="card-a")
    with transaction(pki.factory) as s:
        assert len(_revocations(pki, s).hold_card("card-a", "hotline:1")) == 2
    with transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        svc.revoke(svc.certificate(SIGN, sign.serial), Reason.KEY_COMPROMISE, "found misused")
    with transaction(pki.factory) as s:
        released = _revocations(pki, s).release_card("card-a", staff=STAFF, cause="counter:1")
    assert [c.id for c in released] == [auth.id]
    assert (pki.row(sign.id).status, pki.row(auth.id).status) == (REVOKED, GOOD)
    with transaction(pki.factory) as s, pytest.raises(RuleViolation):
        _revocations(pki, s).release_card("card-a", staff=STAFF, cause="counter:2")


# ----------------------------------------------------------------------------------- CA generations


def test_revoke_generation_once(pki: Pki) -> None:
    gen = pki.generation(SIGN)
    with transaction(pki.factory) as s:
        assert _revocations(pki, s).revoke_generation(gen, Reason.CA_COMPROMISE, "drill")
    with transaction(pki.factory) as s:
        assert not _revocations(pki, s).revoke_generation(gen, Reason.CA_COMPROMISE, "drill")
        with pytest.raises(InvalidInput):
            _revocations(pki, s).revoke_generation(gen, Reason.AFFILIATION_CHANGED, "x")
    with pki.factory() as s:
        row = s.get(CaGenerationRow, gen.id)
        assert row is not None and row.revoked_at is not None and not row.active
        changes = changes_since(s, 0)
    assert [(c.action, c.ca_generation_id, c.lg_code) for c in changes] == [(Action.REVOKE_CA, gen.id, None)]


# ----------------------------------------------------------------------------------- change feed


class _Listener:
    def __init__(self) -> None:
        self.changes: list[tuple[Engine, StatusChange]] = []
        self.new: list[IssuedCertificate] = []

    def status_changed(self, engine: Engine, changes: Sequence[StatusChange]) -> None:
        self.changes.extend((engine, c) for c in changes)

    def issued(self, engine: Engine, certificates: Sequence[IssuedCertificate]) -> None:
        self.new.extend(certificates)


def test_listeners_hear_of_committed_changes_only(pki: Pki) -> None:
    sign, auth = pki.card()
    listener = _Listener()
    subscribe(listener)
    try:
        with pytest.raises(RuntimeError), transaction(pki.factory) as s:
            svc = _revocations(pki, s)
            svc.revoke(svc.certificate(AUTH, auth.serial), Reason.KEY_COMPROMISE, "rolled back")
            raise RuntimeError
        assert listener.changes == []
        with transaction(pki.factory) as s:
            svc = _revocations(pki, s)
            svc.hold(svc.certificate(SIGN, sign.serial), "hotline:1")
            assert listener.changes == []  # not before the commit
        ((engine, change),) = listener.changes
        assert engine is pki.factory.kw["bind"]
        assert (change.action, change.serial, change.status, change.reason) == (
            Action.HOLD,
            sign.serial,
            HOLD,
            "certificateHold",
        )
        assert change.seq == 1
    finally:
        unsubscribe(listener)


def test_the_feed_lists_changes_after_a_sequence_number(pki: Pki) -> None:
    sign, auth = pki.card()
    with pki.factory() as s:
        assert feed_head(s) == 0
    with transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        svc.hold(svc.certificate(SIGN, sign.serial), "hotline:1")
        svc.revoke(svc.certificate(AUTH, auth.serial), Reason.KEY_COMPROMISE, "x")
    with transaction(pki.factory) as s:
        svc = _revocations(pki, s)
        svc.release(svc.certificate(SIGN, sign.serial), staff=STAFF, cause="counter")
    with pki.factory() as s:
        assert feed_head(s) == 3
        assert [(c.seq, c.action, c.status) for c in changes_since(s, 1)] == [
            (2, Action.REVOKE, REVOKED),
            (3, Action.RELEASE, GOOD),
        ]
        released = changes_since(s, 2)[0]
        assert released.revoked_at is None and released.reason is None


def test_listeners_hear_of_issued_certificates_after_the_commit(pki: Pki) -> None:
    listener = _Listener()
    subscribe(listener)
    try:
        with transaction(pki.factory) as s:
            row = pki.ca(s).issue(
                SIGN,
                key_pool(Algorithm.RSA2048_SHA256)[0].public_key(),
                holder(),
                card_id="c-new",
                card_expires_on=pki.clock.today() + dt.timedelta(days=3650),
            )
            notify_issued(s, [row])
            assert listener.new == []
        assert [(c.serial, c.status) for c in listener.new] == [(row.serial, GOOD)]
    finally:
        unsubscribe(listener)
