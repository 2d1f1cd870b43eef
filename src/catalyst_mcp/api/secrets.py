"""``/secrets``: store, list (metadata only) and delete secrets; values are write-only."""

from __future__ import annotations

from catalyst_mcp.api import models as m
from catalyst_mcp.api.router import ApiRequest, Route
from catalyst_mcp.api.services import AdminServices, vault_errors
from catalyst_mcp.storage.secrets import SecretRecord

__all__ = ["SecretHandlers", "secret_model"]


def secret_model(record: SecretRecord) -> m.Secret:
    return m.Secret(
        owner=record.owner,
        scope=record.scope,
        name=record.name,
        key_id=record.key_id,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


class SecretHandlers:
    def __init__(self, services: AdminServices) -> None:
        self.services = services

    async def index(self, request: ApiRequest) -> m.SecretList:
        query = request.query_as(m.SecretQuery)
        with vault_errors():
            found = await self.services.secrets().list(query.owner, query.scope)
        return m.SecretList(secrets=[secret_model(s) for s in found])

    async def put(self, request: ApiRequest) -> m.Secret:
        path = request.path_as(m.SecretPath)
        value = request.body_as(m.SecretPut).value.get_secret_value()
        with vault_errors():
            record = await self.services.secrets().put(path.owner, path.scope, path.name, value)
        return secret_model(record)

    async def delete(self, request: ApiRequest) -> None:
        path = request.path_as(m.SecretPath)
        with vault_errors():
            await self.services.secrets().delete(path.owner, path.scope, path.name)

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/secrets",
                self.index,
                action="admin.secrets.list",
                summary="List secrets (metadata only: values are never returned)",
                tag="secrets",
                query=m.SecretQuery,
                response=m.SecretList,
            ),
            Route(
                "PUT",
                "/secrets/{owner}/{scope}/{name}",
                self.put,
                action="admin.secrets.put",
                summary="Store a secret, replacing any value (write-only)",
                tag="secrets",
                path_model=m.SecretPath,
                body=m.SecretPut,
                response=m.Secret,
                changes=True,
            ),
            Route(
                "DELETE",
                "/secrets/{owner}/{scope}/{name}",
                self.delete,
                action="admin.secrets.delete",
                summary="Delete a secret",
                tag="secrets",
                path_model=m.SecretPath,
                status=204,
                changes=True,
            ),
        ]
