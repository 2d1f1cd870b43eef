"""The s3 server's reads: list buckets, list objects, read and stat an object.

Each tool handler takes the server and a call's arguments; :func:`get_object` (an object's
bytes, whole or a range, within ``max_read_bytes``) and :func:`head_object` (its headers, a
missing bucket told from a missing key) are shared with the ``s3://`` resources and the writes.
The small helpers at the end shape S3's answers (ISO times, bare ETags, ``s3://`` URIs, MIME
types) for every handler.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.servers.base import Json, Result
from catalyst_mcp.servers.s3 import content
from catalyst_mcp.servers.s3.clients import MissingBucket, S3Client, status_of

if TYPE_CHECKING:
    from catalyst_mcp.servers.s3.server import S3Server

__all__ = [
    "etag_of",
    "get_object",
    "head_object",
    "iso",
    "list_buckets",
    "list_objects",
    "mime_of",
    "read_object",
    "stat_object",
    "uri_of",
]

MAX_TEXT_ENTRIES = 200
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
GENERIC_TYPES = frozenset({"", "binary/octet-stream", "application/octet-stream"})


async def list_buckets(server: S3Server, args: Json, ctx: CallContext) -> Result:
    if server.options.buckets:
        buckets: list[Json] = [{"name": b, "created": None} for b in server.options.buckets]
    else:

        def work(client: S3Client) -> list[Json]:
            found = client.list_buckets()
            return [
                {"name": b["Name"], "created": iso(b.get("CreationDate"))}
                for b in found.get("Buckets", [])
            ]

        buckets = await server.clients.run(ctx, work)
    text = "\n".join(b["name"] for b in buckets) or "No buckets."
    return Result({"buckets": buckets}, text)


async def list_objects(server: S3Server, args: Json, ctx: CallContext) -> Result:
    bucket = args["bucket"]
    server.check_bucket(bucket)
    prefix = args.get("prefix", "")
    delimiter = args.get("delimiter", "/")
    request: dict[str, Any] = {
        "Bucket": bucket,
        "MaxKeys": args.get("max_keys", server.options.max_keys),
        "Prefix": prefix,
    }
    if delimiter:
        request["Delimiter"] = delimiter
    if "cursor" in args:
        request["ContinuationToken"] = args["cursor"]

    def work(client: S3Client) -> Json:
        return dict(client.list_objects_v2(**request))

    found = await server.clients.run(ctx, work, bucket=bucket)
    objects = [
        _drop_none(
            {
                "key": o["Key"],
                "size": o.get("Size", 0),
                "modified": iso(o.get("LastModified")),
                "etag": etag_of(o.get("ETag")),
                "storage_class": o.get("StorageClass"),
            }
        )
        for o in found.get("Contents", [])
    ]
    prefixes = [p["Prefix"] for p in found.get("CommonPrefixes", [])]
    truncated = bool(found.get("IsTruncated"))
    cursor = found.get("NextContinuationToken") if truncated else None
    structured = {
        "bucket": bucket,
        "prefix": prefix,
        "objects": objects,
        "prefixes": prefixes,
        "truncated": truncated,
        "cursor": cursor,
    }
    lines = [f"{p}  (prefix)" for p in prefixes]
    lines += [f"{o['key']}  ({o['size']:,} bytes)" for o in objects]
    shown = lines[:MAX_TEXT_ENTRIES]
    if len(lines) > MAX_TEXT_ENTRIES:
        shown.append(f"... {len(lines) - MAX_TEXT_ENTRIES} more in structuredContent")
    if truncated:
        shown.append("More keys follow: call again with the cursor.")
    empty = f"No objects in {bucket} under {prefix!r}." if prefix else f"{bucket} is empty."
    return Result(structured, "\n".join(shown) or empty)


async def get_object(
    server: S3Server,
    ctx: CallContext,
    bucket: str,
    key: str,
    *,
    offset: int,
    length: int | None,
    version_id: str | None,
) -> Json:
    """The bytes of an object (whole, or ``length`` from ``offset``) and its headers."""
    limit = server.options.max_read_bytes
    ranged = offset > 0 or length is not None
    want = min(length if length is not None else limit, limit)
    request: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if ranged:
        request["Range"] = f"bytes={offset}-{offset + want - 1}"
    if version_id is not None:
        request["VersionId"] = version_id

    def work(client: S3Client) -> Json:
        found = client.get_object(**request)
        body = found["Body"]
        try:
            size = found.get("ContentLength", 0)
            if not ranged and size > limit:
                return {"too_big": size}
            data = body.read(want + 1)
        finally:
            body.close()
        return {**found, "Body": data[:want]}

    found = await server.clients.run(ctx, work, bucket=bucket, key=key)
    if "too_big" in found:
        raise BuiltinError(
            f"{server.name}: object {key!r} is {found['too_big']:,} bytes, over the "
            f"{limit:,}-byte read limit (max_read_bytes): read it in parts with offset and "
            "length"
        )
    total = found.get("ContentLength", len(found["Body"]))
    match = CONTENT_RANGE.match(str(found.get("ContentRange") or ""))
    if match is not None:
        offset = int(match.group(1))
        if match.group(3) != "*":
            total = int(match.group(3))
    found["size"] = total
    found["offset"] = offset
    return found


async def read_object(server: S3Server, args: Json, ctx: CallContext) -> Result:
    bucket, key = args["bucket"], args["key"]
    server.check_bucket(bucket)
    offset = args.get("offset", 0)
    found = await get_object(
        server,
        ctx,
        bucket,
        key,
        offset=offset,
        length=args.get("length"),
        version_id=args.get("version_id"),
    )
    data: bytes = found["Body"]
    size, start = found["size"], found["offset"]
    content_type = found.get("ContentType")
    decoded = content.decode(
        data,
        content_type=content_type,
        encoding=args.get("encoding"),
        partial=start > 0 or start + len(data) < size,
    )
    start += decoded.trimmed_start
    uri = uri_of(bucket, key)
    structured: Json = {
        "bucket": bucket,
        "key": key,
        "uri": uri,
        "size": size,
        "offset": start,
        "length": len(decoded.data),
        "truncated": start + len(decoded.data) < size,
        "binary": decoded.text is None,
        "content_type": content_type,
        "encoding": decoded.encoding,
        "etag": etag_of(found.get("ETag")),
        "modified": iso(found.get("LastModified")),
    }
    if decoded.text is not None:
        structured["text"] = decoded.text
        return Result(structured, decoded.text)
    mime = mime_of(content_type, key, binary=True)
    note = (
        f"{key} is binary ({mime}, {size:,} bytes): bytes {start:,}-"
        f"{start + len(data):,} follow as a base64 resource blob."
    )
    blob = {"uri": uri, "mimeType": mime, "blob": base64.b64encode(data).decode()}
    return Result(structured, note, [{"type": "resource", "resource": blob}])


async def head_object(
    server: S3Server, ctx: CallContext, bucket: str, key: str, version_id: str | None = None
) -> Json:
    request: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id is not None:
        request["VersionId"] = version_id

    def work(client: S3Client) -> Json:
        try:
            return dict(client.head_object(**request))
        except ClientError as error:
            if status_of(error) != 404:
                raise
            # A HEAD's 404 has no body: tell a missing bucket from a missing key.
            try:
                client.head_bucket(Bucket=bucket)
            except ClientError as missing:
                if status_of(missing) == 404:
                    raise MissingBucket from None
            raise

    return await server.clients.run(ctx, work, bucket=bucket, key=key)


async def stat_object(server: S3Server, args: Json, ctx: CallContext) -> Result:
    bucket, key = args["bucket"], args["key"]
    server.check_bucket(bucket)
    found = await head_object(server, ctx, bucket, key, args.get("version_id"))
    structured = {
        "bucket": bucket,
        "key": key,
        "uri": uri_of(bucket, key),
        "size": found.get("ContentLength", 0),
        "content_type": found.get("ContentType"),
        "content_encoding": found.get("ContentEncoding"),
        "etag": etag_of(found.get("ETag")),
        "modified": iso(found.get("LastModified")),
        "storage_class": found.get("StorageClass", "STANDARD"),
        "version_id": found.get("VersionId"),
        "metadata": dict(found.get("Metadata") or {}),
    }
    text = "\n".join(f"{k}: {v}" for k, v in structured.items() if v not in (None, {}))
    return Result(structured, text)


# ---- shapes of S3's answers --------------------------------------------------------------


def uri_of(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def etag_of(value: Any) -> str | None:
    return value.strip('"') if isinstance(value, str) else None


def mime_of(content_type: str | None, key: str, *, binary: bool) -> str:
    """The object's declared type, else one guessed from its key, else a generic one; an
    object stored without a type (S3 says binary/octet-stream) that is text is text/plain."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared not in GENERIC_TYPES:
        return declared
    fallback = "application/octet-stream" if binary else "text/plain"
    return content.guess_type(key) or fallback


def _drop_none(item: Json) -> Json:
    return {k: v for k, v in item.items() if v is not None}
