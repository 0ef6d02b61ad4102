"""既存住基: one municipality's resident register (住民票, 世帯, 異動, history)."""

from jlis.registry.events import FuhyoNotice, IdentityRecord
from jlis.registry.models import Address, ChangeReason, HistoryEntry, PersonName, ResidentView, Sex, Status
from jlis.registry.service import MoveOutCertificate, NewPerson, Placement, RegistryService

__all__ = [
    "Address",
    "ChangeReason",
    "FuhyoNotice",
    "HistoryEntry",
    "IdentityRecord",
    "MoveOutCertificate",
    "NewPerson",
    "PersonName",
    "Placement",
    "RegistryService",
    "ResidentView",
    "Sex",
    "Status",
]
