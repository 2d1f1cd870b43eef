"""The options of the built-in servers: one section per kind in a ``servers:`` entry.

A server entry names its built-in by the section it gives, in place of ``command`` or ``url``::

    servers:
      files:
        filesystem:
          roots: [~/notes, {path: ~/projects, writable: true}]
      shop:
        database:
          url: postgresql://app:${secret:SHOP_DB_PASSWORD}@db.internal/shop
      archive:
        s3: {endpoint_url: "https://minio.internal:9000", buckets: [reports]}
      cluster:
        kubernetes: {context: staging}

Each section is a typed model here, so every option is documented, settable from the
environment by its path (``CATALYST_SERVERS__FILES__FILESYSTEM__MAX_READ_BYTES``) and shown by
``catalyst config show`` like any other setting. This module imports nothing of the gateway:
``settings.py`` builds on it.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BUILTIN_KINDS",
    "DATABASE_BACKENDS",
    "DatabaseOptions",
    "FilesystemOptions",
    "KubernetesOptions",
    "RootConfig",
    "S3Options",
]

BUILTIN_KINDS = ("filesystem", "database", "s3", "kubernetes")
"""The sections of a server entry that make it a built-in server (one kind per entry)."""

MIB = 1024 * 1024
DATABASE_BACKENDS = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
SECRET_PLACEHOLDER = re.compile(r"\$\{secret:[^}]*\}")
KIB = 1024
# Kubernetes names: DNS labels and subdomains (namespaces are labels).
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _needs(module: str, extra: str, kind: str) -> None:
    """A kind whose client library is an extra says how to install it, at config time."""
    if importlib.util.find_spec(module) is None:
        raise ValueError(
            f"the {kind} server needs the {module} package: pip install 'catalyst-mcp[{extra}]'"
        )


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RootConfig(_Options):
    """One folder the filesystem server may reach (a plain string is its ``path``)."""

    path: str = Field(
        description="The folder, absolute or relative to the working directory; '~' is the "
        "home folder. Nothing outside it can be named, even through symlinks."
    )
    writable: bool = Field(
        False,
        description="Allow the write tools (write, edit, move, mkdir, and delete when "
        "allow_delete is on) in this root. Read-only otherwise.",
    )
    name: str | None = Field(
        None, description="A label for the root shown to clients (default: the folder's name)."
    )


class FilesystemOptions(_Options):
    """The built-in filesystem server (docs/servers.md#filesystem)."""

    roots: list[RootConfig] = Field(
        default_factory=list,
        description="The folders served: paths, or {path, writable, name} maps. At least one, "
        "unless client_roots is 'use'.",
    )
    client_roots: Literal["off", "narrow", "use"] = Field(
        "off",
        description="MCP roots sent by the client (asked with roots/list on each call when the "
        "client declares the roots capability): 'off' ignores them; 'narrow' limits the call "
        "to the client's roots that lie inside the configured ones; 'use' serves the client's "
        "roots as given, read-only (only for a gateway that runs for one local user: any "
        "client could name any folder of this machine).",
    )
    follow_symlinks: bool = Field(
        True,
        description="Follow symlinks whose target stays inside the same root (a symlink "
        "pointing outside is always refused). Off: every symlink in a path is refused.",
    )
    binary: Literal["blob", "refuse"] = Field(
        "blob",
        description="What reading a binary file gives: 'blob', its bytes as a base64 "
        "resource blob (with a note saying so); 'refuse', an error.",
    )
    allow_delete: bool = Field(
        False, description="Offer the delete tool (files and empty folders, writable roots only)."
    )
    max_read_bytes: int = Field(
        MIB,
        ge=1,
        description="Largest file read whole; a bigger file must be read in parts "
        "(offset and length) or searched.",
    )
    max_write_bytes: int = Field(
        MIB, ge=1, description="Largest content written by write or produced by edit."
    )
    max_list_entries: int = Field(
        1000, ge=1, description="Most entries one list call returns (the rest are counted)."
    )
    search_max_files: int = Field(
        10_000, ge=1, description="Most files one search call looks at before it stops."
    )
    search_max_matches: int = Field(
        200, ge=1, description="Most matches one search call returns before it stops."
    )
    search_max_file_bytes: int = Field(
        4 * MIB,
        ge=1,
        description="Content search skips files larger than this (they are counted as skipped).",
    )
    search_timeout_seconds: float = Field(
        10.0, gt=0, description="A search stops after this long and returns what it found."
    )

    @field_validator("roots", mode="before")
    @classmethod
    def _plain_paths(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _some_root(self) -> FilesystemOptions:
        if not self.roots and self.client_roots != "use":
            raise ValueError(
                "filesystem: give at least one folder in 'roots' (or client_roots: use)"
            )
        return self


class DatabaseOptions(_Options):
    """The built-in database server (docs/servers.md#database)."""

    url: str = Field(
        description="SQLAlchemy URL of the database: sqlite:///file.db, "
        "postgresql://user@host/db, mysql://user@host/db or mariadb://... (the async driver "
        "is chosen for you). ${secret:NAME} in it is filled in per caller from the secrets "
        "store (their own value, else the shared one).",
        repr=False,
    )
    allow_writes: bool = Field(
        False,
        description="Offer the execute tool, which runs one writing statement (INSERT, "
        "UPDATE, DELETE, DDL) in a read-write transaction. Off: every statement runs in a "
        "read-only transaction the database enforces.",
    )
    max_rows: int = Field(
        500, ge=1, description="Most rows a query or sample returns (truncated is then true)."
    )
    max_result_bytes: int = Field(
        MIB,
        ge=1024,
        description="Largest result, as JSON: rows beyond it are dropped (truncated is true).",
    )
    max_value_chars: int = Field(
        10_000, ge=16, description="Longer text values (and encoded binary) are cut to this."
    )
    timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Statement time limit, enforced by the database where it can "
        "(PostgreSQL statement_timeout, MariaDB max_statement_time, MySQL "
        "max_execution_time, SQLite interrupt) and by the client otherwise.",
    )
    pool_size: int = Field(5, ge=1, description="Connections kept open per set of credentials.")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:  # (the value is never shown: it may carry a password)
            url = make_url(SECRET_PLACEHOLDER.sub("secret", value))
        except ArgumentError:
            raise ValueError(
                "not a valid SQLAlchemy URL (dialect://user@host/database, sqlite:///file.db)"
            ) from None
        if url.get_backend_name() not in DATABASE_BACKENDS:
            raise ValueError(
                f"database {url.get_backend_name()!r} is not supported: use sqlite, postgresql, "
                "mysql or mariadb"
            )
        return value


class S3Options(_Options):
    """The built-in object storage server (docs/servers.md#object-storage-s3)."""

    endpoint_url: str | None = Field(
        None,
        description="The S3 API endpoint of an S3-compatible store (MinIO, Ceph, R2, ...), "
        "http(s)://host[:port]. Unset: AWS S3 in the region.",
    )
    region: str | None = Field(
        None,
        description="The region (AWS: the buckets' region; most S3-compatible stores accept "
        "any). Unset: the AWS configuration's, else us-east-1.",
    )
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto",
        description="How the bucket is put in requests: 'path' (endpoint/bucket/key, what most "
        "S3-compatible stores need), 'virtual' (bucket.endpoint/key) or 'auto' (virtual where "
        "the bucket name allows it).",
    )
    access_key_id: str | None = Field(
        None,
        description="The access key id; ${secret:NAME} is filled in per caller from the "
        "secrets store. Unset (with secret_access_key): the standard AWS chain "
        "(environment, shared files and profile, container or instance role).",
    )
    secret_access_key: str | None = Field(
        None,
        description="The secret access key, normally ${secret:NAME} (filled in per caller). "
        "Shown masked by catalyst config show.",
        repr=False,
    )
    session_token: str | None = Field(
        None,
        description="A session token for temporary credentials (${secret:NAME} per caller).",
        repr=False,
    )
    profile: str | None = Field(
        None,
        description="A profile of the AWS shared config and credentials files, when the keys "
        "are not given.",
    )
    buckets: list[str] = Field(
        default_factory=list,
        description="The buckets served (each also listed as a resource). Empty: every bucket "
        "the credentials reach. Others are refused before any request is sent.",
    )
    allow_writes: bool = Field(
        False, description="Offer put_object (create or replace an object; audited)."
    )
    allow_delete: bool = Field(False, description="Offer delete_object (audited).")
    max_read_bytes: int = Field(
        MIB,
        ge=1,
        description="Largest object read whole, as text or as a binary blob; a bigger one must "
        "be read in parts (offset and length), each at most this size.",
    )
    max_write_bytes: int = Field(
        MIB, ge=1, description="Largest object put_object writes (after base64 decoding)."
    )
    max_keys: int = Field(
        1000,
        ge=1,
        le=1000,
        description="Most objects one list_objects call returns (S3's own page limit is "
        "1000); the cursor gets the next page.",
    )
    timeout_seconds: float = Field(
        30.0, gt=0, description="Connect and read time limit of each request to the endpoint."
    )
    max_connections: int = Field(
        10, ge=1, description="Requests in flight at once (connections and worker threads)."
    )
    verify_tls: bool = Field(
        True,
        description="Check the endpoint's TLS certificate. Off only for a test store with a "
        "self-signed certificate.",
    )

    @field_validator("endpoint_url")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("endpoint_url must be http(s)://host[:port]")
        return value

    @model_validator(mode="after")
    def _usable(self) -> S3Options:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("s3: give access_key_id and secret_access_key together, or neither")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("s3: session_token goes with access_key_id and secret_access_key")
        _needs("boto3", "s3", "s3")
        return self


