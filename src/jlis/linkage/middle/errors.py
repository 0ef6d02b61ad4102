"""Errors of the middle server. Each names the field and the rule (see :mod:`jlis.errors`) and none
repeats the 符号 or the 宛名番号 asked about: the hub relays a refusal to the requester, who must not
learn the provider's code."""

from __future__ import annotations

from jlis.errors import JlisError, NotFound


class UnregisteredCode(NotFound):
    """The 符号 is not stored at this member's middle server (never linked, or not this member's)."""

    kind = "unregistered_code"

    def __init__(self, member_id: str) -> None:
        JlisError.__init__(
            self,
            f"符号: not registered at the middle server of {member_id}",
            field="符号",
            rule="must be registered at the provider's middle server",
        )
        self.field = "符号"
        self.rule = "must be registered at the provider's middle server"
        self.member_id = member_id


class NoReplica(NotFound):
    """The person has no replica of the category at this middle server."""

    kind = "no_replica"

    def __init__(self, category: str) -> None:
        JlisError.__init__(
            self,
            f"副本: none of category {category!r} for this person",
            field="category",
            rule="the person must have a replica of this category",
        )
        self.field = "category"
        self.rule = "the person must have a replica of this category"
        self.category = category
