"""``catalyst run-server``: one built-in server over stdio, for desktop clients."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from catalyst_mcp.cli.common import CliError
from catalyst_mcp.cli.runserver import standalone_settings
from tests.cli.helpers import run
from tests.conftest import PYTHON

MAIN = "from catalyst_mcp.cli.main import main; main()"


def test_the_settings_serve_one_builtin_unprefixed(tmp_path: Path) -> None:
    settings = standalone_settings("filesystem", {"roots": [str(tmp_path)]}, log_level="warning")
    ((name, entry),) = settings.servers.items()
    assert (name, entry.builtin, settings.namespace_of(name)) == ("filesystem", "filesystem", "")
    assert settings.audit.enabled is False and settings.packs.path is None


def test_a_bad_option_is_a_config_error() -> None:
    with pytest.raises(CliError) as caught:
        standalone_settings("database", {"url": "oracle://h/db"}, log_level="warning")
    assert caught.value.exit_code == 3
    assert "database 'oracle' is not supported" in caught.value.message


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    result = run("run-server", "filesystem", "--root", str(tmp_path / "nope"))
    assert result.exit_code == 3
    assert "not a folder" in result.stderr
    result = run("run-server", "filesystem", "--root", str(tmp_path), "--allow-delete")
    assert result.exit_code == 2
    assert "--allow-delete needs --writable" in result.stderr
    result = run("run-server", "filesystem")
    assert result.exit_code == 3
    assert "give at least one folder" in result.stderr


async def _exchange(
    args: list[str], messages: list[dict[str, Any]], env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-c",
        MAIN,
        "run-server",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )
    assert proc.stdin is not None and proc.stdout is not None
    answers = []
    try:
        for message in messages:
            proc.stdin.write(orjson.dumps(message) + b"\n")
            await proc.stdin.drain()
            if "id" in message:
                answers.append(orjson.loads(await asyncio.wait_for(proc.stdout.readline(), 30)))
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return answers


@pytest.mark.subprocess
async def test_a_desktop_client_reads_a_file_over_stdio(tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("from the desktop\n")
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    answers = await _exchange(
        ["filesystem", "--root", str(tmp_path), "--writable"],
        [
            init,
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "read_file", "arguments": {"path": "note.txt"}},
            },
            {
                "jsonrpc": "2.0",
                "id": 4,
                "method": "tools/call",
                "params": {"name": "read_file", "arguments": {"path": "/etc/passwd"}},
            },
        ],
    )
    assert answers[0]["result"]["protocolVersion"] == "2025-06-18"
    names = [t["name"] for t in answers[1]["result"]["tools"]]
    assert "read_file" in names and "write_file" in names
    assert answers[2]["result"]["structuredContent"]["text"] == "from the desktop\n"
    assert answers[3]["result"]["isError"] is True
    assert "outside the served folders" in answers[3]["result"]["content"][0]["text"]


def test_the_s3_and_kubernetes_settings() -> None:
    s3 = standalone_settings(
        "s3", {"endpoint_url": "http://127.0.0.1:9", "buckets": ["b1"]}, log_level="warning"
    )
    assert s3.servers["s3"].s3 is not None and s3.servers["s3"].s3.buckets == ["b1"]
    with pytest.raises(CliError) as caught:
        standalone_settings(
            "kubernetes", {"in_cluster": True, "kubeconfig": "x"}, log_level="warning"
        )
    assert "give kubeconfig or in_cluster, not both" in caught.value.message


@pytest.mark.subprocess
@pytest.mark.network
async def test_a_desktop_client_reads_an_s3_object_over_stdio() -> None:
    from tests.servers.s3.conftest import start_moto, stop_moto

    moto = start_moto()
    try:
        client: Any = moto.client()
        client.create_bucket(Bucket="desk")
        client.put_object(Bucket="desk", Key="hello.txt", Body=b"from the bucket")
        answers = await _exchange(
            [
                "s3",
                "--endpoint-url",
                moto.url,
                "--region",
                "us-east-1",
                "--path-style",
                "--bucket",
                "desk",
                "--access-key-id",
                "k",
                "--secret-access-key",
                "${TEST_S3_SECRET}",
            ],
            [
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {
                        "name": "read_object",
                        "arguments": {"bucket": "desk", "key": "hello.txt"},
                        "_meta": {
                            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                            "io.modelcontextprotocol/clientCapabilities": {},
                        },
                    },
                },
            ],
            env={"TEST_S3_SECRET": "s", "AWS_EC2_METADATA_DISABLED": "true"},
        )
    finally:
        stop_moto(moto)
    assert answers[0]["result"]["structuredContent"]["text"] == "from the bucket", answers
