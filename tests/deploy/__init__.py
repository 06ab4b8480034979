"""Checks of the operations kit (deploy/, Dockerfile, docker-compose.yml) with the real tools.

The external tools (promtool, docker-compose) come from ``scripts/install-system-deps.sh``.
Outside CI a missing tool skips the test that needs it; with ``CI=true`` it fails, so a
CI machine without the tools cannot pass silently.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "install it with scripts/install-system-deps.sh"


def in_ci() -> bool:
    """Whether we run in CI (``CI=true``, as set by GitHub Actions, GitLab CI and others)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(what: str) -> None:
    """Fail in CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"{what} (CI=true, so this is an error; {INSTALL_HINT})", pytrace=False)
    pytest.skip(f"{what}; {INSTALL_HINT}")


def require_tool(name: str) -> str:
    """Absolute path of the executable ``name``, or fail (CI) / skip (elsewhere)."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found on PATH")
    assert path is not None
    return path


def run_tool(
    args: Sequence[str], *, cwd: Path = REPO_ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a tool from the repository root and capture its output (never raises on exit code)."""
    return subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """Command, exit code and output, for assertion messages."""
    return (
        f"$ {' '.join(result.args)}\nexit code {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


_TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout, default=str)"


def _interpreter_of(executable: str | None) -> str | None:
    """The interpreter named by a script's ``#!`` line."""
    if executable is None:
        return None
    try:
        with open(executable, "rb") as script:
            first = script.readline(256).decode("utf-8", "replace")
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if words and Path(words[0]).name == "env":
        words = words[1:]
    return shutil.which(words[0]) if words else None


@functools.cache
def _yaml_python() -> str | None:
    """A Python interpreter that has PyYAML.

    PyYAML is not a project dependency, but the docker-compose 1.x tool is a Python
    program built on it, so its interpreter (or the system python3) has it.
    """
    candidates = [
        _interpreter_of(shutil.which("docker-compose")),
        "/usr/bin/python3",
        shutil.which("python3"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            probe = run_tool([candidate, "-c", "import yaml"], timeout=30)
            if probe.returncode == 0:
                return candidate
    return None


def load_yaml(path: Path) -> Any:
    """Parse a YAML file with PyYAML, borrowing another interpreter's copy if need be."""
    text = path.read_text(encoding="utf-8")
    try:
        import yaml
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    python = _yaml_python()
    if python is None:
        missing("PyYAML is needed to read the YAML files (system package python3-yaml)")
    assert python is not None
    result = subprocess.run(
        [python, "-c", _TO_JSON], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"cannot parse {path}:\n{result.stderr}"
    return json.loads(result.stdout)
