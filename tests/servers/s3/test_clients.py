"""How the store's refusals reach the caller: each S3 error code as a sentence that says what
to do, never the message's secrets (the codes moto does not produce are built here as botocore
builds them from a response)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from catalyst_mcp.servers.config import S3Options
from catalyst_mcp.servers.s3.clients import Clients


def refusal(code: str, status: int, message: str = "", operation: str = "GetObject") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


@pytest.mark.parametrize(
    ("code", "status", "message", "expected"),
    [
        ("NoSuchBucket", 404, "", "store: no bucket 'b1' (list_buckets lists them)"),
        ("NoSuchKey", 404, "", "store: no object 'k1' in bucket 'b1'"),
        ("404", 404, "", "store: no object 'k1' in bucket 'b1'"),
        ("AccessDenied", 403, "Access Denied", "store: access denied to object 'k1' in bucket"),
        ("InvalidAccessKeyId", 403, "", "store: the store does not know the access key id"),
        ("SignatureDoesNotMatch", 403, "", "store: the store refused the secret access key"),
        ("ExpiredToken", 400, "", "store: the credentials have expired or are not valid"),
        ("InvalidRange", 416, "", "store: offset is past the end of object 'k1'"),
        ("PermanentRedirect", 301, "", "store: bucket 'b1' is in another region"),
        ("SlowDown", 503, "", "store: the store is unavailable or throttling requests (SlowDown)"),
        ("InternalError", 500, "", "store: the store is unavailable or throttling requests"),
        (
            "InvalidArgument",
            400,
            "The continuation token provided is incorrect",
            "store: the cursor is not valid for this listing (list again without it)",
        ),
        ("InvalidBucketName", 400, "", "store: 'b1' is not a valid bucket name"),
        ("Weird", 400, "x" * 1000, "store: the store refused the request (Weird: xxx"),
    ],
)
def test_each_refusal_says_what_to_do(code: str, status: int, message: str, expected: str) -> None:
    clients = Clients("store", S3Options(access_key_id="k", secret_access_key="s"))
    try:
        mapped = clients.client_error(refusal(code, status, message), "b1", "k1")
    finally:
        clients._pool.shutdown()
    assert mapped.message.startswith(expected), mapped.message
    assert len(mapped.message) < 400
