from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from jlis.jpki.rp.errors import CertificateRevoked, RevocationCheckFailed, RevocationUnknown
from jlis.jpki.rp.status import CrlChecker, OcspChecker, crl_urls, ocsp_urls
from jlis.jpki.rp.trust import TrustAnchor, TrustStore

from .conftest import NOW, FakeFetcher, Leaf, Pki, crl_uri

OCSP_URL = "http://jlis.test/jpki/ocsp/sign"


def anchor(leaf: Leaf) -> TrustAnchor:
    return TrustStore(leaf.root.kind, [(f"g{leaf.root.generation}", leaf.root.cert)]).anchors[0]


def fixed_nonce(n: int) -> bytes:
    return b"N" * n


def test_urls_come_from_the_certificate(pki: Pki) -> None:
    leaf = pki.leaf(pki.root("sign"))
    assert ocsp_urls(leaf.cert) == [OCSP_URL]
    assert crl_urls(leaf.cert) == [crl_uri(leaf.root, "131016")]


class TestOcsp:
    def test_good_with_the_nonce_echoed(self, pki: Pki, fetcher: FakeFetcher) -> None:
        leaf = pki.leaf(pki.root("sign"))
        fetcher.serve(OCSP_URL, pki.ocsp_answer(leaf, nonce=b"N" * 16))
        result = OcspChecker(fetcher, require_nonce=True, nonce_source=fixed_nonce).check(
            leaf.cert, anchor(leaf), NOW
        )
        assert result.method == "ocsp" and result.source == OCSP_URL
        method, url, body, headers = fetcher.calls[0]
        assert (method, url) == ("POST", OCSP_URL)
        assert headers["Content-Type"] == "application/ocsp-request"
        req = ocsp.load_der_ocsp_request(body or b"")
        assert req.serial_number == leaf.cert.serial_number
        assert req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"N" * 16

    def test_another_nonce_is_a_replay(self, pki: Pki, fetcher: FakeFetcher) -> None:
        leaf = pki.leaf(pki.root("sign"))
        fetcher.serve(OCSP_URL, pki.ocsp_answer(leaf, nonce=b"X" * 16))
        with pytest.raises(RevocationCheckFailed, match="nonce"):
            OcspChecker(fetcher, nonce_source=fixed_nonce).check(leaf.cert, anchor(leaf), NOW)

    def test_missing_nonce_is_accepted_unless_required(self, pki: Pki, fetcher: FakeFetcher) -> None:
        leaf = pki.leaf(pki.root("sign"))
        fetcher.serve(OCSP_URL, pki.ocsp_answer(leaf))
        OcspChecker(fetcher).check(leaf.cert, anchor(leaf), NOW)
        with pytest.raises(RevocationCheckFailed, match="echoed"):
            OcspChecker(fetcher, require_nonce=True).check(leaf.cert, anchor(leaf), NOW)

    def test_hold_is_reported_as_hold(self, pki: Pki, fetcher: FakeFetcher) -> None:
        leaf = pki.leaf(pki.root("sign"))
        fetcher.serve(
            OCSP_URL,
            pki.ocsp_answer(
                leaf, status=ocsp.OCSPCertStatus.REVOKED, reason=x509.ReasonFlags.certificate_hold
            ),
        )
        with pytest.raises(CertificateRevoked, match="一時保留") as err:
            OcspChecker(fetcher).check(leaf.cert, anchor(leaf), NOW)
        assert err.value.reason == "certificateHold"

    def test_unknown(self, pki: Pki, fetcher: FakeFetcher) -> None:
        leaf = pki.leaf(pki.root("sign"))
        fetcher.serve(OCSP_URL, pki.ocsp_answer(leaf, status=ocsp.OCSPCertStatus.UNKNOWN))
        with pytest.raises(RevocationUnknown):
            OcspChecker(fetcher).check(leaf.cert, anchor(leaf), NOW)

    def test_a_responder_delegated_by_another_generation_is_refused(
        self, pki: Pki, fetcher: FakeFetcher
    ) -> None:
        leaf = pki.leaf(pki.root("sign", 1))
        other = pki.responder(pki.root("sign", 2))
        fetcher.serve(OCSP_URL, pki.ocsp_answer(leaf, responder=other))
        with pytest.raises(RevocationCheckFailed, match="generation"):
            OcspChecker(fetcher).check(leaf.cert, anchor(leaf), NOW)

    def test_a_responder_without_ocsp_signing_is_refused(self, pki: Pki, fetcher: FakeFetcher) -> None:
        leaf = pki.leaf(pki.root("sign"))
        not_a_responder = pki.leaf(pki.root("sign"))  # an end-entity certificate of the same CA
        fetcher.serve(OCSP_URL, pki.ocsp_answer(leaf, responder=not_a_responder))
        with pytest.raises(RevocationCheckFailed, match="OCSPSigning"):
            OcspChecker(fetcher).check(leaf.cert, anchor(leaf), NOW)

    def test_stale_answer_is_refused(self, pki: Pki, fetcher: FakeFetcher) -> None:
        leaf = pki.leaf(pki.root("sign"))
        fetcher.serve(
            OCSP_URL,
            pki.ocsp_answer(
                leaf, this_update=NOW - dt.timedelta(days=2), next_update=NOW - dt.timedelta(days=1)
            ),
        )
        with pytest.raises(RevocationCheckFailed, match="stale"):
            OcspChecker(fetcher).check(leaf.cert, anchor(leaf), NOW)
        fetcher.serve(OCSP_URL, pki.ocsp_answer(leaf, this_update=NOW - dt.timedelta(hours=3)))
        with pytest.raises(RevocationCheckFailed, match="newer"):
            OcspChecker(fetcher, max_age=dt.timedelta(hours=1)).check(leaf.cert, anchor(leaf), NOW)

    def test_answer_for_another_certificate_is_refused(self, pki: Pki, fetcher: FakeFetcher) -> None:
        leaf, other = pki.leaf(pki.root("sign")), pki.leaf(pki.root("sign"))
        fetcher.serve(OCSP_URL, pki.ocsp_answer(other))
        with pytest.raises(RevocationCheckFailed, match="this certificate"):
            OcspChecker(fetcher).check(leaf.cert, anchor(leaf), NOW)

    @pytest.mark.parametrize("status", [401, 403])
    def test_refused_token_is_named(self, pki: Pki, fetcher: FakeFetcher, status: int) -> None:
        leaf = pki.leaf(pki.root("sign"))
        fetcher.serve(OCSP_URL, b"", status=status)
        with pytest.raises(RevocationCheckFailed, match="bearer token") as err:
            OcspChecker(fetcher, token="bad").check(leaf.cert, anchor(leaf), NOW)
        assert err.value.field == "ocsp.token"

    def test_error_status_and_garbage(self, pki: Pki, fetcher: FakeFetcher) -> None:
        leaf = pki.leaf(pki.root("sign"))
        fetcher.serve(
            OCSP_URL,
            ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
                serialization.Encoding.DER
            ),
        )
        with pytest.raises(RevocationCheckFailed, match="unauthorized"):
            OcspChecker(fetcher).check(leaf.cert, anchor(leaf), NOW)
        fetcher.serve(OCSP_URL, b"\x30\x00junk")
        with pytest.raises(RevocationCheckFailed, match="DER"):
            OcspChecker(fetcher).check(leaf.cert, anchor(leaf), NOW)

    def test_explicit_url_overrides_the_aia(self, pki: Pki, fetcher: FakeFetcher) -> None:
        leaf = pki.leaf(pki.root("sign"))
        fetcher.serve("http://other/ocsp", pki.ocsp_answer(leaf))
        OcspChecker(fetcher, url="http://other/ocsp").check(leaf.cert, anchor(leaf), NOW)


