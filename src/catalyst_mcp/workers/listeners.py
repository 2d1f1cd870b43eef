"""The listening sockets of ``catalyst serve --workers N``, bound once, by the supervisor.

The supervisor binds before any worker starts, so a port that is taken (or a Unix socket path
that is) is reported once, by the parent, before anything is spawned; port 0 becomes one real
port that every worker shares; and a restarted worker serves on the same address.

Two ways to share the address (docs/decisions/027-workers-and-deployment.md):

* **TCP: one socket per worker, all bound with ``SO_REUSEPORT``.** The kernel spreads new
  connections over the workers' sockets by a hash of the connection's addresses, so a burst of
  connections (a load balancer's pool, a client's keep-alive pool) is split evenly instead of
  being accepted by whichever worker woke first. The supervisor holds one more socket on the
  address, bound but not listening: it keeps the port reserved while every worker restarts,
  and receives no connections. When a worker dies, its socket dies with it (its queued
  connections are reset, as when a single gateway dies) and new connections go to the others;
  the restarted worker gets a new socket on the same address.
* **Unix socket: one socket shared by every worker** (``SO_REUSEPORT`` does not spread Unix
  sockets): each worker accepts from the same queue; the supervisor keeps it open, so
  connections wait in its queue, not refused, while a worker restarts.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from catalyst_mcp.settings import GatewaySettings
    from catalyst_mcp.transports.unixsocket import UnixSocket

__all__ = ["ListenError", "Listeners"]

BACKLOG = 2048


class ListenError(Exception):
    """The address cannot be listened on; the message says which and why."""


class Listeners:
    """Where the workers listen: :meth:`for_worker` gives each worker its sockets.

    Only the standard library is imported for TCP: the supervisor process stays small."""

    def __init__(
        self, host: str, port: int, uds: str | None = None, uds_mode: str = "0600"
    ) -> None:
        self.host = host
        self.port = port
        self.unix: UnixSocket | None = None
        self._reserved: list[socket.socket] = []  # TCP: one bound, not listening, per address
        self._addresses: list[tuple[int, tuple[object, ...]]] = []  # (family, sockaddr)
        if uds is not None:
            from catalyst_mcp.transports.serving import ServerError
            from catalyst_mcp.transports.unixsocket import UnixSocket, parse_mode

            try:
                self.unix = UnixSocket(Path(uds), parse_mode(uds_mode), BACKLOG)
            except (ServerError, ValueError) as exc:
                raise ListenError(str(exc)) from exc
            return
        try:
            infos = socket.getaddrinfo(
                self.host or None,
                self.port,
                type=socket.SOCK_STREAM,
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_PASSIVE,
            )
        except OSError as exc:
            raise ListenError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        seen: set[tuple[int, tuple[object, ...]]] = set()
        for family, _, _, _, address in infos:
            key = (int(family), tuple(address))
            if key in seen:
                continue
            seen.add(key)
            if self.port == 0 and self._reserved:  # port 0: every address on the first's port
                address = (address[0], self.port, *address[2:])
            # Probed without SO_REUSEPORT first: a socket with it would join a group that
            # another gateway of the same user already listens in, and split its traffic.
            probe = self._bind(int(family), tuple(address), listen=False, reuse_port=False)
            address = (address[0], probe.getsockname()[1], *address[2:])
            probe.close()
            # The reservation lacks SO_REUSEADDR, so that such a probe by another gateway (or
            # a single-process gateway's bind) fails on it while no worker listens.
            sock = self._bind(int(family), tuple(address), listen=False, reuse_addr=False)
            self._reserved.append(sock)
            if self.port == 0:
                self.port = sock.getsockname()[1]
            self._addresses.append((int(family), (address[0], self.port, *address[2:])))

    @classmethod
    def for_gateway(cls, gateway: GatewaySettings) -> Listeners:
        uds = str(gateway.uds) if gateway.uds is not None else None
        return cls(gateway.host, gateway.port, uds, gateway.uds_mode)

    @property
    def shared(self) -> bool:
        """Whether every worker accepts from the same socket (a Unix socket)."""
        return self.unix is not None

    def where(self) -> list[str]:
        """The addresses, as a person reads them: ``127.0.0.1:8765``, ``[::1]:8765``."""
        if self.unix is not None:
            return [str(self.unix.path)]
        return [
            f"[{address[0]}]:{self.port}"
            if family == socket.AF_INET6
            else f"{address[0]}:{self.port}"
            for family, address in self._addresses
        ]

    def for_worker(self) -> list[socket.socket]:
        """Listening sockets for one (new or restarted) worker. With TCP they are new sockets,
        which the caller closes once the worker holds them; the Unix socket is the shared one,
        which the caller must not close."""
        if self.unix is not None:
            return [self.unix.sock]
        made: list[socket.socket] = []
        try:
            for family, address in self._addresses:
                made.append(self._bind(family, address, listen=True))
        except ListenError:
            for sock in made:
                sock.close()
            raise
        return made

    def close(self) -> None:
        for sock in self._reserved:
            sock.close()
        self._reserved.clear()
        if self.unix is not None:
            self.unix.remove()
            self.unix = None

    def _bind(
        self,
        family: int,
        address: tuple[object, ...],
        *,
        listen: bool,
        reuse_port: bool = True,
        reuse_addr: bool = True,
    ) -> socket.socket:
        # IPPROTO_TCP given explicitly: asyncio sets TCP_NODELAY only on sockets that say so
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            if reuse_addr:  # a previous run's connections in TIME_WAIT do not block the port
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                with contextlib.suppress(OSError):  # the IPv4 address gets its own socket
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            if listen:
                sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            raise ListenError(
                f"cannot listen on {self.host}:{address[1]}: {exc.strerror or exc}"
            ) from exc
        return sock
