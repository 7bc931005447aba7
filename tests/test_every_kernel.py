"""The whole catalog on every shipped kernel recipe (images/*.yaml), both arches: bookworm's
6.1 at the previous ABI, trixie's 6.12 and sid's 7.2, each case on the stock driver of that
kernel, judged against that version's own expectations (the cases' `ctx.by_kernel` tables).

The default recipes (qemu-x86_64, qemu-arm64) are left out: tests/test_catalog.py runs the
whole catalog on them. The rest run as one `binder-harness matrix` with `-j 2` (two cells at
once, one guest each), which costs least on a 2-core host; each recipe is then its own test
here, read from that one run. How long it takes is recorded by bench/kernels.sh
(bench/kernels.md), not asserted here.
"""
from __future__ import annotations

import json
import re

import pytest

from harness.building.recipes import load_recipe, recipe_for_arch, shipped_recipes
from harness.judging import coverage
from harness.judging.catalog import load_cases
from tests.helpers import CliRun, cli

DEFAULTS = {recipe_for_arch(arch).path.resolve() for arch in ("x86_64", "arm64")}
# kernels the harness builds (kernel.build: the Rust binder kernel) run in tests/test_rust_kernel.py
RECIPES = [r for r in (load_recipe(p) for p in shipped_recipes() if p.resolve() not in DEFAULTS)
           if r.kernel_source.build is None]


def test_every_shipped_kernel_family_is_covered_on_both_arches():
    """What the matrix below runs: 6.1 (previous ABI), 6.12 and 7.2, each on x86_64 and arm64."""
    families = {(r.arch, re.sub(r"^linux-(image|binary)-(\d+\.\d+)\..*$", r"\2", r.kernel.package)) for r in RECIPES}
    assert families >= {(arch, v) for arch in ("x86_64", "arm64") for v in ("6.1", "6.12", "7.2")}, families


@pytest.fixture(scope="module")
def every_kernel(tmp_path_factory) -> CliRun:
    base = tmp_path_factory.mktemp("every-kernel")
    matrix = base / "every-kernel.yaml"
    matrix.write_text("targets: [qemu:x86_64, qemu:arm64]\n"
                      f"kernels: [{', '.join(r.name for r in RECIPES)}]\n"
                      'cases: ["*"]\ntimeout: 90\nseed: 4242\n')
    return cli("matrix", str(matrix), "-j", "2", out=base / "out", timeout=3600)


def test_matrix_over_every_kernel_exits_0(every_kernel):
    data = json.loads((every_kernel.out / "matrix.json").read_text())
    assert [c["image"] for c in data["cells"]] == [r.name for r in RECIPES]
    not_passed = [(c["cell"], c["id"], c["outcome"], c["reason"]) for c in data["cases"] if c["outcome"] != "passed"]
    assert not_passed == [], not_passed
    assert every_kernel.status == 0, every_kernel.stderr[-2000:]


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_whole_catalog_passes_on_kernel(every_kernel, recipe):
    cells = json.loads((every_kernel.out / "matrix.json").read_text())["cells"]
    cell = next(c for c in cells if c["image"] == recipe.name)
    assert (cell["status"], cell["error"]) == ("done", ""), cell
    assert cell["target"] == f"qemu:{recipe.arch}"
    assert recipe.kernel.package.endswith(cell["kernel_release"]), (recipe.kernel.package, cell["kernel_release"])
    report = json.loads((every_kernel.out / cell["dir"] / "report.json").read_text())
    assert report["target"]["image"] == recipe.name
    not_passed = [(c["id"], c["outcome"], c["reason"]) for c in report["cases"] if c["outcome"] != "passed"]
    assert not_passed == [], not_passed
    assert [c["id"] for c in report["cases"]] == list(load_cases())
    assert report["summary"] == {"passed": len(load_cases()), "failed": 0, "error": 0, "skipped": 0,
                                 "not_applicable": 0}
    assert coverage.incomplete(report["coverage"]) == ""  # every command of this kernel's binder.h
    for case in report["cases"]:
        assert case["evidence"]["dmesg_bad_lines"] == [], case["id"]
        assert "unexpected_binder_messages" not in case["evidence"], (case["id"], case["evidence"])
        assert all(c["ref"] for c in case["checks"]), case["id"]
        assert case["guest_start"]["fresh"], case["id"]
