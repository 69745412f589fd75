"""Where the reference specs are: $CCSTREAM_SPECS, else `shared/specs` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def find_specs() -> Path:
    """The specs folder; the checkout's sibling `shared/` is how CI and developers lay it out."""
    if os.environ.get("CCSTREAM_SPECS"):
        return Path(os.environ["CCSTREAM_SPECS"])
    for candidate in (REPO.parent / "shared" / "specs", Path("/work/shared/specs")):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("reference specs not found: put shared/ beside the checkout or set CCSTREAM_SPECS")


SPECS = find_specs()
