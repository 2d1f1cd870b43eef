"""Which class serves which built-in kind, and how an entry of ``servers:`` becomes one.

Adding a kind: its options model in :mod:`catalyst_mcp.servers.config` (and its section in
``ServerConfig``), its module, and one line in :data:`FACTORIES`. The server modules are
imported only when an entry uses them (the database server brings SQLAlchemy's drivers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from catalyst_mcp.context import CallContext

if TYPE_CHECKING:
    from catalyst_mcp.servers.base import BuiltinServer
    from catalyst_mcp.settings import ServerConfig

__all__ = ["FACTORIES", "SecretLookup", "build"]

SecretLookup = Callable[[str, CallContext | None], Awaitable[str | None]]
"""Resolves ``${secret:NAME}`` for a caller (the gateway's secrets store, scoped to a server)."""

Factory = Callable[[str, str, Any, float, "SecretLookup | None"], "BuiltinServer"]


def _filesystem(
    name: str, namespace: str, options: Any, timeout: float, secrets: SecretLookup | None
) -> BuiltinServer:
    from catalyst_mcp.servers.filesystem import FilesystemServer

    return FilesystemServer(name, namespace, options, timeout=timeout)


def _database(
    name: str, namespace: str, options: Any, timeout: float, secrets: SecretLookup | None
) -> BuiltinServer:
    from catalyst_mcp.servers.database import DatabaseServer

    return DatabaseServer(name, namespace, options, timeout=timeout, secrets=secrets)


def _s3(
    name: str, namespace: str, options: Any, timeout: float, secrets: SecretLookup | None
) -> BuiltinServer:
    from catalyst_mcp.servers.s3 import S3Server

    return S3Server(name, namespace, options, timeout=timeout, secrets=secrets)


def _kubernetes(
    name: str, namespace: str, options: Any, timeout: float, secrets: SecretLookup | None
) -> BuiltinServer:
    from catalyst_mcp.servers.kubernetes import KubernetesServer

    return KubernetesServer(name, namespace, options, timeout=timeout, secrets=secrets)


FACTORIES: dict[str, Factory] = {
    "filesystem": _filesystem,
    "database": _database,
    "s3": _s3,
    "kubernetes": _kubernetes,
}


def build(
    name: str,
    namespace: str,
    config: ServerConfig,
    *,
    call_timeout: float,
    secrets: SecretLookup | None = None,
) -> BuiltinServer:
    """The provider of a built-in server entry (``config.builtin`` names its kind)."""
    kind = config.builtin
    if kind is None or kind not in FACTORIES:
        raise ValueError(f"server {name!r} is not a built-in server")
    options = getattr(config, kind)
    return FACTORIES[kind](
        name, namespace, options, config.timeout_seconds or call_timeout, secrets
    )
