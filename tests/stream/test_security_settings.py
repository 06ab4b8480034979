"""Kafka security settings: validation, client configuration, secrets kept out of sight."""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path
from typing import Any, ClassVar

import faust
import pytest
from faust.types.auth import AuthProtocol, SASLMechanism

from stream import cli
from stream.exceptions import ConfigError
from stream.settings import REDACTED, Settings, load_settings
from stream.worker.kafka import broker_credentials, client_ssl_context, kafka_client_config
from tests.stream.test_metrics_server import make_tls_files

PASSWORD = "Kq7-kafka-S3cr3t-value"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Paths for the file settings (contents only matter where a test says so)."""
    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD + "\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    cert = tmp_path / "client.pem"
    cert.write_text("not a certificate\n")
    key = tmp_path / "client.key"
    key.write_text("not a key\n")
    return {"password": str(secret), "ca": str(ca), "cert": str(cert), "key": str(key)}


def clear_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_environment(monkeypatch)


def test_defaults_are_plaintext() -> None:
    s = load_settings(environ={})
    assert s.kafka.security_protocol == "PLAINTEXT" and s.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert s.kafka.ssl_check_hostname is True and s.kafka.sasl_secret() is None
    assert kafka_client_config(s) == {
        "bootstrap_servers": ["localhost:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert broker_credentials(s) is None


def test_sasl_ssl_from_the_environment_with_a_password_file(files: dict[str, str]) -> None:
    env = {
        "DRIFTWATCH_BOOTSTRAP_SERVERS": "k1:9093, k2:9093",
        "DRIFTWATCH_SECURITY_PROTOCOL": "SASL_SSL",
        "DRIFTWATCH_SASL_USERNAME": "driftwatch",
        "DRIFTWATCH_SASL_PASSWORD_FILE": files["password"],
        "DRIFTWATCH_SSL_CAFILE": files["ca"],
        "DRIFTWATCH_SSL_CHECK_HOSTNAME": "false",
    }
    s = load_settings(environ=env)
    assert s.kafka.sasl_secret() == PASSWORD  # the file's line break is not part of it
    assert s.kafka.ssl_check_hostname is False
    assert kafka_client_config(s) == {
        "bootstrap_servers": ["k1:9093", "k2:9093"],
        "security_protocol": "SASL_SSL",
        "ssl_cafile": files["ca"],
        "ssl_certfile": None,
        "ssl_keyfile": None,
        "ssl_check_hostname": False,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "driftwatch",
        "sasl_plain_password": PASSWORD,
    }
    assert PASSWORD not in repr(s)


def test_sasl_plaintext_with_a_password_in_the_environment() -> None:
    env = {
        "DRIFTWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "DRIFTWATCH_SASL_MECHANISM": "PLAIN",
        "DRIFTWATCH_SASL_USERNAME": "svc",
        "DRIFTWATCH_SASL_PASSWORD": PASSWORD,
    }
    s = load_settings(environ=env)
    config = kafka_client_config(s)
    assert config["security_protocol"] == "SASL_PLAINTEXT" and "ssl_cafile" not in config
    assert config["sasl_mechanism"] == "PLAIN" and config["sasl_plain_password"] == PASSWORD
    creds = broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol == AuthProtocol.SASL_PLAINTEXT and creds.ssl_context is None
    assert creds.mechanism == SASLMechanism.PLAIN and creds.password == PASSWORD
    assert PASSWORD not in repr(creds)


def test_faust_credentials_for_sasl_ssl_and_ssl(tmp_path: Path) -> None:
    ca, _cert, _key = make_tls_files(tmp_path)
    s = load_settings(
        environ={},
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="driftwatch",
        sasl_password=PASSWORD,
        ssl_cafile=str(ca),
    )
    creds = broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol == AuthProtocol.SASL_SSL
    assert creds.mechanism == SASLMechanism.SCRAM_SHA_256
    assert creds.username == "driftwatch" and creds.password == PASSWORD
    assert creds.ssl_context is not None and creds.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert creds.ssl_context.check_hostname

    tls = broker_credentials(
        s.replace(security_protocol="SSL", sasl_username=None, sasl_password=None)
    )
    assert isinstance(tls, faust.SSLCredentials) and tls.protocol == AuthProtocol.SSL
    assert tls.context.verify_mode == ssl.CERT_REQUIRED


def test_client_ssl_context_follows_the_settings(tmp_path: Path, files: dict[str, str]) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    ca, cert, key = make_tls_files(tls)
    s = load_settings(
        environ={},
        security_protocol="SSL",
        ssl_cafile=str(ca),
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        ssl_check_hostname=False,
    )
    context = client_ssl_context(s)
    assert context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    with pytest.raises(ConfigError) as info:
        client_ssl_context(s.replace(ssl_cafile=files["ca"]))  # not PEM
    assert info.value.setting == "ssl_cafile"
    with pytest.raises(ConfigError) as info:
        client_ssl_context(s.replace(ssl_keyfile=str(ca)))  # not the certificate's key
    assert info.value.setting == "ssl_keyfile"


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("Yes", True), ("0", False), ("off", False)]
)
def test_booleans_from_the_environment(raw: str, value: bool) -> None:
    assert (
        load_settings(environ={"DRIFTWATCH_SSL_CHECK_HOSTNAME": raw}).kafka.ssl_check_hostname
        is value
    )


def test_booleans_from_a_file(tmp_path: Path) -> None:
    cfg = tmp_path / "driftwatch.toml"
    cfg.write_text("[driftwatch]\nssl_check_hostname = false\n")
    assert load_settings(cfg, environ={}).kafka.ssl_check_hostname is False
    cfg.write_text('[driftwatch]\nssl_check_hostname = "sometimes"\n')
    with pytest.raises(ConfigError, match="ssl_check_hostname"):
        load_settings(cfg, environ={})


SASL = {
    "security_protocol": "SASL_SSL",
    "sasl_username": "driftwatch",
    "sasl_password": PASSWORD,
}


@pytest.mark.parametrize(
    ("changes", "setting", "reason"),
    [
        ({"security_protocol": "TLS"}, "security_protocol", "one of PLAINTEXT, SSL"),
        ({**SASL, "sasl_mechanism": "GSSAPI"}, "sasl_mechanism", "one of PLAIN, SCRAM"),
        ({**SASL, "sasl_username": None}, "sasl_username", "needed with"),
        ({**SASL, "sasl_username": " "}, "sasl_username", "needed with"),
        ({**SASL, "sasl_password": None}, "sasl_password", "set sasl_password or"),
        ({**SASL, "sasl_password": ""}, "sasl_password", "must not be empty"),
        ({**SASL, "sasl_password_file": "{password}"}, "sasl_password", "not both"),
        ({"sasl_username": "x"}, "sasl_username", "only used with"),
        ({"sasl_password": PASSWORD}, "sasl_password", "only used with"),
        ({"sasl_password_file": "{password}"}, "sasl_password_file", "only used with"),
        ({"ssl_cafile": "{ca}"}, "ssl_cafile", "only used with security_protocol SSL"),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"},
            "ssl_cafile",
            "not found",
        ),
        (
            {"security_protocol": "SSL", "ssl_certfile": "/nonexistent.pem"},
            "ssl_certfile",
            "not found",
        ),
        ({"security_protocol": "SSL", "ssl_keyfile": "{key}"}, "ssl_keyfile", "ssl_certfile too"),
        (
            {**SASL, "sasl_password": None, "sasl_password_file": "/nonexistent/pw"},
            "sasl_password_file",
            "file not found",
        ),
        ({"metrics_tls_certfile": "/nonexistent.pem"}, "metrics_tls_certfile", "not found"),
        ({"metrics_tls_keyfile": "{key}"}, "metrics_tls_keyfile", "metrics_tls_certfile too"),
        ({"metrics_basic_auth_username": "p"}, "metrics_basic_auth_username", "together"),
        ({"metrics_basic_auth_password": PASSWORD}, "metrics_basic_auth_username", "together"),
        (
            {"metrics_basic_auth_username": "a:b", "metrics_basic_auth_password": PASSWORD},
            "metrics_basic_auth_username",
            "without ':'",
        ),
        (
            {
                "metrics_basic_auth_username": "p",
                "metrics_basic_auth_password": PASSWORD,
                "metrics_basic_auth_password_file": "{password}",
            },
            "metrics_basic_auth_password",
            "not both",
        ),
    ],
)
def test_invalid_security_settings(
    changes: dict[str, Any], setting: str, reason: str, files: dict[str, str]
) -> None:
    values = {k: v.format(**files) if isinstance(v, str) else v for k, v in changes.items()}
    with pytest.raises(ConfigError) as info:
        Settings(**values)
    assert info.value.setting == setting
    assert reason in str(info.value)
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value.value)


def test_an_empty_or_unreadable_password_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="the file is empty") as info:
        Settings(**{**SASL, "sasl_password": None, "sasl_password_file": str(empty)})
    assert info.value.setting == "sasl_password_file"
    with pytest.raises(ConfigError, match=r"must be a file path|file not found"):
        Settings(**{**SASL, "sasl_password": None, "sasl_password_file": str(tmp_path)})


def test_secrets_never_appear_in_reprs_or_errors(tmp_path: Path) -> None:
    s = Settings(**SASL, metrics_basic_auth_username="p", metrics_basic_auth_password=PASSWORD)
    assert PASSWORD not in repr(s) and PASSWORD not in str(s)
    assert "sasl_password=" not in repr(s) and "metrics_basic_auth_password=" not in repr(s)
    errors: list[ConfigError] = []
    for attempt in (
        lambda: load_settings(environ={"DRIFTWATCH_SASL_PASSWORD": PASSWORD}),  # no SASL
        lambda: load_settings(environ={}, sasl_pasword=PASSWORD),  # misspelt keyword
        lambda: Settings(**{**SASL, "sasl_password_file": __file__}),
    ):
        with pytest.raises(ConfigError) as info:
            attempt()
        errors.append(info.value)
    cfg = tmp_path / "driftwatch.toml"
    cfg.write_text(f'sasl_passwrd = "{PASSWORD}"\n')  # misspelt key in the file
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    errors.append(info.value)
    for error in errors:
        assert PASSWORD not in str(error) and PASSWORD not in repr(error.value), error
    assert errors[0].value == REDACTED


class FakeProducer:
    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        FakeProducer.instances.append(self)

    def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def send(self, topic: str, **kwargs: Any) -> Any:
        class Done:
            def get(self, timeout: float | None = None) -> None:
                return None

        return Done()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def test_command_line_tools_use_the_security_settings(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    files: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import kafka

    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    FakeProducer.instances.clear()
    monkeypatch.setenv("DRIFTWATCH_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DRIFTWATCH_SASL_USERNAME", "driftwatch")
    monkeypatch.setenv("DRIFTWATCH_SASL_PASSWORD_FILE", files["password"])
    monkeypatch.setenv("DRIFTWATCH_SSL_CAFILE", files["ca"])
    assert cli.main(["rebaseline", "--bootstrap-servers", "k1:9093"]) == 0

    cfg = tmp_path / "client.toml"
    cfg.write_text(
        f'bootstrap_servers = "k2:9093"\nsecurity_protocol = "SASL_PLAINTEXT"\n'
        f'sasl_mechanism = "SCRAM-SHA-256"\nsasl_username = "sim"\n'
        f'sasl_password_file = "{files["password"]}"\n'
    )
    clear_environment(monkeypatch)
    assert cli.main(["simulate", "--config", str(cfg), "--count", "3", "--rate", "0"]) == 0
    assert cli.main(["simulate", "--config", str(cfg), "--count", "1", "--rate", "0"]) == 0

    rebaseline, simulate, _ = FakeProducer.instances
    assert rebaseline.config["bootstrap_servers"] == ["k1:9093"]
    assert rebaseline.config["security_protocol"] == "SASL_SSL"
    assert rebaseline.config["ssl_cafile"] == files["ca"]
    assert rebaseline.config["sasl_plain_password"] == PASSWORD
    assert simulate.config["bootstrap_servers"] == ["k2:9093"]  # from the file
    assert simulate.config["security_protocol"] == "SASL_PLAINTEXT"
    assert simulate.config["sasl_mechanism"] == "SCRAM-SHA-256"
    assert simulate.config["sasl_plain_username"] == "sim"
    assert "ssl_cafile" not in simulate.config
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err


def test_command_line_errors_do_not_echo_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTWATCH_SASL_PASSWORD", PASSWORD)  # but no SASL protocol
    assert cli.main(["tail", "--bootstrap-servers", "k1:9093", "--timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert "sasl_password" in err and PASSWORD not in err


def test_sasl_bytes_and_passwords_are_redacted_from_the_client_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aiokafka.protocol.admin import SaslAuthenticateRequest_v1

    tricky = PASSWORD + "\\'q"  # escaped differently in a bytes repr
    s = load_settings(
        environ={},
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password=tricky,
    )
    broker_credentials(s)  # installs the filter, as the worker's app does
    caplog.set_level(logging.DEBUG, logger="aiokafka.conn")
    conn_log = logging.getLogger("aiokafka.conn")
    request = SaslAuthenticateRequest_v1(b"\0svc\0" + tricky.encode())
    conn_log.debug("Request to %s:%d %d: %s", "127.0.0.1", 9093, 7, request)
    conn_log.debug("connection failed for svc/%s", tricky)
    conn_log.info("Authenticated as %s via %s", "svc", "PLAIN")
    text = caplog.text
    assert PASSWORD not in text
    assert all(isinstance(r.args, tuple | dict) for r in caplog.records)  # as formatters expect
    assert "sasl_auth_bytes=<redacted>" in text and "Authenticated as svc via PLAIN" in text
    assert len(logging.getLogger("aiokafka.conn").filters) == 1
    broker_credentials(s)  # not installed twice
    assert len(logging.getLogger("aiokafka.conn").filters) == 1
