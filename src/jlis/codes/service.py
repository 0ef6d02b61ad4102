"""J-LIS's numbering role: issue 住民票コード and 個人番号, never the same number twice.

All work happens in the caller's session and transaction; nothing here commits. Two
transactions that pick the same number at once collide on the primary key and one of them fails
(fails closed: a duplicate number is worse than a retry).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Column, Table, insert, select, update
from sqlalchemy.orm import Session

from jlis.bulk import bulk_insert
from jlis.clock import Clock
from jlis.codes.checkdigits import resident_code_check_digit
from jlis.codes.derivation import deriver_for
from jlis.codes.generate import random_resident_code
from jlis.codes.models import LgCode, MyNumber, ResidentCode
from jlis.codes.tables import issued_my_numbers, issued_resident_codes
from jlis.errors import NotFound
from jlis.keyset import select_by_keys

# Rows per executemany call: bounds the memory of the parameter lists.
INSERT_CHUNK = 20_000
# Candidates derived per query in my_number_for: one query almost always settles it.
ATTEMPTS_PER_QUERY = 4

_N = TypeVar("_N", MyNumber, ResidentCode, LgCode)


def _coerce(cls: type[_N], value: str) -> _N:
    return value if isinstance(value, cls) else cls.parse(value)


def _masked(value: str) -> str:
    # Errors end up in logs; an identifier of a person is not written there in full.
    return "*" * (len(value) - 4) + value[-4:]


class NumberAuthority:
    """Issues numbers inside the caller's session; every number issued stays recorded."""

    def __init__(self, session: Session, secret: bytes, clock: Clock) -> None:
        self._session = session
        self._deriver = deriver_for(secret)
        self._clock = clock

    def _now(self) -> dt.datetime:
        # Stored in UTC: SQLite keeps no offset, and UTC is how the other packages read a naive
        # value back.
        return self._clock.now().astimezone(dt.UTC)

    # -- 住民票コード -------------------------------------------------------------------------

    def new_resident_code(self, rng: random.Random, lg_code: LgCode | str) -> ResidentCode:
        """A random 住民票コード never issued before (nor seen in ``issued_my_numbers``), recorded
        as issued to ``lg_code``."""
        lg = _coerce(LgCode, lg_code)
        code = random_resident_code(rng)
        while self._resident_codes_in_use([code]):
            code = random_resident_code(rng)
        self._session.execute(
            insert(issued_resident_codes),
            {"resident_code": code, "lg_code": lg, "issued_at": self._now(), "retired_at": None},
        )
        return code

    def retire_resident_code(self, resident_code: ResidentCode | str, *, lg_code: str | None = None) -> None:
        """Mark the code retired (e.g. the resident asked for a new one). The row stays, so the
        code is never issued again. Retiring a retired code changes nothing. A code this database
        never issued (a register migrated from elsewhere) is recorded as retired when ``lg_code``
        is given, so that it too is never issued again; without it, it is refused."""
        code = _coerce(ResidentCode, resident_code)
        unknown = {"lg_code": lg_code} if lg_code else None
        self._retire(issued_resident_codes.c.resident_code, code, "住民票コード", unknown)

    # -- 個人番号 -------------------------------------------------------------------------------

    def my_number_for(self, resident_code: ResidentCode | str) -> MyNumber:
        """The active 個人番号 of ``resident_code``; if it has none, derive one.

        Derivation tries attempt 0, 1, 2, ... and takes the first number never issued to anyone
        (retired numbers included), then records it. Asking again returns the same number, so a
        repeated request issues nothing twice; to change a number, retire it first.
        """
        code = _coerce(ResidentCode, resident_code)
        t = issued_my_numbers.c
        active = self._session.scalar(
            select(t.my_number).where(t.resident_code == code, t.retired_at.is_(None)).limit(1)
        )
        if active is not None:
            return MyNumber._trusted(active)
        attempt = 0
        while True:
            candidates = [self._deriver.derive(code, attempt + i) for i in range(ATTEMPTS_PER_QUERY)]
            taken = set(self._session.scalars(select(t.my_number).where(t.my_number.in_(candidates))))
            for offset, number in enumerate(candidates):
                if number not in taken:
                    self._session.execute(
                        insert(issued_my_numbers),
                        {
                            "my_number": number,
                            "resident_code": code,
                            "attempt": attempt + offset,
                            "issued_at": self._now(),
                            "retired_at": None,
                        },
                    )
                    return number
            attempt += ATTEMPTS_PER_QUERY

    def retire_my_number(self, my_number: MyNumber | str, *, resident_code: str | None = None) -> None:
        """Mark the number retired (e.g. it leaked, 番号法 §7(2)). It stays recorded and is never
        issued again. Retiring a retired number changes nothing. An unknown number is recorded as
        retired when its ``resident_code`` is given (see :meth:`retire_resident_code`)."""
        number = _coerce(MyNumber, my_number)
        unknown = {"resident_code": resident_code, "attempt": -1} if resident_code else None
        self._retire(issued_my_numbers.c.my_number, number, "個人番号", unknown)

    # -- bulk seeding ---------------------------------------------------------------------------

    def allocate_bulk(
        self, rng: random.Random, lg_codes: Sequence[LgCode | str]
    ) -> list[tuple[ResidentCode, MyNumber]]:
        """One new (住民票コード, 個人番号) pair per entry of ``lg_codes``, in order, with the same
        guarantees as :meth:`new_resident_code` + :meth:`my_number_for`, for seeding up to a
        million people: numbers are made in memory, checked against the tables with chunked
        ``IN (...)`` queries, and inserted with one executemany per table and chunk."""
        # Validated once per distinct code. Plain ``str`` throughout: sqlite3 binds and ``sorted``
        # compares exact strings on fast paths that subclasses miss.
        valid_lg = {value: str(_coerce(LgCode, value)) for value in set(lg_codes)}
        codes = self._fresh_resident_codes(rng, len(lg_codes))
        numbers, attempts = self._fresh_my_numbers(codes)
        pairs = [
            (ResidentCode._trusted(c), MyNumber._trusted(n)) for c, n in zip(codes, numbers, strict=True)
        ]
        # Rows go in in key order: appending to a B-tree costs much less than inserting at random
        # places once the table outgrows the page cache. Each person keeps the random code drawn
        # for them; only the order of the inserts changes.
        by_code = sorted(range(len(codes)), key=codes.__getitem__)
        by_number = sorted(range(len(numbers)), key=numbers.__getitem__)
        now = self._now()
        for start in range(0, len(codes), INSERT_CHUNK):
            stop = start + INSERT_CHUNK
            self._insert_many(
                issued_resident_codes,
                ("resident_code", "lg_code"),
                [(codes[i], valid_lg[lg_codes[i]]) for i in by_code[start:stop]],
                issued_at=now,
            )
            self._insert_many(
                issued_my_numbers,
                ("my_number", "resident_code", "attempt"),
                [(numbers[i], codes[i], attempts[i]) for i in by_number[start:stop]],
                issued_at=now,
            )
        return pairs

    def _fresh_resident_codes(self, rng: random.Random, count: int) -> list[str]:
        randrange = rng.randrange
        chosen: list[str] = []
        seen: set[str] = set()  # also keeps codes found in the tables, so they are not drawn again
        while len(chosen) < count:
            batch: list[str] = []
            while len(batch) < count - len(chosen):
                body = f"{randrange(10**10):010d}"
                code = f"{body}{resident_code_check_digit(body)}"
                if code not in seen:
                    seen.add(code)
                    batch.append(code)
            in_use = self._resident_codes_in_use(batch)
            chosen.extend(code for code in batch if code not in in_use)
        return chosen

    def _fresh_my_numbers(self, codes: Sequence[str]) -> tuple[list[str], list[int]]:
        numbers: dict[int, str] = {}
        attempts = [0] * len(codes)
        seen: set[str] = set()  # numbers given out in this batch or found in the table
        pending = list(range(len(codes)))
        while pending:
            retry: list[int] = []
            fresh: dict[str, int] = {}
            derive = self._deriver.digits
            for i in pending:
                number = derive(codes[i], attempts[i])
                if number in seen:
                    attempts[i] += 1
                    retry.append(i)
                else:
                    seen.add(number)
                    fresh[number] = i
                    numbers[i] = number
            for taken in self._existing(issued_my_numbers.c.my_number, fresh):
                i = fresh[taken]
                attempts[i] += 1
                retry.append(i)
            pending = retry
        return [numbers[i] for i in range(len(codes))], attempts

    # -- helpers --------------------------------------------------------------------------------

    def _resident_codes_in_use(self, codes: list[str]) -> set[str]:
        # A code used only in issued_my_numbers (e.g. imported from an existing register) counts
        # as in use too: handing it to another person would merge two people.
        return self._existing(issued_resident_codes.c.resident_code, codes) | self._existing(
            issued_my_numbers.c.resident_code, codes
        )

    def _existing(self, column: Column[str], values: Iterable[str]) -> set[str]:
        """Which of ``values`` are in ``column`` (indexed): one statement for all of them (jlis.keyset),
        where chunked ``IN (...)`` lists were compiled, bound and parsed 500 values at a time (~1/6
        of the seeder's time on PostgreSQL)."""
        table, key = column.table, (column.name,)
        return {r[0] for r in select_by_keys(self._session, table, key, list(values), key)}

    def _retire(self, key: Column[str], value: str, what: str, unknown: dict[str, Any] | None = None) -> None:
        table = key.table
        retired_at = table.c.retired_at
        row = self._session.execute(select(retired_at).where(key == value)).first()
        if row is None:
            if unknown is None:
                raise NotFound(what, _masked(value))
            now = self._now()
            self._session.execute(
                insert(table).values({key.name: value, "issued_at": now, "retired_at": now, **unknown})
            )
            return
        if row.retired_at is None:
            self._session.execute(
                update(table).where(key == value, retired_at.is_(None)).values(retired_at=self._now())
            )

    def _insert_many(
        self, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]], **constants: Any
    ) -> None:
        """Insert ``rows`` (values of ``columns``), each completed with ``constants``, through the
        bulk path (COPY on PostgreSQL, the bare driver's executemany on SQLite)."""
        keys = (*columns, *constants)
        tail = tuple(constants.values())
        bulk_insert(self._session, table, [dict(zip(keys, row + tail, strict=True)) for row in rows])
