"""The object storage server against moto's standalone S3 server (a real HTTP endpoint in a
subprocess): buckets, pages past S3's 1,000-key limit, text and binary reads with their caps,
writes only when enabled and then audited, and errors that name what is missing."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.errors import NotFound
from catalyst_mcp.servers.config import S3Options
from catalyst_mcp.servers.s3 import S3Server
from tests.servers.conftest import call, context, text
from tests.servers.s3.conftest import KEYS, Moto, start_moto, stop_moto

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


def server(moto: Moto, **options: Any) -> S3Server:
    opts = S3Options(
        endpoint_url=moto.url,
        region="us-east-1",
        addressing_style="path",
        **{**KEYS, **options},
    )
    return S3Server("store", "store", opts, timeout=30)


def make_bucket(moto: Moto, name: str, objects: dict[str, Any] | None = None) -> None:
    client: Any = moto.client()
    client.create_bucket(Bucket=name)
    for key, value in (objects or {}).items():
        if isinstance(value, tuple):
            client.put_object(Bucket=name, Key=key, Body=value[0], ContentType=value[1])
        else:
            client.put_object(Bucket=name, Key=key, Body=value)


async def test_buckets_are_listed_and_a_fixed_list_limits_them(moto: Moto) -> None:
    make_bucket(moto, "alpha-bucket", {"a.txt": b"a"})
    make_bucket(moto, "beta-bucket")
    every = server(moto)
    only = server(moto, buckets=["alpha-bucket"])
    try:
        listed = await call(every, "list_buckets")
        names = [b["name"] for b in listed["structuredContent"]["buckets"]]
        assert {"alpha-bucket", "beta-bucket"} <= set(names)
        assert all(b["created"] for b in listed["structuredContent"]["buckets"])
        fixed = await call(only, "list_buckets")
        assert fixed["structuredContent"]["buckets"] == [{"name": "alpha-bucket", "created": None}]
        refused = await call(only, "list_objects", bucket="beta-bucket")
        assert refused["isError"] is True
        assert "bucket 'beta-bucket' is not served here" in text(refused)
        assert only.items("resources")[0]["uri"] == "s3://alpha-bucket/"
    finally:
        await every.stop()
        await only.stop()


async def test_listing_pages_past_1000_keys_with_a_cursor(moto: Moto) -> None:
    make_bucket(moto, "many-keys")
    client: Any = moto.client()
    keys = [f"logs/{i:05d}.txt" for i in range(1050)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket="many-keys", Key=k, Body=b"x"), keys))
    store = server(moto)
    try:
        first = await call(store, "list_objects", bucket="many-keys", prefix="logs/", delimiter="")
        page = first["structuredContent"]
        assert len(page["objects"]) == 1000 and page["truncated"] is True
        assert isinstance(page["cursor"], str)
        assert "call again with the cursor" in text(first)
        second = await call(
            store, "list_objects", bucket="many-keys", delimiter="", cursor=page["cursor"]
        )
        rest = second["structuredContent"]
        assert len(rest["objects"]) == 50 and rest["truncated"] is False and rest["cursor"] is None
        assert [o["key"] for o in page["objects"] + rest["objects"]] == keys
        small = await call(store, "list_objects", bucket="many-keys", max_keys=7, delimiter="")
        assert len(small["structuredContent"]["objects"]) == 7
        over = await call(store, "list_objects", bucket="many-keys", max_keys=1001)
        assert "argument 'max_keys' must be at most 1000" in text(over)
    finally:
        await store.stop()


async def test_a_delimiter_groups_keys_into_prefixes(moto: Moto) -> None:
    make_bucket(moto, "folders", {"a/1.txt": b"1", "a/b/2.txt": b"2", "top.txt": b"t"})
    store = server(moto)
    try:
        found = (await call(store, "list_objects", bucket="folders"))["structuredContent"]
        assert found["prefixes"] == ["a/"]
        assert [o["key"] for o in found["objects"]] == ["top.txt"]
        inner = (await call(store, "list_objects", bucket="folders", prefix="a/"))[
            "structuredContent"
        ]
        assert inner["prefixes"] == ["a/b/"] and [o["key"] for o in inner["objects"]] == ["a/1.txt"]
    finally:
        await store.stop()


async def test_text_is_inline_in_its_declared_or_detected_encoding(moto: Moto) -> None:
    german = "Grüße aus Köln, schöne Straße, Café am Rhein. " * 4
    russian = "Привет, мир! Это проверка определения кодировки текста. " * 4
    make_bucket(
        moto,
        "texts",
        {
            "utf8.md": "naïve café ☕".encode(),
            "latin.txt": (german.encode("latin-1"), "text/plain; charset=iso-8859-1"),
            "cyrillic.txt": (russian.encode("cp1251"), "application/octet-stream"),
        },
    )
    store = server(moto)
    try:
        utf8 = (await call(store, "read_object", bucket="texts", key="utf8.md"))[
            "structuredContent"
        ]
        assert (utf8["text"], utf8["encoding"], utf8["binary"]) == ("naïve café ☕", "utf-8", False)
        latin = (await call(store, "read_object", bucket="texts", key="latin.txt"))[
            "structuredContent"
        ]
        assert latin["text"] == german and latin["encoding"] == "iso8859-1"
        detected = (await call(store, "read_object", bucket="texts", key="cyrillic.txt"))[
            "structuredContent"
        ]
        assert detected["text"] == russian and detected["encoding"] == "cp1251"
        forced = await call(store, "read_object", bucket="texts", key="utf8.md", encoding="ascii")
        assert forced["isError"] is True
        assert "is not ascii text (byte 2 does not decode)" in text(forced)
        unknown = await call(store, "read_object", bucket="texts", key="utf8.md", encoding="nope")
        assert "unknown encoding 'nope'" in text(unknown)
    finally:
        await store.stop()


async def test_a_ranged_read_returns_a_part_cut_at_whole_characters(moto: Moto) -> None:
    body = "αβγδε" * 200  # 2 bytes a character
    make_bucket(moto, "ranges", {"greek.txt": body.encode()})
    store = server(moto)
    try:
        part = (
            await call(store, "read_object", bucket="ranges", key="greek.txt", offset=1, length=10)
        )["structuredContent"]
        # byte 1 ends the first character and byte 10 starts the sixth: both are dropped
        assert part["text"] == "βγδε"
        assert (part["offset"], part["length"], part["size"]) == (2, 8, 2000)
        assert part["truncated"] is True
        tail = (await call(store, "read_object", bucket="ranges", key="greek.txt", offset=1990))[
            "structuredContent"
        ]
        assert tail["text"] == "αβγδε"
        assert tail["truncated"] is False
        past = await call(store, "read_object", bucket="ranges", key="greek.txt", offset=5000)
        assert "offset is past the end of object 'greek.txt'" in text(past)
    finally:
        await store.stop()


async def test_an_object_over_the_cap_is_refused_and_read_in_parts(moto: Moto) -> None:
    make_bucket(moto, "big-objects", {"big.log": b"line\n" * 1000})
    store = server(moto, max_read_bytes=1000)
    try:
        refused = await call(store, "read_object", bucket="big-objects", key="big.log")
        assert refused["isError"] is True
        assert "is 5,000 bytes, over the 1,000-byte read limit (max_read_bytes)" in text(refused)
        part = await call(store, "read_object", bucket="big-objects", key="big.log", offset=4000)
        found = part["structuredContent"]
        assert (found["offset"], found["length"], found["truncated"]) == (4000, 1000, False)
        capped = await call(
            store, "read_object", bucket="big-objects", key="big.log", length=999_999
        )
        assert capped["structuredContent"]["length"] == 1000
    finally:
        await store.stop()


async def test_a_binary_object_is_a_resource_blob(moto: Moto) -> None:
    make_bucket(moto, "images", {"logo.png": (PNG, "image/png"), "raw.bin": PNG})
    store = server(moto)
    try:
        result = await call(store, "read_object", bucket="images", key="logo.png")
        found = result["structuredContent"]
        assert found["binary"] is True and found["encoding"] is None and "text" not in found
        blob = result["content"][1]["resource"]
        assert blob["uri"] == "s3://images/logo.png" and blob["mimeType"] == "image/png"
        assert base64.b64decode(blob["blob"]) == PNG
        assert "is binary (image/png" in text(result)
        as_text = await call(store, "read_object", bucket="images", key="raw.bin")
        assert as_text["structuredContent"]["binary"] is True
        forced = await call(
            store, "read_object", bucket="images", key="logo.png", encoding="binary"
        )
        assert base64.b64decode(forced["content"][1]["resource"]["blob"]) == PNG
    finally:
        await store.stop()


async def test_stat_gives_size_type_and_metadata(moto: Moto) -> None:
    client: Any = moto.client()
    client.create_bucket(Bucket="stats")
    client.put_object(
        Bucket="stats", Key="r.csv", Body=b"a,b\n", ContentType="text/csv", Metadata={"team": "x"}
    )
    store = server(moto)
    try:
        found = (await call(store, "stat_object", bucket="stats", key="r.csv"))["structuredContent"]
        assert (found["size"], found["content_type"], found["metadata"]) == (
            4,
            "text/csv",
            {"team": "x"},
        )
        assert found["uri"] == "s3://stats/r.csv" and found["etag"] and found["modified"]
    finally:
        await store.stop()


async def test_a_missing_bucket_or_key_is_named(moto: Moto) -> None:
    make_bucket(moto, "present", {"here.txt": b"x"})
    store = server(moto)
    try:
        for tool in ("read_object", "stat_object"):
            no_key = await call(store, tool, bucket="present", key="gone.txt")
            assert "no object 'gone.txt' in bucket 'present'" in text(no_key), tool
            no_bucket = await call(store, tool, bucket="absent-bucket", key="x")
            assert "no bucket 'absent-bucket'" in text(no_bucket), tool
        listing = await call(store, "list_objects", bucket="absent-bucket")
        assert "no bucket 'absent-bucket' (list_buckets lists them)" in text(listing)
        bad = await call(store, "list_objects", bucket="../etc")
        assert "argument 'bucket' must match the pattern" in text(bad)
    finally:
        await store.stop()


async def test_writes_are_not_offered_unless_enabled(moto: Moto) -> None:
    make_bucket(moto, "guarded", {"keep.txt": b"keep"})
    store = server(moto)
    try:
        names = [t["name"] for t in store.items("tools")]
        assert names == ["list_buckets", "list_objects", "read_object", "stat_object"]
        for tool in ("put_object", "delete_object"):
            with pytest.raises(NotFound):
                await store.call(
                    "tools/call",
                    {"name": tool, "arguments": {"bucket": "guarded", "key": "keep.txt"}},
                    context(),
                )
        client: Any = moto.client()
        assert client.get_object(Bucket="guarded", Key="keep.txt")["Body"].read() == b"keep"
    finally:
        await store.stop()


async def test_enabled_writes_change_the_bucket_and_are_audited(moto: Moto) -> None:
    make_bucket(moto, "writable")
    store = server(moto, allow_writes=True, allow_delete=True, max_write_bytes=100)
    try:
        tools = {t["name"]: t["annotations"] for t in store.items("tools")}
        assert tools["put_object"]["readOnlyHint"] is False
        assert tools["put_object"]["destructiveHint"] is True
        assert tools["delete_object"]["destructiveHint"] is True
        assert tools["read_object"]["readOnlyHint"] is True
        ctx = context()
        put = await call(store, "put_object", ctx, bucket="writable", key="notes/a.md", text="# hi")
        assert put["structuredContent"]["size"] == 4
        assert ctx.audit_note == {
            "action": "put_object",
            "bucket": "writable",
            "key": "notes/a.md",
            "bytes": 4,
            "etag": put["structuredContent"]["etag"],
        }
        client: Any = moto.client()
        stored = client.get_object(Bucket="writable", Key="notes/a.md")
        assert stored["Body"].read() == b"# hi"
        assert stored["ContentType"] == "text/markdown; charset=utf-8"
        blob = base64.b64encode(PNG[:50]).decode()
        await call(store, "put_object", bucket="writable", key="img.png", base64=blob)
        assert client.head_object(Bucket="writable", Key="img.png")["ContentType"] == "image/png"
        both = await call(store, "put_object", bucket="writable", key="x", text="a", base64="YQ==")
        assert "give the content as text or as base64" in text(both)
        big = await call(store, "put_object", bucket="writable", key="x", text="y" * 101)
        assert "over the 100-byte write limit (max_write_bytes)" in text(big)
        bad = await call(store, "put_object", bucket="writable", key="x", base64="!!!")
        assert "not valid base64" in text(bad)
        ctx = context()
        gone = await call(store, "delete_object", ctx, bucket="writable", key="notes/a.md")
        assert gone["structuredContent"]["existed"] is True
        assert ctx.audit_note == {
            "action": "delete_object",
            "bucket": "writable",
            "key": "notes/a.md",
            "existed": True,
        }
        again = await call(store, "delete_object", bucket="writable", key="notes/a.md")
        assert again["structuredContent"]["existed"] is False
        assert "did not exist" in text(again)
    finally:
        await store.stop()


async def test_objects_are_resources(moto: Moto) -> None:
    make_bucket(moto, "resources", {"doc.txt": b"plain words", "pic.png": PNG, "d/e.txt": b"e"})
    store = server(moto)
    try:
        assert store.capabilities["resources"] == {}
        assert store.items("resourceTemplates")[0]["uriTemplate"] == "s3://{bucket}/{+key}"
        ctx = context(method="resources/read")
        read = await store.call("resources/read", {"uri": "s3://resources/doc.txt"}, ctx)
        assert read["contents"] == [
            {"uri": "s3://resources/doc.txt", "mimeType": "text/plain", "text": "plain words"}
        ]
        pic = await store.call("resources/read", {"uri": "s3://resources/pic.png"}, ctx)
        assert base64.b64decode(pic["contents"][0]["blob"]) == PNG
        listing = await store.call("resources/read", {"uri": "s3://resources/"}, ctx)
        assert "d/  (prefix)" in listing["contents"][0]["text"]
        assert "doc.txt" in listing["contents"][0]["text"]
    finally:
        await store.stop()


async def test_without_keys_the_standard_aws_chain_is_used(
    moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_bucket(moto, "chain-bucket", {"k": b"v"})
    opts = S3Options(endpoint_url=moto.url, region="us-east-1", addressing_style="path")
    store = S3Server("store", "store", opts, timeout=30)
    try:
        missing = await call(store, "read_object", bucket="chain-bucket", key="k")
        assert "no AWS credentials were found" in text(missing)
        await store.stop()
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env-secret")
        store = S3Server("store", "store", opts, timeout=30)
        found = await call(store, "read_object", bucket="chain-bucket", key="k")
        assert found["structuredContent"]["text"] == "v"
    finally:
        await store.stop()


async def test_an_unreachable_endpoint_says_so() -> None:
    from tests.conftest import free_port

    opts = S3Options(endpoint_url=f"http://127.0.0.1:{free_port()}", timeout_seconds=2, **KEYS)
    store = S3Server("store", "store", opts, timeout=30)
    try:
        result = await call(store, "list_objects", bucket="any-bucket")
        assert "store: cannot reach the store (EndpointConnectionError)" in text(result)
        assert "test-secret" not in text(result)
    finally:
        await store.stop()


async def test_bad_credentials_and_per_caller_secrets_against_a_checking_store() -> None:
    """moto checks signatures against its IAM users after its first few (setup) requests."""
    checking = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    try:
        import boto3

        iam: Any = boto3.client(
            "iam",
            endpoint_url=checking.url,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="ann")
        made = iam.create_access_key(UserName="ann")["AccessKey"]
        policy = (
            '{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'
        )
        iam.put_user_policy(UserName="ann", PolicyName="all", PolicyDocument=policy)
        ann: Any = checking.client(made["AccessKeyId"], made["SecretAccessKey"])
        ann.create_bucket(Bucket="checked")
        ann.put_object(Bucket="checked", Key="k.txt", Body=b"for ann")

        values = {
            "ann": (made["AccessKeyId"], made["SecretAccessKey"]),
            "mallory": (made["AccessKeyId"], "wrong-secret"),
            "nobody": ("AKIAUNKNOWNUNKNOWN00", "whatever"),
        }

        async def lookup(name: str, ctx: CallContext | None) -> str | None:
            assert ctx is not None
            pair = values.get(ctx.identity.subject)
            if pair is None:
                return None
            return pair[0] if name == "S3_KEY" else pair[1]

        opts = S3Options(
            endpoint_url=checking.url,
            region="us-east-1",
            addressing_style="path",
            access_key_id="${secret:S3_KEY}",
            secret_access_key="${secret:S3_SECRET}",
        )
        store = S3Server("store", "store", opts, timeout=30, secrets=lookup)
        try:

            def who(subject: str) -> CallContext:
                return context(identity=Identity(subject=subject, kind="user"))

            good = await call(store, "read_object", who("ann"), bucket="checked", key="k.txt")
            assert good["structuredContent"]["text"] == "for ann"
            wrong = await call(store, "read_object", who("mallory"), bucket="checked", key="k.txt")
            assert "the store refused the secret access key (SignatureDoesNotMatch)" in text(wrong)
            assert "wrong-secret" not in text(wrong)
            unknown = await call(store, "list_buckets", who("nobody"))
            assert "the store does not know the access key id (InvalidAccessKeyId)" in text(unknown)
            unset = await call(store, "list_buckets", who("eve"))
            assert "secret S3_KEY is not set for this user" in text(unset)
        finally:
            await store.stop()
    finally:
        stop_moto(checking)
