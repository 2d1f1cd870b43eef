"""Sandboxed stdio servers: the bwrap command line (in-process), and a real server under real
bubblewrap: it cannot write outside its writable folders, sees a private /tmp and HOME, cannot
read the hidden folders, cannot reach a loopback port with network off and can with it on, and
still serves MCP. A sandbox that cannot be set up says why (a kernel that refuses the namespaces,
bwrap missing)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import UpstreamUnavailable
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams.sandbox import NAMESPACE_HINT, explain, find_bwrap, wrap
from catalyst_mcp.upstreams.sandboxconfig import SandboxSettings
from catalyst_mcp.upstreams.upstream import Upstream
from tests.conftest import FIXTURES, PYTHON, ROOT, free_port, have, require_or_skip

LEAN = str(FIXTURES / "lean_server.py")
CTX = CallContext(era="legacy", protocol_version="2025-11-25", method="tools/call")
# what bwrap 0.8 says when the kernel refuses it a user namespace (seen for real below)
REFUSED = (
    "bwrap: Creating new namespace failed: nesting depth or /proc/sys/user/max_*_namespaces "
    "exceeded (ENOSPC)"
)


def bwrap_works() -> bool:
    if not have("bwrap"):
        return False
    probe = subprocess.run(
        ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-pid", "true"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    return probe.returncode == 0


def require_bwrap() -> None:
    require_or_skip(
        bwrap_works(),
        "bubblewrap (bwrap) is not installed, or cannot create namespaces on this machine "
        "(apt-get install bubblewrap; user namespaces must be allowed)",
    )


# ---- the command line -----------------------------------------------------------------------


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def singles(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_the_command_line_hides_and_binds_what_it_should(tmp_path: Path) -> None:
    home = tmp_path / "home"
    state = tmp_path / "state"
    # an installed package: a link to its real folder, with the install marker
    real = state / "catalyst" / "packages" / "npm" / "pkg" / ".1.0.0.1.abcd1234"
    (real / "catalyst-package.json").parent.mkdir(parents=True)
    (real / "catalyst-package.json").write_text("{}")
    link = real.parent / "1.0.0"
    link.symlink_to(real.name)
    python = executable(home / "py" / "bin" / "mypython", "#!/bin/sh\n")
    executable(real / "bin" / "server", "#!/usr/bin/env -S mypython -u\n")
    data = tmp_path / "data"
    data.mkdir()
    argv, env = wrap(
        "s",
        str(link / "bin" / "server"),
        ["--root", str(data), "--flag"],
        {"PATH": f"{python.parent}:/usr/bin", "HOME": str(home)},
        str(data),
        SandboxSettings(enabled=True, network=False, writable=[str(data)]),
        bwrap="/usr/bin/bwrap",
        environ={"HOME": str(home), "XDG_STATE_HOME": str(state)},
    )
    assert argv[0] == "/usr/bin/bwrap"
    assert argv[-5:] == ["--", str(link / "bin" / "server"), "--root", str(data), "--flag"]
    assert "--unshare-net" in argv and "--die-with-parent" in argv and "--unshare-pid" in argv
    assert ("/", "/") in pairs(argv, "--ro-bind") and argv[argv.index("--cap-drop") + 1] == "ALL"
    hidden = singles(argv, "--tmpfs")
    assert {"/home", "/root", "/run", "/tmp", "/var/tmp"} <= set(hidden)  # tmp_path is in /tmp
    bound = {target: source for source, target in pairs(argv, "--ro-bind")}
    assert bound[str(link)] == str(real)  # the package prefix, where the command names it
    assert bound[str(real)] == str(real)  # and where it really is
    assert bound[str(home / "py")] == str(home / "py")  # the #! interpreter's installation
    assert bound[str(data)] == str(data)  # cwd and the paths among the arguments
    assert pairs(argv, "--bind") == [(str(data), str(data))]
    last_tmpfs = max(i for i, a in enumerate(argv) if a == "--tmpfs")
    first_bind = min(i for i, a in enumerate(argv) if a in ("--bind",))
    binds = [i for i, a in enumerate(argv) if a == "--ro-bind" and argv[i + 1] != "/"]
    assert last_tmpfs < min(binds) and max(binds) < first_bind  # hidden, then shown, then rw
    assert argv[argv.index("--chdir") + 1] == str(data)
    assert env["HOME"] == str(home) and env["TMPDIR"] == "/tmp"


def test_network_on_shares_the_network_and_home_is_the_start_folder() -> None:
    home = str(Path.home())
    argv, env = wrap(
        "s",
        "/bin/true",
        [],
        {},
        None,
        SandboxSettings(enabled=True),
        bwrap="bwrap",
        environ={"HOME": home},
    )
    assert "--unshare-net" not in argv
    hidden = singles(argv, "--tmpfs")
    assert any(home == h or home.startswith(h + "/") for h in hidden)  # emptied
    assert argv[argv.index("--chdir") + 1] == home == env["HOME"]
    # a HOME that is not a folder: a fresh one in the private /home
    argv, env = wrap(
        "s",
        "/bin/true",
        [],
        {},
        None,
        SandboxSettings(enabled=True),
        bwrap="bwrap",
        environ={"HOME": "/nonexistent/home"},
    )
    assert env["HOME"] in ("/home/sandbox", "/tmp/home")
    assert "/nonexistent/home" not in singles(argv, "--tmpfs")


def test_a_writable_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(UpstreamUnavailable, match=r"sandbox\.writable names .*not an existing"):
        wrap(
            "s",
            "/bin/true",
            [],
            {},
            None,
            SandboxSettings(enabled=True, writable=[missing]),
            bwrap="bwrap",
        )


def test_missing_bwrap_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(UpstreamUnavailable, match="apt-get install bubblewrap"):
        find_bwrap("s", str(tmp_path))


def test_bwraps_complaints_are_explained() -> None:
    assert explain("s", ["just the server talking"]) is None
    said = explain("s", ["starting", REFUSED])
    assert said is not None
    assert said.startswith("s could not start in its sandbox (bwrap said: Creating new namespace")
    assert NAMESPACE_HINT in said and "kernel.unprivileged_userns_clone" in said
    debian = (
        "bwrap: No permissions to creating new namespace, likely because the kernel does not "
        "allow non-privileged user namespaces. On e.g. debian this can be enabled with "
        "'sysctl kernel.unprivileged_userns_clone=1'."
    )
    assert NAMESPACE_HINT in (explain("s", [debian]) or "")
    assert NAMESPACE_HINT in (explain("s", ["bwrap: setting up uid map: Permission denied"]) or "")
    missing = explain("s", ["bwrap: execvp /opt/x/server: No such file or directory"]) or ""
    assert "sandbox.readable" in missing
    source = explain("s", ["bwrap: Can't find source path /nope: No such file or directory"])
    assert "does not exist" in (source or "")


def test_the_settings_check_paths_and_kinds() -> None:
    with pytest.raises(ValueError, match="must be an absolute path"):
        SandboxSettings(writable=["relative/dir"])
    with pytest.raises(ValueError, match="'/' cannot be given"):
        SandboxSettings(writable=["/"])
    assert SandboxSettings(readable=["/opt/a/../b/"]).readable == ["/opt/b"]
    with pytest.raises(ValueError, match="only stdio servers"):
        ServerConfig(url="http://127.0.0.1:1/mcp", sandbox={"enabled": True})  # type: ignore[arg-type]


def test_variables_expand_in_sandbox_paths() -> None:
    config = ServerConfig.model_validate(
        {"command": "x", "sandbox": {"writable": ["${DATA}/out"]}},
        context={"environ": {"DATA": "/srv/data"}},
    )
    assert config.sandbox.writable == ["/srv/data/out"]


# ---- a real server under real bubblewrap ----------------------------------------------------


@contextlib.contextmanager
def listening() -> Iterator[int]:
    """A TCP port on the machine's loopback that accepts connections."""
    port = free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(8)
        yield port


