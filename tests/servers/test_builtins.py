"""Built-in servers as server entries: configured in a few lines, served under the gateway's
namespaces, RBAC, audit and hot reload like any upstream."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import ConfigError, Forbidden
from catalyst_mcp.observability.auditsearch import search
from catalyst_mcp.servers.database import DatabaseServer
from catalyst_mcp.servers.filesystem import FilesystemServer
from catalyst_mcp.settings import Settings, parse_settings
from catalyst_mcp.yamlsource import load_yaml
from tests.servers.conftest import LEGACY


def settings(tmp_path: Path, servers: dict[str, Any], **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "servers": servers,
            "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/catalyst.db"},
            "packs": {"path": None},
            **extra,
        }
    )


def ctx(method: str = "tools/call") -> CallContext:
    return CallContext(era="legacy", protocol_version=LEGACY, method=method)


def test_a_few_lines_of_yaml_make_a_builtin_server(tmp_path: Path) -> None:
    source = load_yaml(
        "servers:\n"
        "  files:\n"
        "    filesystem:\n"
        "      roots: [~/notes, {path: /srv/shared, writable: true}]\n"
        "  shop:\n"
        "    database: {url: 'sqlite:///shop.db'}\n",
        "c.yaml",
    )
    loaded = parse_settings(source, {"CATALYST_SERVERS__FILES__FILESYSTEM__MAX_READ_BYTES": "7"})
    files, shop = loaded.servers["files"], loaded.servers["shop"]
    assert (files.builtin, files.kind, shop.builtin) == ("filesystem", "builtin", "database")
    assert files.filesystem is not None and files.filesystem.max_read_bytes == 7
    assert [r.writable for r in files.filesystem.roots] == [False, True]


@pytest.mark.parametrize(
    ("yaml", "problem"),
    [
        (
            "servers:\n  x:\n    command: npx\n    filesystem: {roots: [/tmp]}\n",
            "c.yaml:2: servers.x: give one of 'command', 'url' or a built-in",
        ),
        (
            "servers:\n  x:\n    filesystem: {roots: [/tmp]}\n    database: {url: 'sqlite://'}\n",
            "not several",
        ),
        (
            "servers:\n  x:\n    filesystem: {}\n",
            "filesystem: give at least one folder in 'roots'",
        ),
        (
            "servers:\n  x:\n    filesystem: {roots: [/tmp], max_read_byte: 3}\n",
            "servers.x.filesystem.max_read_byte: unknown setting",
        ),
        (
            "servers:\n  x:\n    database: {url: 'oracle://scott:tiger@h/db'}\n",
            "database 'oracle' is not supported",
        ),
    ],
)
def test_a_wrong_builtin_entry_says_what_is_wrong(yaml: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(load_yaml(yaml, "c.yaml"), {})
    assert problem in str(caught.value)
    assert "tiger" not in str(caught.value)


async def test_the_gateway_serves_builtins_under_its_namespaces_and_rbac(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("hello")
    data = settings(
        tmp_path,
        {"files": {"filesystem": {"roots": [{"path": str(root), "writable": True}]}}},
        auth={"anonymous_roles": ["reader"]},
        rbac={
            "roles": {
                "reader": {
                    "rules": [
                        {"effect": "allow", "match": ["*"]},
                        {"effect": "deny", "kinds": ["tool"], "match": ["files__write_file"]},
                    ]
                }
            }
        },
    )
    gateway = Gateway(data)
    await gateway.start()
    try:
        provider = gateway.registry.provider("files")
        assert isinstance(provider, FilesystemServer)
        names = [t["name"] for t in gateway.registry.items("tools")]
        assert "files__read_file" in names
        result = await gateway.server.handle(
            "tools/call", {"name": "files__read_file", "arguments": {"path": "a.txt"}}, ctx()
        )
        assert result["structuredContent"]["text"] == "hello"
        listed = await gateway.server.handle("tools/list", {}, ctx("tools/list"))
        assert "files__write_file" not in [t["name"] for t in listed["tools"]]
        with pytest.raises(Forbidden):
            await gateway.server.handle(
                "tools/call",
                {"name": "files__write_file", "arguments": {"path": "b.txt", "content": "x"}},
                ctx(),
            )
        assert not (root / "b.txt").exists()
        read = await gateway.server.handle(
            "resources/read",
            {"uri": f"catalyst://files/file://{root}/a.txt"},
            ctx("resources/read"),
        )
        assert read["contents"][0]["text"] == "hello"
        assert gateway.readiness()["servers"][0]["builtin"] == "filesystem"
    finally:
        await gateway.stop()


async def test_a_write_is_audited_with_its_statement_masked(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.execute("CREATE TABLE users (id INTEGER, password TEXT)")
        conn.execute("INSERT INTO users VALUES (1, 'old')")
    data = settings(
        tmp_path,
        {"shop": {"database": {"url": f"sqlite:///{tmp_path}/shop.db", "allow_writes": True}}},
    )
    gateway = Gateway(data)
    await gateway.start()
    try:
        sql = "UPDATE users SET password = 'canary-pass-1' WHERE id = :id"
        params = {"name": "shop__execute", "arguments": {"sql": sql, "parameters": {"id": 1}}}
        result = await gateway.server.handle("tools/call", params, ctx())
        assert result["structuredContent"]["row_count"] == 1
        assert gateway.access.audit is not None and gateway.db is not None
        await gateway.access.audit.flush()
        (record,) = await search(gateway.db, action="tools/call")
        assert record["target"] == "shop__execute" and record["outcome"] == "ok"
        assert record["detail"]["note"] == {
            "statement": "UPDATE users SET password = ? WHERE id = :id",
            "row_count": 1,
        }
        assert "canary-pass-1" not in str(record)
    finally:
        await gateway.stop()


async def test_an_edited_builtin_entry_is_replaced_and_an_unchanged_one_kept(
    tmp_path: Path,
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    shop = {"database": {"url": f"sqlite:///{tmp_path}/shop.db"}}
    gateway = Gateway(
        settings(tmp_path, {"files": {"filesystem": {"roots": [str(one)]}}, "shop": shop})
    )
    await gateway.start()
    try:
        before = gateway.registry.provider("shop")
        assert isinstance(before, DatabaseServer)
        changed = settings(
            tmp_path,
            {"files": {"filesystem": {"roots": [str(two)], "allow_delete": True}}, "shop": shop},
        )
        assert await gateway.servers.apply(changed) is True
        files = gateway.registry.provider("files")
        assert isinstance(files, FilesystemServer) and files.roots[0].display == str(two)
        assert gateway.registry.provider("shop") is before
    finally:
        await gateway.stop()
