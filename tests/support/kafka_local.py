#!/usr/bin/env python3
"""Run a single-node Apache Kafka broker (KRaft, combined broker+controller) from Maven jars.

The broker listens on 127.0.0.1 only and needs nothing but ``java`` (17+) and ``mvn``.
Standard library only, so it works before the project is installed.

Command line::

    python scripts/kafka_local.py fetch                  # resolve jars into the cache
    python scripts/kafka_local.py start [--dir DIR] [--port N] [--keep]
    python scripts/kafka_local.py status [--dir DIR]     # prints bootstrap, exit 1 if down
    python scripts/kafka_local.py stop [--dir DIR]

``start`` prints the bootstrap address (``127.0.0.1:PORT``) as the last line of stdout.

As a module: ``fetch()``, ``start()`` (returns a :class:`Broker` with ``bootstrap``,
``pid``, ``log_path``, ``stop()`` and ``restart()``), ``stop()`` and ``status()``.
``start(extra_listeners={"SASL_SSL": "SASL_SSL"}, scram_users=[...])`` adds listeners (on
free ports; ``Broker.listener_bootstrap(name)``) and SCRAM credentials created at format time;
their TLS and SASL settings go in ``extra_config``.

Environment:
    DRIFTWATCH_KAFKA_CACHE  directory holding the broker jars
                            (default ``~/.cache/driftwatch/kafka-3.9.1/libs``)
    DRIFTWATCH_KAFKA_DIR    default state directory (default ``<repo>/var/kafka``)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
SLF4J_VERSION = "1.7.36"
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
ARTIFACTS: tuple[tuple[str, str, str], ...] = (
    ("org.apache.kafka", f"kafka_{SCALA_VERSION}", KAFKA_VERSION),
    ("org.slf4j", "slf4j-reload4j", SLF4J_VERSION),
)
REQUIRED_JARS: tuple[str, ...] = (
    f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar",
    f"kafka-clients-{KAFKA_VERSION}.jar",
    f"slf4j-reload4j-{SLF4J_VERSION}.jar",
)

HOST = "127.0.0.1"
NODE_ID = 1
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "driftwatch" / f"kafka-{KAFKA_VERSION}" / "libs"
DEFAULT_STATE_DIR = REPO_ROOT / "var" / "kafka"
DEFAULT_HEAP = ("256m", "512m")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
FETCH_TIMEOUT_S = 900.0

FETCH_MARKER = ".complete"
STATE_MARKER = ".driftwatch-kafka"
PID_FILE = "broker.pid"
BOOTSTRAP_FILE = "bootstrap"
STATE_FILE = "broker.json"
LOG_FILE = "broker.log"
SERVER_PROPERTIES = "server.properties"
LOG4J_PROPERTIES = "log4j.properties"
DATA_DIR = "data"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
RESERVED_LISTENERS = ("PLAINTEXT", "CONTROLLER")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class KafkaLocalError(RuntimeError):
    """Fetching, formatting, starting or stopping the local broker failed."""


def _log(message: str) -> None:
    print(f"kafka_local: {message}", file=sys.stderr, flush=True)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _clean_output(text: str) -> str:
    return _ANSI.sub("", text).strip()


# ---------------------------------------------------------------------------- fetch


def default_cache_dir() -> Path:
    """The jar directory: ``$DRIFTWATCH_KAFKA_CACHE`` or the per-user default."""
    env = os.environ.get("DRIFTWATCH_KAFKA_CACHE")
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR


def _coordinates() -> str:
    return "\n".join(":".join(artifact) for artifact in ARTIFACTS) + "\n"


def _pom() -> str:
    deps = "\n".join(
        "    <dependency>"
        f"<groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version>"
        "</dependency>"
        for group, artifact, version in ARTIFACTS
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.driftwatch</groupId>
  <artifactId>kafka-local-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>{DEPENDENCY_PLUGIN_VERSION}</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def _is_fetched(libs: Path) -> bool:
    marker = libs / FETCH_MARKER
    try:
        if marker.read_text() != _coordinates():
            return False
    except OSError:
        return False
    return all((libs / jar).is_file() for jar in REQUIRED_JARS)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch(cache_dir: Path | str | None = None, *, mvn: str = "mvn") -> Path:
    """Resolve the broker's runtime classpath into ``cache_dir`` and return that directory.

    Does nothing when the directory already holds a complete download. Safe to call
    from several processes at once (they serialise on a lock file next to the directory).
    """
    libs = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    libs = libs.resolve()
    if _is_fetched(libs):
        return libs
    with _file_lock(libs.parent / f".{libs.name}.lock"):
        if _is_fetched(libs):
            return libs
        mvn_path = shutil.which(mvn)
        if mvn_path is None:
            raise KafkaLocalError(f"'{mvn}' not found on PATH; Maven is needed to fetch Kafka")
        _log(f"fetching Kafka {KAFKA_VERSION} jars into {libs}")
        staging = Path(tempfile.mkdtemp(prefix=f".{libs.name}-", dir=libs.parent))
        try:
            with tempfile.TemporaryDirectory(prefix="driftwatch-kafka-pom-") as tmp:
                pom = Path(tmp) / "pom.xml"
                pom.write_text(_pom())
                cmd = [
                    mvn_path,
                    "-q",
                    "-B",
                    "-Dstyle.color=never",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={staging}",
                    "-DincludeScope=runtime",
                ]
                try:
                    result = subprocess.run(
                        cmd,
                        cwd=tmp,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                        check=False,
                        timeout=FETCH_TIMEOUT_S,
                    )
                except subprocess.TimeoutExpired as exc:
                    output = exc.output.decode(errors="replace") if exc.output else ""
                    raise KafkaLocalError(
                        f"mvn did not finish within {FETCH_TIMEOUT_S:.0f}s:\n"
                        f"{_clean_output(output) or '(no output)'}"
                    ) from None
            if result.returncode != 0:
                raise KafkaLocalError(
                    f"mvn failed with exit code {result.returncode}:\n"
                    f"{_clean_output(result.stdout) or '(no output)'}"
                )
            missing = [jar for jar in REQUIRED_JARS if not (staging / jar).is_file()]
            if missing:
                raise KafkaLocalError(
                    f"mvn succeeded but {', '.join(missing)} missing from {staging}:\n"
                    f"{_clean_output(result.stdout)}"
                )
            (staging / FETCH_MARKER).write_text(_coordinates())
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    jars = len(list(libs.glob("*.jar")))
    _log(f"fetched {jars} jars")
    return libs


# ---------------------------------------------------------------------------- ports


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return low


def free_port(exclude: Sequence[int] = ()) -> int:
    """A currently free TCP port on 127.0.0.1.

    Prefers ports below the kernel's ephemeral range, so that client connections cannot
    occupy the port while the broker is down for a restart.
    """
    low = _ephemeral_low()
    if low > 20000:
        rng = random.SystemRandom()
        for _ in range(200):
            port = rng.randrange(20000, low)
            if port not in exclude and _port_is_free(port):
                return port
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port
    raise KafkaLocalError("could not find a free port on 127.0.0.1")


# ---------------------------------------------------------------------------- readiness


def _kafka_string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        length = self.take(">h")
        if length < 0:
            return None
        value = self.data[self.pos : self.pos + length].decode()
        self.pos += length
        return value


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("connection closed by broker")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class ClusterMetadata:
    cluster_id: str | None
    controller_id: int
    brokers: tuple[tuple[int, str, int], ...]


def probe(bootstrap: str, timeout: float = 2.0) -> ClusterMetadata:
    """Send a Kafka Metadata request (v4, no topics) and return the cluster view.

    Raises ``OSError``/``ConnectionError``/``ValueError`` when the broker does not answer.
    """
    host, _, port_text = bootstrap.rpartition(":")
    correlation_id = random.randrange(1, 2**31 - 1)
    api_key, api_version = 3, 4
    body = struct.pack(">ib", 0, 0)
    header = struct.pack(">hhi", api_key, api_version, correlation_id) + _kafka_string(
        "driftwatch-kafka-local"
    )
    request = header + body
    with socket.create_connection((host, int(port_text)), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        reader = _Reader(_recv_exact(sock, size))
    if reader.take(">i") != correlation_id:
        raise ValueError("metadata response has the wrong correlation id")
    reader.take(">i")
    brokers = []
    for _ in range(reader.take(">i")):
        node_id = reader.take(">i")
        broker_host = reader.string() or ""
        broker_port = reader.take(">i")
        reader.string()
        brokers.append((node_id, broker_host, broker_port))
    cluster_id = reader.string()
    controller_id = reader.take(">i")
    return ClusterMetadata(cluster_id, controller_id, tuple(brokers))


def wait_until_ready(
    bootstrap: str,
    *,
    timeout: float = START_TIMEOUT_S,
    cluster_id: str | None = None,
    is_alive: Callable[[], bool] | None = None,
    require_listed: bool = True,
) -> ClusterMetadata:
    """Poll the broker with Metadata requests until it lists itself as a live broker.

    With ``require_listed=False`` any well-formed Metadata response counts (for brokers
    reached through an address other than the one they advertise).
    """
    port = int(bootstrap.rpartition(":")[2])
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if is_alive is not None and not is_alive():
            raise KafkaLocalError("broker process exited during startup")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KafkaLocalError(
                f"broker at {bootstrap} not ready after {timeout:.0f}s (last error: {last_error})"
            )
        try:
            meta = probe(bootstrap, timeout=min(2.0, max(remaining, 0.1)))
        except (OSError, ValueError, struct.error) as exc:
            last_error = exc
        else:
            if cluster_id is not None and meta.cluster_id != cluster_id:
                raise KafkaLocalError(
                    f"{bootstrap} answers for cluster {meta.cluster_id}, expected {cluster_id}"
                )
            listed = any(p == port for _, _, p in meta.brokers)
            if not require_listed or (listed and meta.controller_id >= 0):
                return meta
            last_error = ValueError(f"broker not yet registered: {meta}")
        time.sleep(0.1)


# ---------------------------------------------------------------------------- processes

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def default_state_dir() -> Path:
    """The state directory: ``$DRIFTWATCH_KAFKA_DIR`` or ``<repo>/var/kafka``."""
    env = os.environ.get("DRIFTWATCH_KAFKA_DIR")
    return Path(env).expanduser() if env else DEFAULT_STATE_DIR


def _resolve_state_dir(state_dir: Path | str | None) -> Path:
    return (Path(state_dir).expanduser() if state_dir else default_state_dir()).resolve()


def _read_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is an exited child of this process (a signalled broker)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _is_broker_process(pid: int, state_dir: Path) -> bool:
    """Whether ``pid`` is a live ``kafka.Kafka`` process using this state dir's config."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)
        return False
    if not Path("/proc/self").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        argv = [
            arg.decode(errors="replace") for arg in (proc / "cmdline").read_bytes().split(b"\0")
        ]
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"]):
        return False
    return "kafka.Kafka" in argv and str(state_dir / SERVER_PROPERTIES) in argv


