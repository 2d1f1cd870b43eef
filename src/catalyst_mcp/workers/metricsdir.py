"""The workers' shared metrics folder (prometheus-client's multiprocess mode).

A scrape of ``/metrics`` reaches one worker; with every worker writing its values to one folder,
that worker answers for all of them (docs/observability.md, "Several worker processes"). The
supervisor provides the folder: ``PROMETHEUS_MULTIPROC_DIR`` when it is set (emptied of the
files a previous run left), else a private temporary folder, removed at exit. A worker that
dies is marked dead, so its per-worker gauges disappear from the sum.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["MULTIPROCESS_ENV", "MetricsFolder"]

# prometheus-client's variable (observability/metrics.py reads it); named here, not imported
# from there, so that the supervisor does not load prometheus-client to pass it on
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class MetricsFolder:
    def __init__(self, environ: Mapping[str, str]) -> None:
        given = environ.get(MULTIPROCESS_ENV)
        self.owned = not given
        if given:
            self.path = Path(given)
            self.path.mkdir(parents=True, exist_ok=True)
            for stale in self.path.glob("*.db"):  # a previous run's values are not ours
                with contextlib.suppress(OSError):
                    stale.unlink()
        else:
            self.path = Path(tempfile.mkdtemp(prefix="catalyst-metrics-"))

    @property
    def environ(self) -> dict[str, str]:
        """What a worker's environment adds."""
        return {MULTIPROCESS_ENV: str(self.path)}

    def worker_died(self, pid: int) -> None:
        from prometheus_client import multiprocess

        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)
