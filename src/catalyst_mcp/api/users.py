"""``/users``: list, create, read, change and delete users (and grant them roles)."""

from __future__ import annotations

from catalyst_mcp.api import models as m
from catalyst_mcp.api.router import ApiRequest, Route
from catalyst_mcp.api.services import AdminServices, unknown
from catalyst_mcp.errors import Missing
from catalyst_mcp.security.rbac import ADMIN_ROLE
from catalyst_mcp.storage.users import KEEP, UserRecord

__all__ = ["UserHandlers", "user_model"]


def user_model(record: UserRecord) -> m.User:
    return m.User(
        name=record.name,
        kind="service" if record.kind == "service" else "user",
        display_name=record.display_name,
        email=record.email,
        disabled=record.disabled,
        roles=list(record.roles),
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


class UserHandlers:
    def __init__(self, services: AdminServices) -> None:
        self.services = services

    async def index(self, request: ApiRequest) -> m.UserList:
        users = await self.services.users().list()
        return m.UserList(users=[user_model(u) for u in users])

    async def create(self, request: ApiRequest) -> m.User:
        body = request.body_as(m.UserCreate)
        request.target = body.name
        try:
            record = await self.services.users().create(
                body.name, body.kind, body.display_name, body.email, body.roles
            )
        except Missing as exc:  # the name is new, so it is a role that is missing
            raise unknown("roles", exc) from None
        return user_model(record)

    async def get(self, request: ApiRequest) -> m.User:
        name = request.path_as(m.NamePath).name
        return user_model(await self.services.users().get(name))

    async def update(self, request: ApiRequest) -> m.User:
        name = request.path_as(m.NamePath).name
        body = request.body_as(m.UserUpdate)
        given = body.model_fields_set
        if body.disabled:
            self.services.guard_self(request, name, "disable")
        if body.roles is not None and ADMIN_ROLE not in body.roles:
            self.services.guard_self(request, name, "take the admin role from")
        users = self.services.users()
        record = await users.get(name)  # Missing (404) names the user, not a role
        if body.roles is not None:
            try:
                record = await users.set_roles(name, body.roles)
            except Missing as exc:
                raise unknown("roles", exc) from None
        if given & {"display_name", "email", "disabled"}:
            record = await users.update(
                name,
                display_name=body.display_name if "display_name" in given else KEEP,
                email=body.email if "email" in given else KEEP,
                disabled=body.disabled,
            )
        # cached keys carry the user's roles and disabled flag: check them afresh
        self.services.forget(await self.services.prefixes_of(name))
        return user_model(record)

    async def delete(self, request: ApiRequest) -> None:
        name = request.path_as(m.NamePath).name
        self.services.guard_self(request, name, "delete")
        prefixes = await self.services.prefixes_of(name)
        await self.services.users().delete(name)
        self.services.forget(prefixes)

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/users",
                self.index,
                action="admin.users.list",
                summary="List users",
                tag="users",
                response=m.UserList,
            ),
            Route(
                "POST",
                "/users",
                self.create,
                action="admin.users.create",
                summary="Create a user",
                tag="users",
                body=m.UserCreate,
                response=m.User,
                status=201,
                changes=True,
            ),
            Route(
                "GET",
                "/users/{name}",
                self.get,
                action="admin.users.get",
                summary="Get a user",
                tag="users",
                path_model=m.NamePath,
                response=m.User,
            ),
            Route(
                "PATCH",
                "/users/{name}",
                self.update,
                action="admin.users.update",
                summary="Change a user: display name, email, disabled, roles",
                tag="users",
                path_model=m.NamePath,
                body=m.UserUpdate,
                response=m.User,
                changes=True,
            ),
            Route(
                "DELETE",
                "/users/{name}",
                self.delete,
                action="admin.users.delete",
                summary="Delete a user with their API keys and secrets",
                tag="users",
                path_model=m.NamePath,
                status=204,
                changes=True,
            ),
        ]
