"""Backups of each municipality's register to a separate store (クラウド型被災者支援システム's
normal-time duty, facts §11): take, verify, restore, and a schedule driven by the injected clock.

A backup is one file in the store: the register's rows as canonical JSON lines (``register.py``),
gzip-compressed, then sealed with AES-256-GCM under the backup key (derived from the J-LIS secret
with its own label, so a leaked store is unreadable without it), the backup id and the 団体 as
associated data (a file renamed to another backup does not open). Beside it a plain manifest
(``.json``) names the counts and the SHA-256 of the sealed file and of the plaintext lines; the live
database keeps a catalogue row (``bcl_backups``) with the same figures, so a file changed in the
store, or a catalogue row changed in the database, is found by :meth:`Backups.verify`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth.models import Principal, PrincipalKind
from jlis.bcl import register
from jlis.bcl.models import Schedule, check_schedule
from jlis.bcl.register import Counts
from jlis.bcl.tables import BackupRow, BackupScheduleRow
from jlis.clock import JST, Clock
from jlis.codes import LgCode
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, JlisError, NotFound

FORMAT = "jlis-bcl-register-backup"
FORMAT_VERSION = 1
KEY_LABEL = b"jlis-bcl-backup-v1"
SUFFIX = ".jlbk"
_NONCE = 12

# The scheduler and the CLI act as this J-LIS principal (BCL is J-LIS's cloud).
SCHEDULER = Principal(id=0, username="bcl-scheduler", kind=PrincipalKind.JLIS_OPERATOR, display_name="BCL")


def backup_key(secret: bytes) -> bytes:
    """The AES-256 key of backups: HMAC(J-LIS secret, label), never the secret itself."""
    return hmac.digest(secret, KEY_LABEL, "sha256")


def require_backup_scope(principal: Principal, lg_code: str) -> None:
    """J-LIS operators (who run the BCL) for any municipality; staff for their own only."""
    if principal.kind is PrincipalKind.JLIS_OPERATOR:
        return
    if principal.kind is PrincipalKind.MUNICIPAL_STAFF:
        principal.require_staff_of(lg_code)
        return
    raise Forbidden(
        "backups need a J-LIS operator or the municipality's staff",
        field="principal",
        rule="must be jlis_operator or municipal_staff of the municipality",
    )


# ------------------------------------------------------------------------------------ the store


class DirectoryStore:
    """Backups as files under ``root/<lg_code>/`` — a directory on another disk or a mounted share
    (the separate store). Writes go to a temporary name and are renamed, so a crash leaves no half
    file under a backup's name."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, location: str) -> Path:
        path = (self.root / location).resolve()
        if self.root.resolve() not in path.parents:
            raise InvalidInput("location", "must stay inside the backup store")
        return path

    def write(self, location: str, data: bytes) -> None:
        path = self._path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    def read(self, location: str) -> bytes:
        path = self._path(location)
        if not path.is_file():
            raise NotFound("バックアップファイル", location)
        return path.read_bytes()

    def delete(self, location: str) -> None:
        self._path(location).unlink(missing_ok=True)

    def exists(self, location: str) -> bool:
        return self._path(location).is_file()


# ------------------------------------------------------------------------------------ sealing (pure)


def _aad(backup_id: str, lg_code: str) -> bytes:
    return f"{FORMAT}:{FORMAT_VERSION}:{backup_id}:{lg_code}".encode()


def seal(key: bytes, backup_id: str, lg_code: str, compressed: bytes, nonce: bytes) -> bytes:
    """The sealed file of a backup's gzip-compressed lines (:attr:`register.Export.compressed`)."""
    return nonce + AESGCM(key).encrypt(nonce, compressed, _aad(backup_id, lg_code))


def unseal(key: bytes, backup_id: str, lg_code: str, sealed: bytes) -> tuple[bytes, ...]:
    """The lines of a sealed backup. Fails closed: another key, another backup's file or any
    altered byte is refused."""
    if len(sealed) < _NONCE + 16:
        raise InvalidInput("backup", "not a sealed backup file")
    try:
        body = AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], _aad(backup_id, lg_code))
    except InvalidTag:
        raise InvalidInput("backup", "sealed under another key, for another backup, or altered") from None
    return tuple(gzip.decompress(body).splitlines())


