"""Tests for ``driftwatch compare`` (stream.tools.compare) end to end, through stream.cli.main."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from scipy import stats

from detectors.multitest import CORRECTION_METHODS, adjust_pvalues
from stream.cli import main
from stream.exceptions import InputFileError
from stream.tools.compare import (
    DEFAULT_FEATURES,
    accuracy_drop_pvalue,
    compare_files,
    normalized_wasserstein,
    population_stability_index,
)

FEATURES = list(DEFAULT_FEATURES)
DRIFTED = {"response_latency_ms", "token_count"}
SEED = 2


def make_table(rng: np.random.Generator, n: int, *, drift: bool) -> dict[str, np.ndarray]:
    """Agent telemetry; with ``drift`` latency grows and token counts shrink."""
    latency = rng.lognormal(5.0 + (0.15 if drift else 0.0), 0.4, n)
    tokens = rng.poisson(300 - (15 if drift else 0), n).astype(np.float64)
    retries = rng.poisson(0.3, n).astype(np.float64)
    errors = rng.beta(1, 30, n)
    latency[rng.random(n) < 0.02] = np.nan
    errors[rng.random(n) < 0.01] = np.nan
    true = rng.choice(["search", "answer", "escalate"], n)
    wrong = rng.random(n) < (0.2 if drift else 0.1)
    predicted = np.where(wrong, "answer_wrong", true)
    return {
        "response_latency_ms": latency,
        "token_count": tokens,
        "retry_count": retries,
        "error_rate": errors,
        "predicted_label": predicted,
        "true_label": true,
    }


def to_arrow(columns: dict[str, np.ndarray]) -> pa.Table:
    arrays = {}
    for name, values in columns.items():
        if values.dtype.kind == "f":
            arrays[name] = pa.array(values, mask=np.isnan(values))
        else:
            arrays[name] = pa.array(values.tolist())
    return pa.table(arrays)


def write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path)


def write_csv(table: pa.Table, path: Path) -> None:
    pa_csv.write_csv(table, path)


def write_jsonl(table: pa.Table, path: Path) -> None:
    # Written with pyarrow (no json module): one JSON object per line.
    names = table.column_names
    columns = [table.column(name).to_pylist() for name in names]
    with path.open("w") as out:
        for row in zip(*columns, strict=True):
            fields = ", ".join(
                f'"{name}": {_json_value(value)}' for name, value in zip(names, row, strict=True)
            )
            out.write("{" + fields + "}\n")


def _json_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


WRITERS: dict[str, Callable[[pa.Table, Path], None]] = {
    "parquet": write_parquet,
    "csv": write_csv,
    "jsonl": write_jsonl,
}


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(SEED)
    return make_table(rng, 1500, drift=False), make_table(rng, 1200, drift=True)


def write(tmp_path: Path, name: str, fmt: str, columns: dict[str, np.ndarray] | pa.Table) -> Path:
    path = tmp_path / f"{name}.{fmt}"
    table = columns if isinstance(columns, pa.Table) else to_arrow(columns)
    WRITERS[fmt](table, path)
    return path


@pytest.fixture
def files(
    tmp_path: Path, data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
) -> tuple[Path, Path]:
    return write(tmp_path, "ref", "parquet", data[0]), write(tmp_path, "prod", "csv", data[1])


def ks_expected(reference: np.ndarray, production: np.ndarray) -> Any:
    return stats.ks_2samp(reference[~np.isnan(reference)], production[~np.isnan(production)])


@pytest.mark.parametrize(
    ("ref_fmt", "prod_fmt"),
    [("parquet", "csv"), ("csv", "jsonl"), ("jsonl", "parquet"), ("jsonl", "jsonl")],
)
def test_reports_exactly_the_drifted_features(
    tmp_path: Path,
    data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    ref_fmt: str,
    prod_fmt: str,
) -> None:
    ref, prod = data
    report = compare_files(
        write(tmp_path, "ref", ref_fmt, ref), write(tmp_path, "prod", prod_fmt, prod)
    )
    assert [r.feature for r in report.features] == FEATURES
    assert {r.feature for r in report.drifted} == DRIFTED
    assert report.has_drift
    assert report.reference.rows == 1500 and report.production.rows == 1200
    for result in report.features:
        expected = ks_expected(ref[result.feature], prod[result.feature])
        assert result.ks_stat == pytest.approx(expected.statistic, abs=1e-12)
        assert result.p_value == pytest.approx(expected.pvalue, abs=1e-12)
        assert result.p_adjusted == result.p_value  # correction "none"
        assert result.drifted == (result.p_value < 0.05)
        assert result.statistic_location == expected.statistic_location
        assert result.n_reference == np.count_nonzero(~np.isnan(ref[result.feature]))
        assert result.n_production == np.count_nonzero(~np.isnan(prod[result.feature]))
        assert result.reference_nan_dropped == np.count_nonzero(np.isnan(ref[result.feature]))
        assert result.production_nan_dropped == np.count_nonzero(np.isnan(prod[result.feature]))
    by_name = {r.feature: r for r in report.features}
    assert by_name["response_latency_ms"].direction == "production_larger"
    assert by_name["token_count"].direction == "production_smaller"
    assert by_name["response_latency_ms"].reference_nan_dropped > 0


@pytest.mark.parametrize("correction", CORRECTION_METHODS)
def test_corrections_applied(files: tuple[Path, Path], correction: str) -> None:
    report = compare_files(*files, correction=correction, alpha=0.01)  # type: ignore[arg-type]
    raw = [r.p_value for r in report.features]
    expected = adjust_pvalues(raw, correction)
    assert [r.p_adjusted for r in report.features] == pytest.approx(expected, abs=1e-15)
    assert [r.drifted for r in report.features] == [p < 0.01 for p in expected]
    assert report.correction == correction and report.alpha == 0.01


def test_correction_can_change_the_verdict(tmp_path: Path) -> None:
    # Reference 0..199, production shifted by k + 0.5: D = k / 200 exactly, so the raw
    # p-values are fixed: k=27 -> 0.0396, k=28 -> 0.0297, k=29 -> 0.0221.
    # bonferroni: 3p = 0.119, 0.089, 0.066 -> nothing below 0.05.
    # holm: 3*0.0221=0.066, 2*0.0297=0.059, 1*0.0396=0.040 -> cummax 0.066 for all.
    # bh: 3/1*0.0221=0.066, 3/2*0.0297=0.0446, 3/3*0.0396=0.0396 -> cummin 0.0396 for all.
    base = np.arange(200.0)
    ref = {f"f{k}": base for k in (27, 28, 29)}
    prod = {f"f{k}": base + k + 0.5 for k in (27, 28, 29)}
    ref_path = write(tmp_path, "ref", "parquet", ref)
    prod_path = write(tmp_path, "prod", "csv", prod)
    drifted = {
        method: len(
            compare_files(ref_path, prod_path, features=list(ref), correction=method).drifted
        )
        for method in CORRECTION_METHODS
    }
    assert drifted == {"none": 3, "bonferroni": 0, "holm": 0, "bh": 3}
    report = compare_files(ref_path, prod_path, features=list(ref), correction="bh")
    assert [r.ks_stat for r in report.features] == pytest.approx(
        [0.135 + 0.005 * i for i in (1, 2, 3)]
    )
    assert [r.p_adjusted for r in report.features] == pytest.approx([0.03956] * 3, rel=1e-3)


def test_default_features_are_those_in_both_files(
    tmp_path: Path, data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
) -> None:
    ref = dict(data[0])
    prod = {k: v for k, v in data[1].items() if k != "error_rate"}
    ref["extra_metric"] = ref["token_count"]
    report = compare_files(
        write(tmp_path, "ref", "parquet", ref), write(tmp_path, "prod", "jsonl", prod)
    )
    assert [r.feature for r in report.features] == [
        "response_latency_ms",
        "token_count",
        "retry_count",
    ]


def test_accuracy_block(
    files: tuple[Path, Path], data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
) -> None:
    report = compare_files(*files)
    accuracy = report.accuracy
    assert accuracy is not None
    ref, prod = data
    ref_ok = int(np.sum(ref["predicted_label"] == ref["true_label"]))
    prod_ok = int(np.sum(prod["predicted_label"] == prod["true_label"]))
    assert accuracy.n_reference == 1500 and accuracy.n_production == 1200
    assert accuracy.reference_accuracy == pytest.approx(ref_ok / 1500)
    assert accuracy.production_accuracy == pytest.approx(prod_ok / 1200)
    assert accuracy.drop_p_value == pytest.approx(accuracy_drop_pvalue(ref_ok, 1500, prod_ok, 1200))
    assert accuracy.dropped  # 10% vs 20% errors


def test_accuracy_absent_without_labels(
    tmp_path: Path, data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
) -> None:
    prod = {k: v for k, v in data[1].items() if k != "true_label"}
    report = compare_files(
        write(tmp_path, "ref", "parquet", data[0]), write(tmp_path, "prod", "parquet", prod)
    )
    assert report.accuracy is None
    assert report.to_dict()["accuracy"] is None


def test_accuracy_drop_pvalue_hand_computed() -> None:
    # p1 = 900/1000 = 0.9, p2 = 850/1000 = 0.85, pooled p = 1750/2000 = 0.875
    # se = sqrt(0.875 * 0.125 * (1/1000 + 1/1000)) = sqrt(0.00021875) = 0.0147901994577490
    # z = 0.05 / se = 3.38061701891406; one-sided p = P(Z >= z) = 3.6162e-4
    assert accuracy_drop_pvalue(900, 1000, 850, 1000) == pytest.approx(3.6162e-4, rel=1e-4)
    assert accuracy_drop_pvalue(900, 1000, 850, 1000) == pytest.approx(
        stats.norm.sf(3.38061701891406), rel=1e-12
    )
    # Equal accuracies: z = 0, p = 0.5.  Production better: p > 0.5.
    assert accuracy_drop_pvalue(80, 100, 80, 100) == pytest.approx(0.5)
    assert accuracy_drop_pvalue(80, 100, 90, 100) > 0.5
    # Everyone right on both sides: nothing to test.
    assert accuracy_drop_pvalue(10, 10, 20, 20) == 1.0
    with pytest.raises(ValueError, match="correct"):
        accuracy_drop_pvalue(11, 10, 5, 10)
    with pytest.raises(ValueError, match="n >= 1"):
        accuracy_drop_pvalue(0, 0, 5, 10)


def test_api_argument_errors(files: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="alpha"):
        compare_files(*files, alpha=1.5)
    with pytest.raises(ValueError, match="correction"):
        compare_files(*files, correction="fdr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="features"):
        compare_files(*files, features="token_count")
    with pytest.raises(ValueError, match="features"):
        compare_files(*files, features=[])


# -- command line ------------------------------------------------------------------------


def test_cli_exit_1_on_drift_with_table(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(files[0]), str(files[1])]) == 1
    out = capsys.readouterr().out
    lines = {
        line.split()[1] if line.startswith("*") else line.split()[0]: line
        for line in out.splitlines()
        if any(f in line.split() for f in FEATURES)
    }
    assert set(lines) == set(FEATURES)
    for feature, line in lines.items():
        assert ("DRIFT" in line) == (feature in DRIFTED)
        assert line.startswith("*") == (feature in DRIFTED)
    assert "2 of 4 features drifted" in out
    assert "accuracy: reference" in out


def test_cli_exit_0_without_drift(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["compare", str(files[0]), str(files[1]), "--features", "retry_count,error_rate"])
    assert code == 0
    assert "0 of 2 features drifted" in capsys.readouterr().out


def test_cli_repeated_and_comma_features(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "compare",
        *map(str, files),
        "--features",
        "retry_count, error_rate",
        "--features",
        "token_count",
        "--format",
        "json",
    ]
    assert main(argv) == 1
    report = json.loads(capsys.readouterr().out)
    assert [f["feature"] for f in report["features"]] == [
        "retry_count",
        "error_rate",
        "token_count",
    ]
    assert report["checked"] == 3


def test_cli_json_has_seed_keys(
    files: tuple[Path, Path],
    data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["compare", *map(str, files), "--format", "json", "--correction", "holm"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {"ts", "drifted", "checked"} <= set(report)
    assert set(report) == {
        "ts",
        "drifted",
        "checked",
        "alpha",
        "correction",
        "reference",
        "production",
        "features",
        "accuracy",
        "min_effect",
        "effect",
        "skipped",
        "categorical",
    }
    assert report["categorical"] == []
    assert (report["min_effect"], report["effect"], report["skipped"]) == (0.0, "wasserstein", [])
    ts = datetime.fromisoformat(report["ts"])
    assert ts.utcoffset() == timedelta(0)
    assert report["checked"] == 4
    assert report["alpha"] == 0.05 and report["correction"] == "holm"
    assert report["reference"] == {"path": str(files[0]), "rows": 1500}
    assert report["production"] == {"path": str(files[1]), "rows": 1200}
    assert {d["feature"] for d in report["drifted"]} == DRIFTED
    for entry in report["drifted"]:
        assert {"feature", "ks_stat", "p_value", "p_adjusted", "direction"} <= set(entry)
        expected = ks_expected(data[0][entry["feature"]], data[1][entry["feature"]])
        assert entry["ks_stat"] == pytest.approx(expected.statistic, abs=1e-12)
        assert entry["p_value"] == pytest.approx(expected.pvalue, abs=1e-12)
        assert entry["drifted"] is True
    assert len(report["features"]) == 4
    assert set(report["accuracy"]) == {
        "reference_accuracy",
        "production_accuracy",
        "n_reference",
        "n_production",
        "drop_p_value",
        "dropped",
    }


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_cli_plot_drifted_features(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "drift.png"
    assert main(["compare", *map(str, files), "--plot", str(out)]) == 1
    width, height = png_size(out)
    assert width >= 800 and height >= 300  # two drifted features side by side
    assert out.stat().st_size > 20_000


def test_cli_plot_without_drift(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "calm.png"
    argv = ["compare", *map(str, files), "--features", "retry_count,error_rate", "--plot", str(out)]
    assert main(argv) == 0
    width, height = png_size(out)
    assert width >= 800 and height >= 300
    assert out.stat().st_size > 20_000


@pytest.mark.parametrize(
    "plot", ["missing_dir/out.png", "out.gif"], ids=["missing-directory", "bad-extension"]
)
def test_cli_bad_plot_path(
    files: tuple[Path, Path], tmp_path: Path, plot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", *map(str, files), "--plot", str(tmp_path / plot)])
    assert info.value.code == 2
    assert "--plot" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--alpha", "1.5"],
        ["--alpha", "x"],
        ["--correction", "fdr"],
        ["--format", "xml"],
        ["--features", ","],
    ],
)
def test_cli_usage_errors_exit_2(
    files: tuple[Path, Path], extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", *map(str, files), *extra])
    assert info.value.code == 2
    assert "usage: driftwatch compare" in capsys.readouterr().err


def run_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("driftwatch compare: error: ")
    return captured.err


def test_cli_missing_columns_are_named_and_the_rest_compared(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", *map(str, files), "--features", "token_count,nope,gone"]
    assert main(argv) == 1  # token_count drifted; the two missing columns are errors
    out = capsys.readouterr().out
    assert f"error: nope: {files[0]}: missing column 'nope'" in out
    assert f"error: gone: {files[0]}: missing column 'gone'" in out
    assert "1 of 1 feature drifted" in out


def test_cli_every_requested_column_missing_is_exit_2(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    err = run_error(["compare", *map(str, files), "--features", "nope,gone"], capsys)
    assert "no feature could be compared" in err
    assert f"nope: {files[0]}: missing column 'nope'" in err
    assert f"gone: {files[0]}: missing column 'gone'" in err


def test_cli_column_missing_in_production_only(
    tmp_path: Path,
    data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = write(tmp_path, "ref", "parquet", data[0])
    prod = write(
        tmp_path, "prod", "jsonl", {k: v for k, v in data[1].items() if k != "token_count"}
    )
    err = run_error(["compare", str(ref), str(prod), "--features", "token_count"], capsys)
    assert f"{prod}: missing column 'token_count'" in err


def test_cli_non_numeric_column(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    err = run_error(["compare", *map(str, files), "--features", "true_label"], capsys)
    assert "non-numeric column 'true_label'" in err


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_cli_empty_file(
    tmp_path: Path, files: tuple[Path, Path], fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / f"empty.{fmt}"
    empty.touch()
    err = run_error(["compare", str(files[0]), str(empty)], capsys)
    assert f"{empty}: file is empty" in err


def test_cli_zero_row_file(
    tmp_path: Path, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "zero_rows.parquet"
    pq.write_table(pa.table({"token_count": pa.array([], pa.float64())}), empty)
    err = run_error(["compare", str(empty), str(files[1])], capsys)
    assert "no data rows" in err


def test_cli_unknown_extension(
    tmp_path: Path, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "prod.xlsx"
    other.write_bytes(b"PK\x03\x04")
    err = run_error(["compare", str(files[0]), str(other)], capsys)
    assert "unsupported file extension (.xlsx)" in err


def test_cli_missing_file(
    tmp_path: Path, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    err = run_error(["compare", str(tmp_path / "gone.parquet"), str(files[1])], capsys)
    assert "gone.parquet: file not found" in err


def test_cli_corrupt_file(
    tmp_path: Path, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"definitely not parquet")
    err = run_error(["compare", str(bad), str(files[1])], capsys)
    assert "cannot read as Parquet" in err


def test_cli_all_nan_feature_does_not_fail_the_run(
    tmp_path: Path,
    data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prod = dict(data[1])
    prod["error_rate"] = np.full(1200, np.nan)
    ref_path = write(tmp_path, "ref", "parquet", data[0])
    prod_path = write(tmp_path, "prod", "csv", prod)
    assert main(["compare", str(ref_path), str(prod_path), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    by_name = {f["feature"]: f for f in report["features"]}
    failed = by_name["error_rate"]
    expected_error = f"{prod_path}: column 'error_rate' has no non-missing values (1,200 rows)"
    assert failed["error"] == expected_error
    assert (failed["drifted"], failed["ks_stat"], failed["direction"]) == (False, None, None)
    assert report["checked"] == 3
    # The others are compared as before, the correction family being the compared ones.
    assert {d["feature"] for d in report["drifted"]} == DRIFTED
    for name in ("response_latency_ms", "token_count", "retry_count"):
        expected = ks_expected(data[0][name], prod[name])
        assert by_name[name]["p_value"] == pytest.approx(expected.pvalue, abs=1e-12)
        assert by_name[name]["error"] is None
    report_api = compare_files(ref_path, prod_path)
    assert [r.feature for r in report_api.failed] == ["error_rate"]


def test_cli_only_feature_without_values_is_exit_2(
    tmp_path: Path,
    data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prod = dict(data[1])
    prod["error_rate"] = np.full(1200, np.nan)
    ref_path = write(tmp_path, "ref", "parquet", data[0])
    prod_path = write(tmp_path, "prod", "csv", prod)
    err = run_error(["compare", str(ref_path), str(prod_path), "--features", "error_rate"], capsys)
    assert f"{prod_path}: column 'error_rate' has no non-missing values" in err
    with pytest.raises(InputFileError):
        compare_files(ref_path, prod_path, features=["error_rate"])


def test_cli_no_default_features(
    tmp_path: Path, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = write(tmp_path, "other", "parquet", {"cpu": np.arange(5.0)})
    err = run_error(["compare", str(files[0]), str(other)], capsys)
    assert f"{other}: has none of the default features" in err
    assert "--features" in err


def test_cli_help_mentions_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "exit status: 0 no drift, 1 drift" in out
    assert "--correction {none,bonferroni,holm,bh}" in out


def test_json_non_finite_become_null(tmp_path: Path) -> None:
    ref = write(tmp_path, "ref", "parquet", {"x": np.array([1.0, 2.0, np.inf] * 50)})
    prod = write(tmp_path, "prod", "parquet", {"x": np.array([np.inf, np.inf, 0.5] * 50)})
    report = compare_files(ref, prod, features=["x"])
    parsed = json.loads(report.to_json(indent=None))
    value = parsed["features"][0]["statistic_location"]
    assert value is None or math.isfinite(value)


# -- effect sizes and gates ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_normalized_wasserstein_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.normal(10.0, 3.0, 400 + 37 * seed)
    production = rng.normal(10.5 + seed, 3.0 + seed / 2, 250 + 11 * seed)
    if seed % 2:  # ties on both sides, shared values
        reference, production = np.round(reference), np.round(production)
    expected = stats.wasserstein_distance(reference, production) / np.std(reference)
    assert normalized_wasserstein(reference, production) == pytest.approx(expected, rel=1e-12)


def test_normalized_wasserstein_edge_cases() -> None:
    assert normalized_wasserstein([1.0, 2.0, 3.0], [3.0, 1.0, 2.0]) == 0.0
    assert normalized_wasserstein([5.0, 5.0], [5.0]) == 0.0  # constant, the same
    assert normalized_wasserstein([5.0, 5.0], [5.0, 6.0]) == math.inf  # constant reference
    assert math.isnan(normalized_wasserstein([1.0, math.inf], [1.0, 2.0]))


def test_psi_by_hand_on_a_small_case() -> None:
    # Reference 0..9: its deciles 0.9, 1.8, ..., 8.1 put each value in a bin of its own
    # (share 0.1 each). Production piles up in the two outer bins.
    reference = np.arange(10.0)
    production = np.array([0.0] * 5 + [9.0] * 5)
    floor = 1e-4
    expected = 2 * (0.5 - 0.1) * math.log(0.5 / 0.1) + 8 * (floor - 0.1) * math.log(floor / 0.1)
    assert population_stability_index(reference, production) == pytest.approx(expected, rel=1e-12)
    # Values beyond the reference's range fall in the open outer bins.
    beyond = np.array([-100.0] * 5 + [100.0] * 5)
    assert population_stability_index(reference, beyond) == pytest.approx(expected, rel=1e-12)
    # Two bins of 3 and 1 reference values against 2 and 2 production values.
    two = population_stability_index([0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0], bins=2)
    assert two == pytest.approx((0.5 - 0.75) * math.log(0.5 / 0.75) + 0.25 * math.log(2.0))
    assert population_stability_index(reference, reference) == 0.0
    with pytest.raises(ValueError, match="bins must be at least 2"):
        population_stability_index(reference, reference, bins=1)


@pytest.fixture(scope="module")
def large_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """400k vs 400k rows, production latency x1.01: significant, and negligible."""
    rng = np.random.default_rng(11)
    directory = tmp_path_factory.mktemp("large")
    reference = rng.lognormal(5.0, 0.4, 400_000)
    production = rng.lognormal(5.0, 0.4, 400_000) * 1.01
    ref, prod = directory / "ref.parquet", directory / "prod.parquet"
    pq.write_table(pa.table({"response_latency_ms": reference}), ref)
    pq.write_table(pa.table({"response_latency_ms": production}), prod)
    return ref, prod


def test_min_effect_gates_a_negligible_shift_in_large_files(
    large_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ungated = compare_files(*large_files)
    (result,) = ungated.features
    assert result.drifted and result.p_value < 1e-10  # the KS test alone flags it
    assert result.wasserstein < 0.05 and result.psi < 0.01
    gated = compare_files(*large_files, min_effect=0.1)
    assert not gated.has_drift
    assert gated.features[0].p_value == result.p_value  # the same test, only gated
    assert not compare_files(*large_files, min_effect=0.1, effect="psi").has_drift
    assert main(["compare", *map(str, large_files), "--min-effect", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "0 of 1 feature drifted" in out and "min effect wasserstein 0.1" in out
    assert "below min effect" in out


def test_min_effect_keeps_a_real_shift(files: tuple[Path, Path]) -> None:
    gated = compare_files(*files, min_effect=0.1)
    by_name = {r.feature: r for r in gated.features}
    # latency moves by about 0.15 log-units (~0.4 reference sd): it stays drifted
    assert by_name["response_latency_ms"].wasserstein > 0.1
    assert by_name["response_latency_ms"].drifted


def test_comparing_a_file_with_itself_reports_no_direction(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reference = str(files[0])
    assert main(["compare", reference, reference, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for entry in report["features"]:
        assert (entry["ks_stat"], entry["direction"]) == (0.0, None), entry
        assert (entry["wasserstein"], entry["psi"]) == (0.0, 0.0), entry
    assert main(["compare", reference, reference]) == 0
    table = capsys.readouterr().out
    assert "production larger" not in table and "production smaller" not in table


def test_default_features_missing_from_a_file_are_named(
    tmp_path: Path,
    data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = write(tmp_path, "ref", "parquet", {k: v for k, v in data[0].items() if k != "error_rate"})
    prod = write(tmp_path, "prod", "csv", {k: v for k, v in data[1].items() if k != "retry_count"})
    report = compare_files(ref, prod)
    assert [r.feature for r in report.features] == ["response_latency_ms", "token_count"]
    assert report.skipped == (
        ("retry_count", f"missing from {prod}"),
        ("error_rate", f"missing from {ref}"),
    )
    main(["compare", str(ref), str(prod)])
    out = capsys.readouterr().out
    assert f"skipped: retry_count: missing from {prod}" in out
    assert f"skipped: error_rate: missing from {ref}" in out


def test_a_non_numeric_feature_is_an_error_of_its_own(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    report = compare_files(*files, features=["token_count", "true_label", "retry_count"])
    by_name = {r.feature: r for r in report.features}
    assert by_name["true_label"].error is not None
    assert "non-numeric column 'true_label'" in by_name["true_label"].error
    assert by_name["token_count"].drifted and by_name["retry_count"].error is None
    assert main(["compare", *map(str, files), "--features", "true_label,token_count"]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "error: true_label:" in out


@pytest.mark.parametrize(
    "extra", [["--min-effect", "-1"], ["--min-effect", "x"], ["--effect", "ks"]]
)
def test_cli_effect_usage_errors_exit_2(
    files: tuple[Path, Path], extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", *map(str, files), *extra])
    assert info.value.code == 2
    assert "usage: driftwatch compare" in capsys.readouterr().err


def test_api_effect_argument_errors(files: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="min_effect"):
        compare_files(*files, min_effect=-0.5)
    with pytest.raises(ValueError, match="effect must be one of"):
        compare_files(*files, effect="ks")  # type: ignore[arg-type]
