from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth.models import Principal, PrincipalKind
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.pdf.service import DOCUMENT_LOG, CertificateDocuments, Verdict, code_hash, normalise_code
from jlis.kiosk.pdf.tables import IssuedDocumentRow

from .conftest import CHIYODA, SHINJUKU, SUBJECT, make_content

STAFF = Principal(1, "staff-131016", PrincipalKind.MUNICIPAL_STAFF, "staff", lg_code=CHIYODA)
OTHER_STAFF = Principal(2, "staff-131041", PrincipalKind.MUNICIPAL_STAFF, "staff", lg_code=SHINJUKU)

Docs = Callable[[Session], CertificateDocuments]


def _issue(factory: sessionmaker[Session], documents: Docs, **kw: object):  # type: ignore[no-untyped-def]
    with transaction(factory) as s:
        return documents(s).issue(make_content(**kw), actor="issuer-131016")  # type: ignore[arg-type]


def test_issue_registers_hash_and_code_hash_but_no_personal_data(
    factory: sessionmaker[Session], documents: Docs
) -> None:
    doc = _issue(factory, documents)
    assert doc.pdf.startswith(b"%PDF-") and len(doc.code) == 16
    with transaction(factory) as s:
        row = s.scalars(select(IssuedDocumentRow)).one()
        assert row.sha256 == doc.sha256 and row.code_hash == code_hash(doc.code) and row.status == "valid"
        assert row.request_id == "REQ-0001" and row.kind == "resident" and row.pages == 1
        stored = " ".join(str(getattr(row, c.key)) for c in IssuedDocumentRow.__table__.columns)
        assert SUBJECT not in stored and "髙橋" not in stored and doc.code not in stored
        (entry,) = DOCUMENT_LOG.entries(s)
        assert entry.action == "document.issue" and entry.details["sha256"] == doc.sha256
        assert "髙橋" not in str(entry.details)


def test_duplicate_number_and_missing_role_are_refused_and_leave_nothing(
    factory: sessionmaker[Session], documents: Docs
) -> None:
    _issue(factory, documents)
    with pytest.raises(RuleViolation) as dup:
        _issue(factory, documents, request_id="REQ-0002")
    assert dup.value.field == "certificate_number"
    with pytest.raises(NotFound):
        _issue(factory, documents, number="131041-2026-000001", lg_code=SHINJUKU)
    with pytest.raises(InvalidInput):
        _issue(factory, documents, number="131016-2026-000009", subject="\U000f0000")
    with transaction(factory) as s:
        assert s.scalar(select(func.count()).select_from(IssuedDocumentRow)) == 1
        assert len(DOCUMENT_LOG.entries(s)) == 1


def test_verify_by_number_and_code(factory: sessionmaker[Session], documents: Docs) -> None:
    doc = _issue(factory, documents)
    with transaction(factory) as s:
        docs = documents(s)
        ok = docs.verify_code(doc.certificate_number, doc.code.lower())
        assert ok.verdict is Verdict.VALID and ok.sha256 == doc.sha256
        assert ok.kind is CertificateKind.RESIDENT and ok.lg_code == CHIYODA
        assert SUBJECT not in str(ok.to_dict())
        wrong = "A" * 16 if doc.code != "A" * 16 else "B" * 16
        bad = docs.verify_code(doc.certificate_number, wrong)
        unknown = docs.verify_code("131016-2026-999999", doc.code)
        for r in (bad, unknown):  # the same answer, and no hash to learn from
            assert r.verdict is Verdict.INVALID and r.sha256 is None and r.certificate_number is None
        assert bad.to_dict() == unknown.to_dict()
        with pytest.raises(InvalidInput) as short:
            docs.verify_code(doc.certificate_number, "ABC")
        assert short.value.field == "code"
        with pytest.raises(InvalidInput) as number:
            docs.verify_code("../etc", doc.code)
        assert number.value.field == "certificate_number"


def test_verify_uploaded_pdf(factory: sessionmaker[Session], documents: Docs, clock: FixedClock) -> None:
    doc = _issue(factory, documents)
    clock.advance(minutes=1)
    with transaction(factory) as s:
        docs = documents(s)
        ok = docs.verify_pdf(doc.pdf)
        assert (
            ok.verdict is Verdict.VALID and ok.sha256 == doc.sha256 and ok.signer_title == "東京都千代田区長"
        )
        tampered = bytearray(doc.pdf)
        tampered[doc.pdf.index(b"/Author") + 9] ^= 1
        bad = docs.verify_pdf(bytes(tampered))
        assert bad.verdict is Verdict.INVALID and bad.sha256 != doc.sha256 and bad.certificate_number is None
        assert docs.verify_pdf(b"not a pdf").verdict is Verdict.INVALID


