"""The cache as the configuration asks for it: a server entry's ``cache:`` and ``tools:`` (a
built-in filesystem server, served in process), a knowledge pack's ``cache:`` and its tools',
and a reload of the server entry, which makes its older results unreachable."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import ANONYMOUS
from catalyst_mcp.settings import Settings
from tests.packs.conftest import ROWS, people_pack, write_pack


def settings(tmp_path: Path, servers: dict[str, Any], **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "servers": servers,
            "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
            "packs": {"path": None},
            "rules": {"path": None},
            **extra,
        }
    )


def files(root: Path, **entry: Any) -> dict[str, Any]:
    return {"files": {"filesystem": {"roots": [{"path": str(root), "writable": True}]}, **entry}}


async def call(gateway: Gateway, tool: str, **arguments: Any) -> dict[str, Any]:
    params = {"name": tool, "arguments": arguments}
    return await gateway.dispatcher.direct("tools/call", params, ANONYMOUS)


async def read(gateway: Gateway, path: str) -> str:
    text: str = (await call(gateway, "files__read_file", path=path))["structuredContent"]["text"]
    return text


async def test_a_server_entrys_cache_serves_reads_and_leaves_writes_alone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("one")
    entry = files(root, cache={"ttl": "5m", "scope": "shared"})
    gateway = Gateway(settings(tmp_path, entry))
    await gateway.start()
    try:
        assert await read(gateway, "a.txt") == "one"
        (root / "a.txt").write_text("two")
        assert await read(gateway, "a.txt") == "one"  # served from the cache
        provider = gateway.registry.provider("files")
        assert provider is not None
        assert not gateway.cache.is_cached(provider, "write_file")  # readOnlyHint: false
        await call(gateway, "files__write_file", path="a.txt", content="three")
        await call(gateway, "files__write_file", path="a.txt", content="three")
        assert (root / "a.txt").read_text() == "three"
        # an edited entry (here: its ttl) is a new epoch: older results are unreachable
        changed = files(root, cache={"ttl": "10m", "scope": "shared"})
        assert await gateway.servers.apply(settings(tmp_path, changed))
        assert await read(gateway, "a.txt") == "three"
    finally:
        await gateway.stop()


async def test_a_tool_of_a_cached_server_can_opt_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("one")
    entry = files(root, cache={"ttl": 60}, tools={"read_file": {"cache": False}})
    gateway = Gateway(settings(tmp_path, entry))
    await gateway.start()
    try:
        assert await read(gateway, "a.txt") == "one"
        (root / "a.txt").write_text("two")
        assert await read(gateway, "a.txt") == "two"
        listed = await call(gateway, "files__list_directory", path=".")
        (root / "b.txt").write_text("new")
        assert await call(gateway, "files__list_directory", path=".") == listed  # cached
    finally:
        await gateway.stop()


async def test_a_packs_cache_and_its_tools(tmp_path: Path) -> None:
    sqlite_db = tmp_path / "people.db"
    with sqlite3.connect(sqlite_db) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
        db.executemany("INSERT INTO people VALUES (?, ?, ?)", ROWS)
    db.close()
    pack = people_pack(f"sqlite:///{sqlite_db}")
    pack["cache"] = {"ttl": "1m"}
    pack["tools"][0]["cache"] = False  # find: never cached
    folder = tmp_path / "packs"
    folder.mkdir()
    write_pack(folder, "people.yaml", pack)
    gateway = Gateway(settings(tmp_path, {}, packs={"path": str(folder), "watch": False}))
    await gateway.start()
    try:
        count = await call(gateway, "people__count")
        assert count["structuredContent"]["rows"] == [{"n": 3}]
        with sqlite3.connect(sqlite_db) as db:
            db.execute("INSERT INTO people VALUES (4, 'Barbara', 'b@x.org')")
        db.close()
        assert await call(gateway, "people__count") == count  # cached
        found = await call(gateway, "people__find", name="Barbara")
        assert found["structuredContent"]["rows"] == [{"id": 4, "name": "Barbara"}]
        # an edited pack file (here: the pack's ttl) is a new epoch
        assert gateway.packs is not None
        pack["cache"] = {"ttl": "2m"}
        write_pack(folder, "people.yaml", pack)
        await gateway.packs.reload([folder / "people.yaml"])
        assert (await call(gateway, "people__count"))["structuredContent"]["rows"] == [{"n": 4}]
        stats = await gateway.cache.stats()
        assert stats["servers"] == [
            {"server": "pack:people", "entries": 1, "bytes": stats["memory"]["bytes"]}
        ]
    finally:
        await gateway.stop()
