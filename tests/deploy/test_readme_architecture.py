"""README's architecture table matches the tree: every folder has its row, every name exists."""

from __future__ import annotations

import re

from . import REPO_ROOT

README = REPO_ROOT / "README.md"
_CODE = re.compile(r"`([^`]+)`")


def _rows() -> list[tuple[list[str], str]]:
    """(paths of the first column, the description) of each row of the architecture table."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Architecture") : text.index("## How detection works")]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            _, paths, owns, _ = line.split("|", 3)
            rows.append((_CODE.findall(paths), owns))
    return rows


def test_every_path_in_the_first_column_exists() -> None:
    for paths, _ in _rows():
        for path in paths:
            assert (REPO_ROOT / path).exists(), f"README architecture names {path}, not in tree"


def test_every_package_and_top_level_module_has_a_row() -> None:
    named = {p.rstrip("/") for paths, _ in _rows() for p in paths}
    wanted = {"detectors", "tests/support"}
    for child in (REPO_ROOT / "stream").iterdir():
        if child.name.startswith(("_", ".")):
            continue
        package = child.is_dir() and (child / "__init__.py").exists()
        if package or child.suffix == ".py":
            wanted.add(f"stream/{child.name}")
    missing = sorted(wanted - named)
    assert not missing, f"no README architecture row for {missing}"


def test_modules_named_in_a_folders_row_exist_there() -> None:
    checked = 0
    for paths, owns in _rows():
        folders = [REPO_ROOT / p for p in paths if p.endswith("/")]
        for name in _CODE.findall(owns):
            if not name.endswith(".py") or "/" in name:
                continue
            assert any((folder / name).is_file() for folder in folders), (
                f"README architecture row {paths} names {name}, which none of them holds"
            )
            checked += 1
    assert checked >= 30  # the table names the modules of its folders
