"""The built-in object storage server: buckets of AWS S3 or any S3-compatible store."""

from catalyst_mcp.servers.s3.server import S3Server

__all__ = ["S3Server"]
