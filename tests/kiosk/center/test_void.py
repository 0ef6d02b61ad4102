"""A certificate number is never left dangling: the certificate server commits the number before the
center renders and signs the PDF; when that fails the issuance row becomes ``void`` (with the
reason), the refusal is logged with the number and charges nothing, and the public verification
of the number says it is not valid. Rows left ``numbered`` (a process that died in between) are
settled by the sweep."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import select

from jlis.audit.tables import AuditEntryRow
from jlis.db import transaction
from jlis.errors import RuleViolation
from jlis.kiosk.center.errors import CenterReason, CenterRefused
from jlis.kiosk.center.service import CENTER_PRINCIPAL, IssuanceCenter
from jlis.kiosk.center.tables import CenterLogRow
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.models import IssueOptions
from jlis.kiosk.issuer.server import CertificateServer, sweep_undelivered
from jlis.kiosk.issuer.tables import IssuanceRow
from jlis.kiosk.pdf import render as render_mod
from jlis.kiosk.pdf import service as pdf_service
from jlis.kiosk.pdf.service import CertificateDocuments, documents_for
from jlis.kiosk.pdf.tables import IssuedDocumentRow

from .conftest import CHIYODA, CenterWorld


def _issue_refused(w: CenterWorld, code: str = CenterReason.ISSUER_FAILED) -> CenterRefused:
    session, quote = w.quote(w.holder())
    receipt = w.center.pay(quote)
    with pytest.raises(CenterRefused) as info:
        w.center.issue(session, receipt)
    assert info.value.code == code, (info.value.code, info.value.detail)
    return info.value


def _verify(w: CenterWorld, number: str) -> str:
    with w.factory() as s:
        return documents_for(s, w.container).verify_code(number, "A" * 16).verdict.value


def _void_and_logged(w: CenterWorld, reason_prefix: str) -> IssuanceRow:
    (row,) = w.rows(IssuanceRow)
    assert row.state == "void" and row.settled_at is not None
    assert row.void_reason is not None and row.void_reason.startswith(reason_prefix), row.void_reason
    assert row.document_sha256 is None
    assert w.count(IssuedDocumentRow) == 0
    (log,) = w.rows(CenterLogRow)
    assert (log.outcome, log.stage, log.charged) == ("refused", "issue", 0)  # nothing charged
    assert log.code == CenterReason.ISSUER_FAILED
    assert _verify(w, row.certificate_number or "") == "invalid"
    return row


def test_an_issued_row_records_its_document(center_world: CenterWorld) -> None:
    w = center_world
    issued = w.issue(w.holder())
    (row,) = w.rows(IssuanceRow)
    assert (row.state, row.document_sha256, row.certificate_number) == (
        "issued",
        issued.sha256,
        issued.certificate_number,
    )
    assert _verify(w, issued.certificate_number) == "invalid"  # a wrong code: as an unknown number
    with w.factory() as s:
        verdict = documents_for(s, w.container).verify_code(
            issued.certificate_number, issued.verification_code
        )
    assert verdict.verdict.value == "valid"


def test_a_failing_renderer_voids_the_number(
    center_world: CenterWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = center_world

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("the font file is unreadable")

    monkeypatch.setattr(render_mod, "render_with_pages", broken)
    refusal = _issue_refused(w)
    row = _void_and_logged(w, "issuer_failed: RuntimeError")
    assert refusal.certificate_number == row.certificate_number
    (log,) = w.rows(CenterLogRow)
    assert log.certificate_number == row.certificate_number  # the refusal names the voided number
    with w.factory() as s:
        (entry,) = s.scalars(select(AuditEntryRow).where(AuditEntryRow.action == "issue.void")).all()
    details = json.loads(entry.details) if isinstance(entry.details, str) else entry.details
    assert details["certificate_number"] == row.certificate_number
    assert details["request_id"] == row.request_id


def test_a_failing_signer_voids_the_number(
    center_world: CenterWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = center_world

    def broken(*args: Any, **kw: Any) -> Any:
        raise OSError("HSM unavailable")

    monkeypatch.setattr(pdf_service, "sign_pdf", broken)
    _issue_refused(w)
    _void_and_logged(w, "issuer_failed: OSError")


def test_a_failing_register_voids_the_number(
    center_world: CenterWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registering transaction fails (after the row was marked issued in it): all of it rolls
    back, and the row is voided instead."""
    w = center_world

    def broken(self: CertificateDocuments, prepared: Any, *, actor: str) -> Any:
        raise RuleViolation("certificate_number", "must not have been issued before")

    monkeypatch.setattr(CertificateDocuments, "register", broken)
    _issue_refused(w)
    _void_and_logged(w, "issuer_failed: certificate_number")


def test_a_number_left_by_a_dead_process_is_voided_by_the_sweep(
    center_world: CenterWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The render failed and the void itself could not be written (the process died): the row stays
    numbered — never valid at /verify — until the sweep voids it after the timeout."""
    w = center_world

    class ProcessDied(BaseException):
        """Not an Exception: nothing of the center's own handling runs."""

    def dies(*args: Any, **kw: Any) -> Any:
        raise ProcessDied

    monkeypatch.setattr(render_mod, "render_with_pages", dies)
    with pytest.raises(ProcessDied):
        _issue_refused(w)
    monkeypatch.undo()
    (row,) = w.rows(IssuanceRow)
    assert row.state == "numbered"
    assert _verify(w, row.certificate_number or "") == "invalid"
    assert w.center.sweep() == (0, 0)  # not yet: it may still be rendering
    w.clock.advance(minutes=11)
    assert w.center.sweep() == (0, 1)
    (row,) = w.rows(IssuanceRow)
    assert row.state == "void" and (row.void_reason or "").startswith("undelivered")
    assert _verify(w, row.certificate_number or "") == "invalid"
    assert w.center.sweep() == (0, 0)


def test_the_sweep_settles_a_document_registered_with_its_number(center_world: CenterWorld) -> None:
    """The counter's PDF route numbers, renders and registers in one transaction: the sweep finds
    the document and marks the row issued (never void)."""
    w = center_world
    holder = w.holder()
    with transaction(w.factory) as s:
        server = CertificateServer(
            s,
            w.clock,
            CHIYODA,
            principal=CENTER_PRINCIPAL,
            registry=w.container.registry,
            geography=w.container.geography,
        )
        content = server.issue_content(
            holder.resident.resident_code,
            CertificateKind.RESIDENT,
            IssueOptions(),
            "COUNTER-0001",
            w.clock.now(),
        )
        doc = documents_for(s, w.container).issue(content, actor="test")
    w.clock.advance(minutes=11)
    with transaction(w.factory) as s:
        assert sweep_undelivered(s, w.clock, older_than=dt.timedelta(minutes=10)) == (1, 0)
    (row,) = w.rows(IssuanceRow)
    assert (row.state, row.document_sha256) == ("issued", doc.sha256)


def test_a_row_voided_by_the_sweep_is_not_revived(
    center_world: CenterWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A render slower than the timeout: another process's sweep voids the number meanwhile; the
    center then refuses (its registering transaction finds the row void) and registers nothing."""
    w = center_world
    other = IssuanceCenter(w.container, w.revocation)
    real = render_mod.render_with_pages

    def slow(*args: Any, **kw: Any) -> Any:
        w.clock.advance(minutes=11)
        assert other.sweep() == (0, 1)
        return real(*args, **kw)

    monkeypatch.setattr(render_mod, "render_with_pages", slow)
    _issue_refused(w)
    row = _void_and_logged(w, "undelivered")
    assert row.certificate_number
