"""The built-in filesystem server (docs/servers.md#filesystem)."""

from catalyst_mcp.servers.filesystem.server import FilesystemServer

__all__ = ["FilesystemServer"]
