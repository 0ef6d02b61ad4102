"""J-LIS's reading of its own national copy (機構保存本人確認情報) for code generation.

The code-generation side of J-LIS only needs to know whether a 住民票コード is one the national
server holds, and how the codes of one person are chained after a 住民票コード変更. Single look-ups
go through :mod:`jlis.juki.provision`'s public functions (:func:`current_national_record`,
:func:`linked_codes`); the batch look-up of a 符号一斉取得 (thousands of codes per statement) has no
public juki function yet, so :func:`known_codes` is a documented read-only query of the national
table (``juki_national_identities``: the code, and the two chain columns; no personal data is
read). It is meant to move into ``jlis.juki.provision`` as a public function (see
docs/linkage-codes.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from jlis.juki.provision import current_national_record, linked_codes
from jlis.juki.tables import NationalIdentity
from jlis.linkage.hub.sql import CHUNK, select_in

_T = cast(Table, NationalIdentity.__table__)
__all__ = ["CHUNK", "first_code", "is_known", "known_codes", "person_codes"]


def known_codes(session: Session, codes: Sequence[str]) -> dict[str, bool]:
    """The codes among ``codes`` that the national copy holds (current or superseded), each with
    whether it is part of a 住民票コード変更 chain (it replaced a code, or was replaced)."""
    rows = select_in(
        session,
        f"SELECT resident_code, superseded_by, previous_resident_code FROM {_T.name}",
        "resident_code",
        codes,
    )
    return {code: bool(sup or prev) for code, sup, prev in rows}


def first_code(session: Session, codes: set[str]) -> str:
    """The first 住民票コード of a person known by ``codes`` (one person's chain): the one that
    replaced no other code in the national copy (the smallest, should the copy not say)."""
    rows = select_in(
        session,
        f"SELECT resident_code, previous_resident_code FROM {_T.name}",
        "resident_code",
        sorted(codes),
    )
    replaced = {code for code, previous in rows if previous}
    roots = sorted(codes - replaced)
    return roots[0] if roots else min(codes)


def is_known(session: Session, resident_code: str) -> bool:
    """Whether the national copy holds this code (as it is, or as an old code of a person)."""
    if current_national_record(session, resident_code) is not None:
        return True
    return bool(known_codes(session, [resident_code]))


def person_codes(session: Session, resident_code: str) -> set[str]:
    """Every 住民票コード of the person (the code, the codes it replaced and that replaced it)."""
    return linked_codes(session, resident_code)