def _running_pid(state_dir: Path) -> int | None:
    pid = _read_pid(state_dir)
    if pid is not None and _is_broker_process(pid, state_dir):
        return pid
    return None


def _terminate(pid: int, state_dir: Path, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
    child = _CHILDREN.get(pid)

    def wait(seconds: float) -> bool:
        if child is not None:
            try:
                child.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + seconds
        while True:
            _reap(pid)
            if not _is_broker_process(pid, state_dir):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    for sig, seconds in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if wait(seconds):
            break
        if sig == signal.SIGTERM:
            _log(f"broker pid {pid} ignored SIGTERM for {timeout:.0f}s; sending SIGKILL")
    else:
        raise KafkaLocalError(f"broker pid {pid} did not exit after SIGKILL")
    _CHILDREN.pop(pid, None)


def _cleanup_files(state_dir: Path) -> None:
    for name in (PID_FILE, BOOTSTRAP_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()


# ---------------------------------------------------------------------------- configuration


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\")


def server_properties(
    state_dir: Path,
    port: int,
    controller_port: int,
    extra: dict[str, str] | None = None,
    listeners: Mapping[str, tuple[str, int]] | None = None,
) -> dict[str, str]:
    """The broker configuration for a combined broker+controller node on 127.0.0.1.

    ``listeners`` adds broker listeners: name -> (security protocol, port).
    """
    added = dict(listeners or {})
    extra_listeners = "".join(f",{name}://{HOST}:{p}" for name, (_, p) in added.items())
    extra_protocols = "".join(f",{name}:{protocol}" for name, (protocol, _) in added.items())
    props = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}"
        + extra_listeners,
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}" + extra_listeners,
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        + extra_protocols,
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(state_dir / DATA_DIR),
        "num.partitions": "4",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    props.update(extra or {})
    return props


