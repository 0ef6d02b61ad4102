"""Reading the data files that carry rules (the legal tables, replica schemas, fees, kiosk policy):
one way to read them, and one way a file that cannot be read or parsed stops start-up."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any


def read_toml(path: Path, refuse: Callable[[str], Exception]) -> dict[str, Any]:
    """The file's TOML document; ``refuse(rule)`` builds the caller's own error for a file that
    cannot be read or is not TOML."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise refuse(f"must be valid TOML ({exc})") from exc
