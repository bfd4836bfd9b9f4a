"""docs/api/openapi.json, the committed OpenAPI description of the server's route table.

`python -m server.openapi_file` rewrites it; with `--check` it only reports (exit 1) whether the
committed file is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from server.routes import api_description

OPENAPI_FILE = Path(__file__).resolve().parent.parent / "docs" / "api" / "openapi.json"


def render() -> str:
    """The OpenAPI file's exact text."""
    return json.dumps(api_description(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/api/openapi.json, or with --check, report whether it is current."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OPENAPI_FILE.read_text(encoding="utf-8") if OPENAPI_FILE.exists() else ""
        if current != text:
            print(
                f"{OPENAPI_FILE} is out of date; run python -m server.openapi_file", file=sys.stderr
            )
            return 1
        return 0
    OPENAPI_FILE.parent.mkdir(parents=True, exist_ok=True)
    OPENAPI_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {OPENAPI_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
