"""Pure parts: the canonical request and its MAC, the shape checks, the record hash fields, the
disclosure rule."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jlis.clock import JST
from jlis.errors import Forbidden, InvalidInput
from jlis.linkage.exchange.models import (
    DisclosurePolicy,
    Outcome,
    QueryAnswer,
    RefusalReason,
    canonical_request,
    mac_matches,
    record_fields,
    request_mac,
    sign_request,
    visible,
)

KEY = bytes(range(32))
AT = dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST)


def request(**overrides: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = dict(
        request_id="r-1",
        requester_code="ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        affair="pension_benefit",
        provider_id="lg-131016",
        category="local_tax",
        items=("tax_year",),
        sent_at=AT,
    )
    values.update(overrides)
    return sign_request(KEY, "nenkin", **values)  # type: ignore[arg-type]


def test_the_mac_is_hmac_sha256_over_the_canonical_request() -> None:
    r = request()
    assert r.mac == hmac.new(KEY, canonical_request("nenkin", r), hashlib.sha256).hexdigest()
    assert mac_matches(KEY, "nenkin", r)
    body = canonical_request("nenkin", r).decode()
    assert '"sent_at":"2026-11-26T01:00:00.000000+00:00"' in body  # UTC, whatever the sender's zone
    assert canonical_request("nenkin", dataclasses.replace(r, sent_at=AT.astimezone(dt.UTC))) == body.encode()


@pytest.mark.parametrize(
    "change",
    [
        {"request_id": "r-2"},
        {"requester_code": "BBCDEFGHIJKLMNOPQRSTUVWXYZ"},
        {"affair": "scholarship"},
        {"provider_id": "lg-131041"},
        {"category": "nhi"},
        {"items": ("tax_year", "total_income")},
        {"sent_at": AT + dt.timedelta(microseconds=1)},
        {"disclosure": DisclosurePolicy.NEVER},
    ],
)
def test_any_change_breaks_the_mac(change: dict[str, object]) -> None:
    assert not mac_matches(KEY, "nenkin", dataclasses.replace(request(), **change))  # type: ignore[arg-type]


def test_the_mac_binds_the_requester_and_the_key() -> None:
    r = request()
    assert not mac_matches(KEY, "jasso", r)
    assert not mac_matches(bytes(32), "nenkin", r)
    assert not mac_matches(KEY, "nenkin", dataclasses.replace(r, mac="0" * 64))


@given(
    st.lists(
        st.sampled_from(["tax_year", "total_income", "tax_exempt", "dependents"]),
        min_size=1,
        max_size=4,
        unique=True,
    )
)
def test_item_order_is_part_of_the_request(items: list[str]) -> None:
    r = request(items=tuple(items))
    assert mac_matches(KEY, "nenkin", r)
    if len(items) > 1:
        assert not mac_matches(KEY, "nenkin", dataclasses.replace(r, items=tuple(reversed(items))))
    assert request_mac(KEY, "nenkin", r) == r.mac


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"request_id": ""}, "request_id"),
        ({"request_id": "x" * 65}, "request_id"),
        ({"requester_code": "A B"}, "requester_code"),
        ({"affair": "年金"}, "affair"),
        ({"provider_id": ""}, "provider_id"),
        ({"category": "Local"}, "category"),
        ({"items": "tax_year"}, "items"),
        ({"items": tuple(f"i{n}" for n in range(33))}, "items"),
        ({"sent_at": dt.datetime(2026, 11, 26)}, "sent_at"),
        ({"mac": "ABC"}, "mac"),
        ({"disclosure": "sometimes"}, "disclosure"),
        ({"disclosure": DisclosurePolicy.IMMEDIATE, "disclose_after": dt.date(2027, 1, 1)}, "disclose_after"),
    ],
)
def test_shape_checks_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        dataclasses.replace(request(), **change).checked()  # type: ignore[arg-type]
    assert info.value.field == field


def test_a_deferred_request_with_a_date_is_well_formed() -> None:
    r = request(disclosure=DisclosurePolicy.DEFERRED, disclose_after=dt.date(2027, 4, 1))
    assert r.checked() is r and mac_matches(KEY, "nenkin", r)


def test_visibility_follows_the_policy() -> None:
    today = dt.date(2026, 11, 26)
    assert visible(DisclosurePolicy.IMMEDIATE, None, today)
    assert not visible(DisclosurePolicy.NEVER, None, dt.date(2099, 1, 1))
    assert not visible(DisclosurePolicy.DEFERRED, dt.date(2026, 11, 27), today)
    assert visible(DisclosurePolicy.DEFERRED, dt.date(2026, 11, 26), today)
    assert not visible(DisclosurePolicy.DEFERRED, None, today)  # fails closed


def test_record_fields_are_utc_and_complete() -> None:
    fields = record_fields(
        keeper="hub",
        seq=1,
        role="hub",
        exchange_no=1,
        request_id="r",
        person=None,
        requester_id="a",
        requester_name="A",
        provider_id="b",
        provider_name="B",
        affair="x",
        affair_name="X",
        category="c",
        items=("i",),
        outcome="provided",
        reason=None,
        requested_at=AT,
        provided_at=AT,
        non_disclosure=False,
        disclosure="immediate",
        disclose_after=None,
        recorded_at=AT,
    )
    assert fields["requested_at"] == "2026-11-26T01:00:00.000000+00:00"
    assert fields["items"] == ["i"] and fields["keeper"] == "hub" and fields["seq"] == 1
    assert len(fields) == 22


def test_a_refused_answer_raises_forbidden_naming_the_field() -> None:
    answer = QueryAnswer(
        "r",
        7,
        Outcome.REFUSED,
        "lg-131016",
        "a",
        "c",
        ("i",),
        AT,
        None,
        reason=RefusalReason.ITEMS_NOT_ALLOWED,
        message="no",
    )
    with pytest.raises(Forbidden) as info:
        answer.raise_if_refused()
    assert info.value.context["field"] == "items" and info.value.context["exchange_no"] == 7
    assert RefusalReason.TAMPERED.label and Outcome.NO_MATCH.label == "該当なし"
