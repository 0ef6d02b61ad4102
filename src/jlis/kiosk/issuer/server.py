"""The certificate server (証明発行サーバ) of one municipality: ``issue_content`` checks the rules
and builds what a certificate says for the resident the issuance center authenticated.

Order of the checks: the request id's form; the type offered; the hours (clock injected); the
request id not yet answered; then the person's data, read through the register's public service
(it audits its own reads) and this package's services (audited here). Nothing is written until
every rule has passed; then one ``kiosk_issuances`` row gives the certificate number and binds
the request id to the subject, the kind and the content's hash. On a refusal the caller rolls back.

The row starts ``numbered``. Whoever renders and registers the document settles it:
:func:`mark_issued` in the registering transaction, or :func:`void_issuance` when the document
failed after the number was committed. :func:`sweep_undelivered` settles rows left ``numbered``
past a timeout (``issued`` if the register has their document, ``void`` otherwise), so a
certificate number never dangles without a document and without saying so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jlis.auth.models import Principal
from jlis.clock import JST, Clock
from jlis.codes import LgCode, ResidentCode
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.juki.fuhyo import read_fuhyo
from jlis.kiosk.content import CertificateContent, CertificateKind
from jlis.kiosk.issuer import builders, rules
from jlis.kiosk.issuer.access import ACCESS_LOG, SYSTEM, audit_read, require_reader
from jlis.kiosk.issuer.builders import Header
from jlis.kiosk.issuer.dv import SupportMeasures
from jlis.kiosk.issuer.errors import IssuanceRefused, RefusalReason
from jlis.kiosk.issuer.koseki import DEATH, KosekiBook
from jlis.kiosk.issuer.models import IssueOptions, check_request_id
from jlis.kiosk.issuer.policy import IssuerPolicy, PolicyBook, load_policies
from jlis.kiosk.issuer.seals import RegisterFactory, SealRegister
from jlis.kiosk.issuer.tables import ISSUED, NUMBERED, VOID, IssuanceRow
from jlis.kiosk.issuer.tax import TaxRoll
from jlis.masters import Geography
from jlis.registry import Status

Build = Callable[[Header], CertificateContent]


def content_digest(content: CertificateContent) -> str:
    """SHA-256 of a canonical JSON form of the content (the seal image by its own hash): what the
    issuance log keeps, so a later hop can prove it carries exactly what was issued."""
    data = asdict(content)
    png = data.pop("seal_image_png")
    data["seal_image_sha256"] = hashlib.sha256(png).hexdigest() if png else None
    data["images"] = [{"label": i.label, "sha256": hashlib.sha256(i.png).hexdigest()} for i in content.images]
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def issuer_title(geography: Geography, lg_code: str) -> str:
    """The 職責 that certifies: 東京都千代田区長, 神奈川県横浜市鶴見区長."""
    m = geography.municipality(lg_code)
    return f"{geography.prefecture(m.pref_code).name}{m.full_name}長"


def parse_kind(value: CertificateKind | str) -> CertificateKind:
    try:
        return CertificateKind(value)
    except ValueError:
        raise InvalidInput(
            "証明書の種類", f"must be one of {', '.join(k.value for k in CertificateKind)}"
        ) from None


class CertificateServer:
    """One municipality's certificate server, in the caller's session (one request, one
    transaction), for the issuance center (a J-LIS principal) or the municipality's staff."""

    def __init__(
        self,
        session: Session,
        clock: Clock,
        lg_code: str,
        *,
        principal: Principal,
        registry: RegisterFactory,
        geography: Geography,
        policies: PolicyBook | None = None,
        seal_image_png: bytes | None = None,
    ) -> None:
        self.s = session
        self.clock = clock
        self.lg_code = str(LgCode.parse(lg_code))
        require_reader(principal, self.lg_code)
        self.principal = principal
        self.registry = registry
        self.geo = geography
        self.policy: IssuerPolicy = (policies or load_policies()).for_municipality(self.lg_code)
        self.seal_image_png = seal_image_png
        self.title = issuer_title(geography, self.lg_code)

    def issue_content(
        self,
        resident_code: str,
        kind: CertificateKind | str,
        options: IssueOptions,
        request_id: str,
        now: dt.datetime,
    ) -> CertificateContent:
        """The content of one certificate for ``resident_code``, after every rule; raises
        :class:`IssuanceRefused` (stable code, Japanese message) or an input error otherwise."""
        request_id = check_request_id(request_id)
        code = str(ResidentCode.parse(resident_code))
        kind = parse_kind(kind)
        if not isinstance(options, IssueOptions):
            raise InvalidInput("options", "must be IssueOptions")
        options.check_for(kind)
        rules.check_offered(kind, self.policy)
        rules.check_open(kind, now, self.policy)
        if self._answered(request_id):
            raise IssuanceRefused(RefusalReason.REQUEST_REPLAYED, f"request {request_id} was answered")
        today = now.astimezone(JST).date()
        if kind in rules.HONSEKI_KINDS:
            build = self._honseki_kind(code, kind, today)
        elif kind is CertificateKind.DAMAGE:
            build = self._damage_kind(code, today)
        else:
            build = self._residence_kind(code, kind, options, today)
        # The log row, the content and its audit entry in one savepoint: a concurrent twin of the
        # request id, or a refusal while building, leaves nothing and the session usable.
        savepoint = self.s.begin_nested()
        try:
            row = self._log(request_id, kind, code, now)
            assert row.certificate_number is not None
            header = Header(
                self.lg_code, self.title, request_id, row.certificate_number, today, self.seal_image_png
            )
            content = build(header)
            self._seal_log(row, content)
        except IntegrityError:
            savepoint.rollback()
            raise IssuanceRefused(
                RefusalReason.REQUEST_REPLAYED, f"request {request_id} was answered"
            ) from None
        except BaseException:
            savepoint.rollback()
            raise
        savepoint.commit()
        return content

    # ------------------------------------------------------------------ residence-based kinds

    def _residence_kind(
        self, code: str, kind: CertificateKind, options: IssueOptions, today: dt.date
    ) -> Build:
        register = self.registry(self.s, self.lg_code, self.principal.actor)
        try:
            person = register.find_by_code(code)
        except NotFound:
            raise IssuanceRefused(RefusalReason.NOT_RESIDENT, "no 住民票 with the code here") from None
        dv = SupportMeasures(self.s, self.clock, self.lg_code, self.principal)
        rules.check_living(person)
        members = register.household_members(person.household_id)
        flagged = dv.flagged([m.resident_code for m in members] + [code], today)
        rules.check_subject(person, today, self.policy, flagged=flagged)
        rules.check_household(members, today, self.policy, flagged=flagged)
        if kind is CertificateKind.RESIDENT:
            rules.check_my_number(options.show_my_number, self.policy)
            persons = members if options.household else [person]
            return lambda h: builders.resident_certificate(h, person, persons, options)
        head = next((m for m in members if m.is_head), None)
        if kind is CertificateKind.RESIDENT_ITEMS:
            head_name = head.name.full if head else None
            return lambda h: builders.resident_items_certificate(h, person, head_name, options)
        if kind is CertificateKind.SEAL:
            seal = SealRegister(self.s, self.clock, self.lg_code, self.principal, self.registry).active_for(
                code
            )
            if seal is None:
                raise IssuanceRefused(RefusalReason.NO_SEAL_REGISTRATION, "no active 印鑑登録")
            return lambda h: builders.seal_certificate(h, person, seal)
        if kind is CertificateKind.INCOME:
            latest = rules.current_fiscal_year(today, self.policy)
            year = options.fiscal_year or latest
            tax = (
                TaxRoll(self.s, self.clock, self.lg_code, self.principal).get(code, year)
                if year <= latest
                else None
            )
            if tax is None:
                raise IssuanceRefused(RefusalReason.NO_TAX_ASSESSMENT, f"no assessment of {year} here")
            return lambda h: builders.income_certificate(h, person.name.full, tax)
        raise IssuanceRefused(RefusalReason.NOT_OFFERED, f"{kind.value} is not issued by this server")

    # ------------------------------------------------------------------ 本籍-based kinds

    def _honseki_kind(self, code: str, kind: CertificateKind, today: dt.date) -> Build:
        book = KosekiBook(self.s, self.clock, self.lg_code, self.principal)
        koseki = book.for_person(
            code, purpose="戸籍証明書交付" if kind is CertificateKind.KOSEKI else "附票証明書交付"
        )
        if koseki is None:
            raise IssuanceRefused(RefusalReason.NO_KOSEKI, "the person has no 戸籍 here")
        member = koseki.member(code)
        assert member is not None  # for_person found the person in it
        if member.removed and member.removed_reason == DEATH:
            raise IssuanceRefused(RefusalReason.DECEASED, "除籍 by death")
        if member.removed:
            raise IssuanceRefused(RefusalReason.NO_KOSEKI, f"除籍 ({member.removed_reason})")
        rules.check_honseki_access(lives_here=self._lives_here(code), registered=book.use_registered(code))
        flagged = SupportMeasures(self.s, self.clock, self.lg_code, self.principal).flagged([code], today)
        rules.check_dv([code], flagged)
        rules.check_age(member.birth_date, today, self.policy)
        rules.check_layout(member.name, None, self.policy)
        if kind is CertificateKind.KOSEKI:
            return lambda h: builders.koseki_certificate(h, koseki, member.name)
        fuhyo = read_fuhyo(self.s, self.lg_code, code)
        if fuhyo is None:
            raise IssuanceRefused(RefusalReason.NO_FUHYO, "no 戸籍の附票 here")
        audit_read(self.s, self.clock, self.principal, self.lg_code, code, "附票証明書交付")
        for address in [line.address for line in fuhyo.addresses] or [fuhyo.address]:
            rules.check_layout(member.name, address, self.policy)
        return lambda h: builders.fuhyo_certificate(h, fuhyo, koseki.head_name)

    # ------------------------------------------------------------------ 罹災証明書 (jlis.bcl)

    def _damage_kind(self, code: str, today: dt.date) -> Build:
        """The 罹災証明書 comes from the victim support system (``jlis.bcl``), which checks that the
        person's household has an approved application and audits its reads. Here: the DV rule."""
        from jlis.bcl.certificate import damage_certificate_content

        flagged = SupportMeasures(self.s, self.clock, self.lg_code, self.principal).flagged([code], today)
        rules.check_dv([code], flagged)

        def build(h: Header) -> CertificateContent:
            try:
                return damage_certificate_content(
                    self.s,
                    self.clock,
                    self.geo,
                    caller=self.principal,
                    lg_code=self.lg_code,
                    resident_code=code,
                    request_id=h.request_id,
                    certificate_number=h.certificate_number,
                    seal_image_png=h.seal_image_png,
                )
            except IssuanceRefused:
                raise
            except RuleViolation as exc:
                raise IssuanceRefused(RefusalReason.NO_DAMAGE_CERTIFICATE, exc.message) from exc

        return build

    def honseki_elsewhere(self, resident_code: str) -> bool:
        """Whether the 住民票 here names a 本籍 in another municipality (the kiosk then offers
        本籍地利用登録申請). The register audits its read; False for anyone not registered here."""
        code = str(ResidentCode.parse(resident_code))
        try:
            person = self.registry(self.s, self.lg_code, self.principal.actor).find_by_code(code)
        except NotFound:
            return False
        honseki = person.honseki_lg_code
        return person.status is Status.ACTIVE and bool(honseki) and honseki != self.lg_code

    def _lives_here(self, code: str) -> bool:
        if not self.geo.municipality(self.lg_code).hosts_register:
            return False
        try:
            person = self.registry(self.s, self.lg_code, self.principal.actor).find_by_code(code)
        except NotFound:
            return False
        return person.status is Status.ACTIVE

    # ------------------------------------------------------------------ the issuance log

    def _answered(self, request_id: str) -> bool:
        t = IssuanceRow
        return (
            self.s.execute(select(t.id).where(t.lg_code == self.lg_code, t.request_id == request_id)).first()
            is not None
        )

    def _log(self, request_id: str, kind: CertificateKind, code: str, now: dt.datetime) -> IssuanceRow:
        """Insert the issuance row (the unique (lg_code, request_id) refuses a concurrent twin) and
        derive the certificate number from its id."""
        row = IssuanceRow(
            lg_code=self.lg_code,
            request_id=request_id,
            kind=kind.value,
            resident_code=code,
            issued_at=now,
            actor=self.principal.actor,
            state=NUMBERED,
        )
        self.s.add(row)
        self.s.flush()
        row.certificate_number = certificate_number(self.lg_code, now.astimezone(JST).date(), row.id)
        return row

    def _seal_log(self, row: IssuanceRow, content: CertificateContent) -> None:
        row.content_sha256 = content_digest(content)
        self.s.flush()
        ACCESS_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=self.principal.actor,
            action="issue",
            subject=row.resident_code,
            details={
                "system": SYSTEM,
                "lg_code": self.lg_code,
                "kind": content.kind.value,
                "request_id": row.request_id,
                "certificate_number": content.certificate_number,
                "content_sha256": row.content_sha256,
            },
        )


