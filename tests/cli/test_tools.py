"""``catalyst tools list`` / ``tools call`` against the real SDK test server.

Targets: one server by URL (Streamable HTTP), one by command (stdio), and the configured servers
aggregated under the gateway's names.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click
import pytest

from catalyst_mcp.cli.common import EXIT_CONNECT, EXIT_FAILED, EXIT_USAGE
from catalyst_mcp.cli.tools import describe_block, described, parse_arguments
from tests.cli.helpers import STDIO_COMMAND, run, stdio_server, write_config

TOOLS = ["echo", "add", "slow", "sleep", "crash", "greet_user", "sample_it", "roots"]


# ---- one server by URL -----------------------------------------------------------------------


@pytest.mark.subprocess
@pytest.mark.network
class TestUrl:
    def test_list_prints_name_and_description(self, upstream_url: str) -> None:
        result = run("tools", "list", "--url", upstream_url)
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["NAME", "DESCRIPTION"]
        assert [line.split()[0] for line in lines[1:]] == TOOLS
        assert lines[1].split(None, 1) == ["echo", "Echo text back."]
        assert all(len(line) <= 100 for line in lines)

    def test_list_json(self, upstream_url: str) -> None:
        result = run("tools", "list", "--url", upstream_url, "--json")
        assert result.exit_code == 0
        tools = json.loads(result.stdout)
        assert [t["name"] for t in tools] == TOOLS
        assert tools[1]["inputSchema"]["properties"]["a"]["type"] == "integer"

    @pytest.mark.parametrize("era", ["modern", "legacy"])
    def test_call_in_either_era(self, upstream_url: str, era: str) -> None:
        result = run(
            "tools", "call", "echo", "--arg", "text=hello", "--era", era, "--url", upstream_url
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("hello\nstructuredContent:\n")

    def test_call_prints_structured_content(self, upstream_url: str) -> None:
        result = run("tools", "call", "add", "--args", '{"a": 2, "b": 40}', "--url", upstream_url)
        assert result.exit_code == 0, result.output
        text, rest = result.stdout.split("\n", 1)
        assert text == "42"
        assert rest.startswith("structuredContent:\n")
        assert json.loads(rest.removeprefix("structuredContent:\n")) == {"result": 42}

    def test_arg_values_follow_the_schema(self, upstream_url: str) -> None:
        result = run(
            "tools", "call", "add", "--arg", "a=1", "--arg", "b=2", "--url", upstream_url, "--json"
        )
        assert json.loads(result.stdout)["structuredContent"] == {"result": 3}
        # echo's text is a string: "123" stays a string, not the number 123
        result = run("tools", "call", "echo", "--arg", "text=123", "--url", upstream_url, "--json")
        assert json.loads(result.stdout)["content"][0]["text"] == "123"

    def test_call_json_is_the_whole_result(self, upstream_url: str) -> None:
        result = run(
            "tools", "call", "echo", "--args", '{"text": "x"}', "--json", "--url", upstream_url
        )
        assert result.exit_code == 0
        assert json.loads(result.stdout) == {
            "content": [{"type": "text", "text": "x"}],
            "structuredContent": {"result": "x"},
            "isError": False,
        }

    def test_unknown_tool_is_exit_1(self, upstream_url: str) -> None:
        result = run("tools", "call", "nope", "--url", upstream_url)
        assert result.exit_code == EXIT_FAILED
        assert result.stderr == "error: Unknown tool: nope (JSON-RPC error -32602)\n"

    def test_is_error_result_is_exit_1_after_printing_it(self, upstream_url: str) -> None:
        result = run("tools", "call", "add", "--args", '{"a": "x", "b": 1}', "--url", upstream_url)
        assert result.exit_code == EXIT_FAILED
        assert "validation error" in result.stdout
        assert "error: tool 'add' reported an error" in result.stderr

    def test_timeout_is_an_error_result(self, upstream_url: str) -> None:
        result = run(
            "tools",
            "call",
            "sleep",
            "--arg",
            "seconds=10",
            "--timeout",
            "0.5",
            "--url",
            upstream_url,
        )
        assert result.exit_code == EXIT_FAILED
        assert "did not answer tools/call within 0.5s" in result.stdout

    def test_a_tool_needing_client_input_fails_clearly(self, upstream_url: str) -> None:
        result = run("tools", "call", "greet_user", "--url", upstream_url)
        assert result.exit_code == EXIT_FAILED
        assert result.stderr.startswith("error: ")
        assert "elicitation" in result.stderr
        assert "Traceback" not in result.output

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--args", "{nope"], "not valid JSON"),
            (["--args", "[1, 2]"], "must be a JSON object, got list"),
            (["--arg", "novalue"], "expected KEY=VALUE"),
            (["--args", "{}", "--arg", "a=1"], "give --args or --arg, not both"),
        ],
        ids=["not-json", "not-object", "no-equals", "both"],
    )
    def test_bad_arguments_are_usage_errors(
        self, upstream_url: str, args: list[str], message: str
    ) -> None:
        result = run("tools", "call", "echo", *args, "--url", upstream_url)
        assert result.exit_code == EXIT_USAGE
        assert message in result.stderr

    def test_headers_reach_the_server_and_are_never_printed(self, upstream_url: str) -> None:
        result = run(
            "tools",
            "call",
            "nope",
            "--url",
            upstream_url,
            "--header",
            "Authorization: Bearer s3cr3t-token",
            "-v",
        )
        assert result.exit_code == EXIT_FAILED
        assert "s3cr3t" not in result.output

    def test_sse_fallback_is_not_needed_for_streamable_http(self, upstream_url: str) -> None:
        result = run("tools", "list", "--url", upstream_url, "--transport", "streamable-http")
        assert result.exit_code == 0


@pytest.mark.network
def test_unreachable_url_is_exit_4(dead_url: str) -> None:
    result = run("tools", "list", "--url", dead_url)
    assert result.exit_code == EXIT_CONNECT
    assert result.stderr.startswith(f"error: cannot connect to {dead_url}: cannot connect to")
    assert result.stdout == ""
    result = run("tools", "call", "echo", "--url", dead_url)
    assert result.exit_code == EXIT_CONNECT


# ---- one server by command -------------------------------------------------------------------


@pytest.mark.subprocess
def test_stdio_server_after_double_dash() -> None:
    result = run("tools", "call", "echo", "--arg", "text=over stdio", "--", *STDIO_COMMAND)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "over stdio"


@pytest.mark.subprocess
def test_stdio_server_by_command_option() -> None:
    result = run("tools", "list", "--command", shlex.join(STDIO_COMMAND), "--json")
    assert result.exit_code == 0, result.output
    assert [t["name"] for t in json.loads(result.stdout)] == TOOLS


@pytest.mark.subprocess
def test_stdio_server_that_exits_is_exit_4() -> None:
    result = run("tools", "list", "--", STDIO_COMMAND[0], "-c", "import sys; sys.exit(5)")
    assert result.exit_code == EXIT_CONNECT
    assert "closed its output (exit code 5)" in result.stderr
    assert "--verbose" in result.stderr


def test_missing_program_is_exit_4() -> None:
    result = run("tools", "list", "--command", "no-such-program-for-catalyst --flag")
    assert result.exit_code == EXIT_CONNECT
    assert "'no-such-program-for-catalyst': No such file or directory" in result.stderr


# ---- the configured servers ------------------------------------------------------------------


@pytest.mark.subprocess
@pytest.mark.network
class TestConfig:
    @pytest.fixture
    def config(self, tmp_path: Path, upstream_url: str) -> Path:
        return write_config(
            tmp_path / "catalyst.yaml",
            {
                "web": {"url": upstream_url},
                "local": stdio_server(),
                "off": stdio_server(enabled=False),
            },
        )

    def test_list_is_namespaced_like_the_gateway(self, config: Path) -> None:
        result = run("tools", "list", "--config", str(config), "--json")
        assert result.exit_code == 0, result.output
        names = [t["name"] for t in json.loads(result.stdout)]
        assert names == [f"local__{t}" for t in TOOLS] + [f"web__{t}" for t in TOOLS]

    def test_call_a_namespaced_tool(self, config: Path) -> None:
        result = run("tools", "call", "web__echo", "--arg", "text=hi", "--config", str(config))
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[0] == "hi"

    def test_the_config_is_the_default_target(
        self, config: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CATALYST_CONFIG", str(config))
        result = run("tools", "call", "local__add", "--arg", "a=1", "--arg", "b=1")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("2\n")

    def test_unknown_and_disabled_tools_are_exit_1(self, config: Path) -> None:
        for name in ("web__nope", "off__echo", "nothing"):
            result = run("tools", "call", name, "--config", str(config))
            assert result.exit_code == EXIT_FAILED, name
            assert result.stderr.startswith("error: "), name

    def test_a_server_that_is_down(self, tmp_path: Path, upstream_url: str, dead_url: str) -> None:
        config = write_config(
            tmp_path / "c.yaml", {"web": {"url": upstream_url}, "gone": {"url": dead_url}}
        )
        result = run("tools", "list", "--config", str(config))
        assert result.exit_code == EXIT_FAILED
        assert "web__echo" in result.stdout
        assert "warning: server 'gone' is not ready (failed): cannot connect" in result.stderr
        result = run("tools", "call", "gone__echo", "--config", str(config))
        assert result.exit_code == EXIT_CONNECT
        assert result.stderr.startswith("error: cannot connect to server 'gone': ")


@pytest.mark.network
def test_every_configured_server_down_is_exit_4(tmp_path: Path, dead_url: str) -> None:
    config = write_config(tmp_path / "c.yaml", {"gone": {"url": dead_url}})
    result = run("tools", "list", "--config", str(config))
    assert result.exit_code == EXIT_CONNECT
    assert result.stdout == "(none)\n"


def test_no_servers_configured(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {})
    result = run("tools", "list", "--config", str(config))
    assert result.exit_code == 0
    assert result.stdout == "(none)\n"
    assert "no servers are configured" in result.stderr


# ---- the pieces ------------------------------------------------------------------------------


def test_descriptions_are_cut_to_fit_100_columns() -> None:
    rows = described(
        [{"name": "n" * 30, "description": "word " * 40 + "\nsecond line"}, {"name": "x"}], "name"
    )
    assert 100 - 2 - 30 - 4 <= len(rows[0]["description"]) <= 100 - 2 - 30
    assert rows[0]["description"].endswith("...")
    assert rows[1]["description"] == ""


def test_parse_arguments_types() -> None:
    schema = {"properties": {"s": {"type": "string"}, "n": {"type": "integer"}}}
    parsed = parse_arguments(("s=12", "n=12", 'o={"k": [1]}', "t=plain text", "e="), schema)
    assert parsed == {"s": "12", "n": 12, "o": {"k": [1]}, "t": "plain text", "e": ""}
    with pytest.raises(click.BadParameter):
        parse_arguments(("=1",), None)


@pytest.mark.parametrize(
    ("block", "line"),
    [
        (
            {"type": "image", "mimeType": "image/png", "data": "aGVsbG8="},
            "[image: image/png, 5 bytes]",
        ),
        ({"type": "audio", "mimeType": "audio/wav", "data": "AAAA"}, "[audio: audio/wav, 3 bytes]"),
        (
            {"type": "resource_link", "uri": "res://a", "name": "a", "mimeType": "text/plain"},
            "[resource_link: res://a, text/plain]",
        ),
        (
            {"type": "resource", "resource": {"uri": "res://b", "text": "héllo"}},
            "[resource: res://b, 6 bytes of text]",
        ),
        ({"type": "future"}, "[future]"),
    ],
    ids=["image", "audio", "link", "embedded", "unknown"],
)
def test_non_text_blocks_are_described(block: dict[str, object], line: str) -> None:
    assert describe_block(block) == line
