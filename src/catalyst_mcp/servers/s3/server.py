"""The built-in object storage server: buckets of AWS S3 or an S3-compatible store as tools
and ``s3://bucket/key`` resources.

Read tools (``list_buckets``, ``list_objects``, ``read_object``, ``stat_object``) are always
offered; ``put_object`` only with ``allow_writes`` and ``delete_object`` only with
``allow_delete``, each adding what it changed to the call's audit record. Objects come back
as text when their bytes are text (:mod:`.content`), else as a base64 resource blob; either
way at most ``max_read_bytes``, and a bigger object is read in ranges. Requests go through
:mod:`.clients` (boto3 in the server's threads, per-caller credentials, mapped errors).

This module is the server itself: its options, the buckets it serves, its resources. The
tools are declared in :mod:`.tools`, and handled in :mod:`.reading` and :mod:`.writing`.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError, ResourceNotFound
from catalyst_mcp.servers.base import BuiltinServer, Json
from catalyst_mcp.servers.config import S3Options
from catalyst_mcp.servers.s3 import content, reading, tools
from catalyst_mcp.servers.s3.clients import Clients, SecretLookup

__all__ = ["S3Server"]


class S3Server(BuiltinServer):
    kind = "s3"

    def __init__(
        self,
        name: str,
        namespace: str,
        options: S3Options,
        *,
        timeout: float,
        secrets: SecretLookup | None = None,
    ) -> None:
        super().__init__(name, namespace, timeout=timeout)
        self.options = options
        self.clients = Clients(name, options, secrets)
        self.declare(tools.declare(self))
        self.set_resources(
            [
                {
                    "uri": f"s3://{bucket}/",
                    "name": bucket,
                    "description": f"Bucket {bucket} (reads as a listing of its top level)",
                    "mimeType": "text/plain",
                }
                for bucket in options.buckets
            ],
            [
                {
                    "uriTemplate": "s3://{bucket}/{+key}",
                    "name": "object",
                    "description": "An object (text, or a base64 blob when binary); a key "
                    "ending in '/' (or none) reads as a listing.",
                }
            ],
        )

    @property
    def capabilities(self) -> Json:
        return {"tools": {}, "resources": {}}  # the template serves any bucket's objects

    @property
    def instructions(self) -> str:
        where = self.options.endpoint_url or "AWS S3"
        scope = ", ".join(self.options.buckets) if self.options.buckets else "every bucket"
        return f"Objects of {scope} at {where}; list_objects before reading."

    def health(self) -> Json:
        report = super().health()
        report["endpoint"] = self.options.endpoint_url or "aws"
        report["writes"] = self.options.allow_writes
        return report

    async def stop(self) -> None:
        await self.clients.close()

    def check_bucket(self, bucket: str) -> None:
        """Refuses a bucket outside the configured ``buckets`` (when there are any)."""
        served = self.options.buckets
        if served and bucket not in served:
            raise BuiltinError(
                f"{self.name}: bucket {bucket!r} is not served here (list_buckets lists those "
                "that are)"
            )

    # ---- resources ---------------------------------------------------------------------------

    async def read_resource(self, uri: str, ctx: CallContext) -> Json:
        bucket, key = _parse_uri(uri)
        self.check_bucket(bucket)
        if key == "" or key.endswith("/"):
            listed = await reading.list_objects(self, {"bucket": bucket, "prefix": key}, ctx)
            return {"contents": [{"uri": uri, "mimeType": "text/plain", "text": listed.text}]}
        found = await reading.get_object(
            self, ctx, bucket, key, offset=0, length=None, version_id=None
        )
        data: bytes = found["Body"]
        decoded = content.decode(
            data, content_type=found.get("ContentType"), encoding=None, partial=False
        )
        mime = reading.mime_of(found.get("ContentType"), key, binary=decoded.text is None)
        if decoded.text is not None:
            return {"contents": [{"uri": uri, "mimeType": mime, "text": decoded.text}]}
        blob = base64.b64encode(data).decode()
        return {"contents": [{"uri": uri, "mimeType": mime, "blob": blob}]}


def _parse_uri(uri: str) -> tuple[str, str]:
    match = re.match(r"^s3://([^/]+)/?(.*)$", uri, flags=re.DOTALL)
    if match is None:
        raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
    return match.group(1), unquote(match.group(2))