def verify_binding(session: Session, content: CertificateContent, resident_code: str) -> None:
    """Check, at a later hop (the center, the PDF step), that ``content`` is exactly what this
    municipality issued for ``content.request_id`` and that the request was for ``resident_code``:
    the issuance row's subject, kind, certificate number and content hash must all match. Raises
    :class:`RuleViolation` naming the first item that differs; reads no personal data."""
    t = IssuanceRow
    row = session.execute(
        select(t).where(t.lg_code == content.lg_code, t.request_id == content.request_id)
    ).scalar_one_or_none()
    if row is None:
        raise RuleViolation("要求番号", "must have been answered by the certificate server")
    checks = (
        ("住民票コード", row.resident_code == resident_code),
        ("証明書の種類", row.kind == content.kind.value),
        ("証明書番号", row.certificate_number == content.certificate_number),
        ("証明書の内容", row.content_sha256 == content_digest(content)),
    )
    for field, ok in checks:
        if not ok:
            raise RuleViolation(field, "must match what was issued for the request id")


# ------------------------------------------------------------------ settling a numbered row

UNDELIVERED_AFTER = dt.timedelta(minutes=10)  # far above any render + sign (~40 ms, seconds under load)
SWEEP_BATCH = 100
MAX_VOID_REASON = 200


