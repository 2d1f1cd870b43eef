"""Installing an npm package into a prefix of its own, and rebuilding it from the lock.

``install``: a ``package.json`` naming the exact version, then ``npm install --prefix`` (never
global). ``sync``: the same ``package.json`` plus a ``package-lock.json`` written from the lock,
then ``npm ci``, which fetches exactly that tree and checks every tarball's ``integrity``; the
installed tree is compared with the lock once more afterwards.

Install scripts (``preinstall``/``install``/``postinstall`` of any package in the tree) run
arbitrary code as the user at install time, the usual way a compromised dependency strikes:
npm runs with ``--ignore-scripts`` unless ``packages.allow_install_scripts`` (or
``--allow-scripts``) says otherwise. A package that needs them (a native addon) fails to start
without; the docs say so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from catalyst_mcp.errors import (
    InstallFailed,
    IntegrityError,
    PackageNotFound,
    RegistryUnreachable,
    RuntimeMissing,
)
from catalyst_mcp.packages.config import PackagesSettings
from catalyst_mcp.packages.installer import (
    Built,
    failure,
    find_program,
    installer_env,
    looks_unreachable,
)
from catalyst_mcp.packages.lockfile import LockedPackage
from catalyst_mcp.packages.progress import Progress
from catalyst_mcp.packages.runner import Finished, run

__all__ = ["LOCK_FIELDS", "NpmInstaller"]

# The fields of a package-lock.json entry that `npm ci` needs to rebuild the same tree.
LOCK_FIELDS = (
    "name",
    "version",
    "resolved",
    "integrity",
    "link",
    "dev",
    "optional",
    "devOptional",
    "peer",
    "inBundle",
    "hasInstallScript",
    "bin",
    "dependencies",
    "optionalDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "engines",
    "os",
    "cpu",
    "libc",
)
UNREACHABLE_CODES = {
    "ECONNREFUSED",
    "ENOTFOUND",
    "EAI_AGAIN",
    "ETIMEDOUT",
    "ECONNRESET",
    "EHOSTUNREACH",
    "ENETUNREACH",
}
WANTED = re.compile(r"wanted (sha\d+-\S+?) but got")


class NpmInstaller:
    name = "npm"

    def __init__(
        self,
        settings: PackagesSettings,
        environ: Mapping[str, str],
        progress: Progress,
        *,
        allow_scripts: bool | None = None,
    ) -> None:
        self.settings = settings
        self.env = installer_env(environ)
        self.progress = progress
        self.allow_scripts = (
            settings.allow_install_scripts if allow_scripts is None else allow_scripts
        )

    def _npm(self) -> str:
        npm = find_program("npm", self.env)
        if not npm or not find_program("node", self.env):
            missing = "npm" if not npm else "node"
            raise RuntimeMissing(
                f"{missing} is not installed: npm packages need Node.js and npm on PATH "
                "(https://nodejs.org)"
            )
        return npm

    def _options(self) -> list[str]:
        options = ["--no-audit", "--no-fund", "--omit=dev", "--loglevel=http"]
        if not self.allow_scripts:
            options.append("--ignore-scripts")
        if self.settings.npm_registry_url:
            options.append(f"--registry={self.settings.npm_registry_url}")
        return options

    async def _run(self, args: list[str], cwd: Path | None = None) -> Finished:
        return await run(
            [self._npm(), *args],
            env=self.env,
            cwd=cwd,
            timeout=self.settings.install_timeout_seconds,
            on_line=self.progress.output,
            what="npm",
        )

    async def resolve(self, identifier: str, version: str | None) -> str:
        """The exact version ``version`` names (it must exist), or the ``latest`` one."""
        wanted = version or "latest"
        args = ["view", f"{identifier}@{wanted}", "version", "--json"]
        if self.settings.npm_registry_url:
            args.append(f"--registry={self.settings.npm_registry_url}")
        finished = await self._run(args)
        try:
            answer: Any = orjson.loads(finished.stdout) if finished.stdout.strip() else None
        except orjson.JSONDecodeError:
            answer = None
        if finished.returncode == 0 and isinstance(answer, str):
            return answer
        if finished.returncode == 0 and isinstance(answer, list) and answer:
            return str(answer[-1])
        error = answer.get("error") if isinstance(answer, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        summary = str(error.get("summary", "")) if isinstance(error, dict) else ""
        if code in UNREACHABLE_CODES or looks_unreachable(finished.lines):
            detail = f": {summary}" if summary else f"; its last lines:\n{finished.tail(5)}"
            raise RegistryUnreachable(
                f"npm cannot reach its registry for {identifier} ({code or 'network error'})"
                f"{detail}"
            )
        if code == "E404" or (finished.returncode == 0 and answer is None):
            if version is not None and ("version" in summary or finished.returncode == 0):
                raise PackageNotFound(f"npm package {identifier} has no version {version}")
            raise PackageNotFound(f"no npm package {identifier} on the npm registry")
        raise failure(f"npm view {identifier}@{wanted} failed", finished)

    async def latest(self, identifier: str) -> str:
        return await self.resolve(identifier, None)

    @staticmethod
    def _manifest(build: Path, identifier: str, version: str) -> None:
        build.mkdir(parents=True)
        manifest = {
            "name": "catalyst-package",
            "private": True,
            "description": "An MCP server installed by `catalyst packages install`",
            "dependencies": {identifier: version},
        }
        (build / "package.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))

    async def install(self, identifier: str, version: str, build: Path) -> Built:
        """Install ``identifier@version`` (an exact version) with its tree into ``build``."""
        self._manifest(build, identifier, version)
        finished = await self._run(["install", "--prefix", str(build), *self._options()], build)
        if finished.returncode != 0:
            raise failure(f"npm install of {identifier}@{version} failed", finished)
        lock = self._read_json(build / "package-lock.json")
        packages = lock.get("packages", {})
        distributions = [
            {"path": path, **{f: entry[f] for f in LOCK_FIELDS if f in entry}}
            for path, entry in packages.items()
            if path and isinstance(entry, dict)
        ]
        return Built(version, "npm", distributions, self.commands(build, identifier))

    async def sync(self, record: LockedPackage, build: Path) -> Built:
        """Rebuild ``record`` exactly (``npm ci`` from a lockfile written from it)."""
        self._manifest(build, record.package, record.version)
        packages: dict[str, Any] = {
            "": {"name": "catalyst-package", "dependencies": {record.package: record.version}}
        }
        for distribution in record.distributions:
            entry = {k: v for k, v in distribution.items() if k != "path"}
            packages[str(distribution["path"])] = entry
        lock = {
            "name": "catalyst-package",
            "lockfileVersion": 3,
            "requires": True,
            "packages": packages,
        }
        (build / "package-lock.json").write_bytes(orjson.dumps(lock, option=orjson.OPT_INDENT_2))
        finished = await self._run(["ci", "--prefix", str(build), *self._options()], build)
        if finished.returncode != 0:
            wanted = next(
                (m[1] for line in finished.lines for m in [WANTED.search(line)] if m), None
            )
            if wanted is not None or any("EINTEGRITY" in line for line in finished.lines):
                raise IntegrityError(self._mismatch(record, wanted))
            raise failure(
                f"npm ci of {record.package}@{record.version} from catalyst.lock failed",
                finished,
            )
        self.verify(record, build)
        return Built(
            record.version, "npm", record.distributions, self.commands(build, record.package)
        )

    @staticmethod
    def _mismatch(record: LockedPackage, wanted: str | None) -> str:
        for distribution in record.distributions:
            if wanted is not None and distribution.get("integrity") == wanted:
                name = str(distribution["path"]).rsplit("node_modules/", 1)[-1]
                return (
                    f"{name}@{distribution.get('version')} (in {record.package}) does not match "
                    f"the integrity hash in catalyst.lock ({wanted[:20]}...): nothing was "
                    "installed; if the lock is right, the registry served other content"
                )
        return (
            f"a tarball of {record.package}@{record.version} does not match its integrity hash "
            "in catalyst.lock: nothing was installed"
        )

    def verify(self, record: LockedPackage, build: Path) -> None:
        """Every installed package has the lock's version and integrity."""
        installed = self._read_json(build / "node_modules" / ".package-lock.json").get(
            "packages", {}
        )
        for distribution in record.distributions:
            path = str(distribution["path"])
            entry = installed.get(path)
            if not isinstance(entry, dict):
                if distribution.get("optional") or distribution.get("peer"):
                    continue  # optional packages for other platforms are not installed
                raise IntegrityError(f"{path} of catalyst.lock was not installed")
            if entry.get("integrity") != distribution.get("integrity") or entry.get(
                "version"
            ) != distribution.get("version"):
                name = path.rsplit("node_modules/", 1)[-1]
                raise IntegrityError(
                    f"{name}@{entry.get('version')} differs from catalyst.lock "
                    f"({distribution.get('version')}, {str(distribution.get('integrity'))[:20]}...)"
                )

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise InstallFailed(f"npm left no readable {path.name} ({exc})") from exc
        return data if isinstance(data, dict) else {}

    @staticmethod
    def commands(build: Path, identifier: str) -> dict[str, str]:
        """The package's ``bin`` entries that npm linked into ``node_modules/.bin``."""
        manifest = build / "node_modules" / identifier / "package.json"
        try:
            data = orjson.loads(manifest.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        bins = data.get("bin") if isinstance(data, dict) else None
        if isinstance(bins, str):
            bins = {identifier.rsplit("/", 1)[-1]: bins}
        if not isinstance(bins, dict):
            return {}
        found = {}
        for name in bins:
            relative = f"node_modules/.bin/{name}"
            if (build / relative).exists():
                found[str(name)] = relative
        return found