LOG4J_CONFIG = """\
log4j.rootLogger={level}, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.server.BrokerLifecycleManager=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients.NetworkClient=ERROR
"""


def _write_config(
    state_dir: Path,
    port: int,
    controller_port: int,
    extra: dict[str, str] | None,
    log_level: str,
    listeners: Mapping[str, tuple[str, int]] | None = None,
) -> None:
    props = server_properties(state_dir, port, controller_port, extra, listeners)
    text = "".join(f"{key}={_escape(value)}\n" for key, value in props.items())
    (state_dir / SERVER_PROPERTIES).write_text(text)
    (state_dir / LOG4J_PROPERTIES).write_text(LOG4J_CONFIG.format(level=log_level))


def _java_opts(state_dir: Path, libs: Path) -> list[str]:
    return [
        f"-Dlog4j.configuration={(state_dir / LOG4J_PROPERTIES).as_uri()}",
        "-Djava.awt.headless=true",
        "-cp",
        str(libs / "*"),
    ]


def _storage_tool(
    java: str, state_dir: Path, libs: Path, args: Sequence[str], secrets: Sequence[str] = ()
) -> str:
    cmd = [java, "-Xmx256m", *_java_opts(state_dir, libs), "kafka.tools.StorageTool", *args]
    result = subprocess.run(
        cmd,
        cwd=state_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = [
            line
            for line in result.stdout.splitlines()
            if not line.startswith("\tat ") and not re.match(r"\t\.\.\. \d+ more", line)
        ]
        output = "\n".join(lines).strip()
        for secret in secrets:
            if secret:
                output = output.replace(secret, "***")
        raise KafkaLocalError(
            f"kafka-storage {' '.join(args[:1])} failed with exit code {result.returncode}:\n"
            + output
        )
    return result.stdout


def _scram_argument(user: tuple[str, str, str]) -> str:
    mechanism, name, password = user
    if mechanism not in SCRAM_MECHANISMS:
        raise KafkaLocalError(f"SCRAM mechanism must be one of {', '.join(SCRAM_MECHANISMS)}")
    for label, value in (("name", name), ("password", password)):
        if not re.fullmatch(r'[^\s,\[\]="]+', value):
            raise KafkaLocalError(f"SCRAM {label}: no spaces, commas, brackets, = or quotes")
    return f"{mechanism}=[name={name},password={password}]"


def _format_storage(
    java: str, state_dir: Path, libs: Path, scram_users: Sequence[tuple[str, str, str]] = ()
) -> str:
    output = _storage_tool(java, state_dir, libs, ["random-uuid"])
    ids = re.findall(r"^[A-Za-z0-9_-]{22}$", output, flags=re.MULTILINE)
    if not ids:
        raise KafkaLocalError(f"kafka-storage random-uuid printed no cluster id:\n{output}")
    cluster_id = str(ids[-1])
    scram: list[str] = []
    for user in scram_users:
        scram += ["--add-scram", _scram_argument(user)]
    _storage_tool(
        java,
        state_dir,
        libs,
        ["format", "-t", cluster_id, "-c", str(state_dir / SERVER_PROPERTIES), *scram],
        secrets=[password for _, _, password in scram_users],
    )
    return cluster_id


def _read_cluster_id(state_dir: Path) -> str | None:
    try:
        text = (state_dir / DATA_DIR / "meta.properties").read_text()
    except OSError:
        return None
    match = re.search(r"^cluster\.id=(\S+)$", text, flags=re.MULTILINE)
    return match.group(1) if match else None


def _read_state(state_dir: Path) -> dict[str, object]:
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _prepare_fresh_dir(state_dir: Path) -> None:
    if state_dir.exists():
        if not state_dir.is_dir():
            raise KafkaLocalError(f"{state_dir} exists and is not a directory")
        if any(state_dir.iterdir()) and not (state_dir / STATE_MARKER).exists():
            raise KafkaLocalError(
                f"refusing to wipe {state_dir}: not empty and not a kafka_local state dir"
            )
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    (state_dir / STATE_MARKER).write_text(f"kafka {KAFKA_VERSION}\n")


# ---------------------------------------------------------------------------- broker


@dataclass
class Broker:
    """A local broker process managed from ``state_dir``."""

    state_dir: Path
    port: int
    controller_port: int
    cluster_id: str
    libs: Path
    heap: tuple[str, str] = DEFAULT_HEAP
    java: str = "java"
    start_timeout: float = START_TIMEOUT_S
    pid: int | None = None
    startup_seconds: float | None = None
    listener_ports: dict[str, int] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def listener_bootstrap(self, name: str) -> str:
        """The address of an extra listener (see ``start(extra_listeners=...)``)."""
        try:
            return f"{HOST}:{self.listener_ports[name]}"
        except KeyError:
            raise KafkaLocalError(f"no listener named {name!r}") from None

    @property
    def controller_bootstrap(self) -> str:
        return f"{HOST}:{self.controller_port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / LOG_FILE

    def is_running(self) -> bool:
        return self.pid is not None and _is_broker_process(self.pid, self.state_dir)

    def start(self) -> None:
        """Launch the JVM on the existing configuration and wait until it serves requests."""
        if self.is_running():
            raise KafkaLocalError(f"broker already running (pid {self.pid})")
        self._wait_for_ports()
        cmd = [
            self.java,
            f"-Xms{self.heap[0]}",
            f"-Xmx{self.heap[1]}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            *_java_opts(self.state_dir, self.libs),
            "kafka.Kafka",
            str(self.state_dir / SERVER_PROPERTIES),
        ]
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"---- kafka_local: starting broker {stamp} ----\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd,
                cwd=self.state_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._proc = proc
        self.pid = proc.pid
        _CHILDREN[proc.pid] = proc
        (self.state_dir / PID_FILE).write_text(f"{proc.pid}\n")
        try:
            wait_until_ready(
                self.bootstrap,
                timeout=self.start_timeout,
                cluster_id=self.cluster_id,
                is_alive=lambda: proc.poll() is None,
            )
        except KafkaLocalError as exc:
            self.stop(timeout=5.0)
            raise KafkaLocalError(
                f"{exc}\n--- last lines of {self.log_path} ---\n{_tail(self.log_path)}"
            ) from None
        except BaseException:
            self.stop(timeout=5.0)
            raise
        self.startup_seconds = time.monotonic() - began
        (self.state_dir / BOOTSTRAP_FILE).write_text(f"{self.bootstrap}\n")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout`` seconds). Idempotent."""
        if self.pid is not None and self.is_running():
            _terminate(self.pid, self.state_dir, timeout)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1.0)
        if _read_pid(self.state_dir) in (self.pid, None):
            _cleanup_files(self.state_dir)
        self._proc = None
        self.pid = None

    def restart(self) -> None:
        """Stop and start the same broker: same ports, same data, same cluster id."""
        self.stop()
        self.start()

    def _wait_for_ports(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for port in (self.port, self.controller_port, *self.listener_ports.values()):
            while not _port_is_free(port):
                if time.monotonic() >= deadline:
                    raise KafkaLocalError(f"port {HOST}:{port} is in use")
                time.sleep(0.1)


def start(
    state_dir: Path | str | None = None,
    port: int | None = None,
    *,
    controller_port: int | None = None,
    keep: bool = False,
    cache_dir: Path | str | None = None,
    heap: tuple[str, str] = DEFAULT_HEAP,
    timeout: float = START_TIMEOUT_S,
    log_level: str = "WARN",
    extra_config: dict[str, str] | None = None,
    java: str = "java",
    extra_listeners: Mapping[str, str] | None = None,
    scram_users: Sequence[tuple[str, str, str]] = (),
) -> Broker:
    """Start a broker from ``state_dir`` (wiped first unless ``keep``) and wait until ready.

    Ports default to free ones (with ``keep``, to the ones used last time). ``extra_config``
    entries override ``server.properties`` settings.

    ``extra_listeners`` maps further listener names to their security protocol (e.g.
    ``{"SASL_SSL": "SASL_SSL"}``); each gets a free port, advertised on 127.0.0.1, and
    ``Broker.listener_bootstrap(name)`` gives its address. Their TLS and SASL settings
    (``listener.name.<name lower case>.…``, ``sasl.enabled.mechanisms``) go in
    ``extra_config``. ``scram_users`` are ``(mechanism, name, password)`` triples, e.g.
    ``("SCRAM-SHA-512", "driftwatch", "secret")``, stored when the storage is formatted
    (``kafka-storage format --add-scram``); they are ignored when ``keep`` reuses data.
    """
    listener_protocols = dict(extra_listeners or {})
    for name, protocol in listener_protocols.items():
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or name in RESERVED_LISTENERS:
            raise KafkaLocalError(f"invalid extra listener name {name!r}")
        if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise KafkaLocalError(f"invalid security protocol {protocol!r} for {name}")
    for user in scram_users:
        _scram_argument(user)  # fail before touching the state directory
    state = _resolve_state_dir(state_dir)
    libs = fetch(cache_dir)
    if shutil.which(java) is None:
        raise KafkaLocalError(f"'{java}' not found on PATH; Java 17+ is needed")
    running = _running_pid(state)
    if running is not None:
        raise KafkaLocalError(f"a broker is already running from {state} (pid {running})")

    cluster_id: str | None = None
    previous_listeners: dict[str, object] = {}
    meta_properties = state / DATA_DIR / "meta.properties"
    if keep and meta_properties.is_file():
        cluster_id = _read_cluster_id(state)
        if cluster_id is None:
            raise KafkaLocalError(f"no cluster.id in {meta_properties}")
        previous = _read_state(state)
        port = port or int(str(previous.get("port", 0))) or None
        controller_port = controller_port or int(str(previous.get("controller_port", 0))) or None
        saved = previous.get("listener_ports")
        previous_listeners = saved if isinstance(saved, dict) else {}
    port = port or free_port()
    controller_port = controller_port or free_port(exclude=(port,))
    if port == controller_port:
        raise KafkaLocalError("broker and controller ports must differ")
    listener_ports: dict[str, int] = {}
    for name in listener_protocols:
        taken = (port, controller_port, *listener_ports.values())
        reused = int(str(previous_listeners.get(name, 0)))
        listener_ports[name] = reused if reused and reused not in taken else free_port(taken)
    for candidate in (port, controller_port, *listener_ports.values()):
        if not _port_is_free(candidate):
            raise KafkaLocalError(f"port {HOST}:{candidate} is in use")
    if cluster_id is None:
        _prepare_fresh_dir(state)

    listeners = {name: (listener_protocols[name], p) for name, p in listener_ports.items()}
    _write_config(state, port, controller_port, extra_config, log_level, listeners)
    if cluster_id is None:
        cluster_id = _format_storage(java, state, libs, scram_users)
    saved_state: dict[str, object] = {
        "kafka_version": KAFKA_VERSION,
        "port": port,
        "controller_port": controller_port,
        "cluster_id": cluster_id,
    }
    if listener_ports:
        saved_state["listener_ports"] = listener_ports
    (state / STATE_FILE).write_text(json.dumps(saved_state, indent=2) + "\n")
    broker = Broker(
        state_dir=state,
        port=port,
        controller_port=controller_port,
        cluster_id=cluster_id,
        libs=libs,
        heap=heap,
        java=java,
        start_timeout=timeout,
        listener_ports=listener_ports,
    )
    broker.start()
    return broker


def stop(state_dir: Path | str | None = None, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop the broker running from ``state_dir``; return whether one was running."""
    state = _resolve_state_dir(state_dir)
    pid = _running_pid(state)
    if pid is not None:
        _terminate(pid, state, timeout)
    _cleanup_files(state)
    return pid is not None


