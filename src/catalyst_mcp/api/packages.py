"""``/packages``: the package catalog, the installed packages, and installs with progress.

The same code as ``catalyst packages`` (:mod:`catalyst_mcp.packages`): the catalog is the MCP
Registry, or the bundled snapshot when the registry cannot be reached (the answer says which
and why); the installed packages are those of the lock next to the gateway's config file; an
install (:mod:`.installs`) edits that config file, whose watcher then starts the new server.
Administrators only; no database needed. A gateway started without a config file cannot
install (409): there is no file to add the server to.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from catalyst_mcp.api.installs import InstallJob, InstallJobs
from catalyst_mcp.api.router import ApiError, ApiRequest, Route
from catalyst_mcp.context import Identity
from catalyst_mcp.packages.catalog import Catalog
from catalyst_mcp.packages.lockfile import read_lock
from catalyst_mcp.packages.manager import InstallOptions, PackageManager
from catalyst_mcp.packages.progress import Progress

if TYPE_CHECKING:
    from catalyst_mcp.packages.config import PackagesSettings
    from catalyst_mcp.packages.serverjson import ServerDetail
    from catalyst_mcp.security.access import Access

__all__ = ["PackageHandlers"]

MAX_WAIT_SECONDS = 30.0


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class CatalogQuery(_In):
    q: Annotated[str, StringConstraints(max_length=200)] = Field(
        "", description="Words to look for in names and descriptions (empty: everything)."
    )


class CatalogEntry(_Out):
    name: str = Field(description="The server's name in the registry.")
    title: str | None
    description: str
    version: str = Field(description="Its newest version.")
    runtimes: list[str] = Field(description="npm, pypi, ... (remote: a URL to connect to).")
    installable: bool = Field(description="It has an npm or PyPI package for stdio.")
    inputs: list[str] = Field(
        description="Environment variables it requires (a secret marked with '*')."
    )
    installed: list[str] = Field(description="Server entries that installed it.")


class CatalogAnswer(_Out):
    source: Literal["registry", "bundled"] = Field(description="Who answered.")
    where: str = Field(description="The registry's URL, or the snapshot's date.")
    reason: str | None = Field(description="Why the bundled snapshot answered.")
    servers: list[CatalogEntry]


class Installed(_Out):
    server: str
    package: str
    version: str
    runtime: str
    pinned: bool
    state: str = Field(description="ok, missing (not on this machine) or differs (hashes).")
    configured: bool = Field(description="Its server entry is in the config file.")
    size: int = Field(description="Bytes on disk.")
    source: str


class InstalledList(_Out):
    config: str | None = Field(description="The config file (null: the gateway has none).")
    packages: list[Installed]


class InstallRequest(_In):
    package: Annotated[str, StringConstraints(min_length=1, max_length=300)] = Field(
        description="What to install: a catalog name, npm:NAME[@VERSION] or pypi:NAME[@VERSION]."
    )
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        None, description="The server entry's name (default: from the package)."
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Values of the environment variables it needs (secrets are referenced as "
        "${secret:NAME} instead: set them under /secrets).",
    )
    force: bool = Field(False, description="Replace an installed package or server entry.")


class JobPath(_In):
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class JobQuery(_In):
    after: int = Field(0, ge=0, description="Only lines after this seq (last_seq of before).")
    wait: float = Field(
        0, ge=0, le=MAX_WAIT_SECONDS, description="Wait up to this many seconds for a line."
    )


class JobLineOut(_Out):
    seq: int
    at: str
    kind: Literal["step", "output", "note"]
    text: str


class Job(_Out):
    id: str
    package: str
    actor: str
    state: Literal["running", "ok", "failed"]
    started_at: str
    finished_at: str | None
    error: str | None = Field(description="Why it failed.")
    result: dict[str, Any] | None = Field(
        description="What was installed: server, package, version, runtime, command, ..."
    )
    lines: list[JobLineOut] = Field(description="Progress lines after `after`.")
    last_seq: int = Field(description="Pass as `after` to follow.")
    missed: int = Field(description="Lines dropped before they were read.")


class JobList(_Out):
    jobs: list[Job] = Field(description="Recent installs, newest first (without lines).")


class PackageHandlers:
    def __init__(
        self,
        settings: PackagesSettings,
        config_file: Path | None,
        access: Access,
    ) -> None:
        self.settings = settings
        self.config_file = config_file
        self.access = access
        self.jobs = InstallJobs(self._manager, self._finished)

    def _manager(self, progress: Progress | None = None) -> PackageManager:
        if self.config_file is None:
            raise ApiError(
                409,
                "this gateway was started without a config file: there is none to add the "
                "server to (use `catalyst packages install` with the file, then reload)",
            )
        return PackageManager(self.settings, self.config_file, progress=progress)

    async def catalog(self, request: ApiRequest) -> CatalogAnswer:
        text = request.query_as(CatalogQuery).q
        answer = await Catalog(self.settings).search(text)
        lock = None
        if self.config_file is not None:
            lock = await asyncio.to_thread(read_lock, self._manager().lock_path)
        entries = [_entry(server, lock) for server in answer.servers]
        return CatalogAnswer(
            source="registry" if answer.source == "registry" else "bundled",
            where=answer.where,
            reason=answer.fallback_reason,
            servers=entries,
        )

    async def installed(self, request: ApiRequest) -> InstalledList:
        if self.config_file is None:
            return InstalledList(config=None, packages=[])
        rows = await asyncio.to_thread(self._manager().installed)
        return InstalledList(
            config=str(self.config_file),
            packages=[Installed.model_validate(row) for row in rows],
        )

    async def install(self, request: ApiRequest) -> Job:
        body = request.body_as(InstallRequest)
        request.target = body.package
        self._manager()  # 409 without a config file
        running = self.jobs.running
        if running is not None:
            raise ApiError(409, f"{running.package} is being installed (job {running.id}): wait")
        options = InstallOptions(name=body.name, force=body.force, env=dict(body.env))
        job = self.jobs.start(body.package, options, request.identity.subject)
        return Job.model_validate(job.view())

    async def job(self, request: ApiRequest) -> Job:
        found = self._job(request.path_as(JobPath).id)
        query = request.query_as(JobQuery)
        if query.wait:
            await found.wait_after(query.after, query.wait)
        return Job.model_validate(found.view(query.after))

    async def list_jobs(self, request: ApiRequest) -> JobList:
        jobs = reversed(list(self.jobs.jobs.values()))
        return JobList(jobs=[Job.model_validate({**j.view(j.next_seq), "lines": []}) for j in jobs])

    def _job(self, job_id: str) -> InstallJob:
        found = self.jobs.get(job_id)
        if found is None:
            raise ApiError(404, f"no install job {job_id!r} on this gateway")
        return found

    async def _finished(self, job: InstallJob) -> None:
        who = Identity(subject=job.actor, kind="user")
        outcome = "ok" if job.state == "ok" else "error"
        await self.access.record(
            who, "admin.packages.installed", job.package, outcome, reason=job.error
        )

    def routes(self) -> list[Route]:
        common: dict[str, Any] = {"tag": "packages", "needs_storage": False}
        return [
            Route(
                "GET",
                "/packages",
                self.installed,
                action="admin.packages.list",
                summary="List the installed packages (the lock next to the config file)",
                response=InstalledList,
                **common,
            ),
            Route(
                "GET",
                "/packages/catalog",
                self.catalog,
                action="admin.packages.search",
                summary="Search the MCP Registry (or the bundled snapshot)",
                query=CatalogQuery,
                response=CatalogAnswer,
                **common,
            ),
            Route(
                "GET",
                "/packages/installs",
                self.list_jobs,
                action="admin.packages.installs",
                summary="List recent installs",
                response=JobList,
                **common,
            ),
            Route(
                "POST",
                "/packages/installs",
                self.install,
                action="admin.packages.install",
                summary="Start installing a package; follow it at /packages/installs/{id}",
                body=InstallRequest,
                response=Job,
                status=202,
                changes=True,
                errors=("409",),
                **common,
            ),
            Route(
                "GET",
                "/packages/installs/{id}",
                self.job,
                action="admin.packages.install.get",
                summary="One install's state and progress lines (long polling with wait)",
                path_model=JobPath,
                query=JobQuery,
                response=Job,
                **common,
            ),
        ]


def _entry(server: ServerDetail, lock: Any) -> CatalogEntry:
    package = server.package_for() or (server.packages[0] if server.packages else None)
    inputs: list[str] = []
    if package is not None:
        for variable in package.environment_variables:
            if variable.is_required:
                inputs.append(variable.name + ("*" if variable.is_secret else ""))
    installed: list[str] = []
    if lock is not None:
        identifiers = {(p.registry_type, p.identifier.lower()) for p in server.packages}
        installed = sorted(
            name
            for name, record in lock.packages.items()
            if record.source == server.name
            or (record.runtime, record.package.lower()) in identifiers
        )
    return CatalogEntry(
        name=server.name,
        title=server.title,
        description=server.description,
        version=(package.version if package is not None else None) or server.version,
        runtimes=server.runtimes,
        installable=server.package_for() is not None,
        inputs=inputs,
        installed=installed,
    )
