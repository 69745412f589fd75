"""Writes or checks the committed OpenAPI document `api/openapi.json` (the pinned public surface)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

PINNED = Path(__file__).with_name("openapi.json")


def current_document() -> dict[str, Any]:
    """The OpenAPI document of the app as built now (in a scratch directory, no network)."""
    from api.app import create_app
    from api.bootstrap import build_services
    from api.config import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.model_validate(
            {
                "main": {"db": f"{tmp}/job.db", "disable-authentication": True},
                "archive": {"path": f"{tmp}/archive"},
                "event-log": {"kind": "memory"},
                "metric-store": {"checkpoints": {"directory": f"{tmp}/checkpoints"}},
                "archiver": {"state-path": f"{tmp}/agents.db"},
            }
        )
        services = build_services(settings)
        try:
            return create_app(services, dev=True).openapi()
        finally:
            services.close()


def render(document: dict[str, Any]) -> bytes:
    """Stable bytes for diffing."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when api/openapi.json is out of date")
    args = parser.parse_args()
    fresh = render(current_document())
    if args.check:
        if not PINNED.exists() or PINNED.read_bytes() != fresh:
            print("api/openapi.json is out of date: run `python -m api.openapi` and commit it", file=sys.stderr)
            return 1
        print("api/openapi.json is up to date")
        return 0
    PINNED.write_bytes(fresh)
    print(f"wrote {PINNED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
