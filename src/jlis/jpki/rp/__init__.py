"""Relying-party SDK of the public certification service (``jlis.jpki.rp``).

What a bank, an eKYC or an e-signature service needs, without the rest of jlis running in-process:

- sign a document with a (virtual) My Number card as CMS SignedData: :func:`sign_document`
  (``open_card`` opens a card file exported by ``jlis card export``);
- verify such a signature against a *signing* :class:`TrustStore`, with revocation by
  :class:`OcspChecker` or :class:`CrlChecker`, and get the signer's verified :class:`Basic4`:
  :func:`verify_signature`;
- log a user in with the card's authentication key: :func:`make_challenge`, :func:`respond`
  (card side), :func:`verify_login` (server side) against an *authentication* trust store.

Every refusal is a :mod:`jlis.jpki.rp.errors` exception naming the field and the rule. The login
routes of a running jlis are in :mod:`jlis.jpki.rp.server` (imported separately: it needs FastAPI).
"""

from jlis.jpki.rp.errors import (
    BadSignature,
    CertificateNotValid,
    CertificateRevoked,
    LoginRefused,
    MalformedMessage,
    PinBlocked,
    RevocationCheckFailed,
    RevocationUnknown,
    UnknownGeneration,
    UntrustedCertificate,
    WrongPin,
    WrongTrustStore,
)
from jlis.jpki.rp.http import Fetcher, HttpxFetcher
from jlis.jpki.rp.identity import Basic4, Era, basic4_from_certificate
from jlis.jpki.rp.login import (
    Challenge,
    LoginResponse,
    LoginResult,
    ReplayGuard,
    make_challenge,
    respond,
    verify_login,
)
from jlis.jpki.rp.sign import open_card, sign_document
from jlis.jpki.rp.status import CrlChecker, OcspChecker, RevocationChecker, RevocationResult
from jlis.jpki.rp.trust import Purpose, TrustAnchor, TrustStore
from jlis.jpki.rp.verify import VerifiedCertificate, VerifiedSignature, verify_certificate, verify_signature

__all__ = [
    "BadSignature",
    "Basic4",
    "CertificateNotValid",
    "CertificateRevoked",
    "Challenge",
    "CrlChecker",
    "Era",
    "Fetcher",
    "HttpxFetcher",
    "LoginRefused",
    "LoginResponse",
    "LoginResult",
    "MalformedMessage",
    "OcspChecker",
    "PinBlocked",
    "Purpose",
    "ReplayGuard",
    "RevocationCheckFailed",
    "RevocationChecker",
    "RevocationResult",
    "RevocationUnknown",
    "TrustAnchor",
    "TrustStore",
    "UnknownGeneration",
    "UntrustedCertificate",
    "VerifiedCertificate",
    "VerifiedSignature",
    "WrongPin",
    "WrongTrustStore",
    "basic4_from_certificate",
    "make_challenge",
    "open_card",
    "respond",
    "sign_document",
    "verify_certificate",
    "verify_login",
    "verify_signature",
]
