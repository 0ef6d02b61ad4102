"""pkilint, an independent RFC 5280 linter, finds no error or warning in our CA and end-entity
certificates, for both algorithms, nor in each issuer/subject pair.

Findings below WARNING that pkilint reports, and why they stay:
- INFO pkix.subject_key_identifier_method_1_identified: our SKIs are the RFC 5280 §4.2.1.2 method 1
  (SHA-1 of the public key), which pkilint only reports.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from pkilint.bin import lint_pkix_cert, lint_pkix_signer_signee_cert_chain
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.jpki.ca import CertificationAuthority, load_certificate
from jlis.jpki.holder import HolderInfo
from jlis.jpki.keystore import FileKeyStore
from jlis.jpki.profile import Algorithm, generate_private_key, profile_for
from jlis.jpki.tables import AUTH, PHONE, SIGN
from jlis.jpki.validity import card_expiry

from .conftest import BASE_URL

# Findings we accept, by code. Anything else at NOTICE or above fails the test.
ACCEPTED: dict[str, str] = {}


def findings(capsys: pytest.CaptureFixture[str], main: object, *files: Path) -> list[tuple[str, str]]:
    main(["lint", "-f", "JSON", "-s", "NOTICE", *map(str, files)])  # type: ignore[operator]
    out = capsys.readouterr().out.strip()
    report = json.loads(out) if out else {"results": []}
    return [(f["severity"], f["code"]) for r in report["results"] for f in r["finding_descriptions"]]


@pytest.mark.parametrize("alg", list(Algorithm))
def test_pkilint_finds_nothing(
    factory: sessionmaker[Session],
    clock: FixedClock,
    jpki_keystore: FileKeyStore,
    jpki_holder: HolderInfo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    alg: Algorithm,
) -> None:
    profile = profile_for(alg)
    key = generate_private_key(alg)
    files: list[tuple[Path, Path]] = []
    with factory() as s:
        ca = CertificationAuthority(s, clock, jpki_keystore, BASE_URL, rng=random.Random(5))
        ca.ensure(alg)
        for kind in (SIGN, AUTH):
            root = ca.ca_certificate(ca.active(kind))
            root_file = tmp_path / f"{kind}-root.der"
            root_file.write_bytes(root.public_bytes(Encoding.DER))
            for holder_kind in ("card", PHONE):
                row = ca.issue(
                    kind,
                    key.public_key(),
                    jpki_holder,
                    card_id="C",
                    holder_kind=holder_kind,
                    profile=profile,
                    card_expires_on=card_expiry(jpki_holder.birth_date, clock.today(), profile),
                )
                ee_file = tmp_path / f"{kind}-{holder_kind}.der"
                ee_file.write_bytes(load_certificate(row).public_bytes(Encoding.DER))
                files.append((root_file, ee_file))
    seen: list[tuple[str, str, str]] = []
    for root_file, ee_file in files:
        for path in (root_file, ee_file):
            seen += [(path.name, *f) for f in findings(capsys, lint_pkix_cert.main, path)]
        seen += [
            (f"{root_file.name}>{ee_file.name}", *f)
            for f in findings(capsys, lint_pkix_signer_signee_cert_chain.main, root_file, ee_file)
        ]
        # A root is its own issuer: the chain checks hold for it too (name, AKI = SKI, signature).
        seen += [
            (f"{root_file.name} self", *f)
            for f in findings(capsys, lint_pkix_signer_signee_cert_chain.main, root_file, root_file)
        ]
    assert [f for f in seen if f[2] not in ACCEPTED] == []


def test_pkilint_would_report_a_broken_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The harness above can fail: a certificate with an empty subject and no SAN is an error."""
    key = generate_private_key(Algorithm.P384_SHA384)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    path = tmp_path / "bad.der"
    path.write_bytes(cert.public_bytes(Encoding.DER))
    assert any(sev in ("ERROR", "FATAL") for sev, _ in findings(capsys, lint_pkix_cert.main, path))