@contextlib.asynccontextmanager
async def sandboxed(**sandbox: Any) -> AsyncIterator[Upstream]:
    config = ServerConfig.model_validate(
        {
            "command": PYTHON,
            "args": [LEAN],
            "era": "legacy",
            "ping_interval_seconds": 0,
            "sandbox": {"enabled": True, **sandbox},
        }
    )
    upstream = Upstream("box", "box", config, 20.0)
    await upstream.start()
    await upstream.wait_settled(25)
    try:
        assert upstream.status == "ready", upstream.last_error
        yield upstream
    finally:
        await upstream.stop()


async def tool(upstream: Upstream, name: str, **arguments: Any) -> tuple[bool, str]:
    result = await upstream.call("tools/call", {"name": name, "arguments": arguments}, CTX)
    return bool(result.get("isError")), result["content"][0]["text"]


@pytest.mark.subprocess
async def test_a_sandboxed_server_writes_only_where_it_may(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_bwrap()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    writable = tmp_path / "rw"
    writable.mkdir()
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("do not read")
    state = tmp_path / "state" / "catalyst"  # the gateway's state folder
    state.mkdir(parents=True)
    (state / "catalyst.db").write_text("the gateway's database")
    probe = f"sandbox-probe-{uuid.uuid4().hex}"
    async with sandboxed(writable=[str(writable)], hidden=[str(secret)]) as box:
        assert await tool(box, "write", path=str(writable / "ok.txt"), text="hi") == (
            False,
            "wrote",
        )
        assert (writable / "ok.txt").read_text() == "hi"
        # the machine's files are read-only
        assert await tool(box, "write", path=str(ROOT / probe), text="x") == (True, "EROFS")
        assert not (ROOT / probe).exists()
        # /tmp and HOME are its own: what it writes there never reaches the machine
        assert await tool(box, "write", path=f"/tmp/{probe}", text="x") == (False, "wrote")
        assert not Path(f"/tmp/{probe}").exists()
        _, facts = await tool(box, "whoami")
        home = Path(json.loads(facts)["home"])
        assert await tool(box, "write", path=str(home / probe), text="x") == (False, "wrote")
        try:
            assert not (home / probe).exists()
        finally:
            with contextlib.suppress(FileNotFoundError):
                (home / probe).unlink()  # only if the sandbox failed to keep it private
        # hidden folders are empty: the gateway's state (its database) and sandbox.hidden
        assert await tool(box, "read", path=str(state / "catalyst.db")) == (True, "ENOENT")
        assert await tool(box, "read", path=str(secret / "key.txt")) == (True, "ENOENT")
        # it still reads what it needs: its script, this repository
        assert (await tool(box, "read", path=LEAN))[0] is False


@pytest.mark.subprocess
@pytest.mark.network
async def test_network_off_cuts_even_loopback_and_on_reaches_it() -> None:
    require_bwrap()
    with listening() as port:
        async with sandboxed(network=False) as box:
            assert await tool(box, "connect", host="127.0.0.1", port=port) == (
                True,
                "ECONNREFUSED",
            )
        async with sandboxed(network=True) as box:
            assert await tool(box, "connect", host="127.0.0.1", port=port) == (
                False,
                "connected",
            )


@pytest.mark.subprocess
async def test_a_sandbox_that_cannot_be_set_up_says_why(tmp_path: Path) -> None:
    """A kernel that refuses the namespaces (here: a bwrap stand-in that says what bwrap says
    then, and fails like it) is reported as that, with what to do, not as a crash."""
    fake = tmp_path / "bin"
    executable(fake / "bwrap", f"#!/bin/sh\necho '{REFUSED}' >&2\nexit 1\n")
    config = ServerConfig.model_validate(
        {
            "command": PYTHON,
            "args": [LEAN],
            "env": {"PATH": f"{fake}:/usr/bin:/bin"},
            "sandbox": {"enabled": True},
            "restart_initial_seconds": 30,
        }
    )
    upstream = Upstream("box", "box", config, 20.0)
    await upstream.start()
    try:
        await upstream.wait_settled(20)
        assert upstream.status == "failed"
        error = upstream.health()["error"]
        assert error.startswith("box could not start in its sandbox (bwrap said: Creating new")
        assert "user.max_user_namespaces=0" in error and "sandbox.enabled: false" in error
    finally:
        await upstream.stop()


@pytest.mark.subprocess
async def test_the_kernels_own_refusal_is_explained(tmp_path: Path) -> None:
    """For real: bwrap run as an unprivileged user in a user namespace whose
    max_user_namespaces is 0 (tests/fixtures/nouserns_bwrap.py; needs root to map the ids)."""
    require_bwrap()
    if os.geteuid() != 0:
        pytest.skip("mapping a whole id range into a user namespace needs root")
    fake = tmp_path / "bin"
    wrapper = FIXTURES / "nouserns_bwrap.py"
    executable(fake / "bwrap", f'#!/bin/sh\nexec {PYTHON} {wrapper} "$@"\n')
    config = ServerConfig.model_validate(
        {
            "command": PYTHON,
            "args": [LEAN],
            "env": {"PATH": f"{fake}:{os.environ.get('PATH', '/usr/bin:/bin')}"},
            "sandbox": {"enabled": True},
            "restart_initial_seconds": 30,
        }
    )
    upstream = Upstream("box", "box", config, 20.0)
    await upstream.start()
    try:
        await upstream.wait_settled(20)
        error = upstream.health()["error"]
        assert "could not start in its sandbox (bwrap said: Creating new namespace failed" in error
        assert NAMESPACE_HINT in error
    finally:
        await upstream.stop()
