"""The supervisor's parts in process: the worker count, the control line, what a worker loads,
the legacy-session warning and the shared metrics folder."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from catalyst_mcp.cli.common import CliError
from catalyst_mcp.cli.serve import _workers_value, worker_count
from catalyst_mcp.observability import metrics
from catalyst_mcp.settings import Settings
from catalyst_mcp.workers.child import settings_for
from catalyst_mcp.workers.control import ControlLine, decode, encode
from catalyst_mcp.workers.metricsdir import MULTIPROCESS_ENV, MetricsFolder
from catalyst_mcp.workers.serve import legacy_sessions_warning
from catalyst_mcp.workers.supervisor import _exit_text, cpu_count


def test_worker_count() -> None:
    assert worker_count(Settings()) == 1
    assert worker_count(Settings.model_validate({"gateway": {"workers": 3}})) == 3
    auto = Settings.model_validate({"gateway": {"workers": "auto"}})
    assert worker_count(auto) == cpu_count() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("text", "value"), [("2", 2), ("auto", "auto"), (" AUTO ", "auto")])
def test_workers_option_values(text: str, value: int | str) -> None:
    assert _workers_value(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "257", "two", ""])
def test_bad_workers_option_values(text: str) -> None:
    with pytest.raises(CliError, match="not a number of processes") as info:
        _workers_value(text)
    assert info.value.exit_code == 2


def test_invalid_workers_settings_are_refused() -> None:
    for bad in (0, 300, "many"):
        with pytest.raises(ValueError, match="workers"):
            Settings.model_validate({"gateway": {"workers": bad}})


async def test_the_control_line_carries_json_lines_and_ends_at_close() -> None:
    ours, theirs = socket.socketpair()
    a, b = await ControlLine.open(ours), await ControlLine.open(theirs)
    a.send({"event": "ready"})
    await a.drain()
    assert await b.receive() == {"event": "ready"}
    b.writer.write(b"not json\n[1]\n" + encode({"event": "failed", "message": "why"}))
    assert await a.receive() == {"event": "failed", "message": "why"}  # junk lines skipped
    a.close()
    assert await asyncio.wait_for(b.receive(), 5) is None
    b.close()


def test_decode() -> None:
    assert decode(b'{"event":"ready"}\n') == {"event": "ready"}
    assert decode(b"[]") is None and decode(b"{") is None


def test_a_worker_loads_the_supervisors_file_with_its_overrides(tmp_path: Path) -> None:
    config = tmp_path / "catalyst.yaml"
    config.write_text("gateway:\n  port: 9001\n  log_level: warning\n", encoding="utf-8")
    spec = {"config": str(config), "gateway": {"port": 9100, "uds": str(tmp_path / "s")}}
    settings, path = settings_for(spec)
    assert path == config
    assert settings.gateway.port == 9100 and settings.gateway.log_level == "warning"
    assert settings.gateway.uds == tmp_path / "s"


def test_a_worker_with_an_invalid_file_says_so(tmp_path: Path) -> None:
    config = tmp_path / "catalyst.yaml"
    config.write_text("gateway:\n  port: nine\n", encoding="utf-8")
    with pytest.raises(CliError, match="invalid configuration") as info:
        settings_for({"config": str(config)})
    assert info.value.exit_code == 3


def test_the_legacy_session_warning() -> None:
    assert legacy_sessions_warning(Settings(), 1) is None
    warning = legacy_sessions_warning(Settings(), 2)
    assert warning is not None
    assert "legacy-era client" in warning and "redis.url" in warning


def test_exit_text() -> None:
    assert _exit_text(-9) == "was killed by SIGKILL"
    assert _exit_text(3) == "exited with code 3"


def test_a_private_metrics_folder_is_made_and_removed() -> None:
    folder = MetricsFolder({})
    assert folder.owned and folder.path.is_dir()
    assert folder.environ == {MULTIPROCESS_ENV: str(folder.path)}
    folder.worker_died(123456)  # nothing of that pid: no error
    folder.close()
    assert not folder.path.exists()


def test_a_given_metrics_folder_is_emptied_of_old_values_and_kept(tmp_path: Path) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine")
    folder = MetricsFolder({MULTIPROCESS_ENV: str(tmp_path)})
    assert not folder.owned and not (tmp_path / "counter_1.db").exists()
    folder.close()
    assert (tmp_path / "notes.txt").exists()


def test_the_metrics_variable_is_the_one_the_gateway_reads() -> None:
    assert MULTIPROCESS_ENV == metrics.MULTIPROCESS_ENV


def test_the_supervisor_process_loads_no_gateway() -> None:
    """What ``catalyst serve`` execs into stays small: no settings, database or HTTP stack."""
    code = (
        "import sys, catalyst_mcp.workers.main\n"
        "heavy = {'pydantic', 'sqlalchemy', 'httptools', 'prometheus_client', 'click', 'mcp'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_no_warning_when_sessions_are_shared() -> None:
    if "redis" not in Settings.model_fields:
        pytest.skip("this build has no redis section (decision 024)")
    shared = Settings.model_validate({"redis": {"url": "redis://127.0.0.1:6379/0"}})
    assert legacy_sessions_warning(shared, 2) is None
