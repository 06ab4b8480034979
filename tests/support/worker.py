"""The real ``driftwatch worker`` as a subprocess: start it, read its /metrics, stop it.

The integration tests run it in their ``tmp_path`` with short batch timeouts and an uncached
/metrics (:data:`TEST_SETTINGS`); the benchmarks run it with the default settings in a
temporary directory (``workdir=None``) and keep its log in ``var/bench-logs/``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import FrameType

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
DRIFTWATCH = Path(sys.executable).with_name("driftwatch")
TEST_LOG_DIR = REPO / "var" / "test-logs"
BENCH_LOG_DIR = REPO / "var" / "bench-logs"
#: What the tests change from the defaults: they poll /metrics as their conditions, so they
#: want fresh values, not a cached rendering, and short batches.
TEST_SETTINGS: Mapping[str, str] = {"batch_timeout": "0.2", "metrics_cache_seconds": "0"}
TEST_ARGS = ("--loglevel", "info")
STOP_TIMEOUT_S = 30.0

#: Every sample of a /metrics page: (name, sorted labels) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def total(samples: Samples, name: str) -> float:
    """The sum of every sample called ``name``."""
    return sum(v for (n, _), v in samples.items() if n == name)


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """The samples called ``name``, by the value of their ``label``."""
    return {dict(lab)[label]: v for (n, lab), v in samples.items() if n == name}


class RunningWorker:
    """A ``driftwatch worker`` subprocess, configured only through DRIFTWATCH_* variables.

    Parameters
    ----------
    proc : subprocess.Popen
        The process (the leader of its own process group).
    metrics_port : int
        Its /metrics port on 127.0.0.1.
    log : Path
        Its stdout and stderr.
    """

    def __init__(self, proc: subprocess.Popen[bytes], metrics_port: int, log: Path) -> None:
        self.proc = proc
        self.metrics_port = metrics_port
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def scrape(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as resp:
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

    def metrics(self) -> Samples:
        """Every sample on /metrics."""
        return {
            (s.name, tuple(sorted(s.labels.items()))): float(s.value)
            for family in text_string_to_metric_families(self.scrape())
            for s in family.samples
        }

    def summed(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The sum of every sample called ``name`` whose labels include ``labels``."""
        return sum(
            value
            for (n, labs), value in self.metrics().items()
            if n == name and all(dict(labs).get(k) == v for k, v in (labels or {}).items())
        )

    def rss_mib(self) -> float:
        return status_kib(self.pid, "VmRSS") / 1024

    def peak_mib(self) -> float:
        return status_kib(self.pid, "VmHWM") / 1024

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def crashes(self) -> int:
        """Lines of the log telling that an agent or service crashed or was restarted."""
        text = self.log.read_text(errors="replace")
        return sum(
            1
            for line in text.splitlines()
            if "Crashed" in line or "Restarting" in line or "Traceback (most recent" in line
        )


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, worker: RunningWorker | None = None
) -> None:
    """Poll ``condition`` until true, or fail with the worker's log tail after ``timeout``.

    An ``OSError`` from ``condition`` (an endpoint not up yet) counts as false; a worker that
    exits ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        if worker is not None and worker.proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = worker.log_tail() if worker is not None else ""
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}\n--- worker log:\n{tail}"
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group; SIGKILL it after ``timeout`` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def stop_and_keep_log(
    proc: subprocess.Popen[bytes], log: Path, name: str, log_dir: Path = TEST_LOG_DIR
) -> None:
    """:func:`stop_process`, then copy its log to ``log_dir/name``."""
    stop_process(proc)
    log_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log, log_dir / name)


def terminate_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so ``finally`` blocks stop the worker and the broker."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def start_worker(
    bootstrap: str,
    workdir: Path,
    *,
    defaults: Mapping[str, str] = TEST_SETTINGS,
    worker_args: Sequence[str] = TEST_ARGS,
    **settings: object,
) -> RunningWorker:
    """Start ``driftwatch worker`` in ``workdir`` (its data and log there).

    Parameters
    ----------
    bootstrap : str
        ``DRIFTWATCH_BOOTSTRAP_SERVERS``.
    workdir : Path
        Created if missing.
    defaults : Mapping
        Settings given unless ``settings`` names them (the tests' by default; ``{}`` for the
        project's own defaults).
    worker_args : Sequence
        Arguments after ``driftwatch worker``.
    **settings
        Settings by name, as ``DRIFTWATCH_<NAME>`` variables.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWATCH_")}
    env.update(
        {
            "DRIFTWATCH_BOOTSTRAP_SERVERS": bootstrap,
            "DRIFTWATCH_METRICS_PORT": str(port),
            "DRIFTWATCH_METRICS_HOST": "127.0.0.1",
            "DRIFTWATCH_DATA_DIR": str(workdir / "worker-data"),
        }
    )
    env.update({f"DRIFTWATCH_{k.upper()}": str(v) for k, v in {**defaults, **settings}.items()})
    log = workdir / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(DRIFTWATCH), "worker", *worker_args],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningWorker(proc, port, log)


@contextmanager
def run_worker(
    bootstrap: str,
    workdir: Path | None,
    *,
    log_name: str | None = None,
    log_dir: Path = TEST_LOG_DIR,
    ready_timeout: float = 60.0,
    defaults: Mapping[str, str] = TEST_SETTINGS,
    worker_args: Sequence[str] = TEST_ARGS,
    **settings: object,
) -> Iterator[RunningWorker]:
    """:func:`start_worker`, wait for /metrics; on exit stop it and keep its log.

    ``workdir`` None is a temporary directory, removed at the end. The log is kept as
    ``log_dir/log_name`` (default ``worker-<workdir name>.log``).
    """
    scratch = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="driftwatch-worker-")) if workdir is None else workdir
    worker = start_worker(
        bootstrap, directory, defaults=defaults, worker_args=worker_args, **settings
    )
    try:
        wait_for(
            lambda: worker.sample("driftwatch_build_info") == 1.0,
            ready_timeout,
            "metrics endpoint",
            worker,
        )
        yield worker
    finally:
        name = log_name or f"worker-{directory.name}.log"
        stop_and_keep_log(worker.proc, worker.log, name, log_dir)
        if scratch:
            shutil.rmtree(directory, ignore_errors=True)


def bench_topics(topic: str) -> dict[str, str]:
    """The topics and app id of a benchmark worker reading ``topic`` (others named after it)."""
    return {
        "telemetry_topic": topic,
        "drift_topic": f"{topic}-drift",
        "dead_letter_topic": f"{topic}-dlq",
        "control_topic": f"{topic}-control",
        "app_id": f"bench-{topic}",
    }


def bench_worker(
    bootstrap: str, name: str, settings: Mapping[str, str]
) -> AbstractContextManager[RunningWorker]:
    """:func:`run_worker` as the benchmarks run it: the project's defaults but ``settings``
    (log level ``info`` unless given), a scratch directory, the log kept as
    ``var/bench-logs/<name>.log``."""
    return run_worker(
        bootstrap,
        None,
        log_name=f"{name}.log",
        log_dir=BENCH_LOG_DIR,
        ready_timeout=90.0,
        defaults={"log_level": "info"},
        worker_args=(),
        **settings,
    )