# ------------------------------------------------------------------------------------ views


@dataclass(frozen=True)
class BackupInfo:
    id: str
    lg_code: str
    taken_at: dt.datetime
    location: str
    sha256: str
    content_sha256: str
    counts: Counts
    actor: str
    pruned: bool

    @classmethod
    def of(cls, row: BackupRow) -> BackupInfo:
        return cls(
            row.id,
            row.lg_code,
            row.taken_at.astimezone(JST),
            row.location,
            row.sha256,
            row.content_sha256,
            Counts(row.households, row.residents, row.history, row.certificates),
            row.actor,
            row.pruned_at is not None,
        )


@dataclass(frozen=True)
class VerifyReport:
    backup_id: str
    ok: bool
    problems: tuple[str, ...]
    counts: Counts | None = None
    matches_live: bool | None = None  # when compared with the live register


@dataclass(frozen=True)
class RestoreReport:
    backup_id: str
    lg_code: str
    counts: Counts
    content_sha256: str


# ------------------------------------------------------------------------------------ the service


class Backups:
    """Backups of the registers in the session's database (the live one), into ``store``. Works in
    the caller's transaction: a backup's catalogue row and its audit entry commit together; the file
    is written (and fsynced) before, so a catalogued backup always has its file."""

    def __init__(
        self,
        session: Session,
        clock: Clock,
        store: DirectoryStore,
        key: bytes,
        principal: Principal,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if len(key) != 32:
            raise ValueError("the backup key must be 32 bytes")
        self.s = session
        self.clock = clock
        self.store = store
        self.key = key
        self.principal = principal
        self.random_bytes = random_bytes

    def take(self, lg_code: str) -> BackupInfo:
        lg_code = str(LgCode.parse(lg_code, "地方公共団体コード"))
        require_backup_scope(self.principal, lg_code)
        now = self.clock.now()
        backup_id = f"{lg_code}-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{self.random_bytes(4).hex()}"
        with register.snapshot_reader(self.s) as reader:
            export = register.export_register(reader, lg_code)
        register.audit_export(
            self.s, export, at=now, actor=self.principal.actor, action="export", purpose="backup",
            details={"backup_id": backup_id},
        )  # fmt: skip
        sealed = seal(self.key, backup_id, lg_code, export.compressed, self.random_bytes(_NONCE))
        location = f"{lg_code}/{backup_id}{SUFFIX}"
        sha = hashlib.sha256(sealed).hexdigest()
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "id": backup_id,
            "lg_code": lg_code,
            "taken_at": now.astimezone(dt.UTC).isoformat(),
            "sha256": sha,
            "content_sha256": export.sha256,
            "counts": export.counts.__dict__,
        }
        self.store.write(location, sealed)
        self.store.write(location.removesuffix(SUFFIX) + ".json", json.dumps(manifest, indent=1).encode())
        row = BackupRow(
            id=backup_id,
            lg_code=lg_code,
            taken_at=now,
            location=location,
            sha256=sha,
            content_sha256=export.sha256,
            households=export.counts.households,
            residents=export.counts.residents,
            history=export.counts.history,
            certificates=export.counts.certificates,
            actor=self.principal.actor,
        )
        self.s.add(row)
        self.s.flush()
        return BackupInfo.of(row)

    def catalogue(self, lg_code: str, *, include_pruned: bool = False) -> list[BackupInfo]:
        require_backup_scope(self.principal, lg_code)
        stmt = select(BackupRow).where(BackupRow.lg_code == lg_code)
        if not include_pruned:
            stmt = stmt.where(BackupRow.pruned_at.is_(None))
        return [BackupInfo.of(r) for r in self.s.scalars(stmt.order_by(BackupRow.taken_at.desc()))]

    def get(self, backup_id: str) -> BackupInfo:
        return BackupInfo.of(self._row(backup_id))

    def _row(self, backup_id: str) -> BackupRow:
        row = self.s.get(BackupRow, backup_id)
        if row is None:
            raise NotFound("バックアップ", backup_id)
        require_backup_scope(self.principal, row.lg_code)
        return row

    def load(self, backup_id: str) -> tuple[BackupRow, tuple[bytes, ...]]:
        """The catalogue row and the lines of a backup whose file is intact; InvalidInput otherwise."""
        report, lines = self._check(self._row(backup_id))
        if not report.ok or lines is None:
            raise InvalidInput("backup", "; ".join(report.problems))
        return self._row(backup_id), lines

    def _check(self, row: BackupRow) -> tuple[VerifyReport, tuple[bytes, ...] | None]:
        problems: list[str] = []
        if row.pruned_at is not None:
            return VerifyReport(row.id, False, ("pruned: the file was deleted by the schedule",)), None
        try:
            sealed = self.store.read(row.location)
        except NotFound:
            return VerifyReport(row.id, False, (f"missing file {row.location}",)), None
        if hashlib.sha256(sealed).hexdigest() != row.sha256:
            problems.append("the file's SHA-256 differs from the catalogue")
        try:
            manifest = json.loads(self.store.read(row.location.removesuffix(SUFFIX) + ".json"))
            if manifest.get("sha256") != row.sha256 or manifest.get("content_sha256") != row.content_sha256:
                problems.append("the manifest differs from the catalogue")
        except (NotFound, ValueError):
            problems.append("the manifest is missing or unreadable")
        try:
            lines = unseal(self.key, row.id, row.lg_code, sealed)
        except (InvalidInput, OSError, EOFError) as exc:
            problems.append(f"cannot open: {exc}")
            return VerifyReport(row.id, False, tuple(problems)), None
        sha, by_table = register.digest_lines(lines)
        counts = Counts.of(by_table)
        if sha != row.content_sha256:
            problems.append("the content's SHA-256 differs from the catalogue")
        stored = Counts(row.households, row.residents, row.history, row.certificates)
        if counts != stored:
            problems.append(f"row counts {counts} differ from the catalogue {stored}")
        return VerifyReport(row.id, not problems, tuple(problems), counts), lines

    def verify(self, backup_id: str, *, against_live: bool = False) -> VerifyReport:
        """Is the file intact (hashes, seal, counts)? With ``against_live``: does the live register
        still hold exactly the backed-up rows (an audited comparison)?"""
        row = self._row(backup_id)
        report, lines = self._check(row)
        if not against_live or lines is None:
            return report
        with register.snapshot_reader(self.s) as reader:
            live_sha, _ = register.register_digest(reader, row.lg_code)
        register.ACCESS_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=self.principal.actor,
            action="compare",
            subject=None,
            details={
                "system": "bcl",
                "lg_code": row.lg_code,
                "purpose": "backup verify",
                "backup_id": row.id,
            },
        )
        return VerifyReport(
            report.backup_id, report.ok, report.problems, report.counts, live_sha == row.content_sha256
        )

    def restore_into(self, backup_id: str, target: Session, *, replace: bool = False) -> RestoreReport:
        """Restore a verified backup into ``target`` (a session on the database that is to hold the
        register: a fresh one replacing a lost system, or this one). Operators only: a restore
        overwrites a register. The caller commits ``target``; the restore is one transaction there,
        with an audit entry in the target's own chain."""
        self.principal.require_operator()
        row, lines = self.load(backup_id)
        counts = register.restore_rows(target, row.lg_code, lines, replace=replace)
        register.ACCESS_LOG.append(
            target,
            at=self.clock.now(),
            actor=self.principal.actor,
            action="restore",
            subject=None,
            details={
                "system": "bcl",
                "lg_code": row.lg_code,
                "backup_id": row.id,
                "replace": replace,
                "residents": counts.residents,
            },
        )
        return RestoreReport(row.id, row.lg_code, counts, row.content_sha256)

    def prune(self, lg_code: str, keep: int) -> list[str]:
        """Delete the files of all but the newest ``keep`` backups; their catalogue rows stay, marked."""
        require_backup_scope(self.principal, lg_code)
        if keep < 1:
            raise InvalidInput("keep", "must be at least 1")
        rows = self.s.scalars(
            select(BackupRow)
            .where(BackupRow.lg_code == lg_code, BackupRow.pruned_at.is_(None))
            .order_by(BackupRow.taken_at.desc(), BackupRow.id.desc())
        ).all()
        pruned = []
        now = self.clock.now()
        for row in rows[keep:]:
            self.store.delete(row.location)
            self.store.delete(row.location.removesuffix(SUFFIX) + ".json")
            row.pruned_at = now
            pruned.append(row.id)
        self.s.flush()
        return pruned


