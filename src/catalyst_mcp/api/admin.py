"""The admin API's route table: users, API keys, roles, secrets, the audit trail, servers and
tool pins.

Each area's handlers live in their own module (:mod:`.users`, :mod:`.keys`, :mod:`.roles`,
:mod:`.secrets`, :mod:`.audit`, :mod:`.servers`, :mod:`.pins`) and each handler does one thing
through the storage repositories and returns a response model; authentication, the ``admin``
check, parsing, error answers and auditing happen around them (:mod:`catalyst_mcp.api.server`).

Changes take effect on this instance at once: a revoked key is forgotten by the key cache, a
changed or deleted user's cached keys are dropped, and the RBAC policy is recompiled when a
role changes, and approved tool definitions are served again. Other instances see revocations
and user changes within ``auth.key_cache_seconds``, approvals within seconds, and role changes
when they next reload roles (a restart).
"""

from __future__ import annotations

from catalyst_mcp.api.audit import AuditHandlers
from catalyst_mcp.api.keys import KeyHandlers
from catalyst_mcp.api.pins import PinHandlers
from catalyst_mcp.api.roles import RoleHandlers
from catalyst_mcp.api.router import Route
from catalyst_mcp.api.secrets import SecretHandlers
from catalyst_mcp.api.servers import ServerHandlers
from catalyst_mcp.api.services import AdminServices
from catalyst_mcp.api.users import UserHandlers

__all__ = ["admin_routes"]


def admin_routes(services: AdminServices) -> list[Route]:
    """Every admin route (relative to ``/api/v1``), in the order the docs list them."""
    return [
        *UserHandlers(services).routes(),
        *KeyHandlers(services).routes(),
        *RoleHandlers(services).routes(),
        *SecretHandlers(services).routes(),
        *AuditHandlers(services).routes(),
        *ServerHandlers(services.servers).routes(),
        *PinHandlers(services).routes(),
    ]
