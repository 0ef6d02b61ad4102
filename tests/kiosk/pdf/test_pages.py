from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.kiosk.pdf.service import CertificateDocuments

from .conftest import SUBJECT, PooledKeyStore, make_content, web_app

Docs = Callable[[Session], CertificateDocuments]


def _verdict(html: str) -> str | None:
    m = re.search(r'data-verdict="(\w+)"', html)
    return m.group(1) if m else None


def test_verify_page_by_qr_link_form_and_upload(
    factory: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    pooled_keystore: PooledKeyStore,
    documents: Docs,
) -> None:
    with transaction(factory) as s:
        doc = documents(s).issue(make_content(), actor="issuer")
    clock.advance(minutes=1)
    with web_app(factory, clock, tmp_path, pooled_keystore) as (client, _):
        empty = client.get("/verify")
        assert empty.status_code == 200 and "証明書の確認" in empty.text and _verdict(empty.text) is None

        qr = client.get("/verify", params={"n": doc.certificate_number, "c": doc.code})  # what the QR opens
        assert _verdict(qr.text) == "valid", qr.text
        assert doc.sha256 in qr.text and "東京都千代田区" in qr.text and "住民票の写し" in qr.text
        assert SUBJECT not in qr.text and "髙橋" not in qr.text

        wrong = client.post("/verify", data={"n": doc.certificate_number, "c": "A" * 16})
        assert _verdict(wrong.text) == "invalid" and doc.sha256 not in wrong.text

        malformed = client.post("/verify", data={"n": doc.certificate_number, "c": "abc"})
        assert malformed.status_code == 422 and 'role="alert"' in malformed.text

        up = client.post("/verify", files={"pdf": ("c.pdf", doc.pdf, "application/pdf")})
        assert _verdict(up.text) == "valid" and doc.sha256 in up.text and "東京都千代田区長" in up.text

        tampered = bytearray(doc.pdf)
        tampered[doc.pdf.index(b"/Author") + 9] ^= 1
        bad = client.post("/verify", files={"pdf": ("c.pdf", bytes(tampered), "application/pdf")})
        assert _verdict(bad.text) == "invalid" and "altered" in bad.text
