"""``compare --categorical-features``: chi-square per column, against scipy."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest
from scipy import stats

from stream import cli
from stream.tools.compare_categorical import chi2_column


def _oracle(
    reference: list[str], production: list[str], kept: list[str]
) -> tuple[float, int, float]:
    """scipy on the same table: the kept categories, everything else in one cell."""

    def cell(x: str) -> str:
        return x if x in kept else "<other>"

    cats = [*kept, "<other>"]
    table = np.array(
        [[sum(cell(x) == c for x in side) for c in cats] for side in (reference, production)]
    )
    table = table[:, table.sum(axis=0) > 0]
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), int(res.dof), float(res.pvalue)


@pytest.mark.parametrize("seed", range(6))
def test_chi2_column_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = ["stop", "length", "tool_calls", "content_filter", "rare"]
    p_ref = np.array([0.6, 0.25, 0.12, 0.029, 0.001])
    p_prod = np.array([0.5, 0.3, 0.12, 0.05, 0.03]) if seed % 2 else p_ref
    reference = list(rng.choice(names, size=int(rng.integers(200, 2000)), p=p_ref))
    production = list(rng.choice(names, size=int(rng.integers(100, 1500)), p=p_prod))
    production += ["never-seen"] * int(seed)  # unseen categories pool into <other>
    kept = [c for c in names if reference.count(c) >= 5]
    x2, dof, p, cells = chi2_column(reference, production)
    want_x2, want_dof, want_p = _oracle(reference, production, kept)
    assert dof == want_dof
    assert x2 == pytest.approx(want_x2, rel=1e-12, abs=1e-12)
    assert p == pytest.approx(want_p, rel=1e-9, abs=1e-300)
    assert cells == len(kept) + 1


def test_compare_reports_categorical_columns_next_to_numeric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    ref, prod = tmp_path / "ref.jsonl", tmp_path / "prod.jsonl"
    for path, share in ((ref, 0.8), (prod, 0.6)):
        rows = [
            {
                "token_count": int(rng.poisson(300)),
                "model": "m-a" if rng.random() < share else "m-b",
                "tool": str(rng.choice(["search", "crm", "kb"])),
            }
            for _ in range(1500)
        ]
        path.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in rows))
    argv = ["compare", str(ref), str(prod), "--categorical-features", "model,tool,nope"]
    assert cli.main([*argv, "--format", "json", "--quiet"]) == 1
    report = msgspec.json.decode(capsys.readouterr().out)
    by_name = {r["feature"]: r for r in report["categorical"]}
    assert by_name["model"]["drifted"] and not by_name["tool"]["drifted"]
    assert "missing column" in by_name["nope"]["error"]
    assert [r["feature"] for r in report["features"]] == ["token_count"]
    assert not report["features"][0]["drifted"]
    assert cli.main([*argv, "--quiet"]) == 1
    table = capsys.readouterr().out
    assert "categorical" in table and "error: nope:" in table
    line = next(x for x in table.splitlines() if " model " in f" {x} ")
    assert line.lstrip().startswith("*")
