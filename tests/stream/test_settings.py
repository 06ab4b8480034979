from __future__ import annotations

from pathlib import Path

import pytest

from stream.exceptions import ConfigError
from stream.settings import DEFAULT_FEATURES, load_settings


def test_defaults() -> None:
    s = load_settings(environ={})
    assert s.features == DEFAULT_FEATURES
    assert s.telemetry_topic == "agent-telemetry"
    assert s.drift_topic == "driftwatch.drift-events"
    assert s.detector_for("token_count") == "incremental_ks"


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "driftwatch.toml"
    cfg.write_text(
        '[driftwatch]\nwindow_size = 300\nfeatures = ["a", "b"]\n'
        'feature_detectors = { b = "adwin" }\nalpha = 0.01\n'
    )
    s = load_settings(cfg, environ={"DRIFTWATCH_ALPHA": "0.002"}, reference_size=50)
    assert s.window_size == 300 and s.features == ("a", "b")
    assert s.detector_for("b") == "adwin" and s.detector_for("a") == "incremental_ks"
    assert s.alpha == 0.002  # environment beats the file
    assert s.reference_size == 50  # explicit override beats both
    env = {"DRIFTWATCH_CONFIG": str(cfg), "DRIFTWATCH_FEATURES": "a, b ,z"}
    assert load_settings(environ=env).features == ("a", "b", "z")


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"DRIFTWATCH_WINDOW_SIZE": "0"}, "window_size"),
        ({"DRIFTWATCH_WINDOW_SIZE": "lots"}, "DRIFTWATCH_WINDOW_SIZE"),
        ({"DRIFTWATCH_ALPHA": "2"}, "alpha"),
        ({"DRIFTWATCH_DETECTOR": "magic"}, "detector"),
        ({"DRIFTWATCH_FEATURE_DETECTORS": "nope=adwin"}, "feature_detectors"),
        ({"DRIFTWATCH_REFERENCE_MODE": "file"}, "reference_file"),
        ({"DRIFTWATCH_FEATURES": "agent_id"}, "features"),
        ({"DRIFTWATCH_WINDOW_DURATION": "-3", "DRIFTWATCH_ALPHA": "0.01"}, "window_duration"),
        ({"DRIFTWATCH_WINDOW_DURATION": "60"}, "window_duration"),
        ({"DRIFTWATCH_ALPHA": "0.01", "DRIFTWATCH_ERT": "5000"}, "alpha"),
        ({"DRIFTWATCH_FLEET_FALSE_ALARMS_PER_DAY": "2"}, "fleet_false_alarms_per_day"),
        ({"DRIFTWATCH_ERT": "1"}, "ert"),
        ({"DRIFTWATCH_GUARANTEE": "1.5"}, "guarantee"),
        ({"DRIFTWATCH_GUARANTEE": "0"}, "guarantee"),
        ({"DRIFTWATCH_GUARANTEE": "0.9", "DRIFTWATCH_ALPHA": "0.01"}, "guarantee"),
    ],
)
def test_invalid_settings_name_the_setting(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert info.value.setting == setting
    assert setting in str(info.value)


def test_ert_from_defaults_alpha_or_the_fleet_budget() -> None:
    # the default: the worker's daily budget, each stream's ert derived from its measured rate
    default = load_settings(environ={})
    assert default.effective_ert is None and default.worker_budget == 0.5
    budget = load_settings(environ={"DRIFTWATCH_FALSE_ALARMS_PER_DAY": "0.5"})
    assert budget.effective_ert is None and budget.worker_budget == 0.5
    alpha = load_settings(environ={"DRIFTWATCH_ALPHA": "0.001"})
    assert alpha.effective_ert is None and alpha.worker_budget is None
    assert load_settings(environ={"DRIFTWATCH_ERT": "5e5"}).effective_ert == 500_000
    assert load_settings(environ={"DRIFTWATCH_ERT": "5e5"}).worker_budget is None
    fleet = {
        "DRIFTWATCH_FLEET_FALSE_ALARMS_PER_DAY": "2",
        "DRIFTWATCH_FLEET_EVENTS_PER_SECOND": "100",
    }
    # 100 events/s x 4 features x 86,400 s / 2 alarms a day
    assert load_settings(environ=fleet).effective_ert == 100 * 4 * 86_400 / 2
    assert load_settings(environ=fleet).worker_budget is None


@pytest.mark.parametrize(
    "env",
    [
        {"DRIFTWATCH_FALSE_ALARMS_PER_DAY": "0"},
        {"DRIFTWATCH_FALSE_ALARMS_PER_DAY": "nan"},
        {"DRIFTWATCH_FALSE_ALARMS_PER_DAY": "2", "DRIFTWATCH_ERT": "5e5"},
        {"DRIFTWATCH_FALSE_ALARMS_PER_DAY": "2", "DRIFTWATCH_ALPHA": "0.01"},
    ],
)
def test_the_worker_budget_is_positive_and_alone(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert info.value.setting == "false_alarms_per_day"


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("window_size = [")
    with pytest.raises(ConfigError, match="not readable as TOML"):
        load_settings(bad, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("windw_size = 3\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(unknown, environ={})


def test_the_guarantee_setting_reaches_the_ks_detectors() -> None:
    """``GUARANTEE`` is the detectors' ``guarantee``: KS kinds calibrate it, river kinds do not
    take it; unset, the average rate is calibrated."""
    import numpy as np

    from detectors import IncrementalKS, WindowedKS
    from detectors.registry import build_detector

    s = load_settings(environ={"DRIFTWATCH_GUARANTEE": "0.9", "DRIFTWATCH_ERT": "2000"})
    assert s.guarantee == 0.9 and load_settings(environ={}).guarantee is None
    ref = (np.random.default_rng(3).random(300) < 0.1).astype(float)  # a tied flag
    options = s.detector_options()
    ks = build_detector("incremental_ks", ref, options)
    windowed = build_detector("windowed_ks", ref, options)
    assert isinstance(ks, IncrementalKS) and isinstance(windowed, WindowedKS)
    assert ks.guarantee == windowed.guarantee == 0.9
    assert ks.calibration is not None and ks.calibration.guarantee == 0.9
    river = build_detector("page_hinkley", ref, options)
    assert not hasattr(river, "guarantee")
