"""UnknownCode: the house error format, and nothing about whose code it might be."""

from __future__ import annotations

from jlis.errors import JlisError
from jlis.linkage.hub.errors import UnknownCode


def test_unknown_code_names_the_field_and_the_rule_only() -> None:
    exc = UnknownCode("lg-131016")
    assert isinstance(exc, JlisError) and exc.http_status == 404
    assert exc.to_dict() == {
        "error": "unknown_code",
        "message": "code: not a code issued to member lg-131016",
        "field": "code",
        "rule": "must be a code the hub issued to the presenting member",
    }
    assert UnknownCode("nenkin", field="requester_code").field == "requester_code"
