"""The README's environment-variable table names every variable the harness reads, and only those.

Each variable's name is declared once, as a constant in the module that reads it
(`CACHE_ENV = "BINDER_HARNESS_CACHE"` in harness/files.py, ...); this test finds those
declarations in the source and checks the table's rows against them, with the module named."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _declared() -> dict[str, str]:
    """Every `NAME = "BINDER_HARNESS_..."` constant in harness/ (and tests/: an opt-in of the
    harness's own tests), with the module that holds it."""
    found: dict[str, str] = {}
    for path in sorted([*(REPO / "harness").rglob("*.py"), *(REPO / "tests").rglob("*.py")]):
        for var in re.findall(r'^[A-Z_]+_ENV = "([A-Z_]+)"', path.read_text(), re.M):
            found[var] = str(path.relative_to(REPO))
    return found


def _table() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \|.*\| `([^`]+)` \|$", section, re.M)
    return dict(rows)


def test_every_environment_variable_is_in_the_readme_table():
    declared, table = _declared(), _table()
    assert declared, "no *_ENV constants found in harness/"
    assert table == declared


def test_readme_starts_with_the_two_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    block = lines[lines.index("```sh") + 1: lines.index("```")]
    assert block == ["scripts/setup && .venv/bin/binder-harness run --target qemu:x86_64 --out runs/latest",
                     "scripts/setup --test && .venv/bin/pytest tests/"]
