"""Card issuance: new cards per second against the raw cost of the same cryptography, same run.

    .venv/bin/python -m bench.issuance_bench [--cards 200] [--rounds 10] [--postgres ADMIN_URL] [--quick]

What one card is (timed, per card, one transaction each, as at delivery):
  ``ChipStore.take_from_pool`` with an empty pool — the chip is manufactured now: two RSA-2048 key
  pairs generated on it (authentication and signing) — bound to its card id and sealed into
  ``card_chips``; ``CertificationAuthority.issue`` of the signing certificate (SAN 基本4情報,
  JIS X 0208 substitution) and of the authentication certificate, each signed by the CA key from
  the key store; both installed on the chip (which checks they certify its keys); the four PINs
  set; the chip sealed again (AES-GCM) and updated; the commit.

Raw (the baseline, in the same process and run): two ``rsa.generate_private_key(65537, 2048)`` and
two ``x509.CertificateBuilder().sign`` with an RSA-2048 key, of a minimal certificate — the
cryptography a card cannot do without. Key generation dominates both (~15/s per core) and varies a
lot from key to key, so the two are measured in interleaved rounds (raw, ours, raw, ours...) of the
same size and the sums compared. Target: ours ≥ 0.8 × raw.

A second figure shows what delivery costs once the pool is filled ahead (the chip pool of
``jlis.card.chip.store``, how the demo avoids minutes of key generation): the same card, with its
chip taken from a pre-filled pool.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bench.common import DEFAULT_PG, fresh_postgres, fresh_sqlite, machine
from jlis.clock import JST, FixedClock
from jlis.db import make_session_factory, transaction

CLOCK = FixedClock(dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST))
BASE = "http://127.0.0.1:8000"


def raw_card(ca_key: rsa.RSAPrivateKey, ca_name: x509.Name, i: int) -> None:
    now = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    for _slot in ("auth", "sign"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"raw{i}")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1800))
            .sign(ca_key, hashes.SHA256())
        )


class Issuer:
    """The delivery-time issuance path over one database."""

    def __init__(self, engine_url: str, key_dir: Path) -> None:
        from jlis.db import make_engine
        from jlis.jpki.ca import CertificationAuthority
        from jlis.jpki.keystore import FileKeyStore

        self.engine = make_engine(engine_url)
        self.factory = make_session_factory(self.engine)
        self.key_dir = key_dir
        self.keystore = FileKeyStore(key_dir)
        with transaction(self.factory) as s:
            CertificationAuthority(s, CLOCK, self.keystore, BASE).ensure()
        self.n = 0

    def fill_pool(self, n: int) -> float:
        from jlis.card.chip.store import ChipStore

        started = time.perf_counter()
        with transaction(self.factory) as s:
            ChipStore(s, self.key_dir, clock=CLOCK).fill_pool(n, "rsa2048-sha256")
        return time.perf_counter() - started

    def card(self) -> None:
        from jlis.card.chip.store import ChipStore
        from jlis.jpki.ca import CertificationAuthority
        from jlis.jpki.holder import HolderInfo
        from jlis.jpki.tables import AUTH, SIGN, CaGenerationRow

        self.n += 1
        card_id = f"C{self.n:011d}"
        holder = HolderInfo(
            resident_code=f"{self.n:011d}",
            lg_code="131016",
            family_name="髙橋",
            given_name="一郎",
            sex="male",
            birth_date=dt.date(1980 + self.n % 30, 1 + self.n % 12, 1 + self.n % 28),
            address=f"東京都千代田区千代田{self.n % 999 + 1}番地",
        )
        with transaction(self.factory) as s:
            store = ChipStore(s, self.key_dir, clock=CLOCK)
            chip = store.take_from_pool(card_id, "rsa2048-sha256")
            ca = CertificationAuthority(s, CLOCK, self.keystore, BASE)
            expires = dt.date(2036, 11, 26)
            sign = ca.issue(SIGN, chip.public_key("sign"), holder, card_id=card_id, card_expires_on=expires)
            auth = ca.issue(AUTH, chip.public_key("auth"), holder, card_id=card_id, card_expires_on=expires)
            s.flush()
            for slot, row in (("sign", sign), ("auth", auth)):
                gen = s.get(CaGenerationRow, row.ca_generation_id)
                assert gen is not None
                chip.install_certificate(slot, row.der, gen.certificate_der)
            chip.set_pins("1234", "ABC123", "5678", "9012")
            store.save(chip)


def run(kind: str, url: str, cards: int, rounds: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="jlis-issuance-bench-"))
    issuer = Issuer(url, workdir / "keys")
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "raw CA")])
    per_round = max(1, cards // rounds)
    issuer.card()  # warm: CA key decrypted, statements compiled
    raw_s = ours_s = 0.0
    for r in range(rounds):
        t = time.perf_counter()
        for i in range(per_round):
            raw_card(ca_key, ca_name, r * per_round + i)
        raw_s += time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(per_round):
            issuer.card()
        ours_s += time.perf_counter() - t
    n = per_round * rounds
    ours, raw = n / ours_s, n / raw_s
    load = os.getloadavg()[0]
    print(
        f"{kind:10} {n} cards: ours {ours:6.2f} cards/s ({ours_s:5.1f} s)   raw {raw:6.2f} cards/s "
        f"({raw_s:5.1f} s)   ratio {ours / raw:.2f} "
        f"(target ≥ 0.8: {'met' if ours / raw >= 0.8 else 'NOT met'})"
        f"   [load {load:.2f}]",
        flush=True,
    )
    pool_n = max(5, n // 4)
    fill = issuer.fill_pool(pool_n)
    t = time.perf_counter()
    for _ in range(pool_n):
        issuer.card()
    pooled = pool_n / (time.perf_counter() - t)
    print(
        f"{kind:10} with the chip pool filled ahead ({pool_n} chips in {fill:.1f} s, "
        f"{pool_n / fill:.1f} chips/s): delivery {pooled:6.1f} cards/s",
        flush=True,
    )
    issuer.engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cards", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--postgres", default=None, help=f"admin URL, e.g. {DEFAULT_PG}")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--quick", action="store_true", help="20 cards in 4 rounds")
    args = ap.parse_args()
    if args.quick:
        args.cards, args.rounds = 20, 4
    print(f"issuance benchmark (RSA-2048 cards) — {machine()}")
    if not args.no_sqlite:
        engine = fresh_sqlite("issuance")
        run("sqlite", engine.url.render_as_string(hide_password=False), args.cards, args.rounds)
        engine.dispose()
    if args.postgres:
        engine = fresh_postgres(args.postgres, "jlis_bench_issuance")
        run("postgresql", engine.url.render_as_string(hide_password=False), args.cards, args.rounds)
        engine.dispose()


if __name__ == "__main__":
    main()
