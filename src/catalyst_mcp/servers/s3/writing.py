"""The s3 server's writes: put an object (``allow_writes``) and delete one (``allow_delete``).

Content is checked before anything is sent (text or base64, the ``max_write_bytes`` limit, S3's
2 KiB of user metadata). Each write sets the call's audit note first (what it is about to
change) and adds to it what happened (the new ETag; whether the deleted object existed).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.servers.base import Json, Result
from catalyst_mcp.servers.s3 import content
from catalyst_mcp.servers.s3.clients import S3Client
from catalyst_mcp.servers.s3.reading import etag_of, head_object, uri_of

if TYPE_CHECKING:
    from catalyst_mcp.servers.s3.server import S3Server

__all__ = ["delete_object", "put_object"]

MAX_METADATA_BYTES = 2048  # S3's own limit on user metadata


async def put_object(server: S3Server, args: Json, ctx: CallContext) -> Result:
    bucket, key = args["bucket"], args["key"]
    server.check_bucket(bucket)
    if ("text" in args) == ("base64" in args):
        raise BuiltinError("give the content as text or as base64 (one of them)")
    if "text" in args:
        data = args["text"].encode("utf-8")
        guessed = content.guess_type(key) or "text/plain"
        content_type = args.get("content_type") or f"{guessed}; charset=utf-8"
    else:
        try:
            data = base64.b64decode(args["base64"], validate=True)
        except (binascii.Error, ValueError):
            raise BuiltinError("argument 'base64' is not valid base64") from None
        content_type = (
            args.get("content_type") or content.guess_type(key) or "application/octet-stream"
        )
    limit = server.options.max_write_bytes
    if len(data) > limit:
        raise BuiltinError(
            f"the content is {len(data):,} bytes, over the {limit:,}-byte write limit "
            "(max_write_bytes)"
        )
    metadata: dict[str, str] = args.get("metadata") or {}
    if sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items()) > MAX_METADATA_BYTES:
        raise BuiltinError("metadata is over S3's 2 KiB limit")
    note: Json = {"action": "put_object", "bucket": bucket, "key": key, "bytes": len(data)}
    ctx.audit_note = note

    def work(client: S3Client) -> Json:
        return dict(
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                Metadata=metadata,
            )
        )

    found = await server.clients.run(ctx, work, bucket=bucket)
    etag = etag_of(found.get("ETag"))
    note["etag"] = etag
    structured = {
        "bucket": bucket,
        "key": key,
        "uri": uri_of(bucket, key),
        "size": len(data),
        "etag": etag,
        "version_id": found.get("VersionId"),
    }
    return Result(structured, f"Wrote {len(data):,} bytes to s3://{bucket}/{key}.")


async def delete_object(server: S3Server, args: Json, ctx: CallContext) -> Result:
    bucket, key = args["bucket"], args["key"]
    server.check_bucket(bucket)
    version_id = args.get("version_id")
    note: Json = {"action": "delete_object", "bucket": bucket, "key": key}
    if version_id is not None:
        note["version_id"] = version_id
    ctx.audit_note = note
    try:
        await head_object(server, ctx, bucket, key, version_id)
        existed = True
    except BuiltinError as error:
        if "no object" not in error.message:
            raise
        existed = False
    request: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id is not None:
        request["VersionId"] = version_id

    def work(client: S3Client) -> None:
        client.delete_object(**request)

    await server.clients.run(ctx, work, bucket=bucket, key=key)
    note["existed"] = existed
    structured = {"bucket": bucket, "key": key, "uri": uri_of(bucket, key), "existed": existed}
    text = f"Deleted s3://{bucket}/{key}." if existed else f"s3://{bucket}/{key} did not exist."
    return Result(structured, text)
