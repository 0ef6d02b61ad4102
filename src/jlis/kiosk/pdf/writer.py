"""pyHanko's incremental writer with the time injected.

On every write pyHanko stamps the document information's ``/ModDate`` with the wall clock (it sets
``last_modified = 'now'`` unconditionally), which would make rendering impure and put a time other
than the injected clock's into the document. :class:`ClockedPdfWriter` writes ``/ModDate`` from the
given time instead, or leaves ``/Info`` untouched when the time is ``None`` (the ground-pattern
update, which is part of rendering and must be a pure function of the content).
"""

from __future__ import annotations

import datetime as dt
import io

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.metadata.info import update_info_dict


class ClockedPdfWriter(IncrementalPdfFileWriter):
    def __init__(self, data: bytes, *, at: dt.datetime | None) -> None:
        super().__init__(io.BytesIO(data), strict=False)
        self._at = at

    def _update_meta(self) -> None:  # overrides pyHanko's wall-clock stamp (see the module docstring)
        if self._at is None or self._info is None:
            return
        self._meta.last_modified = self._at
        if update_info_dict(self._meta, self._info.get_object()):
            self.mark_update(self._info)
