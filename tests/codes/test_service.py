"""NumberAuthority on real databases (SQLite, and PostgreSQL when JLIS_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.codes import service as service_module
from jlis.codes.derivation import derive_my_number
from jlis.codes.generate import random_resident_code
from jlis.codes.models import LgCode, MyNumber, ResidentCode
from jlis.codes.service import NumberAuthority
from jlis.codes.tables import IssuedMyNumber, IssuedResidentCode, issued_my_numbers, issued_resident_codes
from jlis.db import transaction
from jlis.errors import InvalidInput, NotFound
from jlis.keyset import select_by_keys

SECRET = b"test-secret-0123456789abcdef0123"
CHIYODA, SAPPORO = "131016", "011002"


def aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes, which the service stores in UTC; compare instants.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def first_code(seed: int) -> ResidentCode:
    """The first code NumberAuthority draws from random.Random(seed): it draws as
    random_resident_code does, which lets a test take that code first."""
    return random_resident_code(random.Random(seed))


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with transaction(factory) as s:
        yield s


@pytest.fixture
def numbers(session: Session, clock: FixedClock) -> NumberAuthority:
    return NumberAuthority(session, SECRET, clock)


def my_number_rows(session: Session, resident_code: str) -> list[IssuedMyNumber]:
    stmt = select(IssuedMyNumber).where(IssuedMyNumber.resident_code == resident_code)
    return list(session.scalars(stmt.order_by(IssuedMyNumber.attempt)))


def preissue_my_number(session: Session, number: str, resident_code: str, clock: FixedClock) -> None:
    session.execute(
        insert(issued_my_numbers),
        {"my_number": number, "resident_code": resident_code, "attempt": 0, "issued_at": clock.now()},
    )


# -- 住民票コード ---------------------------------------------------------------------------------


def test_new_resident_code_is_valid_and_recorded(
    numbers: NumberAuthority, session: Session, clock: FixedClock
) -> None:
    code = numbers.new_resident_code(random.Random(1), CHIYODA)
    assert type(code) is ResidentCode
    assert code == first_code(1)
    row = session.get(IssuedResidentCode, code)
    assert row is not None
    assert (row.lg_code, aware(row.issued_at), row.retired_at) == (CHIYODA, clock.now(), None)


def test_new_resident_code_skips_codes_already_issued(numbers: NumberAuthority, session: Session) -> None:
    taken = numbers.new_resident_code(random.Random(5), CHIYODA)
    again = numbers.new_resident_code(random.Random(5), SAPPORO)  # draws `taken` first, then moves on
    assert again != taken
    assert session.get(IssuedResidentCode, taken).lg_code == CHIYODA  # type: ignore[union-attr]


def test_new_resident_code_skips_retired_codes(numbers: NumberAuthority) -> None:
    old = numbers.new_resident_code(random.Random(9), CHIYODA)
    numbers.retire_resident_code(old)
    assert numbers.new_resident_code(random.Random(9), CHIYODA) != old


def test_new_resident_code_skips_codes_known_only_to_issued_my_numbers(
    numbers: NumberAuthority, session: Session, clock: FixedClock
) -> None:
    imported = first_code(3)  # a code that came with an existing register: it has a My Number
    preissue_my_number(session, derive_my_number(SECRET, imported), imported, clock)
    assert numbers.new_resident_code(random.Random(3), CHIYODA) != imported


def test_new_resident_code_refuses_a_bad_lg_code(numbers: NumberAuthority, session: Session) -> None:
    with pytest.raises(InvalidInput) as info:
        numbers.new_resident_code(random.Random(1), "131017")
    assert info.value.field == "地方公共団体コード"
    assert session.scalar(select(func.count()).select_from(issued_resident_codes)) == 0


def test_retire_resident_code(numbers: NumberAuthority, session: Session, clock: FixedClock) -> None:
    code = numbers.new_resident_code(random.Random(1), LgCode(CHIYODA))
    clock.advance(days=1)
    numbers.retire_resident_code(code)
    row = session.get(IssuedResidentCode, code)
    assert row is not None and row.retired_at is not None
    assert aware(row.retired_at) == clock.now()


# -- 個人番号 -------------------------------------------------------------------------------------


def test_my_number_for_derives_and_records(
    numbers: NumberAuthority, session: Session, clock: FixedClock
) -> None:
    code = numbers.new_resident_code(random.Random(1), CHIYODA)
    number = numbers.my_number_for(code)
    assert type(number) is MyNumber
    assert number == derive_my_number(SECRET, code, 0)
    [row] = my_number_rows(session, code)
    assert (row.my_number, row.attempt, aware(row.issued_at), row.retired_at) == (
        number,
        0,
        clock.now(),
        None,
    )


def test_my_number_for_is_idempotent(numbers: NumberAuthority, session: Session) -> None:
    code = ResidentCode("24727059608")
    assert numbers.my_number_for(code) == numbers.my_number_for("24727059608")
    assert len(my_number_rows(session, code)) == 1


def test_my_number_for_refuses_a_bad_code(numbers: NumberAuthority) -> None:
    with pytest.raises(InvalidInput) as info:
        numbers.my_number_for("25208017644")
    assert info.value.rule == "check digit does not match"


def test_collision_moves_to_the_next_attempt(
    numbers: NumberAuthority, session: Session, clock: FixedClock
) -> None:
    code, other = ResidentCode("24727059608"), ResidentCode("24846016224")
    preissue_my_number(session, derive_my_number(SECRET, code, 0), other, clock)  # someone else has it
    number = numbers.my_number_for(code)
    assert number == derive_my_number(SECRET, code, 1)
    [row] = my_number_rows(session, code)
    assert row.attempt == 1


def test_collisions_beyond_one_query_of_candidates(
    numbers: NumberAuthority, session: Session, clock: FixedClock
) -> None:
    code, other = ResidentCode("24727059608"), ResidentCode("24846016224")
    taken = service_module.ATTEMPTS_PER_QUERY + 1
    for attempt in range(taken):
        preissue_my_number(session, derive_my_number(SECRET, code, attempt), other, clock)
    assert numbers.my_number_for(code) == derive_my_number(SECRET, code, taken)


def test_retired_number_is_never_reissued(
    numbers: NumberAuthority, session: Session, clock: FixedClock
) -> None:
    code = ResidentCode("24727059608")
    first = numbers.my_number_for(code)
    clock.advance(days=1)
    numbers.retire_my_number(first)
    second = numbers.my_number_for(code)
    assert second != first
    assert second == derive_my_number(SECRET, code, 1)
    rows = my_number_rows(session, code)
    assert [(r.my_number, r.retired_at is not None) for r in rows] == [(first, True), (second, False)]
    assert aware(rows[0].retired_at) == clock.now()  # type: ignore[arg-type]


def test_retiring_twice_keeps_the_first_time(
    numbers: NumberAuthority, session: Session, clock: FixedClock
) -> None:
    number = numbers.my_number_for(ResidentCode("24727059608"))
    numbers.retire_my_number(number)
    retired_at = clock.now()
    clock.advance(hours=1)
    numbers.retire_my_number(number)
    row = session.get(IssuedMyNumber, number)
    assert row is not None and row.retired_at is not None
    assert aware(row.retired_at) == retired_at


def test_retiring_an_unknown_number_names_it_masked(numbers: NumberAuthority) -> None:
    with pytest.raises(NotFound) as info:
        numbers.retire_my_number(MyNumber("123456789018"))
    assert info.value.context == {"field": "個人番号", "rule": "must exist"}
    assert "123456789018" not in info.value.message
    assert info.value.message.endswith("********9018")
    with pytest.raises(NotFound):
        numbers.retire_resident_code("24727059608")


def test_nothing_is_committed_by_the_service(factory: sessionmaker[Session], clock: FixedClock) -> None:
    with factory() as s:
        authority = NumberAuthority(s, SECRET, clock)
        code = authority.new_resident_code(random.Random(1), CHIYODA)
        authority.my_number_for(code)
        authority.allocate_bulk(random.Random(2), [CHIYODA] * 10)
        s.rollback()
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(issued_resident_codes)) == 0
        assert s.scalar(select(func.count()).select_from(issued_my_numbers)) == 0


def test_short_secret_is_refused(session: Session, clock: FixedClock) -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        NumberAuthority(session, b"", clock)


# -- allocate_bulk --------------------------------------------------------------------------------


def test_allocate_bulk_pairs(numbers: NumberAuthority, session: Session, clock: FixedClock) -> None:
    lg_codes = [CHIYODA, SAPPORO, LgCode("271004")] * 400
    pairs = numbers.allocate_bulk(random.Random(4), lg_codes)
    assert len(pairs) == len(lg_codes)
    assert len({c for c, _ in pairs}) == len({n for _, n in pairs}) == len(lg_codes)
    for code, number in pairs:
        assert type(code) is ResidentCode and type(number) is MyNumber
        assert number == derive_my_number(SECRET, code, 0)  # no collision at this size
    codes = {
        c: lg
        for c, lg in session.execute(select(IssuedResidentCode.resident_code, IssuedResidentCode.lg_code))
    }
    assert codes == {code: lg for (code, _), lg in zip(pairs, lg_codes, strict=True)}
    issued = {(r.my_number, r.resident_code, r.attempt) for r in session.scalars(select(IssuedMyNumber))}
    assert issued == {(n, c, 0) for c, n in pairs}
    assert {aware(t) for t in session.scalars(select(IssuedMyNumber.issued_at))} == {clock.now()}
    # The pairs are issued numbers like any other: asking for the number again gives the same.
    code, number = pairs[7]
    assert numbers.my_number_for(code) == number


def test_allocate_bulk_codes_are_random_per_person(numbers: NumberAuthority) -> None:
    # Inserts go in sorted order; the people must not get their codes in that order.
    codes = [code for code, _ in numbers.allocate_bulk(random.Random(8), [CHIYODA] * 200)]
    assert codes != sorted(codes)
    assert codes[:5] == [random_resident_code(rng) for rng in [random.Random(8)] for _ in range(5)]


def test_allocate_bulk_avoids_issued_numbers(
    numbers: NumberAuthority, session: Session, clock: FixedClock
) -> None:
    rng = random.Random(11)
    drawn = [random_resident_code(rng) for _ in range(3)]  # what allocate_bulk(Random(11)) draws first
    session.execute(
        insert(issued_resident_codes),
        {"resident_code": drawn[0], "lg_code": SAPPORO, "issued_at": clock.now()},
    )
    other = ResidentCode("24846016224")
    preissue_my_number(session, derive_my_number(SECRET, drawn[1], 0), other, clock)

    pairs = dict(numbers.allocate_bulk(random.Random(11), [CHIYODA] * 5))
    assert drawn[0] not in pairs
    assert pairs[drawn[1]] == derive_my_number(SECRET, drawn[1], 1)
    assert session.get(IssuedMyNumber, pairs[drawn[1]]).attempt == 1  # type: ignore[union-attr]
    assert pairs[drawn[2]] == derive_my_number(SECRET, drawn[2], 0)


class _RepeatingRandom(random.Random):
    """Draws the same few bodies again and again: duplicate codes inside one batch."""

    def __init__(self) -> None:
        super().__init__(0)
        self._n = 0

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        self._n += 1
        return self._n // 3  # 0, 0, 0, 1, 1, 1, ...


class _CollidingDeriver:
    """Every code's attempt k gives the same number: collisions inside one batch."""

    def digits(self, resident_code: str, attempt: int) -> str:
        return derive_my_number(SECRET, ResidentCode("24727059608"), attempt)

    def derive(self, resident_code: str, attempt: int) -> MyNumber:
        return MyNumber(self.digits(resident_code, attempt))


