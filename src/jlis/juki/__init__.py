"""住民基本台帳ネットワークシステム and the 附票連携システム: the CS of each municipality, the
prefecture servers, J-LIS's national server, the provision of 本人確認情報 to agencies with its log
and the resident's disclosure, and the 戸籍の附票 chain. See docs/juki.md."""

from jlis.juki.fuhyo import Fuhyo, FuhyoAddressLine, read_fuhyo, read_fuhyo_national
from jlis.juki.initial_load import (
    bulk_load_cs,
    bulk_load_fuhyo,
    bulk_load_national,
    bulk_load_pref,
    bulk_load_tiers,
    initial_load,
)
from jlis.juki.models import FuhyoRecord
from jlis.juki.network import RelayWorker, build_relay
from jlis.juki.provision import (
    Basic4Query,
    Outcome,
    ProvisionLogEntry,
    ProvisionResult,
    ProvisionService,
    disclose,
    provide,
)
from jlis.juki.status import (
    NationalState,
    NetworkState,
    PrefectureState,
    national_state,
    network_state,
    propagation_state,
)

__all__ = [
    "Basic4Query",
    "Fuhyo",
    "FuhyoAddressLine",
    "FuhyoRecord",
    "NationalState",
    "NetworkState",
    "Outcome",
    "PrefectureState",
    "ProvisionLogEntry",
    "ProvisionResult",
    "ProvisionService",
    "RelayWorker",
    "build_relay",
    "bulk_load_cs",
    "bulk_load_fuhyo",
    "bulk_load_national",
    "bulk_load_pref",
    "bulk_load_tiers",
    "disclose",
    "initial_load",
    "national_state",
    "network_state",
    "propagation_state",
    "provide",
    "read_fuhyo",
    "read_fuhyo_national",
]
