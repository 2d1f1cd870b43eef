"""``catalyst run-server KIND``: one built-in server over stdio, for desktop clients.

The server runs in a :class:`~catalyst_mcp.app.Gateway` that serves only it (no config file, no
packs, no audit, no database), through the same stdio transport as ``catalyst serve --stdio``:
the tools are the same code the gateway serves, named without a namespace prefix. Logs go to
stderr; stdout carries protocol messages only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from catalyst_mcp.cli.common import EXIT_CONFIG, CliError, setup_logging
from catalyst_mcp.settings import Settings

__all__ = ["run_server", "standalone_settings"]

log = logging.getLogger("catalyst")


def standalone_settings(kind: str, options: dict[str, Any], *, log_level: str) -> Settings:
    """Settings that serve one built-in server of ``kind`` (unprefixed) and nothing else."""
    try:
        return Settings.model_validate(
            {
                "gateway": {"log_level": log_level, "watch_config": False},
                "servers": {kind: {kind: options, "namespace": ""}},
                "packs": {"path": None},
                "audit": {"enabled": False},
            },
            context={"environ": os.environ},  # ${NAME} in values reads the environment
        )
    except ValidationError as exc:
        reasons = "; ".join(
            ".".join(str(p) for p in e["loc"][3:]) + ": " + e["msg"].removeprefix("Value error, ")
            if len(e["loc"]) > 3
            else e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise CliError(f"cannot run the {kind} server: {reasons}", EXIT_CONFIG) from exc


def _serve(settings: Settings) -> None:
    from catalyst_mcp.cli.serve import _run
    from catalyst_mcp.transports.stdio import serve_stdio

    setup_logging(settings.gateway.log_level)
    _run(serve_stdio(settings))


@click.group("run-server")
def run_server() -> None:
    """Run one built-in server over stdin/stdout (for desktop MCP clients).

    \b
    Examples (a desktop client's mcpServers entry runs the same command):
      catalyst run-server filesystem --root ~/notes --root ~/projects --writable
      catalyst run-server database --url sqlite:///shop.db
      catalyst run-server s3 --endpoint-url http://localhost:9000 --path-style --bucket reports
      catalyst run-server kubernetes --context staging --namespace shop
    """


log_level_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Log level on stderr.",
)


@run_server.command("filesystem")
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder to serve (repeatable). Nothing outside the roots can be reached.",
)
@click.option("--writable", is_flag=True, help="Allow writes (write, edit, move, mkdir).")
@click.option("--allow-delete", is_flag=True, help="Also offer delete (with --writable).")
@click.option(
    "--client-roots",
    type=click.Choice(["off", "narrow", "use"]),
    default="off",
    show_default=True,
    help="Use the MCP roots the client sends: narrow the --root folders to them, or use "
    "them as they are (read-only; then --root may be left out).",
)
@click.option("--max-read-bytes", type=int, help="Largest file read whole (default 1 MiB).")
@log_level_option
def filesystem(
    roots: tuple[Path, ...],
    writable: bool,
    allow_delete: bool,
    client_roots: str,
    max_read_bytes: int | None,
    log_level: str,
) -> None:
    """Serve folders of this machine: read, list, search, stat; write with --writable."""
    if allow_delete and not writable:
        raise click.UsageError("--allow-delete needs --writable")
    missing = [str(root) for root in roots if not root.expanduser().is_dir()]
    if missing:
        raise CliError(f"not a folder: {', '.join(missing)}", EXIT_CONFIG)
    options: dict[str, Any] = {
        "roots": [{"path": str(root), "writable": writable} for root in roots],
        "allow_delete": allow_delete,
        "client_roots": client_roots,
    }
    if max_read_bytes is not None:
        options["max_read_bytes"] = max_read_bytes
    _serve(standalone_settings("filesystem", options, log_level=log_level))


@run_server.command("database")
@click.option(
    "--url",
    required=True,
    help="SQLAlchemy URL: sqlite:///file.db, postgresql://user@host/db, mysql://... or "
    "mariadb://... ('${NAME}' reads the environment variable NAME: keep passwords out of "
    "the command line).",
)
@click.option("--allow-writes", is_flag=True, help="Offer the execute tool (writes).")
@click.option("--max-rows", type=int, help="Most rows a query returns (default 500).")
@click.option("--timeout", type=float, help="Statement time limit in seconds (default 10).")
@log_level_option
def database(
    url: str, allow_writes: bool, max_rows: int | None, timeout: float | None, log_level: str
) -> None:
    """Serve a SQL database: schemas, tables, samples, read-only queries; writes if allowed."""
    options: dict[str, Any] = {"url": url, "allow_writes": allow_writes}
    if max_rows is not None:
        options["max_rows"] = max_rows
    if timeout is not None:
        options["timeout_seconds"] = timeout
    _serve(standalone_settings("database", options, log_level=log_level))


@run_server.command("s3")
@click.option("--endpoint-url", help="An S3-compatible endpoint (MinIO, Ceph, ...); default: AWS.")
@click.option("--region", help="The region (default: the AWS configuration's).")
@click.option(
    "--path-style", is_flag=True, help="Path-style addressing (most S3-compatible stores)."
)
@click.option(
    "--bucket", "buckets", multiple=True, help="A bucket to serve (repeatable; default: all)."
)
@click.option("--profile", help="A profile of the AWS config files.")
@click.option(
    "--access-key-id",
    help="Access key id ('${NAME}' reads the environment variable NAME). Default: the standard "
    "AWS chain (AWS_ACCESS_KEY_ID, ~/.aws, roles).",
)
@click.option(
    "--secret-access-key",
    help="Secret access key: write '${NAME}' to read it from the environment (not on the "
    "command line).",
)
@click.option("--allow-writes", is_flag=True, help="Offer put_object.")
@click.option("--allow-delete", is_flag=True, help="Offer delete_object.")
@click.option("--max-read-bytes", type=int, help="Largest object read whole (default 1 MiB).")
@log_level_option
def s3(
    endpoint_url: str | None,
    region: str | None,
    path_style: bool,
    buckets: tuple[str, ...],
    profile: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    allow_writes: bool,
    allow_delete: bool,
    max_read_bytes: int | None,
    log_level: str,
) -> None:
    """Serve buckets of AWS S3 or an S3-compatible store: list, read, stat; writes if allowed."""
    given = {
        "endpoint_url": endpoint_url,
        "region": region,
        "profile": profile,
        "access_key_id": access_key_id,
        "secret_access_key": secret_access_key,
        "max_read_bytes": max_read_bytes,
    }
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    options.update(buckets=list(buckets), allow_writes=allow_writes, allow_delete=allow_delete)
    if path_style:
        options["addressing_style"] = "path"
    _serve(standalone_settings("s3", options, log_level=log_level))


@run_server.command("kubernetes")
@click.option("--kubeconfig", help="The kubeconfig file (default: $KUBECONFIG, ~/.kube/config).")
@click.option("--context", "context_", help="The kubeconfig context (default: its current one).")
@click.option("--in-cluster", is_flag=True, help="Use the pod's service account instead.")
@click.option("--namespace", help="Namespace of calls that name none.")
@click.option(
    "--only-namespace", "namespaces", multiple=True, help="Serve only this namespace (repeatable)."
)
@click.option("--allow-writes", is_flag=True, help="Offer scale and restart (dry run first).")
@click.option("--allow-apply", is_flag=True, help="Offer apply (server-side apply, dry run first).")
@log_level_option
def kubernetes(
    kubeconfig: str | None,
    context_: str | None,
    in_cluster: bool,
    namespace: str | None,
    namespaces: tuple[str, ...],
    allow_writes: bool,
    allow_apply: bool,
    log_level: str,
) -> None:
    """Serve a Kubernetes cluster: kinds, resources, logs, events; changes if allowed."""
    given = {"kubeconfig": kubeconfig, "context": context_, "namespace": namespace}
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    options.update(
        in_cluster=in_cluster,
        namespaces=list(namespaces),
        allow_writes=allow_writes,
        allow_apply=allow_apply,
    )
    _serve(standalone_settings("kubernetes", options, log_level=log_level))
