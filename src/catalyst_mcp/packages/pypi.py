"""Installing a PyPI package into a venv of its own, and rebuilding it from the lock.

With uv (``packages.python_installer``: ``auto`` finds it on PATH or beside the running
Python): ``uv venv``, ``uv pip compile --generate-hashes`` (the exact versions of the whole tree,
with the sha256 of every file published for them), then ``uv pip install --require-hashes
--no-deps`` of that list. With pip: ``python -m venv``, then ``pip install --report``, whose
report gives the sha256 of each file installed. ``sync`` writes the lock's distributions as a
requirements file with their hashes and installs it with ``--require-hashes --no-deps``, either
way: a file whose hash is not in the lock is refused by the installer, and named.

Building a source distribution runs the package's own build code at install time, so unless
install scripts are allowed only wheels are accepted (uv ``--no-build``, pip
``--only-binary=:all:``).
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Mapping
from importlib import metadata
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
from catalyst_mcp.packages.spec import normalize_pypi

__all__ = ["PypiInstaller", "parse_requirements", "requirements_text"]

REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")
UV_MISMATCH = re.compile(r"Hash mismatch for `([^`]+)`")
PIP_MISMATCH = re.compile(r"^\s+(\S+==\S+) from ")
NOT_FOUND = re.compile(
    r"No matching distribution found|was not found in the package registry|"
    r"there is no version of|there are no versions of|"
    r"Could not find a version that satisfies",
    re.IGNORECASE,
)


def parse_requirements(text: str) -> list[dict[str, Any]]:
    """``name==version --hash=...`` lines (as ``uv pip compile --generate-hashes`` writes
    them, continued with backslashes) as lock distributions."""
    found: list[dict[str, Any]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        match = REQUIREMENT.match(line)
        if match is not None:
            found.append({"name": normalize_pypi(match[1]), "version": match[2], "hashes": []})
        if found:
            found[-1]["hashes"].extend(HASH.findall(line))
    for distribution in found:
        distribution["hashes"] = sorted(set(distribution["hashes"]))
    return found


def requirements_text(distributions: list[dict[str, Any]]) -> str:
    """The lock's distributions as a hash-checking requirements file."""
    lines = []
    for d in distributions:
        hashes = " ".join(f"--hash={h}" for h in d.get("hashes", []))
        lines.append(f"{d['name']}=={d['version']} {hashes}".rstrip())
    return "\n".join(lines) + "\n"


