"""Public distribution points of the organisation CA: its root certificates and its CRL (the URL in
every 職責証明書's cRLDistributionPoints). Both are public by nature: anyone verifying a municipal
document needs them."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from jlis.db import transaction
from jlis.lgwan.ca import OrganisationCA
from jlis.web.deps import get_container, public

router = APIRouter(prefix="/lgwan/ca", include_in_schema=False)


def _ca(request: Request, s: object) -> OrganisationCA:
    container = get_container(request)
    return OrganisationCA(
        s,  # type: ignore[arg-type]
        container.clock,
        container.keystore,
        container.settings.resolved_public_url,
        rng=container.rng,
    )


@router.get("/crl", dependencies=[Depends(public)])
def crl(request: Request) -> Response:
    with transaction(get_container(request).factory) as s:
        der = _ca(request, s).crl().public_bytes(Encoding.DER)
    return Response(der, media_type="application/pkix-crl")


@router.get("/certificates", dependencies=[Depends(public)])
def certificates(request: Request) -> Response:
    """Every generation's root, PEM, concatenated (a trust store for pyHanko or openssl)."""
    with transaction(get_container(request).factory) as s:
        pem = b"".join(c.public_bytes(Encoding.PEM) for c in _ca(request, s).trust_anchors())
    return Response(pem, media_type="application/x-pem-file")
