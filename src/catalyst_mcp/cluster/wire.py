"""What one instance tells another of a caller and of a request, as JSON."""

from __future__ import annotations

from typing import Any

from catalyst_mcp.context import CallContext, Identity

__all__ = ["context_from", "context_of", "identity_from", "identity_of"]


def identity_of(identity: Identity) -> dict[str, Any]:
    return {
        "subject": identity.subject,
        "kind": identity.kind,
        "roles": list(identity.roles),
        "scopes": None if identity.scopes is None else sorted(identity.scopes),
        "via": identity.via,
    }


def identity_from(data: dict[str, Any]) -> Identity:
    scopes = data.get("scopes")
    return Identity(
        subject=str(data["subject"]),
        kind=str(data.get("kind", "anonymous")),
        roles=tuple(str(role) for role in data.get("roles") or ()),
        scopes=None if scopes is None else frozenset(str(scope) for scope in scopes),
        via=str(data.get("via", "none")),
    )


def context_of(ctx: CallContext) -> dict[str, Any]:
    """What another instance needs of a request's context to act for it."""
    return {
        "era": ctx.era,
        "version": ctx.protocol_version,
        "method": ctx.method,
        "caps": ctx.client_capabilities,
        "info": ctx.client_info,
        "id": ctx.request_id,
        "progress": ctx.progress_token,
        "level": ctx.log_level,
        "who": identity_of(ctx.identity),
    }


def context_from(data: dict[str, Any]) -> CallContext:
    """The context :func:`context_of` describes (its ``emit`` and ``ask`` are the caller's
    to set). ValueError, KeyError or TypeError when ``data`` is not one."""
    era = data["era"]
    if era not in ("modern", "legacy"):
        raise ValueError(f"unknown era {era!r}")
    return CallContext(
        era=era,
        protocol_version=str(data["version"]),
        method=str(data["method"]),
        client_capabilities=dict(data.get("caps") or {}),
        client_info=data.get("info"),
        identity=identity_from(data["who"]),
        request_id=data.get("id"),
        progress_token=data.get("progress"),
        log_level=data.get("level"),
    )
