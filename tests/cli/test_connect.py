"""``catalyst connect``: the shell through a real terminal (pty), and with lines piped in."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from tests.cli.conftest import ThreadedGateway
from tests.cli.helpers import STDIO_COMMAND, run, stdio_server, write_config
from tests.cli.screen import Terminal
from tests.conftest import EXTRA_UPSTREAM, stdio_upstream

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

Completed = subprocess.CompletedProcess[str]
CATALYST = str(Path(sys.executable).parent / "catalyst")
SECRET = "an-hs256-secret-of-at-least-32-bytes!!"
RESOURCE = "http://127.0.0.1/mcp"
COMMAND = " ".join(STDIO_COMMAND)


@pytest.fixture(scope="module")
def gateway() -> Iterator[ThreadedGateway]:
    """A gateway serving the SDK test upstream (plus ``logs`` and ``touch``) as ``up``."""
    with ThreadedGateway({"servers": {"up": stdio_upstream(EXTRA_UPSTREAM)}}) as live:
        yield live


@pytest.fixture
def terminal(gateway: ThreadedGateway, tmp_path: Path) -> Iterator[tuple[Terminal, str]]:
    """``catalyst connect <gateway URL>`` in a pty, once its prompt shows; and the prompt."""
    history = tmp_path / "history"
    term = Terminal([CATALYST, "connect", gateway.url, "--history", str(history)])
    prompt = gateway.url.split("//")[1].split("/")[0] + "> "
    try:
        term.wait_for_prompt(prompt)
        yield term, prompt
    finally:
        term.stop()


# ---- through a terminal ----------------------------------------------------------------------


def test_completion_argument_prompts_result_error_and_exit(
    terminal: tuple[Terminal, str],
) -> None:
    term, prompt = terminal
    screen = term.text()
    assert "catalyst 0.1.0, modern era (protocol 2026-07-28) over streamable-http" in screen
    term.send("call up__a\t")  # the only tool starting so: Tab completes it
    deadline = time.monotonic() + 10
    while term.cursor_line() != f"{prompt}call up__add":
        assert time.monotonic() < deadline, term.text()
        time.sleep(0.05)
    term.send("\r")
    term.wait_for_prompt("a: ")
    assert "  a (integer, required)" in term.text()
    term.line("2")
    term.wait_for_prompt("b: ")
    term.line("x")  # not an integer: said, and asked again
    term.wait_for("  b: expected an integer, got 'x'")
    term.wait_for_prompt("b: ")
    term.line("3")
    term.wait_for_prompt(prompt)
    screen = term.text()
    assert 'b: 3\n5\nstructuredContent:\n{\n  "result": 5\n}\n' + prompt.rstrip() in screen
    term.line("call up__nope")
    term.wait_for("error: unknown tool 'up__nope'")
    term.wait_for_prompt(prompt)
    term.line("call up__add a=1 b=zz")
    term.wait_for("error: b: expected an integer, got 'zz'")
    term.wait_for_prompt(prompt)
    term.line("call up__echo text=still-alive")  # the shell goes on after errors
    term.wait_for("still-alive\n")
    term.wait_for_prompt(prompt)
    term.line("exit")
    assert term.exit_status() == 0


def test_ctrl_c_cancels_a_prompt_or_a_call_not_the_shell(terminal: tuple[Terminal, str]) -> None:
    term, prompt = terminal
    term.line("call up__add")
    term.wait_for_prompt("a: ")
    term.send("\x03")
    term.wait_for("call cancelled")
    term.wait_for_prompt(prompt)
    term.line("call up__sleep seconds=30")
    term.wait_for(f"{prompt}call up__sleep seconds=30")
    time.sleep(0.5)
    term.send("\x03")
    term.wait_for("interrupted")
    term.wait_for_prompt(prompt)
    term.send("\x03")  # at the prompt: clears the line, the shell stays
    term.wait_for_prompt(prompt)
    term.line("call up__echo text=after")
    term.wait_for("\nafter\n")
    term.send("\x04")  # Ctrl-D leaves
    assert term.exit_status() == 0


def test_notifications_elicitation_and_history(gateway: ThreadedGateway, tmp_path: Path) -> None:
    history = tmp_path / "history"
    term = Terminal([CATALYST, "connect", gateway.url, "--history", str(history)])
    prompt = gateway.url.split("//")[1].split("/")[0] + "> "
    try:
        term.wait_for_prompt(prompt)
        term.line("call up__touch")
        term.wait_for("note: the tools list changed (11 now)")
        term.line("call up__logs")
        term.wait_for("log info: hello from upstream")
        term.line("call up__slow steps=2")
        term.wait_for("progress: 2/2 step 2")
        term.wait_for_prompt(prompt)
        term.line("call up__greet_user")
        term.wait_for("the server asks: What is your name?")
        term.wait_for_prompt("name: ")
        term.line("Ada")
        term.wait_for("Hello, Ada!")
        term.wait_for_prompt(prompt)
        term.line("exit")
        assert term.exit_status() == 0
    finally:
        term.stop()
    assert "call up__greet_user" in history.read_text()
    again = Terminal([CATALYST, "connect", gateway.url, "--history", str(history)])
    try:
        again.wait_for_prompt(prompt)
        again.send("\x1b[A")  # Up: the last command of the previous session
        deadline = time.monotonic() + 10
        while again.cursor_line() != f"{prompt}exit":
            assert time.monotonic() < deadline, again.text()
            time.sleep(0.05)
    finally:
        again.stop()


# ---- lines piped in ---------------------------------------------------------------------------


def script(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def run_process(*args: str, input: str = "", env: dict[str, str] | None = None) -> Completed:
    """``catalyst ARGS`` as its own process: one with a gateway served in this process's
    thread must not share the process-wide timers (catalyst_mcp.deadlines) with it."""
    return subprocess.run(
        [CATALYST, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_piped_commands_against_a_stdio_server() -> None:
    result = run(
        "connect",
        "--command",
        COMMAND,
        input=script(
            "help",
            "tools ad",
            "describe add",
            'call add {"a": 5, "b": 6}',
            "call add a=1",
            "2",
            "call add a=1 b=2 c=3",
            "call add {nope",
            "read res://hello",
            "prompt greet name=Ada",
            "prompts",
            "resources",
            "templates",
            "loglevel debug",
            "loglevel loud",
            "info",
            "frobnicate",
            "quit",
            "tools",
        ),
    )
    assert result.exit_code == 0, result.output
    out, err = result.stdout, result.stderr
    assert "call TOOL [{json} | key=value ...]" in out
    assert "add   Add two integers (structured output)." in out
    assert "  a (integer, required)\n  b (integer, required)\n" in out
    assert '"required": [\n' in out and "output schema:" in out
    assert "11\nstructuredContent:" in out
    assert "  b (integer, required)\n3\n" in out  # only the missing required one was asked
    assert "error: the arguments are not valid JSON" in err
    assert "hello resource" in out
    assert "user: Please greet Ada" in out
    assert "greet  name       A greeting prompt." in out
    assert "res://hello  text/plain" in out
    assert "res://greet/{name}" in out
    assert "log messages at debug and above are shown" in out
    assert "error: unknown level 'loud'" in err
    assert "instructions: A test server." in out
    assert "error: unknown command 'frobnicate'; type `help`" in err
    assert out.endswith("log level: debug\n")  # `tools` after `quit` never ran


def test_invalid_arguments_are_refused_before_the_call() -> None:
    result = run(
        "connect",
        "--command",
        COMMAND,
        input=script('call add {"a": "one", "b": 2}', "call add a=1 b=2"),
    )
    assert result.exit_code == 0
    assert "error: invalid arguments for add: a: 'one' is not of type 'integer'" in result.stderr
    assert result.stdout.rstrip().endswith('{\n  "result": 3\n}')


def test_a_configured_server_by_name(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"local": stdio_server(disabled=True)})
    result = run("connect", "local", "--config", str(config), input=script("tools e"))
    assert result.exit_code == 0, result.stderr
    assert "connected to local: test-upstream 1.0.0" in result.stdout
    assert "\necho        Echo text back." in result.stdout  # its own names, not local__echo
    unknown = run("connect", "nope", "--config", str(config))
    assert unknown.exit_code == 2
    assert "'nope' is not a URL, `gateway`, or a server of" in unknown.stderr
    assert "(servers: local)" in unknown.stderr


def test_the_gateway_at_its_configured_address(gateway: ThreadedGateway, tmp_path: Path) -> None:
    assert gateway.live is not None
    config = write_config(tmp_path / "c.yaml", {}, gateway={"port": gateway.live.port})
    result = run_process("connect", "--config", str(config), input=script("tools up__ec"))
    assert result.returncode == 0, result.stderr
    assert "connected to gateway: catalyst 0.1.0" in result.stdout
    assert "up__echo" in result.stdout


def test_websocket_url(gateway: ThreadedGateway) -> None:
    assert gateway.live is not None
    url = f"ws://127.0.0.1:{gateway.live.port}/ws"
    result = run_process("connect", url, input=script("call up__echo text=over-ws"))
    assert result.returncode == 0, result.stderr
    assert "over websocket" in result.stdout
    assert "over-ws" in result.stdout


def test_cannot_connect_is_exit_4(dead_url: str) -> None:
    result = run("connect", dead_url, "--timeout", "5", input="tools\n")
    assert result.exit_code == 4
    assert result.stderr.startswith(f"error: cannot connect to {dead_url}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_401_says_how_to_give_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/gw.db"},
        "auth": {"enabled": True, "resource_url": RESOURCE, "jwt": {"hs256_secret": SECRET}},
    }
    with ThreadedGateway(settings) as live:
        refused = run_process("connect", live.url, "--timeout", "5", input="tools\n")
        assert refused.returncode == 4
        assert "HTTP 401" in refused.stderr
        assert "--api-key-env NAME sends the API key" in refused.stderr
        claims = {"sub": "ada", "aud": RESOURCE, "exp": int(time.time()) + 60, "roles": ["admin"]}
        token = jwt.encode(claims, SECRET, "HS256")
        result = run_process(
            "connect", live.url, "--api-key-env", "MY_KEY", input="info\n", env={"MY_KEY": token}
        )
        assert result.returncode == 0, result.stderr
        assert "server: catalyst" in result.stdout
        assert live.live is not None
        config = write_config(tmp_path / "c.yaml", {}, gateway={"port": live.live.port})
        keyless = run_process(
            "connect", "--config", str(config), "--timeout", "5", env={"CATALYST_API_KEY": ""}
        )
        assert keyless.returncode == 4
        gateway_key = run_process(
            "connect", "--config", str(config), input="info\n", env={"CATALYST_API_KEY": token}
        )
        assert gateway_key.returncode == 0, gateway_key.stderr  # the gateway: the key by default
        assert "connected to gateway" in gateway_key.stdout
        monkeypatch.delenv("MY_KEY", raising=False)
        unset = run("connect", live.url, "--api-key-env", "MY_KEY")
        assert unset.exit_code == 2
        assert "$MY_KEY is not set" in unset.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://h/mcp", "--command", "x"], "give a URL or NAME, or --command, not both"),
        (["--command", "x", "--header", "A: b"], "--header, --api-key-env and --transport need"),
        (["--env", "A=b"], "--env needs --command"),
        (["--command", "  "], "the command is empty"),
        (["ftp://h/x"], "must start with http://, https://, ws:// or wss://"),
        (["http://h/mcp", "--api-key-env", "1x"], "must be an environment variable name"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = run("connect", *args)
    assert result.exit_code == 2
    assert message in result.stderr
