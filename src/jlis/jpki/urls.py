"""Where relying parties fetch revocation information and CA certificates.

The CA writes these URLs into every certificate (CRL distribution point, AIA); the revocation routes
serve them. Both sides call these functions so that the two can never drift apart.
"""

from __future__ import annotations


def _base(base: str) -> str:
    return base.rstrip("/")


def ocsp_url(base: str, ca_kind: str) -> str:
    """The OCSP responder of one CA kind (all its generations): ``{base}/jpki/ocsp/{kind}``."""
    return f"{_base(base)}/jpki/ocsp/{ca_kind}"


def crl_url(base: str, ca_kind: str, generation: int, lg_code: str | None = None) -> str:
    """The full CRL of one generation, or with ``lg_code`` the partition of one municipality."""
    if lg_code is None:
        return f"{_base(base)}/jpki/crl/{ca_kind}/g{generation}.crl"
    return f"{_base(base)}/jpki/crl/{ca_kind}/g{generation}/{lg_code}.crl"


def arl_url(base: str, ca_kind: str) -> str:
    """The authority revocation list (revoked CA generations) of one CA kind."""
    return f"{_base(base)}/jpki/arl/{ca_kind}.crl"


def ca_cert_url(base: str, ca_kind: str, generation: int) -> str:
    """The DER certificate of one CA generation (AIA caIssuers)."""
    return f"{_base(base)}/jpki/ca/{ca_kind}/g{generation}.cer"
