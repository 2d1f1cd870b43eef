"""How ``catalyst packages`` shows catalog entries, installs and updates to people (tables and
short reports on stdout; ``--json`` gives scripts the same data)."""

from __future__ import annotations

from typing import Any

import click

from catalyst_mcp.cli.common import print_table, truncate
from catalyst_mcp.packages.lockfile import Lock
from catalyst_mcp.packages.manager import InstallReport
from catalyst_mcp.packages.serverjson import EnvironmentVariable, Package, ServerDetail

__all__ = [
    "human_size",
    "install_json",
    "print_install",
    "print_server",
    "print_servers",
    "server_json",
    "server_row",
]

SEARCH_COLUMNS = ["name", "version", "runtime", "transport", "inputs", "installed", "description"]


def installed_as(server: ServerDetail, lock: Lock) -> list[str]:
    """Server entries of the lock that installed one of ``server``'s packages."""
    identifiers = {(p.registry_type, p.identifier.lower()) for p in server.packages}
    return sorted(
        name
        for name, record in lock.packages.items()
        if record.source == server.name or (record.runtime, record.package.lower()) in identifiers
    )


def _inputs(package: Package | None) -> str:
    if package is None:
        return ""
    secret = [v.name + "*" for v in package.environment_variables if v.is_secret and v.is_required]
    plain = [v.name for v in package.environment_variables if v.is_required and not v.is_secret]
    args = [a.label for a in package.package_arguments if a.is_required and a.resolved() is None]
    return ", ".join(secret + plain + args) or "-"


def server_row(server: ServerDetail, lock: Lock) -> dict[str, Any]:
    package = server.package_for() or (server.packages[0] if server.packages else None)
    transport = package.transport.type if package is not None else ""
    if package is None and server.remotes:
        transport = server.remotes[0].type
    return {
        "name": server.name,
        "version": (package.version if package else None) or server.version,
        "runtime": "/".join(server.runtimes) or "-",
        "transport": transport or "-",
        "inputs": _inputs(package),
        "installed": ", ".join(installed_as(server, lock)) or "-",
        "description": truncate(server.description, 60),
    }


def print_servers(servers: list[ServerDetail], lock: Lock) -> None:
    """The search table; INPUTS lists required inputs, a secret marked with ``*``."""
    print_table([server_row(s, lock) for s in servers], SEARCH_COLUMNS)


def _variable(variable: EnvironmentVariable) -> str:
    flags = [
        f for f, on in (("required", variable.is_required), ("secret", variable.is_secret)) if on
    ]
    default = f", default {variable.default!r}" if variable.default is not None else ""
    described = f": {variable.description}" if variable.description else ""
    return f"{variable.name} ({', '.join(flags) or 'optional'}{default}){described}"


def print_server(server: ServerDetail, lock: Lock) -> None:
    """One catalog entry in full."""
    lines = [f"{server.name}  {server.version}"]
    if server.title:
        lines.append(f"  title:       {server.title}")
    lines.append(f"  description: {server.description}")
    if server.repository and server.repository.get("url"):
        lines.append(f"  repository:  {server.repository['url']}")
    if server.website_url:
        lines.append(f"  website:     {server.website_url}")
    lines.append(f"  status:      {server.status}")
    lines.append(f"  installed:   {', '.join(installed_as(server, lock)) or 'no'}")
    for package in server.packages:
        can = "" if package.installable else "  (not installable by catalyst)"
        lines.append(
            f"  package: {package.registry_type} {package.identifier} {package.version or ''}"
            f"  transport {package.transport.type}{can}"
        )
        for argument in package.package_arguments:
            value = argument.resolved()
            shown = f" = {value!r}" if value is not None else ""
            flags = "required" if argument.is_required else "optional"
            lines.append(
                f"    argument {argument.label} ({argument.type}, {flags}){shown}"
                + (f": {argument.description}" if argument.description else "")
            )
        for variable in package.environment_variables:
            lines.append(f"    env {_variable(variable)}")
    for remote in server.remotes:
        lines.append(f"  remote: {remote.type} {remote.url}")
        for header in remote.headers:
            lines.append(f"    header {_variable(header)}")
    click.echo("\n".join(lines))


def server_json(server: ServerDetail, lock: Lock) -> dict[str, Any]:
    data = server.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["installedAs"] = installed_as(server, lock)
    return data


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def install_json(report: InstallReport) -> dict[str, Any]:
    record = report.record
    return {
        "server": report.server,
        "package": record.package,
        "runtime": record.runtime,
        "version": record.version,
        "pinned": record.pinned,
        "command": report.command,
        "config": str(report.config_path),
        "lock": str(report.lock_path),
        "catalog": report.catalog,
        "reused": report.reused,
        "secrets": [v.name for v in report.plan.secrets],
        "environment": [v.name for v in report.plan.environment],
        "arguments": [a.label for a in report.plan.arguments],
    }


def print_install(report: InstallReport) -> None:
    record = report.record
    pinned = ", pinned" if record.pinned else ""
    how = "already installed, reused" if report.reused else f"with {record.installer}"
    created = " (created)" if report.created_config else ""
    click.echo(
        f"installed {report.server}: {record.package} {record.version} ({record.runtime}{pinned}"
        f", {how})\n"
        f"  command: {report.command}\n"
        f"  config:  {report.config_path}{created}: server '{report.server}'\n"
        f"  lock:    {report.lock_path}\n"
        f"  from:    {report.catalog}"
    )
    todo = []
    for variable in report.plan.secrets:
        need = "required" if variable.is_required else "optional"
        todo.append(
            f"  catalyst secrets set {variable.name} --shared --server {report.server}"
            f"   # {need}: {variable.description or 'a secret'}"
        )
    for variable in report.plan.environment:
        todo.append(
            f"  export {variable.name}=...   # required by the server (the config reads "
            f"${{{variable.name}}}): {variable.description}"
        )
    for argument in report.plan.arguments:
        todo.append(
            f"  reinstall with --arg for {argument.label} (required): {argument.description}"
        )
    if todo:
        click.echo("before `catalyst serve`:\n" + "\n".join(todo))