def test_allocate_bulk_collisions_inside_the_batch(numbers: NumberAuthority, session: Session) -> None:
    numbers._deriver = _CollidingDeriver()  # type: ignore[assignment]
    pairs = numbers.allocate_bulk(_RepeatingRandom(), [CHIYODA] * 6)
    assert len({c for c, _ in pairs}) == 6
    assert len({n for _, n in pairs}) == 6
    attempts = sorted(session.scalars(select(IssuedMyNumber.attempt)))
    assert attempts == [0, 1, 2, 3, 4, 5]


def test_allocate_bulk_refuses_a_bad_lg_code_and_writes_nothing(
    numbers: NumberAuthority, session: Session
) -> None:
    with pytest.raises(InvalidInput):
        numbers.allocate_bulk(random.Random(1), [CHIYODA, "99999x"])
    assert session.scalar(select(func.count()).select_from(issued_resident_codes)) == 0


def test_allocate_bulk_of_nobody(numbers: NumberAuthority) -> None:
    assert numbers.allocate_bulk(random.Random(1), []) == []


def test_allocate_bulk_checks_every_new_number_in_one_statement_per_table(
    numbers: NumberAuthority, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collision checks read the tables once per table with every candidate as one parameter
    (jlis.keyset), not in lists of 500 bound values."""
    reads: list[tuple[str, int]] = []

    def counted(session: Session, table: Any, keys: Any, values: Any, columns: Any) -> Any:
        reads.append((f"{table.name}.{keys[0]}", len(values)))
        return select_by_keys(session, table, keys, values, columns)

    monkeypatch.setattr(service_module, "select_by_keys", counted)
    pairs = numbers.allocate_bulk(random.Random(6), [CHIYODA] * 1201)
    # Two tables checked for the codes, one for the numbers; no collision at this size.
    assert sorted(reads) == [
        ("issued_my_numbers.my_number", 1201),
        ("issued_my_numbers.resident_code", 1201),
        ("issued_resident_codes.resident_code", 1201),
    ]
    assert len({c for c, _ in pairs}) == len({n for _, n in pairs}) == 1201


def test_retiring_a_number_issued_elsewhere_records_it_for_ever(
    numbers: NumberAuthority, session: Session
) -> None:
    """A register migrated from another system holds numbers this database never issued: retiring
    them (with their context) records them as retired, so they are never issued again."""
    code = first_code(41)
    number = derive_my_number(b"some-other-numbering-secret", code)
    with pytest.raises(NotFound):
        numbers.retire_resident_code(code)  # without context it is still refused
    numbers.retire_resident_code(code, lg_code="131016")
    numbers.retire_my_number(number, resident_code=code)
    numbers.retire_my_number(number, resident_code=code)  # a repeat changes nothing
    assert session.execute(
        select(IssuedResidentCode.retired_at).where(IssuedResidentCode.resident_code == code)
    ).scalar_one()
    assert session.execute(
        select(IssuedMyNumber.retired_at).where(IssuedMyNumber.my_number == number)
    ).scalar_one()
    # The retired code is never handed out again: force the generator to propose it first.
    rng = random.Random(41)
    assert numbers.new_resident_code(rng, "131016") != code
