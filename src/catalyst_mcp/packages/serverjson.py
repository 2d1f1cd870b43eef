"""The MCP Registry's ``server.json`` format: what a server is and how its packages run.

Only what installing and configuring a server needs is modelled; other fields are kept out of
the way (ignored), so entries written for newer schema versions still load. Field names are the
registry's camelCase ones (``registryType``, ``environmentVariables``, ``isSecret``);
the reference is modelcontextprotocol/registry ``docs/reference/server-json/``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from catalyst_mcp.errors import PackageError

__all__ = [
    "INSTALLABLE",
    "Argument",
    "EnvironmentVariable",
    "Input",
    "Package",
    "ServerDetail",
    "Transport",
    "parse_server",
    "parse_servers",
]

# Registry types `catalyst packages install` can install; others (oci, nuget, mcpb) are listed
# by the catalog but not installed.
INSTALLABLE = ("npm", "pypi")


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class Input(_Model):
    """A value the user may (or must) give: an argument, a variable, an environment variable."""

    description: str = ""
    is_required: bool = False
    is_secret: bool = False
    format: str = "string"
    value: str | None = None
    default: str | None = None
    placeholder: str | None = None
    choices: list[str] = Field(default_factory=list)
    variables: dict[str, Input] = Field(default_factory=dict)

    def resolved(self) -> str | None:
        """The fixed value, else the default, with ``{variable}`` filled from the variables'
        own values or defaults (unknown ones are left as they are, as the schema says)."""
        text = self.value if self.value is not None else self.default
        if text is None:
            return None
        for name, variable in self.variables.items():
            filled = variable.value if variable.value is not None else variable.default
            if filled is not None:
                text = text.replace("{" + name + "}", filled)
        return text


class EnvironmentVariable(Input):
    """An environment variable (or header) a package reads; ``isSecret`` marks credentials."""

    name: str


class Argument(Input):
    """A command-line argument: ``positional`` (a value) or ``named`` (a flag and a value)."""

    type: Literal["positional", "named"] = "positional"
    name: str | None = None
    value_hint: str | None = None
    is_repeated: bool = False

    @property
    def label(self) -> str:
        return self.name or self.value_hint or "argument"


class Transport(_Model):
    """How a client speaks to the server: ``stdio``, or ``streamable-http``/``sse`` at a URL."""

    type: str = "stdio"
    url: str | None = None
    headers: list[EnvironmentVariable] = Field(default_factory=list)


class Package(_Model):
    """One way to get the server: a package on npm, PyPI, a container registry, ..."""

    registry_type: str
    identifier: str
    version: str | None = None
    registry_base_url: str | None = None
    runtime_hint: str | None = None
    transport: Transport = Field(default_factory=Transport)
    runtime_arguments: list[Argument] = Field(default_factory=list)
    package_arguments: list[Argument] = Field(default_factory=list)
    environment_variables: list[EnvironmentVariable] = Field(default_factory=list)

    @property
    def installable(self) -> bool:
        return self.registry_type in INSTALLABLE


class ServerDetail(_Model):
    """One server (one version of it) as the registry describes it."""

    name: str
    description: str = ""
    version: str = ""
    title: str | None = None
    repository: dict[str, Any] | None = None
    website_url: str | None = None
    packages: list[Package] = Field(default_factory=list)
    remotes: list[Transport] = Field(default_factory=list)
    meta: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("_meta", "meta"), alias="_meta"
    )

    @property
    def runtimes(self) -> list[str]:
        """Registry types of its packages in the entry's order (``remote`` for remotes)."""
        kinds = [p.registry_type for p in self.packages]
        if self.remotes:
            kinds.append("remote")
        return list(dict.fromkeys(kinds))

    def package_for(self, runtime: str | None = None) -> Package | None:
        """Its first installable package (of ``runtime`` when given)."""
        for package in self.packages:
            if package.installable and runtime in (None, package.registry_type):
                return package
        return None

    @property
    def status(self) -> str:
        official = self.meta.get("io.modelcontextprotocol.registry/official")
        return str(official.get("status", "active")) if isinstance(official, dict) else "active"


def parse_server(data: Any, where: str = "server.json") -> ServerDetail:
    """One ``server.json`` object, or a registry answer wrapping one as ``{"server": ...}``."""
    if isinstance(data, dict) and isinstance(data.get("server"), dict):
        wrapped = data
        data = {**data["server"]}
        if isinstance(wrapped.get("_meta"), dict):
            data["_meta"] = {**data.get("_meta", {}), **wrapped["_meta"]}
    try:
        return ServerDetail.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise PackageError(f"{where}: not a valid server.json: {at}: {first['msg']}") from exc


def parse_servers(items: Any, where: str) -> list[ServerDetail]:
    if not isinstance(items, list):
        raise PackageError(f"{where}: expected a list of servers")
    return [parse_server(item, where) for item in items]