def status(state_dir: Path | str | None = None) -> str | None:
    """The bootstrap address of the broker running from ``state_dir``, or None."""
    state = _resolve_state_dir(state_dir)
    if _running_pid(state) is None:
        return None
    try:
        return (state / BOOTSTRAP_FILE).read_text().strip() or None
    except OSError:
        return None


# ---------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafka_local.py",
        description=f"Single-node Apache Kafka {KAFKA_VERSION} (KRaft) on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    fetch_cmd = sub.add_parser("fetch", help="download the broker jars with Maven")
    fetch_cmd.add_argument("--cache", type=Path, help="jar directory ($DRIFTWATCH_KAFKA_CACHE)")

    dir_help = f"state directory (default $DRIFTWATCH_KAFKA_DIR or {DEFAULT_STATE_DIR})"
    start_cmd = sub.add_parser("start", help="start a broker in the background")
    start_cmd.add_argument("--dir", type=Path, help=dir_help)
    start_cmd.add_argument("--port", type=int, help="PLAINTEXT port (default: a free one)")
    start_cmd.add_argument("--controller-port", type=int, help="CONTROLLER port")
    start_cmd.add_argument("--keep", action="store_true", help="reuse existing data and ports")
    start_cmd.add_argument("--cache", type=Path, help="jar directory ($DRIFTWATCH_KAFKA_CACHE)")
    start_cmd.add_argument("--timeout", type=float, default=START_TIMEOUT_S)
    start_cmd.add_argument("--log-level", default="WARN", help="log4j root level")

    stop_cmd = sub.add_parser("stop", help="stop the broker (idempotent)")
    stop_cmd.add_argument("--dir", type=Path, help=dir_help)
    stop_cmd.add_argument("--timeout", type=float, default=STOP_TIMEOUT_S)

    status_cmd = sub.add_parser("status", help="print the bootstrap address; exit 1 if down")
    status_cmd.add_argument("--dir", type=Path, help=dir_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch(args.cache))
        elif args.command == "start":
            broker = start(
                args.dir,
                args.port,
                controller_port=args.controller_port,
                keep=args.keep,
                cache_dir=args.cache,
                timeout=args.timeout,
                log_level=args.log_level,
            )
            _log(
                f"broker pid {broker.pid} ready in {broker.startup_seconds:.1f}s, "
                f"log {broker.log_path}"
            )
            print(broker.bootstrap, flush=True)
        elif args.command == "stop":
            was_running = stop(args.dir, timeout=args.timeout)
            _log("broker stopped" if was_running else "no broker running")
        else:
            bootstrap = status(args.dir)
            if bootstrap is None:
                _log("no broker running")
                return 1
            print(bootstrap)
    except KafkaLocalError as exc:
        _log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
