"""What every admin handler works with: the gateway's :class:`Access`, its database and the
secrets store, plus the helpers that make a change take effect on this instance at once."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from catalyst_mcp.api.router import ApiError, ApiRequest, Problem
from catalyst_mcp.errors import ConfigError, Missing
from catalyst_mcp.security.access import Access
from catalyst_mcp.security.rbac import ADMIN_ROLE
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.roles import RoleRepo
from catalyst_mcp.storage.users import UserRepo

if TYPE_CHECKING:
    from catalyst_mcp.security.secretstore import SecretStore
    from catalyst_mcp.storage.db import Database
    from catalyst_mcp.trust.pinning import Pinning
    from catalyst_mcp.upstreams.serverset import ServerSet

__all__ = ["AdminServices", "unknown", "vault_errors"]


def unknown(field: str, exc: Missing) -> ApiError:
    """A name in the body that does not exist: a 422 pointing at the field."""
    return ApiError(422, exc.message, problems=[Problem(f"body.{field}", exc.message)])


@contextlib.contextmanager
def vault_errors() -> Iterator[None]:
    """No vault key (or an invalid one): secrets are unavailable, not the request invalid."""
    try:
        yield
    except ConfigError as exc:
        raise ApiError(503, f"secrets are unavailable: {exc.message}") from None


class AdminServices:
    """The gateway's :class:`Access` and database (None: storage is off, which the server
    answers with 503 before any handler runs) and the secrets store, made when first used."""

    def __init__(
        self,
        access: Access,
        db: Database | None,
        environ: Mapping[str, str] | None = None,
        *,
        servers: ServerSet | None = None,
        pinning: Pinning | None = None,
    ) -> None:
        self.access = access
        self.servers = servers  # the upstream servers (None: an API without a gateway's)
        self._db = db
        self._environ = environ
        self._secrets: SecretStore | None = None
        self._pinning = pinning

    @property
    def db(self) -> Database:
        if self._db is None:
            raise ApiError(503, "storage is off")
        return self._db

    def roles(self) -> RoleRepo:
        """The stored roles; deleting one whose name stays valid (configured or built in)
        keeps its holders' grants."""
        return RoleRepo(self.db, known_roles={ADMIN_ROLE, *self.access.settings.rbac.roles})

    def users(self) -> UserRepo:
        """The users, with the role names that need no stored role: the built-in ``admin``
        and the roles of the settings file."""
        known = {ADMIN_ROLE, *self.access.settings.rbac.roles}
        return UserRepo(self.db, known_roles=known)

    def secrets(self) -> SecretStore:
        """The secrets store (ApiError 503 when the vault key is set but invalid)."""
        if self._secrets is None:
            from catalyst_mcp.security.secretstore import SecretStore

            environ = os.environ if self._environ is None else self._environ
            with vault_errors():
                self._secrets = SecretStore.from_environ(self.db, environ)
        return self._secrets

    @property
    def pinning(self) -> Pinning:
        """The gateway's tool pins (approvals release held tools here at once); without a
        gateway's, one over the database that only records approvals."""
        if self._pinning is None:
            from catalyst_mcp.trust.pinning import Pinning

            audit = self.access.audit
            self._pinning = Pinning(self.db, audit=audit.record if audit is not None else None)
        return self._pinning

    def forget(self, prefixes: list[str] | None) -> None:
        """Stop trusting these cached keys on this instance (None: every cached key)."""
        cache = self.access.keys
        if cache is None:
            return
        if prefixes is None:
            cache.forget()
        for prefix in prefixes or ():
            cache.forget(prefix)

    async def prefixes_of(self, user: str) -> list[str]:
        """The prefixes of ``user``'s keys (Missing if there is no such user)."""
        return [key.prefix for key in await KeyRepo(self.db).list(user)]

    @staticmethod
    def guard_self(request: ApiRequest, name: str, what: str) -> None:
        """An administrator signed in with an API key may not lock themselves out with it."""
        identity = request.identity
        if identity.via == "api_key" and identity.subject == name:
            raise ApiError(409, f"you cannot {what} the user you are signed in as")
