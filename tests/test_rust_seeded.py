"""The Rust driver's verdicts can fail: each seeded Rust kernel (tests/seeded_bugs/rust.py, one
edit in drivers/android/binder/ built into the kernel) fails the case it names, on the named
check, with the measured value in the case's reason, while the stock Rust kernel passes that
check and the seed still passes a control case.

The guest tests cost kernel builds (the first seed about as long as the stock kernel, ~16-20 min on
2 cores, each after it a few minutes: kernel_build.ensure_seeded keeps one build tree), so they
run only with BINDER_HARNESS_RUST_SEEDS=1 (`RUST_SEEDS_ENV`); then they build whatever the cache
lacks, the stock Rust kernel included. The pure tests of the edit input run always."""
from __future__ import annotations

import os

import pytest

from harness.building import kernel_build
from harness.building.kernel_build import SourceEdit, apply_edit, seeded_key
from harness.errors import ConfigError
from tests.helpers import cli
from tests.seeded_bugs.rust import RECIPE, RUST_SEEDS, RUST_SEEDS_ENV, build_seed

opted_in = pytest.mark.skipif(os.environ.get(RUST_SEEDS_ENV) != "1",
                              reason=f"builds and boots seeded Rust kernels; set {RUST_SEEDS_ENV}=1 to run")


def test_an_edit_whose_old_text_is_not_found_once_is_refused_in_one_line():
    edit = SourceEdit("thread.rs", "let x = 1;\n", "let x = 2;\n")
    assert apply_edit("fn f() {\n    let x = 1;\n}\n", edit, "seed s") == "fn f() {\n    let x = 2;\n}\n"
    for text, count in (("fn f() {}\n", 0), ("let x = 1;\nlet x = 1;\n", 2)):
        with pytest.raises(ConfigError) as err:
            apply_edit(text, edit, "seed s")
        assert str(err.value) == (f"seed s: edit of drivers/android/binder/thread.rs: old text 'let x = 1;' found "
                                  f"{count} times, expected exactly once; fix the edit's old text to match the source")


def test_the_edit_is_part_of_the_key():
    a = SourceEdit("thread.rs", "a", "b")
    keys = {seeded_key("k1", a), seeded_key("k2", a), seeded_key("k1", SourceEdit("thread.rs", "a", "c")),
            seeded_key("k1", SourceEdit("process.rs", "a", "b")), seeded_key("k1", SourceEdit("thread.rs", "x", "b"))}
    assert len(keys) == 5 and "k1" not in keys


def test_the_seeds_are_one_edit_each_with_their_case():
    for name, seed in RUST_SEEDS.items():
        assert seed.name == name and name.startswith("rust_")
        assert "\n" not in seed.description
        assert seed.edit.old != seed.edit.new and seed.expected != seed.measured


def _check(case: dict, name: str) -> dict:
    found = [c for c in case["checks"] if c["name"] == name]
    assert len(found) == 1, f"{case['id']}: no single check named {name!r}: {[c['name'] for c in case['checks']]}"
    return found[0]


@pytest.fixture(scope="module")
def stock_kernel():
    from harness.building.recipes import resolve_recipe

    return kernel_build.ensure_built(resolve_recipe(RECIPE, None)).kernel


@opted_in
@pytest.mark.parametrize("name", sorted(RUST_SEEDS))
def test_seeded_rust_kernel_fails_its_case(tmp_path, name, stock_kernel):
    seed = RUST_SEEDS[name]
    seeded = build_seed(name)
    runs = {}
    for which, kernel in (("stock", stock_kernel), ("seed", seeded)):
        runs[which] = cli("run", seed.caught_by, seed.control, "--kernel", str(kernel), "--target", "qemu:x86_64",
                          out=tmp_path / which)
        assert runs[which].report["target"]["driver"] == "rust"

    stock = _check(runs["stock"].case(seed.caught_by), seed.check)
    assert (stock["passed"], stock["measured"]) == (True, seed.expected)

    case = runs["seed"].case(seed.caught_by)
    failed = _check(case, seed.check)
    assert (failed["passed"], failed["expected"], failed["measured"]) == (False, seed.expected, seed.measured)
    assert case["outcome"] == "failed"
    assert case["reason"].startswith(f"{seed.check}: expected {seed.expected}, measured {seed.measured} ("), case["reason"]
    assert runs["seed"].case(seed.control)["outcome"] == "passed", runs["seed"].case(seed.control)["reason"]
