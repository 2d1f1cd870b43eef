"""What the ``/servers`` routes of the admin API read and answer (api/servers.py).

Kept apart from :mod:`catalyst_mcp.api.models` (users, keys, roles, secrets, audit): each area
of the API owns its models. The OpenAPI document is generated from them, so their field
descriptions are the reference.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "LastError",
    "LogLine",
    "LogQuery",
    "ProcessInfo",
    "ServerAction",
    "ServerLogs",
    "ServerPath",
    "ServerStatus",
]

MAX_TAIL = 10_000
MAX_WAIT_SECONDS = 30.0
MAX_LINES_PER_ANSWER = 1000


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ServerPath(_In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="The server's name, as in the servers: section of catalyst.yaml."
    )


class LastError(_Out):
    error: str = Field(description="What failed.")
    at: datetime = Field(description="When (UTC).")


class ProcessInfo(_Out):
    instance: str = Field(description="Whose process: 'user <name>' or 'session <id prefix>'.")
    status: str = Field(description="ready, starting or failed.")
    pid: int | None = Field(description="Its process id (stdio), while it runs.")
    up_since: datetime | None = Field(description="When it last connected.")
    restarts: int = Field(description="Times it was restarted after a crash or a hang.")
    idle_seconds: float = Field(description="Seconds since its last call.")
    error: str | None = Field(description="Why it is not ready, while it is not.")


class ServerStatus(_Out):
    name: str = Field(description="The server's name.")
    state: str = Field(
        description="ready; starting (first connection under way); failed (down, reconnecting "
        "with backoff: see error); stopped (by an administrator: see stopped_by)."
    )
    transport: str = Field(description="stdio, streamable-http or sse (what is in use).")
    era: Literal["modern", "legacy"] | None = Field(description="The protocol era it speaks.")
    sharing: Literal["shared", "per-user", "per-session"] = Field(
        description="Who shares a process (the sharing setting in effect)."
    )
    sandboxed: bool = Field(description="Whether it runs under bubblewrap (sandbox.enabled).")
    pid: int | None = Field(
        description="Process id of the shared process (stdio; under a sandbox, bwrap's), while "
        "it runs."
    )
    up_since: datetime | None = Field(description="When it last connected, while ready.")
    uptime_seconds: int | None = Field(description="Seconds since then, while ready.")
    restarts: int = Field(
        description="Restarts since the gateway started: after crashes and hangs, and by "
        "administrators."
    )
    error: str | None = Field(description="Why it is not ready, while it is not.")
    last_error: LastError | None = Field(
        description="The latest failure and when, kept after it recovered."
    )
    circuit: Literal["closed", "open", "half-open"] | None = Field(
        description="Its circuit breaker: open rejects calls after repeated failures."
    )
    processes: int = Field(
        description="per-user and per-session: callers' processes running now (the shared one "
        "that lists its tools not counted)."
    )
    tools: int = Field(description="Tools it offers now.")
    stopped_by: str | None = Field(description="Who stopped it (state stopped).")
    stopped_at: datetime | None = Field(description="When (state stopped).")
    instances: list[ProcessInfo] | None = Field(
        None, description="GET /servers/{name} only: each caller's process."
    )


class ServerAction(_Out):
    changed: bool = Field(
        description="false when there was nothing to do: start of a running server, stop of a "
        "stopped one."
    )
    server: ServerStatus = Field(description="The server as it is now.")


class LogQuery(_In):
    tail: int = Field(
        100, ge=0, le=MAX_TAIL, description="Without after: the newest this many lines."
    )
    after: int | None = Field(
        None,
        ge=0,
        description="Lines numbered after this one instead (the last seq you saw), at most "
        f"{MAX_LINES_PER_ANSWER} per answer; for following the log.",
    )
    wait: float = Field(
        0.0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="With after: wait up to this many seconds for a new line before answering "
        "(long polling).",
    )


class LogLine(_Out):
    seq: int = Field(description="The line's number (increasing, never reused).")
    at: datetime = Field(description="When the gateway read it (UTC).")
    pid: int | None = Field(description="The process that wrote it.")
    instance: str = Field(description="'shared', or whose process: 'user <name>', 'session <id>'.")
    text: str = Field(description="The line (at most 8 KiB; longer ones are cut).")


class ServerLogs(_Out):
    lines: list[LogLine] = Field(description="Oldest first.")
    last_seq: int = Field(description="The newest line's number: pass it as after to follow.")
    missed: int = Field(
        description="Lines after 'after' that are gone from the buffer already (it keeps "
        "log_lines lines)."
    )
    capacity: int = Field(description="How many lines the buffer keeps (the log_lines setting).")