def mark_issued(
    session: Session, content: CertificateContent, document_sha256: str | None, now: dt.datetime
) -> None:
    """In the transaction that registers the signed document: the issuance row of ``content`` goes
    from ``numbered`` to ``issued`` with the document's SHA-256 (None: the content itself was the
    delivery, as on the counter's content route, and no document is registered). A conditional
    UPDATE (it also locks the row): a row voided meanwhile (by :func:`sweep_undelivered` or a
    failed twin) is not revived — :class:`RuleViolation`, and the caller rolls the registration
    back."""
    t = IssuanceRow
    done = session.execute(
        update(t)
        .where(
            t.lg_code == content.lg_code,
            t.request_id == content.request_id,
            t.certificate_number == content.certificate_number,
            t.state == NUMBERED,
        )
        .values(state=ISSUED, document_sha256=document_sha256, settled_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise RuleViolation("証明書番号", "must be numbered and not yet issued or void")


def void_issuance(
    session: Session, clock: Clock, lg_code: str, request_id: str, reason: str, *, actor: str
) -> str | None:
    """The document for ``request_id`` failed after its number was committed: the row becomes
    ``void`` with ``reason`` (English, for the log) and an ``issue.void`` entry goes to the audit
    chain. Returns the voided certificate number; None when the row is not ``numbered`` (already
    issued or void, or unknown): an issued row is never voided."""
    t = IssuanceRow
    row = session.execute(
        select(t).where(t.lg_code == lg_code, t.request_id == request_id, t.state == NUMBERED)
    ).scalar_one_or_none()
    if row is None:
        return None
    return _void(session, clock, row, reason, actor=actor)


def _void(session: Session, clock: Clock, row: IssuanceRow, reason: str, *, actor: str) -> str | None:
    now = clock.now()
    reason = (reason or "void").strip()[:MAX_VOID_REASON]
    t = IssuanceRow
    done = session.execute(
        update(t)
        .where(t.id == row.id, t.state == NUMBERED)
        .values(state=VOID, void_reason=reason, settled_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return None
    ACCESS_LOG.append(
        session,
        at=now,
        actor=actor,
        action="issue.void",
        subject=row.resident_code,
        details={
            "system": SYSTEM,
            "lg_code": row.lg_code,
            "kind": row.kind,
            "request_id": row.request_id,
            "certificate_number": row.certificate_number,
            "reason": reason,
        },
    )
    return row.certificate_number


def sweep_undelivered(
    session: Session,
    clock: Clock,
    *,
    older_than: dt.timedelta = UNDELIVERED_AFTER,
    limit: int = SWEEP_BATCH,
    actor: str = "sweep",
) -> tuple[int, int]:
    """Settle up to ``limit`` rows still ``numbered`` ``older_than`` after numbering: ``issued`` when
    the register of documents (``jlis.kiosk.pdf``) has the number (the counter's PDF route registers
    in the numbering transaction), ``void`` (reason ``undelivered``) otherwise — the process that was
    to render it died, or only the content was asked for. Returns (issued, voided). On PostgreSQL
    rows another sweeper or a registering transaction holds are skipped, never waited for."""
    from jlis.kiosk.pdf.tables import IssuedDocumentRow

    t = IssuanceRow
    cutoff = clock.now() - older_than
    stmt = select(t).where(t.state == NUMBERED, t.issued_at < cutoff).order_by(t.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(session.scalars(stmt))
    if not rows:
        return 0, 0
    numbers = [r.certificate_number for r in rows if r.certificate_number]
    documents = {
        number: sha
        for number, sha in session.execute(
            select(IssuedDocumentRow.certificate_number, IssuedDocumentRow.sha256).where(
                IssuedDocumentRow.certificate_number.in_(numbers)
            )
        )
    }
    issued = voided = 0
    now = clock.now()
    for row in rows:
        sha = documents.get(row.certificate_number or "")
        if sha is not None:
            session.execute(
                update(t)
                .where(t.id == row.id, t.state == NUMBERED)
                .values(state=ISSUED, document_sha256=sha, settled_at=now)
                .execution_options(synchronize_session=False)
            )
            issued += 1
        elif _void(
            session, clock, row, f"undelivered: no document registered within {older_than}", actor=actor
        ):
            voided += 1
    return issued, voided


def certificate_number(lg_code: str, issued_on: dt.date, serial: int) -> str:
    """``131016-20261126-00000042-7``: municipality, date, the issuance row's id and a mod-10
    check digit (Luhn over the digits) that catches a mistyped number at the verify page."""
    body = f"{lg_code}{issued_on:%Y%m%d}{serial:08d}"
    return f"{lg_code}-{issued_on:%Y%m%d}-{serial:08d}-{luhn(body)}"


def luhn(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10
