"""Install, update, remove, list and sync MCP server packages for one config file.

Every change goes in the same order: everything is checked first (the name, the config file,
the package and its version), then the package is built in a folder of its own and swapped in
(``layout``), and only then are ``catalyst.lock`` and the config file rewritten, each
atomically. An install that fails or is interrupted before the swap changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalyst_mcp.errors import InstallFailed, PackageConflict, PackageError, PackageNotFound
from catalyst_mcp.packages.catalog import Catalog, bundled
from catalyst_mcp.packages.config import PackagesSettings
from catalyst_mcp.packages.configfile import ConfigFile
from catalyst_mcp.packages.entry import EntryPlan, build_entry, default_server_name
from catalyst_mcp.packages.installer import Built, choose_command
from catalyst_mcp.packages.layout import Layout
from catalyst_mcp.packages.lockfile import (
    Lock,
    LockedPackage,
    distributions_digest,
    lock_path,
    read_lock,
    sort_distributions,
    write_lock,
)
from catalyst_mcp.packages.npm import NpmInstaller
from catalyst_mcp.packages.progress import Progress
from catalyst_mcp.packages.pypi import PypiInstaller
from catalyst_mcp.packages.serverjson import Package, ServerDetail
from catalyst_mcp.packages.spec import PackageSpec, parse_spec
from catalyst_mcp.settings import SERVER_NAME

__all__ = ["InstallOptions", "InstallReport", "PackageManager", "SyncReport", "UpdateReport"]

Installer = NpmInstaller | PypiInstaller


@dataclass(slots=True)
class InstallOptions:
    name: str | None = None
    force: bool = False
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] | None = None
    runtime: str | None = None
    bin: str | None = None
    allow_scripts: bool | None = None
    offline: bool = False


@dataclass(slots=True)
class InstallReport:
    server: str
    record: LockedPackage
    command: str
    plan: EntryPlan
    catalog: str
    reused: bool
    config_path: Path
    lock_path: Path
    created_config: bool


@dataclass(slots=True)
class UpdateReport:
    server: str
    package: str
    old: str
    new: str
    status: str  # updated, current, pinned


@dataclass(slots=True)
class SyncReport:
    server: str
    package: str
    version: str
    status: str  # present, installed
    command: str
    config: str  # unchanged, updated, missing


class PackageManager:
    """Packages of the config file at ``config_path`` (the lock lives next to it)."""

    def __init__(
        self,
        settings: PackagesSettings,
        config_path: Path,
        *,
        environ: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self.config_path = config_path
        self.lock_path = lock_path(config_path)
        self.layout = Layout(settings.directory(self.environ))
        self.progress = progress or Progress(quiet=True)

    # ---- helpers ----------------------------------------------------------------------------

    def installer(self, runtime: str, allow_scripts: bool | None = None) -> Installer:
        if runtime == "npm":
            return NpmInstaller(
                self.settings, self.environ, self.progress, allow_scripts=allow_scripts
            )
        if runtime == "pypi":
            return PypiInstaller(
                self.settings, self.environ, self.progress, allow_scripts=allow_scripts
            )
        raise PackageError(f"packages from {runtime!r} cannot be installed (npm and pypi can)")

    def prefix(self, record: LockedPackage) -> Path:
        return self.layout.prefix(record.runtime, record.package, record.version)

    def read_lock(self) -> Lock:
        return read_lock(self.lock_path)

    async def _resolve(
        self, spec: PackageSpec, options: InstallOptions
    ) -> tuple[ServerDetail, Package, str]:
        """The server.json entry and package to install, and which catalog said so."""
        if spec.kind == "catalog":
            answer = await Catalog(self.settings, offline=options.offline).get(spec.name)
            server = answer.servers[0]
            package = server.package_for(options.runtime)
            if package is None:
                kinds = ", ".join(server.runtimes) or "none"
                raise PackageError(
                    f"{server.name} has no {options.runtime or 'npm or pypi'} package to install "
                    f"(it offers: {kinds})"
                    + (
                        f"; it runs remotely at {server.remotes[0].url}: add it as a server "
                        "with that url"
                        if server.remotes and server.remotes[0].url
                        else ""
                    )
                )
            return server, package, answer.where
        known = bundled().by_identifier(spec.kind, spec.name)
        if known is not None:
            package = next(
                p for p in known.packages if p.registry_type == spec.kind and p.installable
            )
            return known, package.model_copy(update={"identifier": spec.name}), bundled().where
        package = Package(registry_type=spec.kind, identifier=spec.name)
        server = ServerDetail(name=spec.name, packages=[package])
        return server, package, f"the {spec.kind} registry"

    async def _exact_version(
        self, installer: Installer, identifier: str, version: str | None
    ) -> str:
        self.progress.step(f"resolving {identifier}{'@' + version if version else ''}")
        try:
            if isinstance(installer, NpmInstaller):
                exact = await installer.resolve(identifier, version)
            else:
                exact = version or await installer.latest(identifier)
        finally:
            self.progress.close()
        return exact

    async def _build(
        self,
        installer: Installer,
        runtime: str,
        identifier: str,
        version: str,
        record: LockedPackage | None = None,
    ) -> tuple[Built, Path, bool]:
        """The package installed at its prefix: reused when already there (and, for a sync,
        identical to ``record``), else built aside and swapped in. (built, prefix, reused)"""
        prefix = self.layout.prefix(runtime, identifier, version)
        marker = self.layout.marker(prefix)
        if marker is not None and marker.get("package") == identifier:
            same = record is None or marker.get("digest") == record.digest()
            if same and marker.get("version") == version:
                built = Built(
                    version,
                    str(marker.get("installer")),
                    list(marker.get("distributions", [])),
                    dict(marker.get("commands", {})),
                    python=marker.get("python"),
                )
                return built, prefix, True
        build = self.layout.new_build(prefix)
        how = "from catalyst.lock " if record is not None else ""
        self.progress.step(f"installing {identifier} {version} {how}with {installer.name}")
        try:
            if record is not None:
                built = await installer.sync(record, build)
            else:
                built = await installer.install(identifier, version, build)
            if built.version != version:
                raise InstallFailed(
                    f"{installer.name} installed {identifier} {built.version}, not {version}"
                )
            built.distributions = sort_distributions(built.distributions)
            self.layout.write_marker(
                build,
                {
                    "package": identifier,
                    "runtime": runtime,
                    "version": version,
                    "installer": built.installer,
                    "python": built.python,
                    "commands": built.commands,
                    "distributions": built.distributions,
                    "digest": distributions_digest(built.distributions),
                },
            )
            self.layout.publish(build, prefix)
        except BaseException:
            self.progress.close()
            self.layout.discard(build)
            raise
        self.progress.done(f"installed {identifier} {version} with {built.installer}")
        return built, prefix, False

    def _release(self, lock: Lock, record: LockedPackage) -> None:
        """Remove ``record``'s prefix unless another record of the lock still uses it."""
        if not lock.using(record.runtime, record.package, record.version):
            self.layout.remove(self.prefix(record))

    def find(self, lock: Lock, name: str) -> str:
        """The server name of the record ``name`` means: a server name, or a package."""
        if name in lock.packages:
            return name
        try:
            spec = parse_spec(name)
        except PackageError:
            spec = None
        matches = [
            server
            for server, record in lock.packages.items()
            if name in (record.source, record.package)
            or (spec is not None and spec.name in (record.source, record.package))
        ]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise PackageConflict(
                f"{name!r} is installed as several servers ({', '.join(sorted(matches))}): "
                "name the server"
            )
        raise PackageConflict(f"no installed package {name!r} in {self.lock_path}")

    # ---- commands ---------------------------------------------------------------------------

    async def install(self, text: str, options: InstallOptions | None = None) -> InstallReport:
        options = options or InstallOptions()
        spec = parse_spec(text)
        server, package, where = await self._resolve(spec, options)
        name = options.name or default_server_name(server, package)
        if not SERVER_NAME.match(name):
            raise PackageError(
                f"server name {name!r} must be letters and digits joined by single '-' or '_'"
            )
        if package.transport.type != "stdio":
            raise PackageError(
                f"{server.name} runs over {package.transport.type}, not stdio: run it yourself "
                "and add its URL as a server"
            )
        config = ConfigFile(self.config_path)
        lock = self.read_lock()
        if not options.force:
            if name in lock.packages:
                raise PackageConflict(
                    f"{name!r} is already installed ({lock.packages[name].package} "
                    f"{lock.packages[name].version}): use `catalyst packages update {name}`, "
                    "or --force to reinstall"
                )
            if config.has_server(name):
                raise PackageConflict(
                    f"a server named {name!r} is already configured in {self.config_path}: "
                    "choose another name with --name, or replace it with --force"
                )
        installer = self.installer(package.registry_type, options.allow_scripts)
        wanted = spec.version or (package.version if spec.kind == "catalog" else None)
        version = await self._exact_version(installer, package.identifier, wanted)
        built, prefix, reused = await self._build(
            installer, package.registry_type, package.identifier, version
        )
        command = choose_command(built.commands, package.identifier, options.bin)
        command_path = prefix / built.commands[command]
        plan = build_entry(package, str(command_path), env_values=options.env, args=options.args)
        record = LockedPackage(
            source=server.name if spec.kind == "catalog" else f"{spec.kind}:{spec.name}",
            runtime=package.registry_type,
            package=package.identifier,
            version=version,
            pinned=spec.version is not None,
            command=command,
            installer=built.installer,
            python=built.python,
            distributions=built.distributions,
        )
        replaced = lock.packages.get(name)
        lock.packages[name] = record
        write_lock(self.lock_path, lock)
        config.set_server(name, plan.entry, replace=True)
        config.save()
        if replaced is not None and (replaced.package, replaced.version) != (
            record.package,
            record.version,
        ):
            self._release(lock, replaced)
        return InstallReport(
            name,
            record,
            str(command_path),
            plan,
            where,
            reused,
            self.config_path,
            self.lock_path,
            not config.exists,
        )

    async def remove(self, name: str) -> tuple[str, LockedPackage, bool]:
        """Remove a package: its server entry, its lock record and (unless another record
        uses it) its prefix. (server name, record, whether the config had the entry)"""
        lock = self.read_lock()
        server = self.find(lock, name)
        record = lock.packages.pop(server)
        config = ConfigFile(self.config_path)
        had = config.remove_server(server)
        write_lock(self.lock_path, lock)
        if had:
            config.save()
        self._release(lock, record)
        return server, record, had

    async def update(
        self, name: str | None = None, *, unpin: bool = False, allow_scripts: bool | None = None
    ) -> list[UpdateReport]:
        """Move packages (one, or all) to their newest version, unless pinned."""
        lock = self.read_lock()
        names = [self.find(lock, name)] if name is not None else sorted(lock.packages)
        reports = []
        for server in names:
            record = lock.packages[server]
            if unpin and record.pinned:
                record.pinned = False
                write_lock(self.lock_path, lock)
            if record.pinned:
                reports.append(
                    UpdateReport(server, record.package, record.version, record.version, "pinned")
                )
                continue
            installer = self.installer(record.runtime, allow_scripts)
            newest = await self._exact_version(installer, record.package, None)
            if newest == record.version:
                reports.append(
                    UpdateReport(server, record.package, record.version, newest, "current")
                )
                continue
            built, prefix, _ = await self._build(installer, record.runtime, record.package, newest)
            command = (
                record.command
                if record.command in built.commands
                else choose_command(built.commands, record.package, None)
            )
            old = record.model_copy()
            record.version = newest
            record.command = command
            record.installer = built.installer
            record.python = built.python
            record.distributions = built.distributions
            write_lock(self.lock_path, lock)
            config = ConfigFile(self.config_path)
            if config.set_command(server, str(prefix / built.commands[command])):
                config.save()
            self._release(lock, old)
            reports.append(UpdateReport(server, record.package, old.version, newest, "updated"))
        return reports

    def installed(self) -> list[dict[str, Any]]:
        """Every installed package: its server entry, version, runtime, pin, state, size."""
        lock = self.read_lock()
        config = ConfigFile(self.config_path)
        rows = []
        for server, record in sorted(lock.packages.items()):
            prefix = self.prefix(record)
            marker = self.layout.marker(prefix)
            if marker is None:
                state = "missing"
            elif marker.get("digest") != record.digest():
                state = "differs"
            else:
                state = "ok"
            rows.append(
                {
                    "server": server,
                    "package": record.package,
                    "version": record.version,
                    "runtime": record.runtime,
                    "pinned": record.pinned,
                    "state": state,
                    "configured": config.has_server(server),
                    "size": self.layout.size(prefix) if marker is not None else 0,
                    "prefix": str(prefix),
                    "source": record.source,
                }
            )
        return rows

    async def sync(self, *, allow_scripts: bool | None = None) -> list[SyncReport]:
        """Install exactly what the lock says (hash-checked), and point the config's entries
        at this machine's prefixes."""
        lock = self.read_lock()
        if not lock.packages and not self.lock_path.exists():
            raise PackageNotFound(f"no {self.lock_path.name} next to {self.config_path}")
        config = ConfigFile(self.config_path)
        changed = False
        reports = []
        for server, record in sorted(lock.packages.items()):
            installer = self.installer(record.runtime, allow_scripts)
            built, prefix, reused = await self._build(
                installer, record.runtime, record.package, record.version, record
            )
            if record.command not in built.commands:
                raise InstallFailed(
                    f"{record.package} {record.version} has no command {record.command!r}"
                )
            command = str(prefix / built.commands[record.command])
            entry = config.server(server)
            if entry is None:
                state = "missing"
            elif entry.get("command") != command:
                config.set_command(server, command)
                changed, state = True, "updated"
            else:
                state = "unchanged"
            status = "present" if reused else "installed"
            reports.append(
                SyncReport(server, record.package, record.version, status, command, state)
            )
        if changed:
            config.save()
        return reports
