"""The server entry an installed package gets in ``catalyst.yaml``, from its ``server.json``.

- ``command``: the absolute path of the package's entry point inside its prefix, so the server
  starts with nothing resolved at run time (no ``npx``/``uvx``, no download);
- ``args``: the package arguments that have a value or a default (``--arg`` replaces them);
- ``env``: each ``isSecret`` variable as ``${secret:NAME}`` (resolved per caller from the
  secrets store, docs/security.md); others get the value given with ``--env``, else their
  default, else, when required, ``${NAME}`` (read from the gateway's environment at load).
  Optional variables without a default are left out.

Whatever still needs a value is reported, so the user knows what to set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from catalyst_mcp.errors import PackageError
from catalyst_mcp.packages.serverjson import Argument, EnvironmentVariable, Package, ServerDetail
from catalyst_mcp.packages.spec import short_name
from catalyst_mcp.security.references import SECRET_NAME

__all__ = ["EntryPlan", "build_entry", "default_server_name"]


@dataclass(slots=True)
class EntryPlan:
    """A server entry, and what the user still has to provide for it to work."""

    entry: dict[str, Any]
    secrets: list[EnvironmentVariable] = field(default_factory=list)
    environment: list[EnvironmentVariable] = field(default_factory=list)
    arguments: list[Argument] = field(default_factory=list)


def default_server_name(server: ServerDetail, package: Package) -> str:
    """A short server name (the tools' namespace): ``.../server-memory`` -> ``memory``."""
    return short_name(server.name if "/" in server.name else package.identifier) or "server"


def _arguments(package: Package) -> tuple[list[str], list[Argument]]:
    args: list[str] = []
    missing: list[Argument] = []
    for argument in package.package_arguments:
        value = argument.resolved()
        if value is None:
            if argument.is_required:
                missing.append(argument)
            continue
        if argument.type == "named" and argument.name:
            args += [argument.name, value]
        else:
            args.append(value)
    return args, missing


def build_entry(
    package: Package,
    command: str,
    *,
    env_values: Mapping[str, str] | None = None,
    args: list[str] | None = None,
) -> EntryPlan:
    """The entry running ``command`` (an absolute path) for ``package``."""
    given = dict(env_values or {})
    plan = EntryPlan({"command": command})
    derived, missing = _arguments(package)
    if args is None:
        args, plan.arguments = derived, missing
    if args:
        plan.entry["args"] = list(args)
    env: dict[str, str] = {}
    known = {variable.name for variable in package.environment_variables}
    for variable in package.environment_variables:
        name = variable.name
        if variable.is_secret:
            if name in given:
                raise PackageError(
                    f"{name} is a secret: store it with `catalyst secrets set {name}` instead "
                    "of --env (values in catalyst.yaml are not encrypted)"
                )
            if not SECRET_NAME.match(name):
                raise PackageError(f"{name} cannot be a secret's name")
            env[name] = f"${{secret:{name}}}"
            plan.secrets.append(variable)
        elif name in given:
            env[name] = given.pop(name)
        elif variable.value is not None or variable.default is not None:
            env[name] = variable.resolved() or ""
        elif variable.is_required:
            env[name] = f"${{{name}}}"
            plan.environment.append(variable)
    for name, value in given.items():  # --env for variables server.json does not list
        if name not in known:
            env[name] = value
    if env:
        plan.entry["env"] = env
    return plan
