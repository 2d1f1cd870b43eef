"""What the workflow tests share: a provider of small tools that counts its calls, and a
started gateway over it with a workflows folder."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.errors import UpstreamUnavailable
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.settings import Settings
from tests.conftest import PG_HOST, PG_PORT, pg_reachable, require_or_skip

__all__ = ["ToolBox", "database_url", "pg_database_url", "running_gateway", "write"]

TOOLS = ("echo", "add", "flaky", "slow", "broken", "down", "items", "undo", "gate")


class ToolBox(Provider):
    """Tools ``box__*``: ``echo`` (structured {text}), ``add`` (a+b), ``flaky`` (fails
    ``fail`` times per ``key`` first), ``slow`` (sleeps ``seconds``), ``broken`` (a tool
    error), ``down`` (the server is down), ``items`` (a list of ``n``), ``undo`` (records
    what it undid), ``gate`` (waits until ``release`` is set). Calls are counted per tool and
    their callers kept."""

    def __init__(self) -> None:
        super().__init__("box", "box")
        self.counts: Counter[str] = Counter()
        self.callers: list[Identity] = []
        self.undone: list[Any] = []
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.running = 0
        self.most_at_once = 0

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        if kind != "tools":
            return []
        return [{"name": n, "inputSchema": {"type": "object"}} for n in TOOLS]

    def health(self) -> dict[str, Any]:
        return {"name": self.name, "status": "ready"}

    async def drain(self, timeout: float) -> None:
        return None

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        name = params["name"]
        args = params.get("arguments") or {}
        self.counts[name] += 1
        self.callers.append(ctx.identity)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            return await self._tool(name, args)
        finally:
            self.running -= 1

    async def _tool(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        if name == "echo":
            text = args.get("text")
            return {
                "content": [{"type": "text", "text": str(text)}],
                "structuredContent": {"text": text},
            }
        if name == "add":
            return {"content": [{"type": "text", "text": str(args["a"] + args["b"])}]}
        if name == "flaky":
            key = f"flaky:{args.get('key', '')}"
            self.counts[key] += 1
            if self.counts[key] <= int(args.get("fail", 1)):
                return {"content": [{"type": "text", "text": "not yet"}], "isError": True}
            return {"content": [{"type": "text", "text": "ok"}]}
        if name == "slow":
            await asyncio.sleep(float(args.get("seconds", 1)))
            return {"content": [{"type": "text", "text": "slept"}]}
        if name == "broken":
            return {"content": [{"type": "text", "text": "it broke"}], "isError": True}
        if name == "down":
            raise UpstreamUnavailable("box", "box is down")
        if name == "items":
            return {"content": [{"type": "text", "text": str(list(range(int(args["n"]))))}]}
        if name == "undo":
            self.undone.append(args.get("what"))
            return {"content": [{"type": "text", "text": "undone"}]}
        if name == "gate":
            self.entered.set()
            await self.release.wait()
            return {"content": [{"type": "text", "text": "through"}]}
        raise AssertionError(name)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@contextlib.asynccontextmanager
async def running_gateway(
    tmp_path: Path,
    box: ToolBox | None = None,
    *,
    settings: dict[str, Any] | None = None,
    database: str | None = None,
    folder: Path | None = None,
    providers: list[Provider] | None = None,
) -> AsyncIterator[Gateway]:
    """A started gateway over ``box`` (and ``providers``) with the workflows folder ``folder``
    (default ``tmp_path/workflows``)."""
    folder = folder or tmp_path / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "packs": {"path": None},
        "storage": {"url": database or f"sqlite+aiosqlite:///{tmp_path / 'state' / 'c.db'}"},
        "workflows": {"path": str(folder), "watch": False, "heartbeat_seconds": 0.2},
    }
    for section, values in (settings or {}).items():
        data[section] = {**data.get(section, {}), **values}
    served = [box] if box is not None else []
    gateway = Gateway(Settings.model_validate(data), [*served, *(providers or [])])
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


@contextlib.asynccontextmanager
async def pg_database_url() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on the machine's server, dropped afterwards."""
    require_or_skip(pg_reachable(), f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    import asyncpg

    name = f"catalyst_wf_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test")
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@contextlib.asynccontextmanager
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a new database: ``sqlite`` (a file under ``tmp_path``) or ``postgresql``."""
    if backend == "postgresql":
        async with pg_database_url() as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'state' / 'c.db'}"
