"""Errors of the linkage hub. Each names the field and the rule, like every :mod:`jlis.errors`
exception, so the API answers with a 4xx body that says both."""

from __future__ import annotations

from jlis.errors import JlisError


class UnknownCode(JlisError):
    """A code the hub did not issue to the member presenting it.

    Fails closed and says nothing more: the same answer whether the code does not exist at all or
    belongs to another member, so that member A learns nothing by trying member B's codes."""

    http_status = 404
    kind = "unknown_code"

    def __init__(self, member_id: str, field: str = "code") -> None:
        super().__init__(
            f"{field}: not a code issued to member {member_id}",
            field=field,
            rule="must be a code the hub issued to the presenting member",
        )
        self.field = field
        self.rule = "must be a code the hub issued to the presenting member"
        self.member_id = member_id
