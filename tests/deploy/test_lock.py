"""The lock files: exact, hashed pins that satisfy pyproject.toml (regenerate: scripts/lock.sh)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from . import REPO_ROOT

PYPROJECT = REPO_ROOT / "pyproject.toml"
RUNTIME_LOCK = REPO_ROOT / "requirements.lock"
TEST_LOCK = REPO_ROOT / "requirements-test.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def pins(path: Path) -> dict[str, str]:
    """Package -> pinned version; every pin must carry at least one sha256 hash."""
    found: dict[str, str] = {}
    entries = re.split(r"\n(?=\S)", path.read_text(encoding="utf-8"))
    for entry in entries:
        if not entry.strip() or entry.lstrip().startswith("#"):
            continue
        match = _PIN.match(entry)
        assert match, f"{path.name}: not an exact pin: {entry.splitlines()[0]!r}"
        assert "--hash=sha256:" in entry, f"{path.name}: {match.group(1)} has no hash"
        found[canonicalize_name(match.group(1))] = match.group(3)
    return found


def requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    listed = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(text) for text in listed]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [(RUNTIME_LOCK, [None]), (TEST_LOCK, [None, "test"])],
    ids=["runtime", "test"],
)
def test_lock_pins_every_declared_dependency_within_its_range(
    lock: Path, extras: list[str | None]
) -> None:
    pinned = pins(lock)
    for extra in extras:
        for requirement in requirements(extra):
            name = canonicalize_name(requirement.name)
            assert name in pinned, f"{lock.name} lacks {name}: run scripts/lock.sh"
            assert requirement.specifier.contains(pinned[name], prereleases=True), (
                f"{lock.name} pins {name}=={pinned[name]}, outside {requirement.specifier}:"
                " run scripts/lock.sh"
            )


def test_test_lock_agrees_with_the_runtime_lock() -> None:
    runtime, test = pins(RUNTIME_LOCK), pins(TEST_LOCK)
    assert {name: test.get(name) for name in runtime} == runtime


def test_lock_files_are_consumed_by_the_image_and_bootstrap() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes --no-deps -r requirements.lock" in dockerfile
    bootstrap = (REPO_ROOT / "scripts" / "bootstrap.sh").read_text(encoding="utf-8")
    assert "lock=requirements-test.lock" in bootstrap
    assert '--require-hashes --no-deps -r "${lock}"' in bootstrap
