"""Package registries on loopback for offline tests: an npm registry, a PEP 503 simple index
and an MCP Registry, all served from one small HTTP server of fixed routes; plus an npm
tarball and a wheel built in the test, and fake installer programs."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conftest import free_port

Route = tuple[str, bytes]  # content type, body


class FakeServer:
    """Serves ``routes`` (path -> (content type, body)); records every path asked for."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.port = free_port()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self.do_GET(head=True)

            def do_GET(self, head: bool = False) -> None:
                server.requests.append(self.path)
                route = server.routes.get(self.path) or server.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_response(404)
                    body = b'{"error":"Not found"}'
                    self.send_header("Content-Type", "application/json")
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", route[0])
                    body = route[1]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def json(self, path: str, value: Any) -> None:
        self.routes[path] = ("application/json", json.dumps(value).encode())


# ---- npm ------------------------------------------------------------------------------------


def npm_tarball(name: str, version: str, bin_name: str, body: str = "") -> bytes:
    """A package tarball with one bin (a node script printing ``body``)."""
    files = {
        "package/package.json": json.dumps(
            {"name": name, "version": version, "bin": {bin_name: "cli.js"}, "license": "MIT"}
        ),
        "package/cli.js": f"#!/usr/bin/env node\nconsole.log({json.dumps(body or name)});\n",
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def add_npm_package(
    server: FakeServer, name: str, versions: dict[str, bytes], bin_name: str = "demo-server"
) -> None:
    """Publish ``versions`` (version -> tarball) of ``name`` on the fake npm registry."""
    encoded = name.replace("/", "%2f")
    manifests = {}
    for version, tarball in versions.items():
        file = f"/tarballs/{name.replace('/', '-')}-{version}.tgz"
        server.routes[file] = ("application/octet-stream", tarball)
        manifests[version] = {
            "name": name,
            "version": version,
            "bin": {bin_name: "cli.js"},
            "dist": {"tarball": server.url + file, "integrity": sri(tarball)},
        }
    latest = list(versions)[-1]
    packument = {"name": name, "dist-tags": {"latest": latest}, "versions": manifests}
    for path in (f"/{encoded}", f"/{name}"):
        server.json(path, packument)


# ---- PyPI -----------------------------------------------------------------------------------


def wheel(name: str, version: str, script: str) -> tuple[str, bytes]:
    """A pure-Python wheel with one console script; (file name, bytes)."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}"
    files = {
        f"{module}/__init__.py": f"def main():\n    print({name!r})\n",
        f"{dist}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ),
        f"{dist}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: catalyst-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
        f"{dist}.dist-info/entry_points.txt": (f"[console_scripts]\n{script} = {module}:main\n"),
    }
    rows = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        rows.append([path, f"sha256={digest.decode()}", str(len(text.encode()))])
    rows.append([f"{dist}.dist-info/RECORD", "", ""])
    record = io.StringIO()
    csv.writer(record, lineterminator="\n").writerows(rows)
    files[f"{dist}.dist-info/RECORD"] = record.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return f"{dist}-py3-none-any.whl", out.getvalue()


def add_pypi_package(server: FakeServer, name: str, files: dict[str, bytes]) -> None:
    """Publish wheel ``files`` (file name -> bytes) of ``name`` on the simple index."""
    links = []
    for file, data in files.items():
        server.routes[f"/files/{file}"] = ("application/octet-stream", data)
        digest = hashlib.sha256(data).hexdigest()
        links.append(f'<a href="{server.url}/files/{file}#sha256={digest}">{file}</a>')
    page = f"<!DOCTYPE html><html><body>{''.join(links)}</body></html>".encode()
    server.routes[f"/simple/{name}/"] = ("text/html", page)
    server.routes["/simple/"] = ("text/html", f'<a href="{name}/">{name}</a>'.encode())


# ---- fake programs --------------------------------------------------------------------------


def fake_programs(folder: Path, programs: dict[str, str]) -> str:
    """Shell scripts named like installers in ``folder``; returns a PATH with them first."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, script in programs.items():
        path = folder / name
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(0o755)
    return f"{folder}:/usr/bin:/bin"


def walk(folder: Path) -> Iterator[Path]:
    yield from sorted(folder.rglob("*")) if folder.exists() else iter(())
