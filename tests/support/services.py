"""Prometheus and Alertmanager as subprocesses, with small clients for their HTTP APIs.

Both binaries are the system's (``scripts/install-system-deps.sh``). Each runs in its own
directory with a configuration written there (JSON, which is valid YAML), listens on a free
port of 127.0.0.1 and is stopped with its log kept in ``var/test-logs/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tests.support.worker import RunningWorker, free_port, stop_and_keep_log, wait_for

ALERTMANAGER_NAMES = ("prometheus-alertmanager", "alertmanager")
READY_TIMEOUT_S = 30.0


class ServiceProcess:
    """A running service binary with an HTTP API on 127.0.0.1.

    Parameters
    ----------
    proc : subprocess.Popen
        The process (the leader of its own process group).
    port : int
        Its web port.
    log : Path
        Its stdout and stderr.
    config_file : Path
        The configuration it was started with (see :meth:`reload`).
    """

    name = "service"

    def __init__(
        self, proc: subprocess.Popen[bytes], port: int, log: Path, config_file: Path
    ) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.config_file = config_file

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as resp:
            return bool(resp.status == 200)

    def get_json(self, path: str) -> Any:
        """GET ``path``; the decoded JSON body, error responses included."""
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:  # 400/422/503 carry a JSON error body
            body = exc.read()
        return json.loads(body)

    def reload(self, config: dict[str, Any]) -> None:
        """Rewrite the configuration file and have the process read it again (SIGHUP)."""
        self.config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
        os.kill(self.proc.pid, signal.SIGHUP)

    def wait(
        self,
        condition: Callable[[], bool],
        timeout: float,
        what: str,
        worker: RunningWorker | None = None,
    ) -> None:
        """:func:`~tests.support.worker.wait_for`, failing at once if the process exits, with
        its log tail added to the failure message."""

        def check() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with code {self.proc.returncode}")
            return condition()

        try:
            wait_for(check, timeout, what, worker)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.name} log:\n{self.log_tail()}") from None


class Prometheus(ServiceProcess):
    """A running ``prometheus`` and a small client for its query API."""

    name = "prometheus"

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET ``/api/v1/<path>``; the decoded JSON body, error responses included."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        result: dict[str, Any] = self.get_json(f"/api/v1/{path}{query}")
        return result

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)

    def vector(self, expr: str) -> list[dict[str, Any]]:
        """The samples of an instant query (empty on error or no data)."""
        answer = self.query(expr)
        if answer.get("status") != "success":
            return []
        return list(answer["data"]["result"])


class Alertmanager(ServiceProcess):
    """A running Alertmanager and a small client for its v2 API."""

    name = "alertmanager"

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds whose labels include ``labels`` (with their status)."""
        held: list[dict[str, Any]] = self.get_json("/api/v2/alerts")
        return [a for a in held if all(a["labels"].get(k) == v for k, v in labels.items())]


Service = TypeVar("Service", bound=ServiceProcess)


@contextmanager
def run_service(
    kind: type[Service],
    argv: Callable[[Path, Path, int], Sequence[str]],
    directory: Path,
    config: dict[str, Any],
    log_name: str,
    check: Callable[[Path], None] | None = None,
) -> Iterator[Service]:
    """Start a service in ``directory`` and wait until it is ready; stop it on exit.

    Parameters
    ----------
    kind : type
        The client class (:class:`Prometheus`, :class:`Alertmanager`).
    argv : callable
        ``argv(config_file, directory, port)``: the command line.
    directory : Path
        Created; holds the configuration, the data and the log.
    config : dict
        Written as ``<kind.name>.yml``.
    log_name : str
        Name of the log kept in ``var/test-logs/``.
    check : callable, optional
        Called with the configuration file before the service starts (a config checker).
    """
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / f"{kind.name}.yml"
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    if check is not None:
        check(config_file)
    port = free_port()
    log = directory / f"{kind.name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv(config_file, directory, port)),
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = kind(proc, port, log, config_file)
    try:
        service.wait(service.ready, READY_TIMEOUT_S, f"{kind.name} to become ready")
        yield service
    finally:
        stop_and_keep_log(proc, log, log_name)


def run_prometheus(
    binary: str, directory: Path, config: dict[str, Any], log_name: str
) -> AbstractContextManager[Prometheus]:
    """:func:`run_service` for ``prometheus`` (storage in ``directory/data``)."""

    def argv(config_file: Path, directory: Path, port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]

    return run_service(Prometheus, argv, directory, config, log_name)


def run_alertmanager(
    binary: str,
    directory: Path,
    config: dict[str, Any],
    log_name: str,
    check: Callable[[Path], None] | None = None,
) -> AbstractContextManager[Alertmanager]:
    """:func:`run_service` for Alertmanager (no cluster; storage in ``directory/data``)."""

    def argv(config_file: Path, directory: Path, port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_file}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ]

    return run_service(Alertmanager, argv, directory, config, log_name, check)


def alertmanager_binary() -> str | None:
    """Debian installs it as ``prometheus-alertmanager``, upstream as ``alertmanager``."""
    for name in ALERTMANAGER_NAMES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None