class TestCrl:
    def test_good_and_cached(self, pki: Pki, fetcher: FakeFetcher) -> None:
        root = pki.root("sign")
        leaf, other = pki.leaf(root), pki.leaf(root)
        fetcher.serve(
            crl_uri(root, "131016"),
            pki.crl(root, [(other.cert, None)], lg_code="131016").public_bytes(serialization.Encoding.DER),
        )
        checker = CrlChecker(fetcher, token="t")
        assert checker.check(leaf.cert, anchor(leaf), NOW).method == "crl"
        checker.check(leaf.cert, anchor(leaf), NOW)
        assert len(fetcher.calls) == 1  # cached until its nextUpdate
        assert fetcher.calls[0][3] == {"Authorization": "Bearer t"}
        with pytest.raises(CertificateRevoked):
            checker.check(other.cert, anchor(other), NOW)

    def test_another_partition_does_not_vouch(self, pki: Pki) -> None:
        root = pki.root("sign")
        leaf = pki.leaf(root, lg_code="131016")
        foreign = pki.crl(root, [], lg_code="271004")
        with pytest.raises(RevocationCheckFailed, match="partition"):
            CrlChecker(crls=[("osaka.crl", foreign)]).check(leaf.cert, anchor(leaf), NOW)

    def test_a_full_crl_vouches_for_every_partition(self, pki: Pki) -> None:
        root = pki.root("sign")
        leaf = pki.leaf(root, lg_code="131016")
        CrlChecker(crls=[("full.crl", pki.crl(root, []))]).check(leaf.cert, anchor(leaf), NOW)

    def test_another_generations_crl_is_refused(self, pki: Pki) -> None:
        leaf = pki.leaf(pki.root("sign", 1))
        crl = pki.crl(pki.root("sign", 2), [])
        with pytest.raises(RevocationCheckFailed, match="generation"):
            CrlChecker(crls=[("g2.crl", crl)]).check(leaf.cert, anchor(leaf), NOW)

    def test_forged_crl_is_refused(self, pki: Pki) -> None:
        root = pki.root("sign", 1)
        leaf = pki.leaf(root)
        # signed by generation 2's key but claiming generation 1's key id: the signature decides
        from cryptography.hazmat.primitives import hashes

        forged = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(root.cert.subject)
            .last_update(NOW - dt.timedelta(hours=1))
            .next_update(NOW + dt.timedelta(hours=1))
            .sign(pki.root("sign", 2).key, hashes.SHA256())  # type: ignore[arg-type]
        )
        with pytest.raises(RevocationCheckFailed, match="signature"):
            CrlChecker(crls=[("x.crl", forged)]).check(leaf.cert, anchor(leaf), NOW)

    def test_stale_crl_is_refused(self, pki: Pki) -> None:
        root = pki.root("sign")
        leaf = pki.leaf(root)
        crl = pki.crl(
            root, [], this_update=NOW - dt.timedelta(days=3), next_update=NOW - dt.timedelta(days=2)
        )
        with pytest.raises(RevocationCheckFailed, match="stale"):
            CrlChecker(crls=[("old.crl", crl)]).check(leaf.cert, anchor(leaf), NOW)

    def test_unreachable_distribution_point(self, pki: Pki, fetcher: FakeFetcher) -> None:
        leaf = pki.leaf(pki.root("sign"))
        with pytest.raises(RevocationCheckFailed, match="HTTP 404"):
            CrlChecker(fetcher).check(leaf.cert, anchor(leaf), NOW)
