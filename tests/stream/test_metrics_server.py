"""The metrics endpoint: basic auth, TLS, the password kept out of logs, reprs and errors, the
exposition as prometheus-client renders it, one rendering per interval, bounded connections."""

from __future__ import annotations

import base64
import gzip
import logging
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.parser import text_string_to_metric_families

from stream.exceptions import ConfigError
from stream.metrics import Metrics
from stream.metrics.exposition import MAX_FILTER_NAMES, ExpositionCache, FilterError
from stream.metrics.pool import REQUEST_TIMEOUT_S, SERVER_THREADS, server_ssl_context
from stream.metrics.server import MetricsServer, start_metrics_server
from stream.settings import Settings, load_settings

USER = "prometheus"
PASSWORD = "Zq8-metrics-S3cr3t-value"


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca, cert, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    ca_key, ca, key, csr, cert = (
        directory / name for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    commands = [
        f"req -x509 -newkey rsa:2048 -nodes -keyout {ca_key} -out {ca} -days 2"
        " -subj /CN=driftwatch-test-CA -addext basicConstraints=critical,CA:TRUE"
        " -addext keyUsage=critical,keyCertSign,cRLSign",
        f"req -newkey rsa:2048 -nodes -keyout {key} -out {csr} -subj /CN=localhost",
        f"x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -out {cert} -days 2"
        f" -extfile {ext}",
    ]
    for command in commands:
        subprocess.run(["openssl", *command.split()], check=True, capture_output=True)
    return ca, cert, key


class Serve(Protocol):
    def __call__(self, **changes: object) -> MetricsServer: ...


@pytest.fixture
def serve(registry: CollectorRegistry) -> Iterator[Serve]:
    servers: list[MetricsServer] = []

    def start(**changes: object) -> MetricsServer:
        settings = load_settings(environ={}, metrics_host="127.0.0.1", metrics_port=0, **changes)
        server = start_metrics_server(settings, registry)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def get(
    url: str,
    auth: tuple[str, str] | str | None = None,
    *,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    if isinstance(auth, tuple):
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    elif isinstance(auth, str):
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_without_auth_serves_the_registry(serve: Serve) -> None:
    server = serve()
    assert server.url.startswith("http://127.0.0.1:") and not server.basic_auth
    status, headers, body = get(server.url)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert b"demo_events_total 3.0" in body


def test_basic_auth_rejects_missing_and_wrong_credentials(serve: Serve) -> None:
    server = serve(metrics_basic_auth_username=USER, metrics_basic_auth_password=PASSWORD)
    assert server.basic_auth
    for auth in (
        None,
        (USER, "wrong"),
        ("someone", PASSWORD),
        (USER, PASSWORD + "x"),
        (USER, ""),
        "Bearer " + PASSWORD,
        "Basic not-base64!!",
        "Basic",
    ):
        status, headers, body = get(server.url, auth)
        assert status == 401, auth
        assert headers["WWW-Authenticate"].startswith('Basic realm="driftwatch metrics"')
        assert b"demo_events" not in body
    status, _, body = get(server.url, (USER, PASSWORD))
    assert status == 200 and b"demo_events_total 3.0" in body
    scheme_in_lower_case = "basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert get(server.url, scheme_in_lower_case)[0] == 200


def test_password_from_a_file(serve: Serve, tmp_path: Path) -> None:
    secret = tmp_path / "metrics-password"
    secret.write_text(PASSWORD + "\n")  # as mounted secrets often are
    server = serve(metrics_basic_auth_username=USER, metrics_basic_auth_password_file=str(secret))
    assert get(server.url, (USER, PASSWORD))[0] == 200
    assert get(server.url, (USER, PASSWORD + "\n"))[0] == 401
    assert get(server.url)[0] == 401


def test_openmetrics_gzip_and_name_filter(serve: Serve, registry: CollectorRegistry) -> None:
    Counter("other_things", "Other.", registry=registry).inc()
    server = serve()
    status, headers, body = get(
        server.url + "?name[]=demo_events_total",
        headers={"Accept": "application/openmetrics-text", "Accept-Encoding": "gzip"},
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert "demo_events_total 3.0" in text and text.endswith("# EOF\n")
    assert "other_things" not in text


def test_tls_with_basic_auth(serve: Serve, tmp_path: Path) -> None:
    ca, cert, key = make_tls_files(tmp_path)
    server = serve(
        metrics_tls_certfile=str(cert),
        metrics_tls_keyfile=str(key),
        metrics_basic_auth_username=USER,
        metrics_basic_auth_password=PASSWORD,
    )
    assert server.tls and server.url.startswith("https://127.0.0.1:")
    trusted = ssl.create_default_context(cafile=str(ca))
    assert get(server.url, context=trusted)[0] == 401
    status, _, body = get(server.url, (USER, PASSWORD), context=trusted)
    assert status == 200 and b"demo_events_total 3.0" in body
    localhost = server.url.replace("127.0.0.1", "localhost")
    assert get(localhost, (USER, PASSWORD), context=trusted)[0] == 200

    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(server.url, (USER, PASSWORD), context=ssl.create_default_context())
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        get(server.url.replace("https://", "http://"), (USER, PASSWORD))
    # a client that connects and never speaks does not block the others
    with socket.create_connection(("127.0.0.1", server.port)):
        assert get(server.url, (USER, PASSWORD), context=trusted)[0] == 200


def test_tls_certificate_and_key_in_one_file(serve: Serve, tmp_path: Path) -> None:
    ca, cert, key = make_tls_files(tmp_path)
    combined = tmp_path / "combined.pem"
    combined.write_text(key.read_text() + cert.read_text())
    server = serve(metrics_tls_certfile=str(combined))
    trusted = ssl.create_default_context(cafile=str(ca))
    assert get(server.url, context=trusted)[0] == 200


def test_unusable_tls_files_name_the_setting(tmp_path: Path) -> None:
    ca, cert, _ = make_tls_files(tmp_path)
    with pytest.raises(ConfigError) as info:
        server_ssl_context(str(cert), str(ca))  # not the certificate's key
    assert info.value.setting == "metrics_tls_keyfile"
    with pytest.raises(ConfigError) as info:
        server_ssl_context(str(tmp_path / "server.ext"))
    assert info.value.setting == "metrics_tls_certfile"


def test_close_releases_the_port(serve: Serve) -> None:
    server = serve()
    port = server.port
    server.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_the_password_never_shows(
    serve: Serve,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = load_settings(
        environ={"DRIFTWATCH_METRICS_BASIC_AUTH_PASSWORD": PASSWORD},
        metrics_basic_auth_username=USER,
    )
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    server = serve(metrics_basic_auth_username=USER, metrics_basic_auth_password=PASSWORD)
    assert PASSWORD not in repr(server)
    get(server.url, (USER, "wrong"))
    get(server.url, (USER, PASSWORD))
    get(server.url, "Basic " + base64.b64encode(PASSWORD.encode()).decode())

    secret_file = tmp_path / "pw"
    secret_file.write_text(PASSWORD)
    errors: list[str] = []
    bad: list[dict[str, object]] = [
        {"metrics_basic_auth_password": PASSWORD},  # no user name
        {
            "metrics_basic_auth_username": USER,
            "metrics_basic_auth_password": PASSWORD,
            "metrics_basic_auth_password_file": str(secret_file),
        },
        {"metrics_basic_auth_username": "a:b", "metrics_basic_auth_password": PASSWORD},
    ]
    for changes in bad:
        with pytest.raises(ConfigError) as info:
            Settings(**changes)  # type: ignore[arg-type]
        errors.append(str(info.value) + repr(info.value.value))
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, metrics_basic_auth_pasword=PASSWORD)  # a typo
    errors.append(str(info.value))
    assert errors and all(PASSWORD not in e for e in errors), errors
    out, err = capsys.readouterr()
    assert PASSWORD not in caplog.text + out + err
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert encoded not in caplog.text + out + err


def _families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


def big_registry(keys: int = 50) -> CollectorRegistry:
    """The worker's own metrics with ``keys`` x 2 features published."""
    reg = CollectorRegistry()
    metrics = Metrics(reg, max_keys=keys)
    for i in range(keys):
        for feature in ("latency", "tokens"):
            metrics.set_stream(f"agent-{i}", feature, i / 100, 0.5, i % 7 == 0, 1.0)
    metrics.processing_latency.observe(0.03)
    return reg


def test_exposition_is_prometheus_clients_bytes() -> None:
    reg = big_registry()
    settings = load_settings(environ={}, metrics_host="127.0.0.1", metrics_port=0)
    server = start_metrics_server(settings, reg)
    try:
        status, headers, body = get(server.url)
        assert status == 200 and body == generate_latest(reg)
        assert headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4  # what Prometheus parses
        status, headers, zipped = get(server.url, headers={"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(zipped) == body
        status, headers, om = get(
            server.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert om == openmetrics.generate_latest(reg)
        assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        parsed = _families(body.decode())
        assert len(parsed["driftwatch_ks_statistic"]) == 100
        assert ("driftwatch_ks_statistic", {"key": "agent-7", "feature": "tokens"}, 0.07) in (
            parsed["driftwatch_ks_statistic"]
        )
        assert parsed == _families(generate_latest(reg).decode())
    finally:
        server.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_rendering_per_interval() -> None:
    reg = CollectorRegistry()
    counter = Counter("demo_events", "Events seen.", registry=reg)
    clock = FakeClock()
    cache = ExpositionCache(reg, max_age=1.0, clock=clock)
    first = cache.get("", gzipped=True)
    counter.inc()
    for _ in range(5):
        again = cache.get("*/*", gzipped=True)
        assert again is first  # the same bytes, gzip computed once
    assert cache.renderings == 1
    assert b"demo_events_total 0.0" in first.body
    assert gzip.decompress(first.gzipped()) == first.body
    clock.now += 0.999
    assert cache.get("").body == first.body
    clock.now += 0.001
    fresh = cache.get("")
    assert cache.renderings == 2 and fresh.body == generate_latest(reg)
    assert b"demo_events_total 1.0" in fresh.body
    # each format and filter is its own rendering, also reused
    om = cache.get("application/openmetrics-text")
    assert om.body == openmetrics.generate_latest(reg) and cache.renderings == 3
    only = cache.get("", ["demo_events_total"])
    assert cache.get("", ["demo_events_total", "demo_events_total"]) is only
    assert cache.renderings == 4
    # a clock that went back renders again rather than serving a rendering from the future
    clock.now -= 10
    cache.get("")
    assert cache.renderings == 5


def test_no_cache_renders_every_request() -> None:
    reg = CollectorRegistry()
    counter = Counter("demo_events", "Events seen.", registry=reg)
    cache = ExpositionCache(reg, max_age=0.0, clock=FakeClock())
    cache.get("")
    counter.inc()
    assert b"demo_events_total 1.0" in cache.get("").body
    assert cache.renderings == 2
    with pytest.raises(ValueError, match="max_age"):
        ExpositionCache(reg, max_age=-1.0)


def test_filters_are_bounded(serve: Serve) -> None:
    server = serve()
    names = "&".join(f"name[]=m{i}" for i in range(MAX_FILTER_NAMES + 1))
    status, _, body = get(server.url + "?" + names)
    assert status == 400 and b"name[] filter with 65 names" in body
    status, _, body = get(server.url + "?name[]=" + "x" * 300)
    assert status == 400
    with pytest.raises(FilterError) as info:
        ExpositionCache(CollectorRegistry()).get("", ["a"] * 1 + ["b" * 257])
    assert info.value.longest == 257 and info.value.count == 2


def test_concurrent_scrapes_share_one_rendering_on_a_fixed_pool() -> None:
    reg = big_registry()
    settings = load_settings(
        environ={}, metrics_host="127.0.0.1", metrics_port=0, metrics_cache_seconds=300
    )
    server = start_metrics_server(settings, reg)
    try:
        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda _: get(server.url), range(64)))
            stats = server.stats()
        assert {a[0] for a in answers} == {200}
        assert {a[2] for a in answers} == {generate_latest(reg)}
        assert server.renderings == 1 and stats["renderings"] == 1
        # in the serving process: its main thread, the accepting thread and the pool
        assert stats["threads"] == SERVER_THREADS + 2
        assert stats["pid"] == server.pid != os.getpid()
    finally:
        server.close()


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_connections_beyond_the_bound_get_a_fast_503(serve: Serve) -> None:
    server = serve(metrics_max_connections=1)
    silent = []
    try:
        for held in range(1, SERVER_THREADS + 1):  # hold every thread of the pool
            silent.append(socket.create_connection(("127.0.0.1", server.port)))
            _wait_for(
                lambda n=held: server.stats()["serving"] == n, "the pool picks the connection up"
            )
        silent.append(socket.create_connection(("127.0.0.1", server.port)))  # waits in the queue
        _wait_for(lambda: server.stats()["pending"] == 1, "the connection is queued")
        t0 = time.monotonic()
        status, headers, body = get(server.url)
        assert status == 503 and headers["Retry-After"] == "1"
        assert body == b"503 too many scrapes at once\n"
        assert time.monotonic() - t0 < REQUEST_TIMEOUT_S / 2  # not after a timeout
        assert server.rejected == 1
    finally:
        for sock in silent:
            sock.close()
    # the held threads are free again once their clients hang up
    _wait_for(lambda: get(server.url)[0] == 200, "served again")


def test_cache_and_connection_settings_are_validated() -> None:
    settings = load_settings(
        environ={
            "DRIFTWATCH_METRICS_CACHE_SECONDS": "2.5",
            "DRIFTWATCH_METRICS_MAX_CONNECTIONS": "32",
        }
    )
    assert settings.metrics.cache_seconds == 2.5 and settings.metrics.max_connections == 32
    for name, value in (
        ("metrics_cache_seconds", -1.0),
        ("metrics_cache_seconds", float("nan")),
        ("metrics_cache_seconds", 301.0),
        ("metrics_max_connections", 0),
        ("metrics_max_connections", 5000),
    ):
        with pytest.raises(ConfigError) as info:
            Settings(**{name: value})  # type: ignore[arg-type]
        assert info.value.setting == name
