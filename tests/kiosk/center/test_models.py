"""Pure values of the center: kiosk ids, copies, the options a kiosk offers per certificate."""

from __future__ import annotations

import pytest

from jlis.errors import InvalidInput
from jlis.kiosk.center.models import check_copies, check_kiosk_id, options_for
from jlis.kiosk.content import CertificateKind


def test_kiosk_id() -> None:
    assert check_kiosk_id(" K-0001 ") == "K-0001"
    for bad in ("", "-K", "K_1", "x" * 33, "店舗1"):
        with pytest.raises(InvalidInput):
            check_kiosk_id(bad)


def test_copies() -> None:
    assert check_copies(10) == 10
    for bad in (0, 11, True, "2", 1.0):
        with pytest.raises(InvalidInput):
            check_copies(bad)


def test_options_per_kind() -> None:
    assert options_for(CertificateKind.RESIDENT)[0] == "household"
    assert options_for(CertificateKind.RESIDENT_ITEMS) == ("items",)
    assert options_for(CertificateKind.INCOME) == ("fiscal_year",)
    assert options_for(CertificateKind.SEAL) == ()
