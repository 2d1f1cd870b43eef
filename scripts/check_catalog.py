"""Check the bundled catalog snapshot against npm and PyPI: every npm and PyPI package of
``src/catalyst_mcp/packages/catalog.json`` must exist at the version the snapshot names.

    .venv/bin/python scripts/check_catalog.py     # after editing the snapshot

Uses ``npm view`` and ``pip download --no-deps`` (the machine's own clients and settings).
Exit code 0 when every package exists, 1 otherwise (each missing one is named).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CATALOG = Path(__file__).resolve().parent.parent / "src/catalyst_mcp/packages/catalog.json"


def npm_exists(identifier: str, version: str) -> bool:
    done = subprocess.run(
        ["npm", "view", f"{identifier}@{version}", "version", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode == 0 and version in done.stdout


def pypi_exists(identifier: str, version: str, into: str) -> bool:
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", into]
    done = subprocess.run(
        [*command, f"{identifier}=={version}"], capture_output=True, text=True, timeout=300
    )
    return done.returncode == 0


def main() -> int:
    servers = json.loads(CATALOG.read_text())["servers"]
    missing = []
    with tempfile.TemporaryDirectory() as into:
        for server in servers:
            for package in server.get("packages", []):
                kind, identifier = package["registryType"], package["identifier"]
                version = package["version"]
                if kind == "npm":
                    ok = npm_exists(identifier, version)
                elif kind == "pypi":
                    ok = pypi_exists(identifier, version, into)
                else:
                    continue
                print(f"{'ok     ' if ok else 'MISSING'} {kind}:{identifier}@{version}")
                if not ok:
                    missing.append(f"{server['name']}: {kind}:{identifier}@{version}")
    for line in missing:
        print(f"missing: {line}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