class KubernetesOptions(_Options):
    """The built-in Kubernetes server (docs/servers.md#kubernetes)."""

    kubeconfig: str | None = Field(
        None,
        description="The kubeconfig file; '~' is the home folder. Unset: $KUBECONFIG, else "
        "~/.kube/config (unless in_cluster).",
    )
    context: str | None = Field(
        None, description="The kubeconfig context to use. Unset: its current-context."
    )
    in_cluster: bool = Field(
        False,
        description="Use the service account of the pod the gateway runs in (in-cluster "
        "config) instead of a kubeconfig.",
    )
    token: str | None = Field(
        None,
        description="A bearer token that replaces the kubeconfig user's credentials, normally "
        "${secret:NAME} so each caller acts as their own service account or user (filled in "
        "per caller). Shown masked.",
        repr=False,
    )
    namespace: str | None = Field(
        None,
        description="Namespace of calls that name none. Unset: the context's namespace, else "
        "'default'.",
    )
    namespaces: list[str] = Field(
        default_factory=list,
        description="The namespaces served; others are refused, and so are listings across "
        "all namespaces and writes to cluster-scoped objects. Empty: all. The credentials' "
        "RBAC in the cluster stays the real boundary.",
    )
    allow_writes: bool = Field(
        False,
        description="Offer scale and restart (each a server dry run first; confirm: true to "
        "change anything; audited).",
    )
    allow_apply: bool = Field(
        False,
        description="Offer apply: server-side apply of a YAML or JSON manifest (dry run and "
        "diff first; confirm: true to change anything; audited).",
    )
    field_manager: str = Field(
        "catalyst",
        min_length=1,
        max_length=128,
        description="Field manager name of server-side apply and of patches.",
    )
    show_secret_values: bool = Field(
        False,
        description="Return the values of Secrets (data, stringData). Off: each value is "
        "replaced by its size.",
    )
    max_list_items: int = Field(
        200,
        ge=1,
        description="Most objects one list_resources call returns; the cursor gets the next page.",
    )
    max_log_lines: int = Field(
        1000, ge=1, description="Most lines pod_logs returns (the last ones)."
    )
    max_log_bytes: int = Field(
        256 * KIB, ge=1024, description="Most bytes of log pod_logs returns (the last ones)."
    )
    max_events: int = Field(100, ge=1, description="Most events one list_events call returns.")
    max_value_chars: int = Field(
        10_000,
        ge=64,
        description="Longer strings in an object (ConfigMap data, annotations) are cut to this.",
    )
    max_manifest_objects: int = Field(
        20, ge=1, description="Most objects one apply call may carry."
    )
    timeout_seconds: float = Field(
        30.0, gt=0, description="Time limit of each request to the API server."
    )

    @field_validator("namespace")
    @classmethod
    def _namespace_name(cls, value: str | None) -> str | None:
        if value is not None and not DNS_LABEL.match(value):
            raise ValueError("namespace must be a DNS label (lowercase letters, digits, '-')")
        return value

    @field_validator("namespaces")
    @classmethod
    def _namespace_names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not DNS_LABEL.match(v)]
        if bad:
            raise ValueError(f"not a namespace name (a DNS label): {', '.join(bad[:5])}")
        return value

    @model_validator(mode="after")
    def _usable(self) -> KubernetesOptions:
        if self.in_cluster and self.kubeconfig is not None:
            raise ValueError("kubernetes: give kubeconfig or in_cluster, not both")
        if self.namespaces and self.namespace is not None and self.namespace not in self.namespaces:
            raise ValueError("kubernetes: namespace must be one of namespaces")
        _needs("kubernetes", "kubernetes", "kubernetes")
        return self
