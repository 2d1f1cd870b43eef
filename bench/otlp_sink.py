"""A small OTLP/HTTP receiver for the observability benchmark (its own process).

    python bench/otlp_sink.py PORT

``POST /v1/traces`` decodes the protobuf export (``opentelemetry-proto``) and counts its spans;
``GET /count`` answers ``{"spans": N, "exports": M}``. It answers exports the way a collector does
(200 with an empty ``ExportTraceServiceResponse``), so the gateway's exporter pays its real cost.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

COUNTS = {"spans": 0, "exports": 0}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        spans = sum(len(s.spans) for r in export.resource_spans for s in r.scope_spans)
        with LOCK:
            COUNTS["spans"] += spans
            COUNTS["exports"] += 1
        self._answer(ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        with LOCK:
            data = json.dumps(COUNTS).encode()
        self._answer(data, "application/json")

    def _answer(self, data: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