# ------------------------------------------------------------------------------------ the schedule


def set_schedule(
    session: Session,
    principal: Principal,
    lg_code: str,
    *,
    interval: dt.timedelta,
    keep: int,
    first_due: dt.datetime,
    active: bool = True,
) -> Schedule:
    lg_code = str(LgCode.parse(lg_code, "地方公共団体コード"))
    require_backup_scope(principal, lg_code)
    check_schedule(interval, keep)
    if first_due.tzinfo is None:
        raise InvalidInput("first_due", "must be timezone-aware")
    row = session.get(BackupScheduleRow, lg_code)
    if row is None:
        row = BackupScheduleRow(lg_code=lg_code)
        session.add(row)
    row.interval_minutes = int(interval.total_seconds() // 60)
    row.keep, row.next_due, row.active = keep, first_due, active
    session.flush()
    return _schedule(row)


def _schedule(row: BackupScheduleRow) -> Schedule:
    return Schedule(row.lg_code, dt.timedelta(minutes=row.interval_minutes), row.next_due, row.keep)


def schedules(session: Session) -> list[tuple[Schedule, bool, str | None, str | None]]:
    """Every schedule with whether it is active, its last backup and its last error."""
    rows = session.scalars(select(BackupScheduleRow).order_by(BackupScheduleRow.lg_code))
    return [(_schedule(r), r.active, r.last_backup_id, r.last_error) for r in rows]


@dataclass(frozen=True)
class RunResult:
    lg_code: str
    backup_id: str | None
    error: str | None
    pruned: tuple[str, ...] = ()


class BackupScheduler:
    """Takes the backups that are due by the injected clock: call :meth:`run_due` from a loop (the
    CLI's ``jlis bcl schedule run``) or a test. Each municipality's backup is its own transaction:
    one that fails is recorded on its schedule and retried at the next slot; the others go on."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        clock: Clock,
        store: DirectoryStore,
        key: bytes,
        *,
        principal: Principal = SCHEDULER,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.store = store
        self.key = key
        self.principal = principal
        self.random_bytes = random_bytes

    def due(self) -> list[str]:
        now = self.clock.now()
        with self.factory() as s:
            rows = s.scalars(
                select(BackupScheduleRow.lg_code)
                .where(BackupScheduleRow.active.is_(True), BackupScheduleRow.next_due <= now)
                .order_by(BackupScheduleRow.lg_code)
            ).all()
        return list(rows)

    def run_due(self) -> list[RunResult]:
        results = []
        for lg_code in self.due():
            now = self.clock.now()
            try:
                with transaction(self.factory) as s:
                    backups = Backups(
                        s, self.clock, self.store, self.key, self.principal, random_bytes=self.random_bytes
                    )
                    info = backups.take(lg_code)
                    row = s.get(BackupScheduleRow, lg_code)
                    assert row is not None
                    row.next_due = _schedule(row).after_run(now)
                    row.last_backup_id, row.last_error = info.id, None
                    keep = row.keep
                # Pruning only once the new backup is committed: a failed run never costs an old one.
                with transaction(self.factory) as s:
                    pruned = Backups(s, self.clock, self.store, self.key, self.principal).prune(lg_code, keep)
                results.append(RunResult(lg_code, info.id, None, tuple(pruned)))
            except (JlisError, OSError) as exc:
                message = exc.message if isinstance(exc, JlisError) else str(exc)
                with transaction(self.factory) as s:
                    row = s.get(BackupScheduleRow, lg_code)
                    assert row is not None
                    row.next_due = _schedule(row).after_run(now)
                    row.last_error = message[:400]
                results.append(RunResult(lg_code, None, message))
        return results
