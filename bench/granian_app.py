"""The gateway's ASGI app for granian (comparison only; granian is not a project dependency).

CATALYST_BENCH_CONFIG=gateway.yaml granian --interface asgi granian_app:app
"""

from __future__ import annotations

import os
from pathlib import Path

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import load_settings

app = Gateway(load_settings(Path(os.environ["CATALYST_BENCH_CONFIG"]))).asgi
