"""The boto3 clients of one object storage server, the threads they run in, and their errors.

boto3 blocks, so each request runs in the server's own pool of ``max_connections`` threads
(decision 020 measured it against aiobotocore). One client per set of credentials: the
configured keys, each caller's own when they are ``${secret:NAME}`` references (at most 32
clients, least recently used closed), or the standard AWS chain when no keys are given.
Errors of botocore become :class:`~catalyst_mcp.errors.BuiltinError` messages that say what
to do, never a key, a signature or a stack trace.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore import exceptions as boto
from botocore.config import Config

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.security.references import fill, names_in
from catalyst_mcp.servers.config import S3Options

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
else:
    S3Client = Any

__all__ = ["Clients", "MissingBucket", "S3Client", "SecretLookup", "status_of"]

log = logging.getLogger("catalyst.servers.s3")

SecretLookup = Callable[[str, CallContext | None], Awaitable[str | None]]
T = TypeVar("T")
MAX_CLIENTS = 32
CREDENTIAL_FIELDS = ("access_key_id", "secret_access_key", "session_token")
NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"}
BAD_KEY = {"InvalidAccessKeyId", "InvalidClientTokenId", "UnrecognizedClientException"}
BAD_SIGNATURE = {"SignatureDoesNotMatch", "IncompleteSignature"}
BAD_TOKEN = {"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "RequestExpired"}
BUSY = {"SlowDown", "ServiceUnavailable", "InternalError", "503", "500", "RequestTimeout"}
WRONG_REGION = {
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "301",
    "IllegalLocationConstraintException",
}


class MissingBucket(Exception):
    """Raised by work that found the bucket missing (a HEAD's 404 does not say which)."""


def status_of(error: boto.ClientError) -> int | None:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


class Clients:
    """boto3 clients per set of credentials, and the threads they run in."""

    def __init__(
        self, server: str, options: S3Options, secrets: SecretLookup | None = None
    ) -> None:
        self.server = server
        self.options = options
        self.secrets = secrets
        self.secret_names = sorted(
            set().union(*(names_in(getattr(options, f) or "") for f in CREDENTIAL_FIELDS))
        )
        self._clients: OrderedDict[str, S3Client] = OrderedDict()
        self._creating = asyncio.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=options.max_connections, thread_name_prefix=f"s3-{server}"
        )
        self.config = Config(
            region_name=options.region,
            s3={"addressing_style": options.addressing_style},
            connect_timeout=options.timeout_seconds,
            read_timeout=options.timeout_seconds,
            retries={"mode": "standard", "max_attempts": 2},
            max_pool_connections=options.max_connections,
            # S3-compatible stores differ on the newer default checksums: send them only
            # where the API requires one.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra="catalyst-mcp",
        )

    async def _credentials(self, ctx: CallContext | None) -> dict[str, str | None]:
        values: dict[str, str] = {}
        for name in self.secret_names:
            value = await self.secrets(name, ctx) if self.secrets is not None else None
            if value is None:
                raise BuiltinError(
                    f"{self.server}: secret {name} is not set for this user "
                    f"(`catalyst secrets set {name}`)"
                )
            values[name] = value
        found: dict[str, str | None] = {}
        for field in CREDENTIAL_FIELDS:
            raw = getattr(self.options, field)
            found[field] = fill(raw, values) if raw is not None else None
        return found

    async def client_for(self, ctx: CallContext | None) -> S3Client:
        """The client for this caller's credentials (created on first use)."""
        credentials = await self._credentials(ctx)
        key = hashlib.sha256(repr(sorted(credentials.items())).encode()).hexdigest()
        async with self._creating:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
            loop = asyncio.get_running_loop()
            try:
                client = await loop.run_in_executor(self._pool, self._create, credentials)
            except boto.BotoCoreError as error:
                raise self._core_error(error) from None
            self._clients[key] = client
            if len(self._clients) > MAX_CLIENTS:
                _, oldest = self._clients.popitem(last=False)
                oldest.close()
            return client

    def _create(self, credentials: dict[str, str | None]) -> S3Client:
        session = boto3.session.Session(
            aws_access_key_id=credentials["access_key_id"],
            aws_secret_access_key=credentials["secret_access_key"],
            aws_session_token=credentials["session_token"],
            profile_name=self.options.profile if credentials["access_key_id"] is None else None,
        )
        return session.client(
            "s3",
            endpoint_url=self.options.endpoint_url,
            verify=self.options.verify_tls,
            config=self.config,
        )

    async def run(
        self,
        ctx: CallContext | None,
        work: Callable[[S3Client], T],
        *,
        bucket: str | None = None,
        key: str | None = None,
    ) -> T:
        """``work`` with this caller's client, in the server's threads; botocore's errors
        mapped for the client (``bucket`` and ``key`` name what the request was about)."""
        client = await self.client_for(ctx)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, work, client)
        except MissingBucket:
            raise BuiltinError(
                f"{self.server}: no bucket {bucket!r} (list_buckets lists them)"
            ) from None
        except boto.ClientError as error:
            raise self.client_error(error, bucket, key) from None
        except boto.BotoCoreError as error:
            raise self._core_error(error) from None

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            client.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- errors ------------------------------------------------------------------------------

    def client_error(
        self, error: boto.ClientError, bucket: str | None, key: str | None
    ) -> BuiltinError:
        """A refusal of the store as a message for the caller."""
        info: Any = error.response.get("Error", {})
        code = str(info.get("Code") or "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(info.get("Message") or "")
        log.debug("%s: %s %s (%s)", self.server, error.operation_name, code, status)
        name = self.server
        where = f"bucket {bucket!r}" if bucket else "the store"
        if code == "NoSuchBucket":
            return BuiltinError(f"{name}: no bucket {bucket!r} (list_buckets lists them)")
        if code in NOT_FOUND or status == 404:
            if key is None:
                return BuiltinError(f"{name}: {where} was not found")
            return BuiltinError(
                f"{name}: no object {key!r} in bucket {bucket!r} (list_objects lists them)"
            )
        if code == "NoSuchVersion":
            return BuiltinError(f"{name}: object {key!r} has no version with that version_id")
        if code in BAD_KEY:
            return BuiltinError(
                f"{name}: the store does not know the access key id ({code}); check "
                "access_key_id, or the secret it comes from"
            )
        if code in BAD_SIGNATURE:
            return BuiltinError(
                f"{name}: the store refused the secret access key ({code}); check "
                "secret_access_key, or the secret it comes from"
            )
        if code in BAD_TOKEN:
            return BuiltinError(
                f"{name}: the credentials have expired or are not valid ({code}); renew "
                "the session token"
            )
        if code in DENIED or status == 403:
            what = f"object {key!r} in {where}" if key else where
            return BuiltinError(
                f"{name}: access denied to {what} ({error.operation_name}); the credentials' "
                "policy does not allow it"
            )
        if code == "InvalidRange" or status == 416:
            return BuiltinError(
                f"{name}: offset is past the end of object {key!r} (stat_object gives its size)"
            )
        if code in WRONG_REGION:
            return BuiltinError(
                f"{name}: {where} is in another region than the server's ({code}); set region"
            )
        if code in BUSY or (isinstance(status, int) and status >= 500):
            return BuiltinError(
                f"{name}: the store is unavailable or throttling requests ({code or status}); "
                "try again later"
            )
        if code == "InvalidArgument" and "continuation token" in message.lower():
            return BuiltinError(
                f"{name}: the cursor is not valid for this listing (list again without it)"
            )
        if code == "InvalidBucketName":
            return BuiltinError(f"{name}: {bucket!r} is not a valid bucket name")
        detail = f"{code}: {message}" if message else code or f"HTTP {status}"
        return BuiltinError(f"{name}: the store refused the request ({detail[:300]})")

    def _core_error(self, error: boto.BotoCoreError) -> BuiltinError:
        name = self.server
        log.debug("%s: %s", name, type(error).__name__)
        if isinstance(error, boto.NoCredentialsError | boto.PartialCredentialsError):
            return BuiltinError(
                f"{name}: no AWS credentials were found; give access_key_id and "
                "secret_access_key (or set up the AWS environment, profile or role)"
            )
        if isinstance(error, boto.ProfileNotFound):
            return BuiltinError(f"{name}: the AWS profile {self.options.profile!r} was not found")
        if isinstance(error, boto.ReadTimeoutError | boto.ConnectTimeoutError):
            return BuiltinError(
                f"{name}: the store did not answer within {self.options.timeout_seconds:g} s "
                "(timeout_seconds)"
            )
        if isinstance(error, boto.SSLError):
            return BuiltinError(
                f"{name}: the store's TLS certificate was refused; check endpoint_url "
                "(verify_tls: false only for a test store)"
            )
        if isinstance(error, boto.EndpointConnectionError | boto.ConnectionError):
            return BuiltinError(
                f"{name}: cannot reach the store ({type(error).__name__}); check endpoint_url "
                "and region, and that it runs"
            )
        if isinstance(error, boto.ParamValidationError):
            return BuiltinError(f"{name}: {str(error).splitlines()[-1][:300]}")
        return BuiltinError(f"{name}: the request failed ({type(error).__name__})")
