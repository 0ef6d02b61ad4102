"""番号・コード: 個人番号, 住民票コード, 地方公共団体コード and 法人番号.

Validation and check digits (pure), random generation (injected randomness), the keyed derivation
住民票コード → 個人番号, and :class:`NumberAuthority`, which issues numbers and never reissues one.
See docs/codes.md.
"""

from jlis.codes.checkdigits import (
    corporate_number_check_digit,
    lg_code_check_digit,
    mynumber_check_digit,
    resident_code_check_digit,
)
from jlis.codes.derivation import derive_my_number, load_or_create_secret
from jlis.codes.generate import (
    random_corporate_number,
    random_lg_code,
    random_my_number,
    random_resident_code,
)
from jlis.codes.models import (
    CheckResult,
    CodeKind,
    CorporateNumber,
    LgCode,
    MyNumber,
    ResidentCode,
    identify,
)
from jlis.codes.service import NumberAuthority

__all__ = [
    "CheckResult",
    "CodeKind",
    "CorporateNumber",
    "LgCode",
    "MyNumber",
    "NumberAuthority",
    "ResidentCode",
    "corporate_number_check_digit",
    "derive_my_number",
    "identify",
    "lg_code_check_digit",
    "load_or_create_secret",
    "mynumber_check_digit",
    "random_corporate_number",
    "random_lg_code",
    "random_my_number",
    "random_resident_code",
    "resident_code_check_digit",
]
