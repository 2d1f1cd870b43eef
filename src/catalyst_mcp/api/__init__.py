"""The admin REST API under ``/api/v1`` (docs/api.md): users, API keys, roles, secrets, audit.

No web framework: :mod:`~catalyst_mcp.api.router` is a small raw-ASGI router like the rest of
the gateway's HTTP side, :mod:`~catalyst_mcp.api.admin` holds the handlers and the route table,
:mod:`~catalyst_mcp.api.server` authenticates, authorizes and audits, and
:mod:`~catalyst_mcp.api.openapi` generates the OpenAPI 3.1 document from the route table.
"""

from catalyst_mcp.api.server import PREFIX, AdminApi

__all__ = ["PREFIX", "AdminApi"]
