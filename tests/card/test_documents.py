"""The identity check at the counter: one photo ID or two others, plus what the action needs."""

from __future__ import annotations

import pytest

from jlis.card.documents import Document, check_identity, parse_documents
from jlis.errors import InvalidInput, RuleViolation

D = Document


def test_one_photo_id_or_two_others() -> None:
    assert check_identity([D.PASSPORT]) == [D.PASSPORT]
    assert check_identity([D.HEALTH_INSURANCE, D.PENSION_BOOK]) == [D.HEALTH_INSURANCE, D.PENSION_BOOK]
    with pytest.raises(RuleViolation, match="one photo ID") as exc:
        check_identity([D.HEALTH_INSURANCE])
    assert exc.value.field == "本人確認書類"


def test_notices_prove_nothing_by_themselves() -> None:
    with pytest.raises(RuleViolation, match="one photo ID"):
        check_identity([D.NOTICE, D.NUMBER_NOTICE, D.HEALTH_INSURANCE])


def test_required_documents() -> None:
    assert D.NOTICE in check_identity([D.NOTICE, D.DRIVER_LICENCE], require=[D.NOTICE])
    with pytest.raises(RuleViolation, match="notice"):
        check_identity([D.DRIVER_LICENCE], require=[D.NOTICE])


def test_parse_documents() -> None:
    assert parse_documents(["passport", "passport", "notice"]) == [D.PASSPORT, D.NOTICE]
    with pytest.raises(InvalidInput) as exc:
        parse_documents(["library_card"])
    assert exc.value.field == "本人確認書類"
    assert D.RESIDENCE_CARD.photo_id and not D.STUDENT_ID.photo_id and D.PASSPORT.label == "旅券"
