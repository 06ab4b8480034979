"""Run the real ``driftwatch worker`` as a subprocess against the test broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
DRIFTWATCH = Path(sys.executable).with_name("driftwatch")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningWorker:
    def __init__(self, proc: subprocess.Popen[bytes], metrics_port: int, log: Path) -> None:
        self.proc = proc
        self.metrics_port = metrics_port
        self.log = log

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def scrape(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return resp.read().decode()

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One sample's value from /metrics (None if absent)."""
        for family in text_string_to_metric_families(self.scrape()):
            for s in family.samples:
                if s.name == name and (
                    labels is None or all(s.labels.get(k) == v for k, v in labels.items())
                ):
                    return float(s.value)
        return None


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, worker: RunningWorker | None = None
) -> None:
    """Poll ``condition`` until true, or fail with the worker's log tail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass  # metrics endpoint not up yet
        if worker is not None and worker.proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = worker.log.read_text(errors="replace")[-4000:] if worker is not None else ""
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}\n--- worker log:\n{tail}"
    )


def stop_and_keep_log(proc: subprocess.Popen[bytes], log: Path, name: str) -> None:
    """SIGTERM the process group (SIGKILL after 30 s); copy its log to var/test-logs/."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    copy = REPO / "var" / "test-logs" / name
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(log.read_bytes())


def start_worker(bootstrap: str, workdir: Path, **settings: object) -> RunningWorker:
    """Start ``driftwatch worker`` with DRIFTWATCH_* settings in ``workdir`` (log there)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWATCH_")}
    env.update(
        {
            "DRIFTWATCH_BOOTSTRAP_SERVERS": bootstrap,
            "DRIFTWATCH_METRICS_PORT": str(port),
            "DRIFTWATCH_METRICS_HOST": "127.0.0.1",
            "DRIFTWATCH_DATA_DIR": str(workdir / "worker-data"),
            "DRIFTWATCH_BATCH_TIMEOUT": "0.2",
            # the tests poll /metrics as their conditions: fresh values, not a cached rendering
            "DRIFTWATCH_METRICS_CACHE_SECONDS": "0",
        }
    )
    env.update({f"DRIFTWATCH_{k.upper()}": str(v) for k, v in settings.items()})
    log = workdir / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(DRIFTWATCH), "worker", "--loglevel", "info"],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningWorker(proc, port, log)


@contextmanager
def run_worker(bootstrap: str, tmp_path: Path, **settings: object) -> Iterator[RunningWorker]:
    """Start ``driftwatch worker`` with DRIFTWATCH_* settings; stop it with SIGTERM."""
    worker = start_worker(bootstrap, tmp_path, **settings)
    try:
        wait_for(
            lambda: worker.sample("driftwatch_build_info") == 1.0, 60, "metrics endpoint", worker
        )
        yield worker
    finally:
        stop_and_keep_log(worker.proc, worker.log, f"worker-{tmp_path.name}.log")
