"""The connection of one Kubernetes server to its cluster: configuration, clients, requests.

The official client's asyncio variant (``kubernetes.aio``, decision 020) loads the kubeconfig
(path and context, with its exec plugins and token refresh) or the in-cluster service
account, once, on the first call. A ``token`` option replaces the user's credentials, per
caller when it is a ``${secret:NAME}`` reference: one ``ApiClient`` per distinct token (at
most 32, least recently used closed). Requests go through the client's own serialisation and
authentication (``param_serialize``, ``call_api``) and come back as plain JSON; a refusal of
the API server (its ``Status`` object) becomes a :class:`BuiltinError` with the server's own
message, which names the object and the verb and never a credential.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from kubernetes.aio.client import ApiClient, Configuration
from kubernetes.aio.config import ConfigException, load_incluster_config, load_kube_config

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.security.references import fill, names_in
from catalyst_mcp.servers.config import KubernetesOptions

__all__ = ["Cluster", "Json", "SecretLookup"]

log = logging.getLogger("catalyst.servers.kubernetes")

Json = dict[str, Any]
SecretLookup = Callable[[str, CallContext | None], Awaitable[str | None]]
MAX_CLIENTS = 32
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
JSON_TYPES = ("application/json",)


class Cluster:
    """The API server of one Kubernetes server entry, as seen by each caller."""

    def __init__(
        self, server: str, options: KubernetesOptions, secrets: SecretLookup | None = None
    ) -> None:
        self.server = server
        self.options = options
        self.secrets = secrets
        self.secret_names = sorted(names_in(options.token or ""))
        self.default_namespace = options.namespace or "default"
        self._base: Configuration | None = None
        self._loading = asyncio.Lock()
        self._clients: OrderedDict[str, ApiClient] = OrderedDict()

    # ---- configuration -----------------------------------------------------------------------

    async def namespace(self) -> str:
        """The namespace of calls that name none (the kubeconfig is loaded first: its
        context may name it)."""
        await self._configuration()
        return self.default_namespace

    async def _configuration(self) -> Configuration:
        if self._base is not None:
            return self._base
        async with self._loading:
            if self._base is None:
                self._base = await self._load()
        return self._base

    async def _load(self) -> Configuration:
        opts = self.options
        config = Configuration()
        try:
            if opts.in_cluster:
                load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
                if opts.namespace is None:
                    self.default_namespace = _service_account_namespace() or "default"
            else:
                path = _kubeconfig_path(opts.kubeconfig)
                loader = await load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=path,
                    context=opts.context,
                    client_configuration=config,
                    persist_config=False,
                )
                current = getattr(loader, "current_context", None) or {}
                namespace = (current.get("context") or {}).get("namespace")
                if opts.namespace is None and isinstance(namespace, str) and namespace:
                    self.default_namespace = namespace
        except (ConfigException, OSError, ValueError, KeyError, TypeError) as error:
            reason = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
            where = "in-cluster configuration" if opts.in_cluster else "kubeconfig"
            raise BuiltinError(f"{self.server}: cannot load the {where}: {reason}") from None
        return config

    async def api_for(self, ctx: CallContext | None) -> ApiClient:
        """The client for this caller (their token, when the token is a secret)."""
        base = await self._configuration()
        token = self.options.token
        if token is not None and self.secret_names:
            values = {}
            for name in self.secret_names:
                value = await self.secrets(name, ctx) if self.secrets is not None else None
                if value is None:
                    raise BuiltinError(
                        f"{self.server}: secret {name} is not set for this user "
                        f"(`catalyst secrets set {name}`)"
                    )
                values[name] = value
            token = fill(token, values)
        key = hashlib.sha256((token or "").encode()).hexdigest()
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        config = base
        if token is not None:
            config = copy.copy(base)
            config.api_key = {"BearerToken": token}
            config.api_key_prefix = {"BearerToken": "Bearer"}
            config.refresh_api_key_hook = None
            config.cert_file = None
            config.key_file = None
        client = ApiClient(configuration=config)
        self._clients[key] = client
        if len(self._clients) > MAX_CLIENTS:
            _, oldest = self._clients.popitem(last=False)
            await oldest.close()  # type: ignore[no-untyped-call]
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.close()  # type: ignore[no-untyped-call]

    # ---- requests ----------------------------------------------------------------------------

    async def request(
        self,
        ctx: CallContext | None,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, Json]:
        """One API request: its HTTP status and JSON answer (a refusal raises)."""
        response = await self._send(
            ctx, method, path, query, body, content_type, "application/json"
        )
        try:
            data = await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise self._unreachable(error) from None
        finally:
            response.release()
        try:
            found = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            found = None
        if not isinstance(found, dict):
            raise BuiltinError(f"{self.server}: the API server's answer was not a JSON object")
        return response.status, found

    async def read_text(
        self, ctx: CallContext | None, path: str, query: dict[str, Any], *, keep: int, cap: int
    ) -> tuple[str, int, bool]:
        """A text stream (pod logs): its last ``keep`` bytes (from a line start), the bytes
        dropped before them, and whether reading stopped at ``cap`` before the end."""
        response = await self._send(ctx, "GET", path, query, None, "application/json", "text/plain")
        window = bytearray()
        dropped = 0
        total = 0
        stopped = False
        try:
            async for chunk in response.content.iter_chunked(64 * 1024):
                total += len(chunk)
                window += chunk
                if len(window) > keep:
                    cut = len(window) - keep
                    dropped += cut
                    del window[:cut]
                if total >= cap:
                    stopped = True
                    break
        except (aiohttp.ClientError, TimeoutError) as error:
            raise self._unreachable(error) from None
        finally:
            response.release()
        if dropped:
            newline = window.find(b"\n")
            if 0 <= newline < len(window) - 1:
                dropped += newline + 1
                del window[: newline + 1]
        return bytes(window).decode("utf-8", errors="replace"), dropped, stopped

    async def _send(
        self,
        ctx: CallContext | None,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        content_type: str,
        accept: str,
    ) -> aiohttp.ClientResponse:
        """Send one request with the caller's client; a non-2xx answer raises, mapped."""
        api = await self.api_for(ctx)
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        try:
            serialized = await api.param_serialize(
                method=method,
                resource_path=path,
                query_params=params,
                header_params={"Accept": accept, "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            answer = await api.call_api(
                *serialized[:4],
                _request_timeout=aiohttp.ClientTimeout(total=self.options.timeout_seconds),
            )
        except aiohttp.ClientConnectorCertificateError:
            raise BuiltinError(
                f"{self.server}: the API server's TLS certificate was refused (check the "
                "kubeconfig's certificate-authority)"
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise self._unreachable(error) from None
        except ConfigException as error:  # an exec plugin or token refresh that failed
            reason = str(error).splitlines()[0][:300]
            raise BuiltinError(f"{self.server}: cannot get credentials: {reason}") from None
        response: aiohttp.ClientResponse = answer.response
        if response.status >= 300:
            try:
                data = await response.read()
            except (aiohttp.ClientError, TimeoutError):
                data = b""
            finally:
                response.release()
            raise self.refusal(response.status, data)
        return response

    # ---- errors ------------------------------------------------------------------------------

    def _unreachable(self, error: BaseException) -> BuiltinError:
        log.debug("%s: %s", self.server, type(error).__name__)
        if isinstance(error, TimeoutError):
            return BuiltinError(
                f"{self.server}: the API server did not answer within "
                f"{self.options.timeout_seconds:g} s (timeout_seconds)"
            )
        return BuiltinError(
            f"{self.server}: cannot reach the API server ({type(error).__name__}); check the "
            "kubeconfig's cluster address and that the cluster runs"
        )

    def refusal(self, status: int, data: bytes) -> BuiltinError:
        """A non-2xx answer (normally a ``Status`` object) as a message for the caller."""
        try:
            found = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            found = {}
        found = found if isinstance(found, dict) else {}
        message = str(found.get("message") or "").strip()[:500]
        reason = str(found.get("reason") or "")
        name = self.server
        if status == 401:
            return BuiltinError(
                f"{name}: the API server did not accept the credentials (401 Unauthorized); "
                "check the kubeconfig user or the token"
            )
        if status == 403:
            return BuiltinError(f"{name}: forbidden by the cluster's RBAC: {message or reason}")
        if status == 404:
            return BuiltinError(f"{name}: not found: {message or 'no such object'}")
        if status == 410:
            return BuiltinError(
                f"{name}: the cursor has expired ({reason or 'Gone'}); list again without it"
            )
        if status == 409:
            hint = "; force: true takes the fields over" if "conflict" in message.lower() else ""
            return BuiltinError(f"{name}: conflict: {message or reason}{hint}")
        if status in (400, 422):
            return BuiltinError(f"{name}: the API server refused the request: {message or reason}")
        if status == 429 or status >= 500:
            return BuiltinError(
                f"{name}: the API server is unavailable or throttling ({status} "
                f"{reason or 'error'}); try again later"
            )
        return BuiltinError(f"{name}: the API server answered {status}: {message or reason}")


def _kubeconfig_path(configured: str | None) -> str:
    """The kubeconfig file(s): configured, else $KUBECONFIG, else ~/.kube/config."""
    path = configured or os.environ.get("KUBECONFIG") or "~/.kube/config"
    path = os.pathsep.join(os.path.expanduser(p) for p in path.split(os.pathsep))
    if os.pathsep not in path and not os.path.isfile(path):
        raise ConfigException(f"no kubeconfig file at {path}")
    return path


def _service_account_namespace() -> str | None:
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as file:
            return file.read().strip() or None
    except OSError:
        return None
