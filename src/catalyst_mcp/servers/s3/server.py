"""The built-in object storage server: buckets of AWS S3 or an S3-compatible store as tools
and ``s3://bucket/key`` resources.

Read tools (``list_buckets``, ``list_objects``, ``read_object``, ``stat_object``) are always
offered; ``put_object`` only with ``allow_writes`` and ``delete_object`` only with
``allow_delete``, each adding what it changed to the call's audit record. Objects come back
as text when their bytes are text (:mod:`.content`), else as a base64 resource blob; either
way at most ``max_read_bytes``, and a bigger object is read in ranges. Requests go through
:mod:`.clients` (boto3 in the server's threads, per-caller credentials, mapped errors).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError, ResourceNotFound
from catalyst_mcp.servers.base import BuiltinServer, Json, Result, Tool, obj
from catalyst_mcp.servers.config import S3Options
from catalyst_mcp.servers.s3 import content
from catalyst_mcp.servers.s3.clients import (
    Clients,
    MissingBucket,
    S3Client,
    SecretLookup,
    status_of,
)

__all__ = ["S3Server"]

MAX_TEXT_ENTRIES = 200
MAX_METADATA_BYTES = 2048  # S3's own limit on user metadata
BUCKET: Json = {
    "type": "string",
    "minLength": 3,
    "maxLength": 255,
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    "description": "The bucket's name.",
}
KEY: Json = {
    "type": "string",
    "minLength": 1,
    "maxLength": 1024,
    "description": "The object's key (its full name in the bucket, e.g. 'reports/2026/q1.csv').",
}
VERSION: Json = {
    "type": "string",
    "minLength": 1,
    "maxLength": 1024,
    "description": "A version of the object (versioned buckets); default: the latest.",
}
OBJECT_ENTRY = obj(
    {
        "key": {"type": "string"},
        "size": {"type": "integer"},
        "modified": {"type": "string", "format": "date-time"},
        "etag": {"type": "string"},
        "storage_class": {"type": "string"},
    },
    ["key", "size", "modified"],
)
WHERE = {"bucket": {"type": "string"}, "key": {"type": "string"}, "uri": {"type": "string"}}
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


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
        self.declare(self._tools_of())
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

    # ---- tools -------------------------------------------------------------------------------

    def _tools_of(self) -> list[Tool]:
        opts = self.options
        tools = [
            Tool(
                "list_buckets",
                "List buckets",
                "The buckets this server serves"
                + (" (a fixed list)." if opts.buckets else " (all the credentials can list)."),
                obj({}),
                obj(
                    {
                        "buckets": {
                            "type": "array",
                            "items": obj(
                                {
                                    "name": {"type": "string"},
                                    "created": {"type": ["string", "null"]},
                                },
                                ["name", "created"],
                            ),
                        }
                    },
                    ["buckets"],
                ),
                self._list_buckets,
            ),
            Tool(
                "list_objects",
                "List objects",
                "Objects of a bucket under a prefix, in key order. With a delimiter (default "
                "'/'), keys below the next delimiter are grouped into prefixes, like folders; "
                f"an empty delimiter lists every key. At most {opts.max_keys:,} per call: "
                "pass the returned cursor to get the next page.",
                obj(
                    {
                        "bucket": BUCKET,
                        "prefix": {
                            "type": "string",
                            "maxLength": 1024,
                            "default": "",
                            "description": "Only keys starting with this (e.g. 'reports/2026/').",
                        },
                        "delimiter": {
                            "type": "string",
                            "maxLength": 16,
                            "default": "/",
                            "description": "Groups keys into prefixes; '' for none.",
                        },
                        "max_keys": {"type": "integer", "minimum": 1, "maximum": opts.max_keys},
                        "cursor": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 4096,
                            "description": "The cursor a previous call returned (next page).",
                        },
                    },
                    ["bucket"],
                ),
                obj(
                    {
                        "bucket": {"type": "string"},
                        "prefix": {"type": "string"},
                        "objects": {"type": "array", "items": OBJECT_ENTRY},
                        "prefixes": {"type": "array", "items": {"type": "string"}},
                        "truncated": {
                            "type": "boolean",
                            "description": "More keys follow: call again with cursor.",
                        },
                        "cursor": {"type": ["string", "null"]},
                    },
                    ["bucket", "prefix", "objects", "prefixes", "truncated", "cursor"],
                ),
                self._list_objects,
            ),
            Tool(
                "read_object",
                "Read an object",
                "An object's content: text (its encoding from the caller, the declared "
                "charset, or detected) or, when binary, a base64 resource blob. Objects over "
                f"{opts.max_read_bytes:,} bytes must be read in parts with offset and length.",
                obj(
                    {
                        "bucket": BUCKET,
                        "key": KEY,
                        "offset": {
                            "type": "integer",
                            "minimum": 0,
                            "default": 0,
                            "description": "Byte offset to start at (a ranged read).",
                        },
                        "length": {
                            "type": "integer",
                            "minimum": 1,
                            "description": f"Bytes to read (at most {opts.max_read_bytes:,}).",
                        },
                        "encoding": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 40,
                            "description": "Decode with this encoding (utf-8, latin-1, ...), "
                            "or 'binary' for the bytes as a blob. Default: detected.",
                        },
                        "version_id": VERSION,
                    },
                    ["bucket", "key"],
                ),
                obj(
                    {
                        **WHERE,
                        "size": {"type": "integer", "description": "The object's size."},
                        "offset": {"type": "integer"},
                        "length": {"type": "integer", "description": "Bytes returned."},
                        "truncated": {
                            "type": "boolean",
                            "description": "More of the object follows what was returned.",
                        },
                        "binary": {"type": "boolean"},
                        "content_type": {"type": ["string", "null"]},
                        "encoding": {"type": ["string", "null"]},
                        "text": {"type": "string"},
                        "etag": {"type": ["string", "null"]},
                        "modified": {"type": ["string", "null"]},
                    },
                    [
                        "bucket",
                        "key",
                        "uri",
                        "size",
                        "offset",
                        "length",
                        "truncated",
                        "binary",
                        "content_type",
                        "encoding",
                    ],
                ),
                self._read_object,
            ),
            Tool(
                "stat_object",
                "Object information",
                "An object's size, content type, ETag, modification time, storage class, "
                "version and user metadata, without its content.",
                obj({"bucket": BUCKET, "key": KEY, "version_id": VERSION}, ["bucket", "key"]),
                obj(
                    {
                        **WHERE,
                        "size": {"type": "integer"},
                        "content_type": {"type": ["string", "null"]},
                        "content_encoding": {"type": ["string", "null"]},
                        "etag": {"type": ["string", "null"]},
                        "modified": {"type": ["string", "null"]},
                        "storage_class": {"type": ["string", "null"]},
                        "version_id": {"type": ["string", "null"]},
                        "metadata": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                    },
                    ["bucket", "key", "uri", "size", "content_type", "etag", "metadata"],
                ),
                self._stat_object,
            ),
        ]
        if opts.allow_writes:
            tools.append(
                Tool(
                    "put_object",
                    "Write an object",
                    "Create or replace an object with text (stored as UTF-8) or base64 bytes, "
                    f"at most {opts.max_write_bytes:,} bytes. Replacing overwrites the "
                    "previous content (unless the bucket keeps versions). Audited.",
                    obj(
                        {
                            "bucket": BUCKET,
                            "key": KEY,
                            "text": {
                                "type": "string",
                                "description": "The content as text (give text or base64).",
                            },
                            "base64": {
                                "type": "string",
                                "description": "The content as base64 bytes.",
                            },
                            "content_type": {
                                "type": "string",
                                "maxLength": 256,
                                "description": "Default: from the key's extension; text "
                                "gets '; charset=utf-8'.",
                            },
                            "metadata": {
                                "type": "object",
                                "maxProperties": 50,
                                "additionalProperties": {"type": "string", "maxLength": 1024},
                                "description": "User metadata (x-amz-meta-*), at most 2 KiB.",
                            },
                        },
                        ["bucket", "key"],
                    ),
                    obj(
                        {
                            **WHERE,
                            "size": {"type": "integer"},
                            "etag": {"type": ["string", "null"]},
                            "version_id": {"type": ["string", "null"]},
                        },
                        ["bucket", "key", "uri", "size", "etag"],
                    ),
                    self._put_object,
                    read_only=False,
                    destructive=True,
                    idempotent=True,
                )
            )
        if opts.allow_delete:
            tools.append(
                Tool(
                    "delete_object",
                    "Delete an object",
                    "Delete an object (or one version of it). In a versioned bucket without "
                    "version_id this adds a delete marker; with it, that version is gone for "
                    "good. Audited.",
                    obj({"bucket": BUCKET, "key": KEY, "version_id": VERSION}, ["bucket", "key"]),
                    obj(
                        {
                            **WHERE,
                            "existed": {
                                "type": "boolean",
                                "description": "The object existed before the call.",
                            },
                        },
                        ["bucket", "key", "uri", "existed"],
                    ),
                    self._delete_object,
                    read_only=False,
                    destructive=True,
                    idempotent=True,
                )
            )
        return tools

    def _check_bucket(self, bucket: str) -> None:
        served = self.options.buckets
        if served and bucket not in served:
            raise BuiltinError(
                f"{self.name}: bucket {bucket!r} is not served here (list_buckets lists those "
                "that are)"
            )

    # ---- handlers ----------------------------------------------------------------------------

    async def _list_buckets(self, args: Json, ctx: CallContext) -> Result:
        if self.options.buckets:
            buckets: list[Json] = [{"name": b, "created": None} for b in self.options.buckets]
        else:

            def work(client: S3Client) -> list[Json]:
                found = client.list_buckets()
                return [
                    {"name": b["Name"], "created": _iso(b.get("CreationDate"))}
                    for b in found.get("Buckets", [])
                ]

            buckets = await self.clients.run(ctx, work)
        text = "\n".join(b["name"] for b in buckets) or "No buckets."
        return Result({"buckets": buckets}, text)

    async def _list_objects(self, args: Json, ctx: CallContext) -> Result:
        bucket = args["bucket"]
        self._check_bucket(bucket)
        prefix = args.get("prefix", "")
        delimiter = args.get("delimiter", "/")
        request: dict[str, Any] = {
            "Bucket": bucket,
            "MaxKeys": args.get("max_keys", self.options.max_keys),
            "Prefix": prefix,
        }
        if delimiter:
            request["Delimiter"] = delimiter
        if "cursor" in args:
            request["ContinuationToken"] = args["cursor"]

        def work(client: S3Client) -> Json:
            return dict(client.list_objects_v2(**request))

        found = await self.clients.run(ctx, work, bucket=bucket)
        objects = [
            _drop_none(
                {
                    "key": o["Key"],
                    "size": o.get("Size", 0),
                    "modified": _iso(o.get("LastModified")),
                    "etag": _etag(o.get("ETag")),
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

    async def _get(
        self,
        ctx: CallContext,
        bucket: str,
        key: str,
        *,
        offset: int,
        length: int | None,
        version_id: str | None,
    ) -> Json:
        """The bytes of an object (whole, or ``length`` from ``offset``) and its headers."""
        limit = self.options.max_read_bytes
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

        found = await self.clients.run(ctx, work, bucket=bucket, key=key)
        if "too_big" in found:
            raise BuiltinError(
                f"{self.name}: object {key!r} is {found['too_big']:,} bytes, over the "
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

    async def _read_object(self, args: Json, ctx: CallContext) -> Result:
        bucket, key = args["bucket"], args["key"]
        self._check_bucket(bucket)
        offset = args.get("offset", 0)
        found = await self._get(
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
        uri = _uri(bucket, key)
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
            "etag": _etag(found.get("ETag")),
            "modified": _iso(found.get("LastModified")),
        }
        if decoded.text is not None:
            structured["text"] = decoded.text
            return Result(structured, decoded.text)
        mime = _mime(content_type, key, binary=True)
        note = (
            f"{key} is binary ({mime}, {size:,} bytes): bytes {start:,}-"
            f"{start + len(data):,} follow as a base64 resource blob."
        )
        blob = {"uri": uri, "mimeType": mime, "blob": base64.b64encode(data).decode()}
        return Result(structured, note, [{"type": "resource", "resource": blob}])

    async def _head(
        self, ctx: CallContext, bucket: str, key: str, version_id: str | None = None
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

        return await self.clients.run(ctx, work, bucket=bucket, key=key)

    async def _stat_object(self, args: Json, ctx: CallContext) -> Result:
        bucket, key = args["bucket"], args["key"]
        self._check_bucket(bucket)
        found = await self._head(ctx, bucket, key, args.get("version_id"))
        structured = {
            "bucket": bucket,
            "key": key,
            "uri": _uri(bucket, key),
            "size": found.get("ContentLength", 0),
            "content_type": found.get("ContentType"),
            "content_encoding": found.get("ContentEncoding"),
            "etag": _etag(found.get("ETag")),
            "modified": _iso(found.get("LastModified")),
            "storage_class": found.get("StorageClass", "STANDARD"),
            "version_id": found.get("VersionId"),
            "metadata": dict(found.get("Metadata") or {}),
        }
        text = "\n".join(f"{k}: {v}" for k, v in structured.items() if v not in (None, {}))
        return Result(structured, text)

    async def _put_object(self, args: Json, ctx: CallContext) -> Result:
        bucket, key = args["bucket"], args["key"]
        self._check_bucket(bucket)
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
        limit = self.options.max_write_bytes
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

        found = await self.clients.run(ctx, work, bucket=bucket)
        etag = _etag(found.get("ETag"))
        note["etag"] = etag
        structured = {
            "bucket": bucket,
            "key": key,
            "uri": _uri(bucket, key),
            "size": len(data),
            "etag": etag,
            "version_id": found.get("VersionId"),
        }
        return Result(structured, f"Wrote {len(data):,} bytes to s3://{bucket}/{key}.")

    async def _delete_object(self, args: Json, ctx: CallContext) -> Result:
        bucket, key = args["bucket"], args["key"]
        self._check_bucket(bucket)
        version_id = args.get("version_id")
        note: Json = {"action": "delete_object", "bucket": bucket, "key": key}
        if version_id is not None:
            note["version_id"] = version_id
        ctx.audit_note = note
        try:
            await self._head(ctx, bucket, key, version_id)
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

        await self.clients.run(ctx, work, bucket=bucket, key=key)
        note["existed"] = existed
        structured = {"bucket": bucket, "key": key, "uri": _uri(bucket, key), "existed": existed}
        text = f"Deleted s3://{bucket}/{key}." if existed else f"s3://{bucket}/{key} did not exist."
        return Result(structured, text)

    # ---- resources ---------------------------------------------------------------------------

    async def read_resource(self, uri: str, ctx: CallContext) -> Json:
        bucket, key = _parse_uri(uri)
        self._check_bucket(bucket)
        if key == "" or key.endswith("/"):
            listed = await self._list_objects({"bucket": bucket, "prefix": key}, ctx)
            return {"contents": [{"uri": uri, "mimeType": "text/plain", "text": listed.text}]}
        found = await self._get(ctx, bucket, key, offset=0, length=None, version_id=None)
        data: bytes = found["Body"]
        decoded = content.decode(
            data, content_type=found.get("ContentType"), encoding=None, partial=False
        )
        mime = _mime(found.get("ContentType"), key, binary=decoded.text is None)
        if decoded.text is not None:
            return {"contents": [{"uri": uri, "mimeType": mime, "text": decoded.text}]}
        blob = base64.b64encode(data).decode()
        return {"contents": [{"uri": uri, "mimeType": mime, "blob": blob}]}


def _parse_uri(uri: str) -> tuple[str, str]:
    match = re.match(r"^s3://([^/]+)/?(.*)$", uri, flags=re.DOTALL)
    if match is None:
        raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
    return match.group(1), unquote(match.group(2))


def _uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _etag(value: Any) -> str | None:
    return value.strip('"') if isinstance(value, str) else None


GENERIC_TYPES = frozenset({"", "binary/octet-stream", "application/octet-stream"})


def _mime(content_type: str | None, key: str, *, binary: bool) -> str:
    """The object's declared type, else one guessed from its key, else a generic one; an
    object stored without a type (S3 says binary/octet-stream) that is text is text/plain."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared not in GENERIC_TYPES:
        return declared
    fallback = "application/octet-stream" if binary else "text/plain"
    return content.guess_type(key) or fallback


def _drop_none(item: Json) -> Json:
    return {k: v for k, v in item.items() if v is not None}
