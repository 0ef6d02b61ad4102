"""Errors shared by every package. Each carries the field and the rule it enforces, so the HTTP layer
can answer with a 4xx JSON body that names both, and the CLI can print them."""

from __future__ import annotations

from typing import Any


class JlisError(Exception):
    """Base class. ``http_status`` is what the web adapter answers with."""

    http_status = 400
    kind = "error"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.kind, "message": self.message, **self.context}


class InvalidInput(JlisError):
    """A value broke a rule at the boundary: ``field`` names it, ``rule`` says which rule."""

    http_status = 422
    kind = "invalid_input"

    def __init__(self, field: str, rule: str, message: str | None = None) -> None:
        super().__init__(message or f"{field}: {rule}", field=field, rule=rule)
        self.field = field
        self.rule = rule


class RuleViolation(JlisError):
    """A well-formed request the current state does not allow (e.g. 転出 of a deceased person)."""

    http_status = 409
    kind = "rule_violation"

    def __init__(self, field: str, rule: str, message: str | None = None) -> None:
        super().__init__(message or f"{field}: {rule}", field=field, rule=rule)
        self.field = field
        self.rule = rule


class Conflict(RuleViolation):
    """Another writer changed the record the request read, at the same time, and went on changing
    it while the request was run again: nothing of the request was written, and sent again it
    applies to the record as it is then."""

    kind = "conflict"


class NotFound(JlisError):
    http_status = 404
    kind = "not_found"

    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"{what} not found: {key}", field=what, rule="must exist")


class Unauthenticated(JlisError):
    http_status = 401
    kind = "unauthenticated"


class Forbidden(JlisError):
    """Deny by default: raised whenever a principal acts outside its scope."""

    http_status = 403
    kind = "forbidden"
