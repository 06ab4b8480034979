"""Strict settings: unknown variables and keys are errors naming the closest setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream import cli
from stream.exceptions import ConfigError
from stream.settings import OTHER_VARIABLES, REDACTED, load_settings, setting_types

SECRET = "hunter2-correct-horse"


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_"):
            monkeypatch.delenv(name)


def test_a_misspelt_variable_names_the_closest_setting() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"DRIFTWATCH_WINDOWSIZE": "abc"})
    assert info.value.setting == "DRIFTWATCH_WINDOWSIZE"
    assert "did you mean DRIFTWATCH_WINDOW_SIZE?" in str(info.value)
    assert "abc" not in str(info.value) and info.value.value == REDACTED


def test_a_misspelt_secret_is_never_shown() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"DRIFTWATCH_SASL_PASWORD": SECRET})
    assert "did you mean DRIFTWATCH_SASL_PASSWORD?" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.__dict__)


def test_a_variable_like_nothing_points_to_the_list() -> None:
    with pytest.raises(ConfigError, match=r"unknown environment variable .*README"):
        load_settings(environ={"DRIFTWATCH_ZZZZZZZZZZZZ": "1"})


def test_every_setting_and_the_other_variables_are_known() -> None:
    env = {f"DRIFTWATCH_{name.upper()}": "" for name in setting_types()}
    names = set(env) | OTHER_VARIABLES
    # each one alone is accepted as a name (its value may still be refused as a value)
    for name in sorted(names):
        try:
            load_settings(environ={name: "x" if name in OTHER_VARIABLES else ""})
        except ConfigError as exc:
            assert "unknown environment variable" not in exc.reason, name
    # what the CLI, the scripts and the tests read must be among them
    assert "DRIFTWATCH_CONTROL_SIGNING_KEY_FILE" in names
    assert {"DRIFTWATCH_KAFKA_BOOTSTRAP", "DRIFTWATCH_KAFKA_CACHE"} <= names
    # other variables are not this program's business
    assert load_settings(environ={"DRIFTWATCHER": "1", "KAFKA_X": "2"}).app_id == "driftwatch"


def test_every_driftwatch_variable_in_the_repository_is_known() -> None:
    import re

    root = Path(__file__).resolve().parents[2]
    names = {f"DRIFTWATCH_{name.upper()}" for name in setting_types()} | OTHER_VARIABLES
    found: set[str] = set()
    for folder in ("stream", "scripts", "deploy", "tests", "bench", "docs"):
        for path in (root / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".sh", ".yml", ".yaml", ".toml", ".md"}:
                found |= set(re.findall(r"DRIFTWATCH_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    for name in ("docker-compose.yml", "Dockerfile", "README.md"):
        found |= set(re.findall(r"DRIFTWATCH_[A-Z0-9_]*[A-Z0-9]", (root / name).read_text()))
    made_up = {"DRIFTWATCH_WINDOWSIZE", "DRIFTWATCH_SASL_PASWORD", "DRIFTWATCH_ZZZZZZZZZZZZ"}
    assert found - names - made_up == set()


def test_a_misspelt_toml_key_names_the_closest_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'[driftwatch]\nwindw_size = 3\nsasl_pasword = "{SECRET}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert "did you mean window_size?" in str(info.value)
    cfg.write_text(f'sasl_pasword = "{SECRET}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert "did you mean sasl_password?" in str(info.value) and SECRET not in str(info.value)


def test_top_level_keys_beside_a_driftwatch_section_are_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'window_size = 300\nsasl_password = "{SECRET}"\n[driftwatch]\nalpha = 0.01\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert "beside the [driftwatch] section" in str(info.value)
    assert "sasl_password, window_size" in str(info.value) and SECRET not in str(info.value)
    # either layout alone is fine
    cfg.write_text("[driftwatch]\nwindow_size = 300\n")
    assert load_settings(cfg, environ={}).window_size == 300
    cfg.write_text("window_size = 300\n")
    assert load_settings(cfg, environ={}).window_size == 300
    cfg.write_text('driftwatch = "x"\n')
    with pytest.raises(ConfigError, match="must be a table"):
        load_settings(cfg, environ={})


def test_the_cli_exits_2_with_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "t.jsonl"
    data.write_text('{"agent_id": "a", "response_latency_ms": 1}\n')
    monkeypatch.setenv("DRIFTWATCH_SASL_PASWORD", SECRET)
    assert cli.main(["replay", str(data), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "DRIFTWATCH_SASL_PASWORD" in err and "DRIFTWATCH_SASL_PASSWORD?" in err
    assert SECRET not in err


def test_the_worker_exits_2_with_the_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWATCH_")}
    env["DRIFTWATCH_WINDOWSIZE"] = SECRET
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "did you mean DRIFTWATCH_WINDOW_SIZE?" in done.stderr
    assert SECRET not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("window_size", "250", 250),
        ("resolve_after", "", None),
        ("ert", "5000.5", 5000.5),
        ("checkpoints", "off", False),
        ("features", "a, b,,c", ("a", "b", "c")),
        (
            "feature_detectors",
            "token_count=adwin, retry_count=kswin",
            {"token_count": "adwin", "retry_count": "kswin"},
        ),
        ("sasl_username", "", None),
        ("metrics_port", "9000", 9000),
    ],
)
def test_each_value_is_read_by_its_settings_type(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str, expected: object
) -> None:
    monkeypatch.setenv(f"DRIFTWATCH_{name.upper()}", raw)
    assert load_settings().flat()[name] == expected


@pytest.mark.parametrize(
    ("name", "raw", "kind"),
    [
        ("window_size", "2.5", "int"),
        ("batch_timeout", "soon", "float"),
        ("checkpoints", "y", "bool"),
    ],
)
def test_a_value_its_type_cannot_read_is_an_error_naming_the_type(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str, kind: str
) -> None:
    monkeypatch.setenv(f"DRIFTWATCH_{name.upper()}", raw)
    with pytest.raises(ConfigError, match=f"cannot be read as {kind}"):
        load_settings()
