"""Append-only, hash-chained audit logs (provision logs, access logs, ...).

Several independent chains share two tables, each named ("juki.provision", "access", ...). Every
entry carries the hash of the one before it, so a changed, removed, inserted or reordered entry is
found by :meth:`AuditLog.verify`; database triggers refuse UPDATE and DELETE besides. Entries are
written in the caller's transaction, with the act they record. See docs/audit.md.
"""

from jlis.audit.chain import GENESIS, VerifyResult, canonical_bytes, entry_hash, verify_entries
from jlis.audit.service import RETENTION_YEARS, AuditEntry, AuditLog, list_chains

__all__ = [
    "GENESIS",
    "RETENTION_YEARS",
    "AuditEntry",
    "AuditLog",
    "VerifyResult",
    "canonical_bytes",
    "entry_hash",
    "list_chains",
    "verify_entries",
]