def test_signed_but_unregistered_pdf_is_invalid(
    factory: sessionmaker[Session], documents: Docs, clock: FixedClock
) -> None:
    """A PDF signed with a real 職責 key but never issued (e.g. a key used outside the server) is
    not a certificate: the register must know it."""
    doc = _issue(factory, documents)
    with transaction(factory) as s:
        s.execute(IssuedDocumentRow.__table__.delete())  # type: ignore[attr-defined]
    clock.advance(minutes=1)
    with transaction(factory) as s:
        r = documents(s).verify_pdf(doc.pdf)
    assert r.verdict is Verdict.INVALID and r.problem and "register" in r.problem


def test_revocation_by_the_issuing_municipality(
    factory: sessionmaker[Session], documents: Docs, clock: FixedClock
) -> None:
    doc = _issue(factory, documents)
    with transaction(factory) as s, pytest.raises(Forbidden):
        documents(s).revoke(doc.certificate_number, principal=OTHER_STAFF, reason="誤交付")
    with transaction(factory) as s, pytest.raises(InvalidInput):
        documents(s).revoke(doc.certificate_number, principal=STAFF, reason=" ")
    clock.advance(minutes=1)
    with transaction(factory) as s:
        r = documents(s).revoke(doc.certificate_number, principal=STAFF, reason="誤交付")
        assert r.verdict is Verdict.REVOKED
    with transaction(factory) as s:
        docs = documents(s)
        assert docs.verify_code(doc.certificate_number, doc.code).verdict is Verdict.REVOKED
        assert docs.verify_pdf(doc.pdf).verdict is Verdict.REVOKED
        with pytest.raises(RuleViolation):
            docs.revoke(doc.certificate_number, principal=STAFF, reason="again")
        assert [e.action for e in DOCUMENT_LOG.entries(s)] == ["document.issue", "document.revoke"]


def test_revoked_role_certificate_makes_its_documents_revoked(
    factory: sessionmaker[Session], documents: Docs, clock: FixedClock
) -> None:
    doc = _issue(factory, documents)
    clock.advance(minutes=1)
    with transaction(factory) as s:
        ca = documents(s).ca
        ca.revoke(ca.role_for(CHIYODA).serial, "keyCompromise", actor="op")
    clock.advance(minutes=1)
    with transaction(factory) as s:
        r = documents(s).verify_pdf(doc.pdf)
    assert r.verdict is Verdict.REVOKED and r.certificate_number == doc.certificate_number


def test_normalise_code() -> None:
    assert normalise_code("abcd-efgh ijkl\u3000mnop") == "ABCDEFGHIJKLMNOP"


def test_every_problem_has_a_japanese_sentence() -> None:
    from jlis.kiosk.pdf.service import VerificationResult

    for problem in (
        "the signature does not match the document (altered)",
        "the file was changed after signing (not covered by the signature)",
        "the signer's certificate is revoked",
        "the signer's certificate does not chain to a trusted organisation CA",
        "not signed",
        "not a readable PDF (PdfReadError)",
        "signed, but not in the register of issued documents",
        "unknown number or wrong code",
    ):
        ja = VerificationResult(Verdict.INVALID, "", problem=problem).problem_ja
        assert ja and ja != problem and ja.endswith("。"), problem


def test_a_race_for_one_number_is_decided_by_the_unique_index(
    factory: sessionmaker[Session], documents: Docs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests that both passed the check: the second insert fails on the unique index and
    comes back as the same refusal, not a server error."""
    _issue(factory, documents)
    monkeypatch.setattr(CertificateDocuments, "_number_taken", lambda self, number: False)
    with pytest.raises(RuleViolation) as err:
        _issue(factory, documents, request_id="REQ-0002")
    assert err.value.field == "certificate_number"
    with transaction(factory) as s:
        assert s.scalar(select(func.count()).select_from(IssuedDocumentRow)) == 1


def test_prepare_in_a_reader_then_register_in_a_writer(
    factory: sessionmaker[Session], documents: Docs, clock: FixedClock
) -> None:
    """The two-phase path: rendering and signing outside the writing transaction."""
    from jlis.db import read_only

    with factory() as s:
        read_only(s)
        prepared = documents(s).prepare(make_content())
        assert not s.new and not s.dirty  # nothing written
    with transaction(factory) as s:
        assert s.scalar(select(func.count()).select_from(IssuedDocumentRow)) == 0
        doc = documents(s).register(prepared, actor="issuer")
    assert doc.sha256 == prepared.sha256 and doc.pdf == prepared.pdf
    with transaction(factory) as s, pytest.raises(RuleViolation):
        documents(s).register(prepared, actor="issuer")  # the same number twice
    clock.advance(minutes=1)
    with transaction(factory) as s:
        assert documents(s).verify_code(doc.certificate_number, doc.code).verdict is Verdict.VALID
