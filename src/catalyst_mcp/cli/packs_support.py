"""What the ``catalyst packs`` commands share: finding a pack, writing a file, describing a pack.

:func:`describe` never shows a secret: connection targets are taken from the pack file as
written (``${env:NAME}`` references, not their values), URL passwords are masked, and auth is
shown by its kind and non-secret settings only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import click

from catalyst_mcp.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    load_config,
    print_table,
    truncate,
)

if TYPE_CHECKING:
    from catalyst_mcp.packs.loader import LoadedPack
    from catalyst_mcp.packs.schema import Connection, ParamSpec, ResourceSpec, RestAction

__all__ = [
    "configured_folder",
    "describe",
    "find_pack",
    "mask_url",
    "print_description",
    "write_file",
]

Json = dict[str, Any]
MASK = "***"
USERINFO = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):(?P<password>.*)@(?P<rest>[^@]*)$"
)


def configured_folder(config_path: Path | None) -> Path:
    """The packs folder of the configuration (packs.path); a usage error (exit 2) when packs
    are turned off or the folder does not exist."""
    path = load_config(config_path).packs.path
    if path is None:
        raise CliError(
            "knowledge packs are turned off (packs.path: null in catalyst.yaml)", EXIT_USAGE
        )
    if not path.exists():
        raise CliError(
            f"no knowledge packs folder {path} (packs.path): create it with "
            "`catalyst packs new NAME`, or set packs.path in catalyst.yaml",
            EXIT_USAGE,
        )
    return path


def find_pack(
    name: str, config_path: Path | None, environ: Mapping[str, str] | None = None
) -> LoadedPack:
    """The pack ``name`` of the configured folder, or a pack file given by its path.

    An unknown name is a usage error (exit 2) naming the packs there are; an invalid pack file
    is a configuration error (exit 3, by the caller's error mapping).
    """
    from catalyst_mcp.packs.loader import load_pack, load_packs

    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise CliError(f"no such pack file: {path}", EXIT_USAGE)
        return load_pack(path, environ)
    result = load_packs([configured_folder(config_path)], environ)
    for item in result.packs:
        if item.pack.pack == name:
            return item
    known = ", ".join(sorted(item.pack.pack for item in result.packs)) or "none"
    invalid = (
        f"; {len(result.problems)} problem(s) in the folder, see `catalyst packs validate`"
        if result.problems
        else ""
    )
    raise CliError(f"unknown pack {name!r} (known: {known}){invalid}", EXIT_USAGE)


def write_file(path: Path, text: str, force: bool) -> None:
    """Write ``text`` to ``path``, refusing to replace an existing file without ``force``."""
    if path.exists() and not force:
        raise CliError(f"{path} already exists; use --force to overwrite it", EXIT_FAILED)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}", EXIT_FAILED) from exc


def mask_url(url: str) -> str:
    """``url`` with a password in it replaced by ``***`` and query values hidden."""
    match = USERINFO.match(url)
    if match is not None:
        url = f"{match['head']}:{MASK}@{match['rest']}"
    parts = urlsplit(url)
    if parts.query:
        hidden = "&".join(f"{p.partition('=')[0]}={MASK}" for p in parts.query.split("&"))
        url = urlunsplit(parts._replace(query=hidden))
    return url


# ---- describing a pack ----------------------------------------------------------------------


def describe(loaded: LoadedPack) -> Json:
    """Everything ``packs show`` prints, as JSON-ready data without any secret value."""
    from catalyst_mcp.yamlsource import read_yaml

    pack = loaded.pack
    raw = read_yaml(loaded.file).data.get("connections")
    raw = raw if isinstance(raw, dict) else {}
    rest_connections = sum(c.type == "rest" for c in pack.connections.values())
    return {
        "name": pack.pack,
        "description": pack.description,
        "file": str(loaded.file),
        "connections": [
            _connection(name, conn, raw.get(name)) for name, conn in pack.connections.items()
        ],
        "tools": [
            {
                "name": tool.name,
                "action": (
                    f"SQL on {tool.sql.connection}"
                    if tool.sql is not None
                    else _rest_summary(tool.rest, rest_connections > 1)
                ),
                "parameters": {n: _param(spec) for n, spec in tool.parameters.items()},
                "description": tool.description,
                "annotations": (
                    tool.annotations.model_dump(exclude_none=True) if tool.annotations else {}
                ),
            }
            for tool in pack.tools
        ],
        "resources": [_resource(res, rest_connections > 1) for res in pack.resources],
        "prompts": [
            {
                "name": prompt.name,
                "arguments": [
                    {"name": a.name, "required": a.required, "description": a.description}
                    for a in prompt.arguments
                ],
                "description": prompt.description,
            }
            for prompt in pack.prompts
        ],
        "limits": pack.limits.model_dump(),
        "tests": len(pack.tests),
    }


def _connection(name: str, conn: Connection, raw: Any) -> Json:
    written = raw if isinstance(raw, dict) else {}
    out: Json = {"name": name, "type": conn.type}
    if conn.type == "sql":
        url = written.get("url")
        out["target"] = mask_url(url if isinstance(url, str) else conn.url)
        out["read_only"] = conn.read_only
        out["timeout_seconds"] = conn.timeout_seconds
        return out
    base = written.get("base_url")
    out["target"] = mask_url(base if isinstance(base, str) else conn.base_url)
    out["timeout_seconds"] = conn.timeout_seconds
    out["allow_private_network"] = conn.allow_private_network
    out["headers"] = sorted(conn.headers)  # names only: values may be credentials
    auth = conn.auth
    if auth is not None:
        shown: Json = {"type": auth.type}
        if auth.type == "api_key":
            shown.update({"name": auth.name, "in": auth.in_})
        if auth.type == "oauth2_client_credentials":
            shown.update({"token_url": mask_url(auth.token_url or ""), "scopes": auth.scopes})
        out["auth"] = shown
    return out


def _rest_summary(action: RestAction | None, with_connection: bool) -> str:
    assert action is not None  # a tool has a sql or a rest action
    text = f"{action.method} {action.path or '/'}"
    return f"{text} on {action.connection}" if with_connection else text


def _param(spec: ParamSpec) -> Json:
    return spec.model_dump(exclude_none=True, exclude_defaults=True) | {"type": spec.type}


def _resource(res: ResourceSpec, with_connection: bool) -> Json:
    if res.sql is not None:
        source = f"SQL on {res.sql.connection}"
    elif res.rest is not None:
        source = _rest_summary(res.rest, with_connection)
    elif res.file is not None:
        source = f"file {res.file}"
    else:
        source = "text"
    return {
        "name": res.name,
        "uri": res.uri or res.uri_template,
        "template": res.uri_template is not None,
        "source": source,
        "mime_type": res.mime_type,
        "description": res.description,
    }


# ---- printing it ----------------------------------------------------------------------------


def print_description(report: Json) -> None:
    """The text form of :func:`describe`: a few lines about the pack, then one table a kind."""
    title = f"pack {report['name']}"
    click.echo(f"{title}: {report['description']}" if report["description"] else title)
    click.echo(f"file: {report['file']}")
    click.echo(f"limits: {_limits(report['limits'])}")
    click.echo(f"tests: {report['tests']}")
    _section(
        "connections",
        [
            {"name": c["name"], "type": c["type"], "target": c["target"], "details": _details(c)}
            for c in report["connections"]
        ],
        ["name", "type", "target", "details"],
    )
    _section(
        "tools",
        [
            {
                "name": t["name"],
                "action": t["action"],
                "parameters": _parameters(t["parameters"]),
                "description": _line(t["description"]),
            }
            for t in report["tools"]
        ],
        ["name", "action", "parameters", "description"],
    )
    _section(
        "resources",
        [{**r, "description": _line(r["description"])} for r in report["resources"]],
        ["name", "uri", "source", "description"],
    )
    _section(
        "prompts",
        [
            {
                "name": p["name"],
                "arguments": ", ".join(
                    a["name"] + ("" if a["required"] else "?") for a in p["arguments"]
                ),
                "description": _line(p["description"]),
            }
            for p in report["prompts"]
        ],
        ["name", "arguments", "description"],
    )


def _section(title: str, rows: list[Json], columns: list[str]) -> None:
    click.echo("")
    if not rows:
        click.echo(f"{title}: none")
        return
    click.echo(f"{title} ({len(rows)}):")
    print_table(rows, columns)


def _limits(limits: Json) -> str:
    rate = limits.get("rate_per_second")
    rate_text = "unlimited rate" if rate is None else f"{rate:g} calls/s"
    if rate is not None and limits.get("burst") is not None:
        rate_text += f" (burst {limits['burst']})"
    return (
        f"{limits['concurrency']} calls at once, {rate_text}, {limits['timeout_seconds']:g} s "
        f"per call, results up to {limits['max_response_bytes']} bytes"
    )


def _details(conn: Json) -> str:
    details = [f"{conn['timeout_seconds']:g} s timeout"]
    if conn["type"] == "sql":
        details.insert(0, "read-only" if conn["read_only"] else "read-write")
        return ", ".join(details)
    auth = conn.get("auth")
    if auth is not None:
        extra = f" {auth['name']} in {auth['in']}" if auth["type"] == "api_key" else ""
        details.insert(0, f"auth {auth['type']}{extra}")
    if conn["allow_private_network"]:
        details.append("private network allowed")
    return ", ".join(details)


def _parameters(params: Json) -> str:
    parts = []
    for name, spec in params.items():
        kind = spec["type"]
        if kind == "array" and "items" in spec:
            kind = f"{kind}[{spec['items']['type']}]"
        text = f"{name}{'' if spec.get('required') else '?'}: {kind}"
        if "default" in spec:
            text += f" = {spec['default']}"
        parts.append(text)
    return ", ".join(parts) or "-"


def _line(text: str | None, width: int = 60) -> str:
    return truncate((text or "").strip().split("\n")[0], width)
