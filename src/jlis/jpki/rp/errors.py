"""What a relying party is told when a signature or a login is refused.

Every error names the field that failed and the rule it broke (as :mod:`jlis.errors` does), so a bank's
log says *why*: the wrong trust store, an unknown CA generation, a revoked certificate, a bad
signature. All verification fails closed: anything not positively checked is an error, never a pass.
"""

from __future__ import annotations

import datetime as dt

from jlis.card.chip.errors import CardError, PinBlocked, WrongPin
from jlis.errors import InvalidInput, RuleViolation


class MalformedMessage(InvalidInput):
    """The bytes are not what they claim to be (not DER, not SignedData, no signer...)."""


class BadSignature(InvalidInput):
    """A signature or a digest does not match: the content, the signed attributes, a certificate,
    a CRL or an OCSP response was altered or signed by another key."""


class UntrustedCertificate(InvalidInput):
    """The certificate does not chain to a root of the trust store it was checked against."""


class WrongTrustStore(UntrustedCertificate):
    """A signing certificate offered for a login, or an authentication certificate offered as a
    signature (facts §3.1: the two hierarchies are kept apart)."""


class UnknownGeneration(UntrustedCertificate):
    """The issuer DN is trusted but no trusted generation has the certificate's key identifier:
    the root of that generation is missing from the store (download it) or the certificate is forged."""


class CertificateNotValid(RuleViolation):
    """Outside its validity period at the time of the check (expired or not yet valid)."""


class CertificateRevoked(RuleViolation):
    """Revoked, or on hold (一時保留), according to the OCSP responder or the CRL."""

    def __init__(
        self, field: str, rule: str, *, revoked_at: dt.datetime | None, reason: str | None, source: str
    ) -> None:
        super().__init__(field, rule)
        self.revoked_at = revoked_at
        self.reason = reason
        self.source = source
        self.context.update(
            revoked_at=revoked_at.isoformat() if revoked_at else None, reason=reason, source=source
        )


class RevocationUnknown(RuleViolation):
    """The responder does not know the certificate: it was not issued by that CA (or not yet)."""


class RevocationCheckFailed(RuleViolation):
    """No trustworthy revocation answer could be had: unreachable responder, token refused, stale or
    badly signed response, a CRL of the wrong partition. Fails closed."""


class LoginRefused(RuleViolation):
    """A login challenge was expired, replayed, issued for another audience, or unknown."""


# The card's own refusals, raised by jlis.card.chip.reader.CardReader and passed through unchanged:
# WrongPin (the counter went down, ``tries_left`` remain) and PinBlocked (only the counter resets it).
__all__ = [
    "BadSignature",
    "CardError",
    "CertificateNotValid",
    "CertificateRevoked",
    "LoginRefused",
    "MalformedMessage",
    "PinBlocked",
    "RevocationCheckFailed",
    "RevocationUnknown",
    "UnknownGeneration",
    "UntrustedCertificate",
    "WrongPin",
    "WrongTrustStore",
]
