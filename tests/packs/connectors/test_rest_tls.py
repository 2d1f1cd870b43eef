"""The REST connector over TLS, against a real https server on 127.0.0.1 with certificates made
for the test: the guard's vetted address is dialled while the certificate is checked against
the name; ca_file, verify: false and client certificates (mutual TLS)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec

from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.connectors.rest import RestConnector
from catalyst_mcp.packs.schema import RestAction, RestConnection
from tests.certs import certificate, write_pem
from tests.packs.connectors.apiserver import ApiServer

pytestmark = pytest.mark.network

NAME = "api.example.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Test CA", ca_key)
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_pem, _ = write_pem(folder, "ca", ca, ca_key)
    server_pem, server_key_pem = write_pem(
        folder, "server", certificate(NAME, server_key, (ca, ca_key)), server_key
    )
    client_pem, client_key_pem = write_pem(
        folder, "client", certificate("pack", client_key, (ca, ca_key)), client_key
    )
    return {
        "ca": ca_pem,
        "server": server_pem,
        "server_key": server_key_pem,
        "client": client_pem,
        "client_key": client_key_pem,
    }


def server_context(pki: dict[str, Path], *, mutual: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["server"], pki["server_key"])
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki["ca"])
    return context


@pytest_asyncio.fixture
async def https(pki: dict[str, Path]) -> AsyncIterator[ApiServer]:
    async with ApiServer({}, server_context(pki)).running() as server:
        yield server


def connector(port: int, **config: Any) -> RestConnector:
    settings = {"type": "rest", "base_url": f"https://{NAME}:{port}", **config}
    conn = RestConnector("api", RestConnection.model_validate(settings))

    async def resolve(host: str, port: int) -> list[str]:
        assert host == NAME
        return ["127.0.0.1"]

    conn.guard.resolver = resolve
    conn.guard.allow_private = True
    return conn


ECHO = RestAction(connection="api", path="/echo")


async def test_the_name_is_verified_while_the_vetted_address_is_dialled(
    https: ApiServer, pki: dict[str, Path]
) -> None:
    conn = connector(https.port, tls={"ca_file": str(pki["ca"])})
    result = await conn.call(ECHO, {})
    assert result.value["headers"]["host"] == f"{NAME}:{https.port}"
    await conn.call(ECHO, {})
    assert https.connections == 1
    await conn.close()


async def test_an_untrusted_certificate_is_refused(https: ApiServer) -> None:
    conn = connector(https.port)
    with pytest.raises(PackError) as info:
        await conn.call(ECHO, {})
    message = str(info.value)
    assert message == (
        f"connection 'api': cannot connect to {NAME}: TLS certificate not trusted "
        "(unable to get local issuer certificate)"
    )
    await conn.close()


async def test_verify_false_accepts_it_and_warns_once(
    https: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    conn = connector(https.port, tls={"verify": False})
    with caplog.at_level(logging.WARNING, logger="catalyst.packs.rest"):
        assert (await conn.call(ECHO, {})).status == 200
        await conn.close()
        assert (await conn.call(ECHO, {})).status == 200  # a new pool, the same context
    warnings = [r for r in caplog.records if "not verified" in r.getMessage()]
    assert len(warnings) == 1
    await conn.close()


async def test_client_certificate(pki: dict[str, Path]) -> None:
    async with ApiServer({}, server_context(pki, mutual=True)).running() as server:
        tls = {"ca_file": str(pki["ca"])}
        mutual = {**tls, "client_cert": str(pki["client"]), "client_key": str(pki["client_key"])}
        conn = connector(server.port, tls=mutual)
        assert (await conn.call(ECHO, {})).status == 200
        await conn.close()
        without = connector(server.port, tls=tls, retries={"attempts": 1})
        with pytest.raises(PackError, match="connection 'api'"):
            await without.call(ECHO, {})
        await without.close()


async def test_a_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    conn = connector(443, tls={"ca_file": str(tmp_path / "nope.pem")})
    with pytest.raises(PackError, match="cannot load the TLS files"):
        await conn.call(ECHO, {})