class PypiInstaller:
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
        self.uv = ""
        if settings.python_installer in ("auto", "uv"):
            self.uv = find_program("uv", self.env, beside_python=True)
            if not self.uv and settings.python_installer == "uv":
                raise RuntimeMissing(
                    "uv is not installed (packages.python_installer is 'uv'): install it "
                    "(pip install uv) or set python_installer to 'pip' or 'auto'"
                )
        self.name = "uv" if self.uv else "pip"

    def _python(self) -> str:
        wanted = self.settings.python or sys.executable
        found = wanted if Path(wanted).is_file() else find_program(wanted, self.env)
        if not found:
            raise RuntimeMissing(
                f"python {wanted!r} is not installed (packages.python): PyPI packages need a "
                "Python interpreter for their venv"
            )
        return found

    async def _run(self, argv: list[str], stdin: bytes | None = None) -> Finished:
        return await run(
            argv,
            env=self.env,
            timeout=self.settings.install_timeout_seconds,
            on_line=self.progress.output,
            stdin=stdin,
            what=Path(argv[0]).name if argv[0] != self.uv else "uv",
        )

    def _index(self) -> list[str]:
        url = self.settings.pypi_index_url
        if not url:
            return []
        return ["--default-index", url] if self.uv else ["--index-url", url]

    def _binary_only(self) -> list[str]:
        if self.allow_scripts:
            return []
        return ["--no-build"] if self.uv else ["--only-binary=:all:"]

    async def _venv(self, build: Path) -> Path:
        python = self._python()
        if self.uv:
            argv = [self.uv, "venv", "--quiet", "--no-project", "--python", python, str(build)]
        else:
            argv = [python, "-m", "venv", str(build)]
        finished = await self._run(argv)
        if finished.returncode != 0:
            raise failure(f"making a venv with {Path(argv[0]).name} failed", finished)
        return build / "bin" / "python"

    def _raise(self, what: str, finished: Finished, identifier: str) -> None:
        if looks_unreachable(finished.lines):
            raise RegistryUnreachable(
                f"{self.name} cannot reach the package index for {identifier}; its last "
                f"lines:\n{finished.tail(6)}"
            )
        if any(NOT_FOUND.search(line) for line in finished.lines):
            raise PackageNotFound(f"{what}: no such package or version on the package index")
        raise failure(f"{what} failed", finished)

    async def install(self, identifier: str, version: str | None, build: Path) -> Built:
        """Install ``identifier`` (at ``version``, else the newest) into a new venv."""
        python = await self._venv(build)
        requirement = f"{identifier}=={version}" if version else identifier
        if self.uv:
            distributions = await self._uv_install(python, requirement, build, identifier)
        else:
            distributions = await self._pip_install(python, requirement, build, identifier)
        wanted = normalize_pypi(identifier)
        mine = [d for d in distributions if d["name"] == wanted]
        if not mine:
            raise InstallFailed(f"{self.name} did not install {identifier}")
        return Built(
            mine[0]["version"],
            self.name,
            distributions,
            self.commands(build, identifier),
            python=self.python_version(build),
        )

    async def _uv_install(
        self, python: Path, requirement: str, build: Path, identifier: str
    ) -> list[dict[str, Any]]:
        requirements = build / "catalyst-requirements.txt"
        compile_argv = [
            self.uv,
            "pip",
            "compile",
            "-",
            "--generate-hashes",
            "--no-header",
            "--no-annotate",
            "--quiet",
            "--python",
            str(python),
            "--output-file",
            str(requirements),
            *self._index(),
            *self._binary_only(),
        ]
        finished = await self._run(compile_argv, stdin=requirement.encode())
        if finished.returncode != 0:
            self._raise(f"resolving {requirement}", finished, identifier)
        await self._uv_sync(python, requirements, identifier)
        return parse_requirements(requirements.read_text())

    async def _uv_sync(self, python: Path, requirements: Path, identifier: str) -> None:
        argv = [
            self.uv,
            "pip",
            "install",
            "--python",
            str(python),
            "--require-hashes",
            "--no-deps",
            "-r",
            str(requirements),
            *self._index(),
            *self._binary_only(),
        ]
        finished = await self._run(argv)
        if finished.returncode != 0:
            self._mismatch(finished)
            self._raise(f"installing {identifier}", finished, identifier)

    async def _pip_install(
        self, python: Path, requirement: str, build: Path, identifier: str
    ) -> list[dict[str, Any]]:
        report = build / "catalyst-report.json"
        argv = [
            str(python),
            "-m",
            "pip",
            "install",
            "--report",
            str(report),
            "--progress-bar",
            "off",
            *self._index(),
            *self._binary_only(),
            requirement,
        ]
        finished = await self._run(argv)
        if finished.returncode != 0:
            self._raise(f"installing {requirement}", finished, identifier)
        data = orjson.loads(report.read_bytes())
        distributions = []
        for item in data.get("install", []):
            info = item.get("download_info", {})
            hashes = info.get("archive_info", {}).get("hashes", {})
            digest = hashes.get("sha256")
            distributions.append(
                {
                    "name": normalize_pypi(item["metadata"]["name"]),
                    "version": item["metadata"]["version"],
                    "hashes": [f"sha256:{digest}"] if digest else [],
                }
            )
        return distributions

    async def sync(self, record: LockedPackage, build: Path) -> Built:
        """Rebuild ``record`` exactly: its distributions, hash-checked, nothing else."""
        python = await self._venv(build)
        requirements = build / "catalyst-requirements.txt"
        requirements.write_text(requirements_text(record.distributions))
        if self.uv:
            await self._uv_sync(python, requirements, record.package)
        else:
            argv = [
                str(python),
                "-m",
                "pip",
                "install",
                "--require-hashes",
                "--no-deps",
                "--progress-bar",
                "off",
                "-r",
                str(requirements),
                *self._index(),
                *self._binary_only(),
            ]
            finished = await self._run(argv)
            if finished.returncode != 0:
                self._mismatch(finished)
                self._raise(f"installing {record.package}", finished, record.package)
        return Built(
            record.version,
            self.name,
            record.distributions,
            self.commands(build, record.package),
            python=self.python_version(build),
        )

    @staticmethod
    def _mismatch(finished: Finished) -> None:
        """Raise :class:`IntegrityError` naming the distribution if hashes did not match."""
        for line in finished.lines:
            match = UV_MISMATCH.search(line)
            if match is not None:
                raise IntegrityError(
                    f"{match[1]} does not match its sha256 hashes in catalyst.lock: nothing "
                    "was installed; if the lock is right, the index served another file"
                )
        if any("DO NOT MATCH THE HASHES" in line for line in finished.lines):
            names = [m[1] for line in finished.lines for m in [PIP_MISMATCH.match(line)] if m]
            which = ", ".join(names) or "a distribution"
            raise IntegrityError(
                f"{which} does not match its sha256 hashes in catalyst.lock: nothing was "
                "installed; if the lock is right, the index served another file"
            )

    async def latest(self, identifier: str) -> str:
        """The newest version the index offers (for this Python)."""
        python = self._python()
        if self.uv:
            argv = [
                self.uv,
                "pip",
                "compile",
                "-",
                "--no-deps",
                "--no-header",
                "--no-annotate",
                "--quiet",
                "--python",
                python,
                *self._index(),
                *self._binary_only(),
            ]
            finished = await self._run(argv, stdin=identifier.encode())
            if finished.returncode == 0:
                found = parse_requirements(finished.stdout)
                if found:
                    return str(found[0]["version"])
        else:
            with tempfile.TemporaryDirectory() as folder:
                report = Path(folder) / "report.json"
                argv = [
                    python,
                    "-m",
                    "pip",
                    "install",
                    "--dry-run",
                    "--no-deps",
                    "--ignore-installed",
                    "--report",
                    str(report),
                    *self._index(),
                    *self._binary_only(),
                    identifier,
                ]
                finished = await self._run(argv)
                if finished.returncode == 0:
                    data = orjson.loads(report.read_bytes())
                    return str(data["install"][0]["metadata"]["version"])
        self._raise(f"looking up {identifier}", finished, identifier)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def site_packages(build: Path) -> Path | None:
        found = sorted((build / "lib").glob("python*/site-packages"))
        return found[0] if found else None

    @classmethod
    def commands(cls, build: Path, identifier: str) -> dict[str, str]:
        """The package's console scripts that exist in the venv's ``bin``."""
        site = cls.site_packages(build)
        if site is None:
            return {}
        wanted = normalize_pypi(identifier)
        for distribution in metadata.distributions(path=[str(site)]):
            if normalize_pypi(distribution.metadata["Name"] or "") != wanted:
                continue
            return {
                ep.name: f"bin/{ep.name}"
                for ep in distribution.entry_points
                if ep.group == "console_scripts" and (build / "bin" / ep.name).exists()
            }
        return {}

    @staticmethod
    def python_version(build: Path) -> str | None:
        """``major.minor`` of the venv's interpreter, from its ``pyvenv.cfg``."""
        try:
            text = (build / "pyvenv.cfg").read_text()
        except OSError:
            return None
        match = re.search(r"^version(?:_info)?\s*=\s*(\d+)\.(\d+)", text, re.MULTILINE)
        return f"{match[1]}.{match[2]}" if match else None
