"""The s3 server's tools as clients see them: names, descriptions, input and output schemas
and annotations, each bound to its handler in :mod:`.reading` or :mod:`.writing`.

The read tools are always declared; ``put_object`` only with ``allow_writes`` and
``delete_object`` only with ``allow_delete``. Descriptions quote the server's limits
(``max_keys``, ``max_read_bytes``, ``max_write_bytes``).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from catalyst_mcp.servers.base import Json, Tool, obj
from catalyst_mcp.servers.s3 import reading, writing

if TYPE_CHECKING:
    from catalyst_mcp.servers.s3.server import S3Server

__all__ = ["declare"]

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


def declare(server: S3Server) -> list[Tool]:
    """The tools of ``server``: the reads always, the writes its options allow."""
    opts = server.options
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
            partial(reading.list_buckets, server),
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
            partial(reading.list_objects, server),
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
            partial(reading.read_object, server),
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
            partial(reading.stat_object, server),
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
                partial(writing.put_object, server),
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
                partial(writing.delete_object, server),
                read_only=False,
                destructive=True,
                idempotent=True,
            )
        )
    return tools
