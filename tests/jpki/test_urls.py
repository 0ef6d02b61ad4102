"""The URLs written into certificates are the ones the revocation routes serve (contract paths)."""

from __future__ import annotations

from jlis.jpki.urls import arl_url, ca_cert_url, crl_url, ocsp_url


def test_ocsp_url_per_kind_and_trailing_slash_ignored() -> None:
    assert ocsp_url("http://127.0.0.1:8000/", "sign") == "http://127.0.0.1:8000/jpki/ocsp/sign"
    assert ocsp_url("https://jlis.example", "auth") == "https://jlis.example/jpki/ocsp/auth"


def test_crl_url_full_and_partition() -> None:
    assert crl_url("http://h", "sign", 2) == "http://h/jpki/crl/sign/g2.crl"
    assert crl_url("http://h", "sign", 2, "132217") == "http://h/jpki/crl/sign/g2/132217.crl"


def test_arl_and_ca_certificate_urls() -> None:
    assert arl_url("http://h/", "auth") == "http://h/jpki/arl/auth.crl"
    assert ca_cert_url("http://h", "auth", 3) == "http://h/jpki/ca/auth/g3.cer"
