"""Size limits that keep harness/ split by concept (issue 23): no class over MAX_CLASS_LINES
lines and no module over MAX_MODULE_LINES, counted in source lines with `ast`, for every
module under harness/. A class or module that outgrows them is split by what it does, into
modules named for that, never given a higher limit here."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

MAX_CLASS_LINES = 300
MAX_MODULE_LINES = 500


def oversized(source: str, where: str) -> list[str]:
    """One line per limit `source` breaks: the module's length, and each class's, nested ones
    included (a class spans from its `class` line, or its first decorator, to its last line)."""
    found = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{where}: module of {lines} lines (limit {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > MAX_CLASS_LINES:
                found.append(f"{where}:{first}: class {node.name} of {length} lines (limit {MAX_CLASS_LINES})")
    return found


def test_measure_catches_a_long_class_and_a_long_module():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_CLASS_LINES))  # class line + 300 = 301
    assert oversized(f"class Big:\n{body}", "big.py") == [
        f"big.py:1: class Big of {MAX_CLASS_LINES + 1} lines (limit {MAX_CLASS_LINES})"]
    decorated = f"import dataclasses\n@dataclasses.dataclass\nclass Big:\n{body[: -len(body.splitlines()[-1]) - 1]}"
    assert oversized(decorated, "d.py") == [
        f"d.py:2: class Big of {MAX_CLASS_LINES + 1} lines (limit {MAX_CLASS_LINES})"]
    assert oversized("class Small:\n" + body[: -len(body.splitlines()[-1]) - 1], "small.py") == []
    module = "".join(f"a{i} = {i}\n" for i in range(MAX_MODULE_LINES + 1))
    assert oversized(module, "m.py") == [f"m.py: module of {MAX_MODULE_LINES + 1} lines (limit {MAX_MODULE_LINES})"]
    assert oversized(module[: -len(f"a{MAX_MODULE_LINES} = {MAX_MODULE_LINES}\n")], "m.py") == []


def test_no_class_or_module_in_harness_is_too_large():
    modules = sorted((REPO / "harness").rglob("*.py"))
    assert len(modules) > 40, modules  # the whole package is measured
    found = [line for path in modules
             for line in oversized(path.read_text(), str(path.relative_to(REPO)))]
    assert found == [], "\n".join(found)
