"""moto's standalone server (``moto_server``): a real S3 endpoint on a loopback port, started
as a subprocess for the module and stopped by its PID. The AWS environment of the machine is
hidden from the tests (no shared files, no profile, no instance metadata)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.conftest import free_port, wait_for_port

MOTO = Path(sys.executable).with_name("moto_server")
KEYS = {"access_key_id": "test-key", "secret_access_key": "test-secret"}


@dataclass
class Moto:
    url: str
    process: subprocess.Popen[bytes]

    def client(self, key: str = "test-key", secret: str = "test-secret") -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}),
        )


def start_moto(environ: dict[str, str] | None = None) -> Moto:
    port = free_port()
    process = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(environ or {})},
    )
    try:
        wait_for_port(port, timeout=30)
    except BaseException:
        stop_moto(Moto("", process))
        raise
    return Moto(f"http://127.0.0.1:{port}", process)


def stop_moto(moto: Moto) -> None:
    moto.process.terminate()
    try:
        moto.process.wait(10)
    except subprocess.TimeoutExpired:
        moto.process.kill()
        moto.process.wait(10)


@pytest.fixture(autouse=True)
def _no_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    server = start_moto()
    try:
        yield server
    finally:
        stop_moto(server)
