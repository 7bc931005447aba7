"""Tests of the seeded-bug builder itself (the guest-level "a case fails on
this module" tests live with the harness tests that run cases)."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.evidence.btf import elf_section
from tests.seeded_bugs import build

REPO = Path(__file__).resolve().parents[2]
FAMILIES = {"one_copy", "limits", "protocol", "health", "objects", "loopers", "stress"}


def test_catalog_covers_every_family():
    assert {b.family for b in build.BUGS.values()} == FAMILIES
    for name, bug in build.BUGS.items():
        assert bug.name == name
        assert re.fullmatch(r"[a-z_0-9]+\.[a-z_0-9]+", bug.caught_by)
        assert "\n" not in bug.description


@pytest.mark.parametrize("name", sorted(build.BUGS))
def test_patch_raises_when_anchor_is_missing(name):
    files = {"binder.c": "int x;\n", "binder_alloc.c": "int y;\n",
             "binder_internal.h": "struct z;\n"}
    with pytest.raises(build.AnchorNotFound):
        build.BUGS[name].patch(files)


def test_binderfs_patch_raises_when_an_anchor_is_missing():
    with pytest.raises(build.AnchorNotFound, match="binderfs.c is not in the source"):
        build.FEATURES["binderfs"].patch({"Makefile": build._BINDERFS_MAKE_ANCHOR})
    with pytest.raises(build.AnchorNotFound, match="found 1 times in binderfs.c, expected twice"):
        build.FEATURES["binderfs"].patch({"Makefile": build._BINDERFS_MAKE_ANCHOR,
                                          "binderfs.c": build._INIT_IPC_NS_ANCHOR})


def test_patch_raises_when_anchor_is_ambiguous():
    anchor = build._VERSION_ANCHOR
    with pytest.raises(build.AnchorNotFound, match="2 times"):
        build.BUGS["wrong_version"].patch({"binder.c": anchor + anchor})


def test_patch_does_not_modify_its_input():
    files = {"binder.c": "a\n" + build._VERSION_ANCHOR + "b\n"}
    out = build.BUGS["wrong_version"].patch(files)
    assert files["binder.c"].count("BINDER_CURRENT_PROTOCOL_VERSION") == 1
    assert "put_user(7," in out["binder.c"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tests.seeded_bugs.build", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_cli_unknown_bug_is_one_line():
    r = _cli("no_such_bug")
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert "unknown seeded bug 'no_such_bug'" in r.stderr


def test_cli_list():
    r = _cli("--list")
    assert r.returncode == 0
    assert [l.split("\t")[0] for l in r.stdout.splitlines()] == \
        [*build.BUGS, *build.LAYOUTS, *build.FEATURES, *build.REVERTS]


# --- reverts of real upstream fixes (REVERTS)

def test_reverts_name_their_upstream_fix():
    assert not set(build.REVERTS) & {*build.BUGS, *build.LAYOUTS, *build.FEATURES}
    for name, r in build.REVERTS.items():
        assert r.name == name and name.startswith("revert_")
        assert re.fullmatch(r"[0-9a-f]{11,40}", r.commit), name
        assert r.title.startswith("binder") and "\n" not in r.title and "\n" not in r.description
        assert r.releases and all(rel in (build.DEFAULT_RELEASE, build.RELEASE_6_12) for rel in r.releases)


@pytest.mark.parametrize("name", sorted(build.REVERTS))
def test_revert_raises_when_anchor_is_missing(name):
    files = {"binder.c": "int x;\n", "binder_alloc.c": "int y;\n", "binder_internal.h": "struct z;\n"}
    with pytest.raises(build.AnchorNotFound):
        build.REVERTS[name].patch(files)


@pytest.mark.parametrize(("name", "release"),
                         sorted((r.name, rel) for r in build.REVERTS.values() for rel in r.releases))
def test_revert_applies_to_real_source(name, release):
    build.ensure_build_deps(release)
    control = build.patched_sources(None, release)
    patched = build.patched_sources(name, release)
    changed = [p for p in control if control[p] != patched[p]]
    assert changed, f"{name} changed nothing on {release}"
    assert all(f"revert {build.REVERTS[name].commit}" in patched[p] for p in changed)


def test_bad_release_is_one_line():
    r = _cli("control", "--release", "not-a-release")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "not a Debian one" in r.stderr


# --- against the real Debian source and headers (downloads once, then cached)

@pytest.fixture(scope="module")
def deps():
    build.ensure_build_deps(build.DEFAULT_RELEASE)


@pytest.mark.parametrize("name", sorted([*build.BUGS, *build.LAYOUTS]))
def test_patch_applies_to_real_source(deps, name):
    control = build.patched_sources(None)
    patched = build.patched_sources(name)
    changed = [p for p in control if control[p] != patched[p]]
    assert changed, f"{name} changed nothing"
    assert all(f"seeded bug {name}" in patched[p] for p in changed)


def _vermagic(ko: Path) -> str:
    return re.search(rb"vermagic=([^\0]*)", ko.read_bytes()).group(1).decode()


def test_build_every_module(deps):
    paths = {}
    for name in [None, *build.BUGS, *build.LAYOUTS]:
        ko = build.build_module(name)
        assert ko.name == "binder_linux.ko" and ko.stat().st_size > 100_000
        assert _vermagic(ko) == \
            f"{build.DEFAULT_RELEASE} SMP preempt mod_unload modversions "
        assert b"name=binder_linux" in ko.read_bytes()
        # built against Debian's headers as a user's module is: DWARF, no BTF of its own (the harness
        # makes it from the DWARF before boot, harness/building/module_btf.py)
        assert elf_section(ko.read_bytes(), ".debug_info") and not elf_section(ko.read_bytes(), ".BTF")
        paths[name] = ko
    assert len(set(paths.values())) == len(paths)
    t = time.monotonic()
    assert build.build_module("wrong_version") == paths["wrong_version"]
    assert time.monotonic() - t < 2, "a cached module should not be rebuilt"


def test_cli_prints_module_path(deps):
    r = _cli("wrong_version")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == build.build_module("wrong_version")
