"""The worker over SASL_SSL (SCRAM-SHA-512) on a broker of its own: drift events flow, and
neither a working nor a wrong password ever appears in the worker's log."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from kafka import KafkaAdminClient

from stream.settings import Settings
from stream.tools.simulation import DriftSpec, TelemetrySimulator
from stream.worker.kafka import kafka_client_config
from tests.support import kafka_local
from tests.support.broker import BOOTSTRAP_ENV
from tests.support.pipeline import START_MS, consume, produce, telemetry_records
from tests.support.worker import DRIFTWATCH, REPO, free_port, run_worker, wait_for

USER = "driftwatch"
PASSWORD = "Dw-scram-4f7c1e9a-pass"
WRONG_PASSWORD = "Dw-wrong-0b3d5e8c-pass"
LISTENER = "SASL_SSL"


def make_ca_and_broker_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1/localhost signed by it: (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (
        directory / name for name in ("ca.key", "ca.pem", "broker.key", "broker.csr", "broker.pem")
    )
    ext = directory / "broker.ext"
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


@dataclass(frozen=True)
class SecureBroker:
    """A broker with a SASL_SSL listener (SCRAM-SHA-512) besides PLAINTEXT."""

    bootstrap: str
    ca: Path
    password_file: Path
    log_path: Path

    def client_settings(self) -> Settings:
        return Settings(
            bootstrap_servers=self.bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=USER,
            sasl_password_file=str(self.password_file),
            ssl_cafile=str(self.ca),
        )

    def worker_settings(self) -> dict[str, object]:
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": USER,
            "sasl_password_file": self.password_file,
            "ssl_cafile": self.ca,
        }


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    if os.environ.get(BOOTSTRAP_ENV) and shutil.which("java") is None:
        pytest.skip("the SASL_SSL broker is started here and needs java")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the broker's certificate")
    base = tmp_path_factory.mktemp("secure-kafka")
    tls = base / "tls"
    tls.mkdir()
    ca, cert, key = make_ca_and_broker_cert(tls)
    keystore = tls / "broker-keystore.pem"
    keystore.write_text(key.read_text() + cert.read_text() + ca.read_text())
    password_file = base / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    prefix = f"listener.name.{LISTENER.lower()}"
    state_dir = base / "kafka"
    broker = kafka_local.start(
        state_dir,
        extra_listeners={LISTENER: "SASL_SSL"},
        scram_users=[("SCRAM-SHA-512", USER, PASSWORD)],
        extra_config={
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            f"{prefix}.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{prefix}.ssl.keystore.type": "PEM",
            f"{prefix}.ssl.keystore.location": str(keystore),
        },
    )
    atexit.register(broker.stop)
    try:
        yield SecureBroker(
            broker.listener_bootstrap(LISTENER), ca, password_file, Path(broker.log_path)
        )
    finally:
        broker.stop()
        atexit.unregister(broker.stop)
        copy = REPO / "var" / "test-logs" / "secure-broker.log"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(broker.log_path, copy)


def create_topics(settings: Settings, *names: str, partitions: int = 2) -> None:
    admin = KafkaAdminClient(**kafka_client_config(settings), client_id="driftwatch-tests")
    try:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1} for name in names},
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def test_worker_over_sasl_ssl(secure_broker: SecureBroker, tmp_path: Path) -> None:
    client = secure_broker.client_settings()
    suffix = uuid.uuid4().hex[:8]
    telemetry, drift_topic, dlq, control = (
        f"{name}-{suffix}" for name in ("telemetry", "drift", "dlq", "control")
    )
    create_topics(client, telemetry, drift_topic, dlq, control)

    drift = DriftSpec("agent-2", "response_latency_ms", "shift", 0.6, start_event=8000)
    sim = TelemetrySimulator(4, seed=5, drift=drift)
    events = sim.events(14_000, start_ms=START_MS, step_ms=10)
    sent = produce(telemetry, telemetry_records(events), **kafka_client_config(client))

    settings = {
        **secure_broker.worker_settings(),
        "telemetry_topic": telemetry,
        "drift_topic": drift_topic,
        "dead_letter_topic": dlq,
        "control_topic": control,
        "app_id": f"driftwatch-{telemetry}",
        "window_size": 300,
        "reference_size": 600,
        "alpha": "1e-7",
        "batch_size": 500,
    }
    drift_labels = {"type": "drift_started", "feature": "response_latency_ms"}
    with run_worker(secure_broker.bootstrap, tmp_path, **settings) as worker:
        wait_for(
            lambda: worker.sample("driftwatch_events_consumed_total", {"topic": telemetry}) == sent,
            120,
            f"{sent} events consumed over SASL_SSL",
            worker,
        )
        wait_for(
            lambda: worker.sample("driftwatch_drift_events_total", drift_labels) == 1.0,
            30,
            "the drift event",
            worker,
        )
        records = consume(drift_topic, 1, 30, **kafka_client_config(client))
    assert records, "no drift event on the drift topic"
    event = msgspec.json.decode(records[0].value)
    assert (event["type"], event["key"], event["feature"]) == (
        "drift_started",
        "agent-2",
        "response_latency_ms",
    )
    assert event["source"]["topic"] == telemetry
    log = worker.log.read_text(errors="replace")
    assert f"Authenticated as {USER} via SCRAM-SHA-512" in log
    assert "drift_started key=agent-2" in log
    assert PASSWORD not in log


def test_a_wrong_password_fails_without_echoing_it(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWATCH_")}
    settings = secure_broker.worker_settings()
    del settings["sasl_password_file"]
    env.update({f"DRIFTWATCH_{k.upper()}": str(v) for k, v in settings.items()})
    env.update(
        {
            "DRIFTWATCH_BOOTSTRAP_SERVERS": secure_broker.bootstrap,
            "DRIFTWATCH_SASL_PASSWORD": WRONG_PASSWORD,
            "DRIFTWATCH_APP_ID": f"driftwatch-wrong-{uuid.uuid4().hex[:8]}",
            "DRIFTWATCH_METRICS_PORT": str(free_port()),
            "DRIFTWATCH_METRICS_HOST": "127.0.0.1",
            "DRIFTWATCH_DATA_DIR": str(tmp_path / "worker-data"),
        }
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(DRIFTWATCH), "worker", "--loglevel", "debug"],  # the clients log requests
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if "authentication failed" in log.read_text(errors="replace").lower():
                break
            time.sleep(0.5)
        text = log.read_text(errors="replace")
        assert "authentication failed" in text.lower(), text[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        copy = REPO / "var" / "test-logs" / f"worker-{tmp_path.name}.log"
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(log.read_bytes())
    text = log.read_text(errors="replace")
    assert WRONG_PASSWORD not in text and PASSWORD not in text
    assert "sasl_auth_bytes=<redacted>" in text  # SASL exchanges are logged without their bytes
    assert "Logging error" not in text
