"""``/roles``: the stored RBAC roles (managed here) and the configured ones (read-only)."""

from __future__ import annotations

from pydantic import ValidationError

from catalyst_mcp.api import models as m
from catalyst_mcp.api.router import ApiError, ApiRequest, Route, problems_of
from catalyst_mcp.api.services import AdminServices
from catalyst_mcp.errors import Missing
from catalyst_mcp.security.rbac import ADMIN_ROLE, RoleSpec, load_roles
from catalyst_mcp.storage.roles import RoleRecord, RoleRepo

__all__ = ["BUILTIN_ADMIN", "RoleHandlers", "role_model"]

BUILTIN_ADMIN = m.Role(
    name=ADMIN_ROLE,
    description="Built-in: allows everything (a stored or configured role named 'admin' "
    "replaces it).",
    rules=[{"effect": "allow", "match": ["*"]}],
    source="builtin",
    created_at=None,
    updated_at=None,
)


def role_model(record: RoleRecord) -> m.Role:
    return m.Role(
        name=record.name,
        description=record.description,
        rules=[dict(rule) for rule in record.rules],
        source="stored",
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


class RoleHandlers:
    def __init__(self, services: AdminServices) -> None:
        self.services = services

    def _configured(self) -> dict[str, m.Role]:
        """The roles not managed here: the settings file's, and the built-in admin role."""
        roles = self.services.access.settings.rbac.roles
        found = {
            name: m.Role(
                name=name,
                description=spec.description,
                rules=[
                    rule.model_dump(mode="json", by_alias=True, exclude_defaults=True)
                    for rule in spec.rules
                ],
                source="config",
                created_at=None,
                updated_at=None,
            )
            for name, spec in roles.items()
        }
        found.setdefault(ADMIN_ROLE, BUILTIN_ADMIN)
        return found

    async def index(self, request: ApiRequest) -> m.RoleList:
        roles = self._configured()
        roles.update((r.name, role_model(r)) for r in await RoleRepo(self.services.db).list())
        return m.RoleList(roles=[roles[name] for name in sorted(roles)])

    async def get(self, request: ApiRequest) -> m.Role:
        name = request.path_as(m.RolePath).name
        try:
            return role_model(await RoleRepo(self.services.db).get(name))
        except Missing:
            configured = self._configured().get(name)
            if configured is None:
                raise
            return configured

    async def put(self, request: ApiRequest) -> m.Role:
        name = request.path_as(m.RolePath).name
        body = request.body_as(m.RolePut)
        data = {"name": name, "description": body.description, "rules": body.rules}
        try:  # first for problems located in the body ...
            RoleSpec.model_validate(data)
        except ValidationError as exc:
            raise ApiError.invalid(problems_of(exc, "body")) from None
        # ... then every check a role from the settings file gets (ConfigError: a 422 too)
        load_roles({name: data}, source=f"role {name!r}")
        record = await RoleRepo(self.services.db).put(name, body.description, body.rules)
        await self.services.access.reload_roles()
        return role_model(record)

    async def delete(self, request: ApiRequest) -> None:
        name = request.path_as(m.RolePath).name
        force = request.query_as(m.RoleDeleteQuery).force
        try:
            await self.services.roles().delete(name, force=force)
        except Missing:
            if name in self.services.access.settings.rbac.roles:
                raise ApiError(
                    409, f"role {name!r} is defined in the settings file: remove it there"
                ) from None
            if name == ADMIN_ROLE:
                raise ApiError(409, "the built-in admin role cannot be deleted") from None
            raise
        await self.services.access.reload_roles()
        if force:  # users may have lost the role, and cached keys carry their roles
            self.services.forget(None)

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/roles",
                self.index,
                action="admin.roles.list",
                summary="List roles, stored and configured",
                tag="roles",
                response=m.RoleList,
            ),
            Route(
                "GET",
                "/roles/{name}",
                self.get,
                action="admin.roles.get",
                summary="Get a role",
                tag="roles",
                path_model=m.RolePath,
                response=m.Role,
            ),
            Route(
                "PUT",
                "/roles/{name}",
                self.put,
                action="admin.roles.put",
                summary="Create or replace a stored role",
                tag="roles",
                path_model=m.RolePath,
                body=m.RolePut,
                response=m.Role,
                changes=True,
            ),
            Route(
                "DELETE",
                "/roles/{name}",
                self.delete,
                action="admin.roles.delete",
                summary="Delete a stored role (force: even while users hold it)",
                tag="roles",
                path_model=m.RolePath,
                query=m.RoleDeleteQuery,
                status=204,
                changes=True,
            ),
        ]
