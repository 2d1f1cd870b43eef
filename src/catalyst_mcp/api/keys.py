"""``/keys``: list, create (the token is shown once) and revoke API keys."""

from __future__ import annotations

from catalyst_mcp.api import models as m
from catalyst_mcp.api.router import ApiRequest, Route
from catalyst_mcp.api.services import AdminServices, unknown
from catalyst_mcp.errors import Conflict, Missing
from catalyst_mcp.security import apikeys
from catalyst_mcp.storage.keys import KeyRecord, KeyRepo

__all__ = ["KeyHandlers", "key_model"]

ATTEMPTS = 3


def key_model(record: KeyRecord) -> m.Key:
    return m.Key(
        user=record.user,
        name=record.name,
        prefix=record.prefix,
        scopes=None if record.scopes is None else sorted(record.scopes),
        created_at=record.created_at,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
        last_used_at=record.last_used_at,
    )


class KeyHandlers:
    def __init__(self, services: AdminServices) -> None:
        self.services = services

    async def index(self, request: ApiRequest) -> m.KeyList:
        user = request.query_as(m.KeyQuery).user
        keys = await KeyRepo(self.services.db).list(user)
        return m.KeyList(keys=[key_model(k) for k in keys])

    async def create(self, request: ApiRequest) -> m.KeyCreated:
        body = request.body_as(m.KeyCreate)
        keys = KeyRepo(self.services.db)
        attempt = 0
        while True:
            new = apikeys.generate()
            request.target = new.prefix
            try:
                record = await keys.create(
                    body.user, body.name, new.prefix, new.key_hash, body.scopes, body.expires_at
                )
            except Missing as exc:
                raise unknown("user", exc) from None
            except Conflict:  # the random prefix is taken (rare): draw another key
                attempt += 1
                if attempt == ATTEMPTS:
                    raise
                continue
            return m.KeyCreated(**key_model(record).model_dump(), token=new.token)

    async def revoke(self, request: ApiRequest) -> m.Key:
        prefix = request.path_as(m.KeyPath).prefix
        record = await KeyRepo(self.services.db).revoke(prefix)
        self.services.forget([prefix])  # this instance refuses it from the next request on
        return key_model(record)

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/keys",
                self.index,
                action="admin.keys.list",
                summary="List API keys (never the keys themselves)",
                tag="keys",
                query=m.KeyQuery,
                response=m.KeyList,
            ),
            Route(
                "POST",
                "/keys",
                self.create,
                action="admin.keys.create",
                summary="Create an API key: the token is returned this once",
                tag="keys",
                body=m.KeyCreate,
                response=m.KeyCreated,
                status=201,
                changes=True,
            ),
            Route(
                "DELETE",
                "/keys/{prefix}",
                self.revoke,
                action="admin.keys.revoke",
                summary="Revoke an API key (at once, for good)",
                tag="keys",
                path_model=m.KeyPath,
                response=m.Key,
                changes=True,
            ),
        ]
