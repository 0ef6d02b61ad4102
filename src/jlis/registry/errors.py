"""Errors of the register. They are the shared kinds from :mod:`jlis.errors`, re-exported so that
callers of this package need not know where they live."""

from jlis.errors import InvalidInput, NotFound, RuleViolation

__all__ = ["InvalidInput", "NotFound", "RuleViolation"]
