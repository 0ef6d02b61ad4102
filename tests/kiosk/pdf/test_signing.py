"""PAdES signing, judged by pyHanko's validator and, independently, by poppler's pdfsig."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.errors import InvalidInput
from jlis.kiosk.pdf.render import Verification, read_binding, render_certificate
from jlis.kiosk.pdf.signing import FIELD_NAME, KeyStoreSigner, sign_pdf, signer_for_role
from jlis.kiosk.pdf.verification import check_pdf
from jlis.lgwan.ca import OrganisationCA, RoleCertificate

from ...conftest import require_or_skip
from .conftest import CHIYODA, CHIYODA_TITLE, PooledKeyStore, make_content

VERIFY = Verification("http://jlis.test:8000", "ABCDEFGHJKMNPQRS")


@pytest.fixture
def signer(chiyoda_role: RoleCertificate, pooled_keystore: PooledKeyStore) -> KeyStoreSigner:
    return signer_for_role(chiyoda_role, pooled_keystore.signer(chiyoda_role.key_ref))


@pytest.fixture
def unsigned() -> bytes:
    return render_certificate(make_content(), verification=VERIFY)


def _trust(factory: sessionmaker[Session], org_ca: Callable[[Session], OrganisationCA]) -> tuple[list, list]:  # type: ignore[type-arg]
    with transaction(factory) as s:
        ca = org_ca(s)
        return ca.trust_anchors(), [ca.crl()]


def test_signed_pdf_is_pades_certified_and_valid(
    factory: sessionmaker[Session],
    org_ca: Callable[[Session], OrganisationCA],
    signer: KeyStoreSigner,
    unsigned: bytes,
    clock: FixedClock,
) -> None:
    at = clock.now()
    signed = sign_pdf(unsigned, signer, at=at)
    assert signed.startswith(unsigned)  # an incremental update: the rendered bytes are untouched
    reader = PdfFileReader(io.BytesIO(signed))
    (sig,) = reader.embedded_signatures
    assert sig.field_name == FIELD_NAME
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"  # PAdES
    assert sig.self_reported_timestamp == at
    assert reader.root["/Perms"]["/DocMDP"] is not None  # a certification signature
    # /ModDate from the injected clock too, not pyHanko's wall clock.
    assert str(reader.trailer["/Info"]["/ModDate"]) == "D:20261126100000+09'00'"
    roots, crls = _trust(factory, org_ca)
    clock.advance(minutes=1)
    check = check_pdf(signed, trust_roots=roots, crls=crls, at=clock.now())
    assert check.ok, check
    assert check.signer_title == CHIYODA_TITLE
    assert read_binding(signed).request_id == "REQ-0001"  # the binding survives signing


def test_tampered_appended_and_foreign_files_fail(
    factory: sessionmaker[Session],
    org_ca: Callable[[Session], OrganisationCA],
    signer: KeyStoreSigner,
    unsigned: bytes,
    clock: FixedClock,
) -> None:
    signed = sign_pdf(unsigned, signer, at=clock.now())
    roots, crls = _trust(factory, org_ca)
    at = clock.now() + dt.timedelta(minutes=1)

    tampered = bytearray(signed)
    i = signed.index(b"/Author")
    tampered[i + 9] ^= 0x01  # one bit of the (signed) document information
    bad = check_pdf(bytes(tampered), trust_roots=roots, crls=crls, at=at)
    assert not bad.ok and not bad.intact and "altered" in (bad.problem or "")

    appended = check_pdf(signed + b"\n%% appended after signing\n", trust_roots=roots, crls=crls, at=at)
    assert not appended.ok and appended.intact and not appended.whole_file

    foreign = check_pdf(signed, trust_roots=[], crls=crls, at=at)
    assert not foreign.ok and not foreign.trusted

    plain = check_pdf(unsigned, trust_roots=roots, crls=crls, at=at)
    assert not plain.ok and plain.problem == "not signed"

    junk = check_pdf(b"%PDF-1.4 nonsense", trust_roots=roots, crls=crls, at=at)
    assert not junk.ok and "readable" in (junk.problem or "")


def test_revoked_signer_fails_after_its_revocation(
    factory: sessionmaker[Session],
    org_ca: Callable[[Session], OrganisationCA],
    signer: KeyStoreSigner,
    unsigned: bytes,
    clock: FixedClock,
) -> None:
    signed = sign_pdf(unsigned, signer, at=clock.now())
    clock.advance(minutes=5)
    with transaction(factory) as s:
        ca = org_ca(s)
        ca.revoke(ca.role_for(CHIYODA).serial, "keyCompromise", actor="test")
    clock.advance(minutes=5)
    roots, crls = _trust(factory, org_ca)
    check = check_pdf(signed, trust_roots=roots, crls=crls, at=clock.now())
    assert check.revoked and not check.ok and check.intact


def test_bad_arguments_are_refused(signer: KeyStoreSigner, unsigned: bytes) -> None:
    with pytest.raises(InvalidInput) as naive:
        sign_pdf(unsigned, signer, at=dt.datetime(2026, 11, 26, 10, 0))
    assert naive.value.field == "at"
    with pytest.raises(InvalidInput) as not_pdf:
        sign_pdf(b"hello", signer, at=dt.datetime(2026, 11, 26, tzinfo=dt.UTC))
    assert not_pdf.value.field == "pdf"


def test_pdfsig_independently_finds_a_valid_signature(
    signer: KeyStoreSigner, unsigned: bytes, clock: FixedClock, tmp_path: Path
) -> None:
    """poppler's pdfsig (NSS) checks the CMS signature and the byte ranges on its own; it does not
    know our root, so only the signature's validity is asserted, not the trust."""
    require_or_skip(shutil.which("pdfsig") is not None, "poppler-utils (pdfsig)")
    path = tmp_path / "signed.pdf"
    path.write_bytes(sign_pdf(unsigned, signer, at=clock.now()))
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
    assert "Signature is Valid" in out, out
    assert "ETSI.CAdES.detached" in out, out
    assert "Total document signed" in out, out
    broken = bytearray(path.read_bytes())
    broken[broken.index(b"/Author") + 9] ^= 0x01
    path.write_bytes(bytes(broken))
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
    assert "Signature is Valid" not in out, out
