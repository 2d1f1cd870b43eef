"""The built-in database server (docs/servers.md#database)."""

from catalyst_mcp.servers.database.server import DatabaseServer

__all__ = ["DatabaseServer"]
