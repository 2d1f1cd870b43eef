"""The supervisor's sockets: one port for every worker, SO_REUSEPORT per worker on TCP, the one
Unix socket shared, and an address another server holds refused before anything starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from catalyst_mcp.settings import GatewaySettings
from catalyst_mcp.workers.listeners import ListenError, Listeners

pytestmark = pytest.mark.network


def accepted_by(listening: list[socket.socket], port: int) -> int:
    """Which of ``listening`` the kernel hands a new connection to port ``port``."""
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        for i, sock in enumerate(listening):
            sock.settimeout(0.5)
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            conn.close()
            return i
    raise AssertionError("no socket accepted the connection")


def test_port_0_becomes_one_port_that_every_worker_listens_on() -> None:
    listeners = Listeners("127.0.0.1", 0)
    try:
        assert listeners.port != 0 and not listeners.shared
        assert listeners.where() == [f"127.0.0.1:{listeners.port}"]
        first, second = listeners.for_worker(), listeners.for_worker()
        assert first[0].getsockname()[1] == second[0].getsockname()[1] == listeners.port
        assert first[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert first[0].proto == socket.IPPROTO_TCP  # so asyncio turns Nagle off
        # the kernel spreads connections over both workers' sockets
        seen = {accepted_by([first[0], second[0]], listeners.port) for _ in range(64)}
        assert seen == {0, 1}
        for sock in (*first, *second):
            sock.close()
    finally:
        listeners.close()


def test_a_dead_workers_socket_takes_no_more_connections() -> None:
    listeners = Listeners("127.0.0.1", 0)
    try:
        (alive,), (dead,) = listeners.for_worker(), listeners.for_worker()
        dead.close()  # what the kernel does when a worker dies
        assert {accepted_by([alive], listeners.port) for _ in range(16)} == {0}
        alive.close()
    finally:
        listeners.close()


def test_the_reserved_port_accepts_nothing_while_no_worker_listens() -> None:
    listeners = Listeners("127.0.0.1", 0)
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", listeners.port), timeout=2)
    finally:
        listeners.close()


def test_a_port_another_server_listens_on_is_refused() -> None:
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even one that shares
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}"):
            Listeners("127.0.0.1", port)


@pytest.mark.parametrize("listening", [False, True], ids=["reserved", "serving"])
def test_a_second_gateway_on_the_same_port_is_refused(listening: bool) -> None:
    first = Listeners("127.0.0.1", 0)
    held = first.for_worker() if listening else []
    try:
        with pytest.raises(ListenError, match="cannot listen on"):
            Listeners("127.0.0.1", first.port)
        with socket.socket() as single:  # as a 1-worker gateway binds
            single.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError, match="Address already in use"):
                single.bind(("127.0.0.1", first.port))
    finally:
        for sock in held:
            sock.close()
        first.close()


def test_a_unix_socket_is_one_socket_for_every_worker(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    listeners = Listeners.for_gateway(GatewaySettings(uds=path, uds_mode="0660"))
    try:
        assert listeners.shared and listeners.where() == [str(path)]
        assert listeners.for_worker() == listeners.for_worker()
        assert oct(path.stat().st_mode & 0o777) == oct(0o660)
    finally:
        listeners.close()
    assert not path.exists()


def test_a_unix_socket_path_another_server_holds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    first = Listeners("127.0.0.1", 0, str(path))
    try:
        with pytest.raises(ListenError, match="another server is listening"):
            Listeners("127.0.0.1", 0, str(path))
    finally:
        first.close()
