"""Guests in parallel (-j N), a matrix in one command, and caches filled by concurrent cold builds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.judging.catalog import select_cases
from tests.helpers import REPO, cli, cli_env, tagged_processes
from tests.report_html import read_page

PROTOCOL = [s.id for s in select_cases(["protocol.*"])]


def test_two_guests_one_report_in_catalog_order(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = cli_env(TMPDIR=str(tmp))
    run = cli("run", "protocol.*", "-j", "2", "--target", "qemu:x86_64", out=tmp_path / "out", env=env)
    assert run.status == 0, run.stderr
    report = run.report
    assert [c["id"] for c in report["cases"]] == PROTOCOL
    assert report["summary"]["passed"] == len(PROTOCOL)
    # each case on a guest of its own, all restored from one snapshot (at most one guest boots,
    # to save it, while the other waits)
    assert report["jobs"] == 2
    assert report["timings"]["boots"] + report["timings"]["restores"] == len(PROTOCOL)
    assert report["timings"]["boots"] <= 1
    assert len({c["guest_start"]["snapshot"] for c in report["cases"]}) == 1
    guests = report["guests"]
    assert sorted(i for g in guests for i in g["cases"]) == sorted(PROTOCOL)
    assert all(g["cases"] for g in guests), "both guests ran cases"
    assert {c["guest"] for c in report["cases"]} == {0, 1}
    for g in guests:
        console = (run.out / g["console"]).read_text()
        assert "binder-harness: READY" in console or "restored-ok" in console
        assert (run.out / "guests" / str(g["guest"]) / "dmesg.txt").is_file()
        # RUN_DIR/console.log as with one guest (DESIGN: the run directory's files): every guest's in turn
        assert f"=== {g['console']} ===\n{console}" in (run.out / "console.log").read_text()
    for case_id in PROTOCOL:
        assert (run.out / "cases" / case_id / "probe-1.jsonl").is_file()
    # run-wide files in catalog order
    probe_cases = [json.loads(l)["case"] for l in (run.out / "probe.jsonl").read_text().splitlines()]
    assert list(dict.fromkeys(probe_cases)) == PROTOCOL
    suite = ET.parse(run.out / "junit.xml").getroot().find("testsuite")
    assert [t.get("name") for t in suite.iter("testcase")] == PROTOCOL
    page = read_page((run.out / "report.html").read_text())
    assert "guests/0/console.log (guest console)" in page.text and "guests/1/console.log (guest console)" in page.text
    assert tagged_processes("qemu-system-", tag=f"TMPDIR={tmp}") == set()
    assert [p.name for p in tmp.iterdir()] == []


def test_matrix_runs_cells_and_combines(tmp_path):
    matrix = tmp_path / "nightly.yaml"
    matrix.write_text("targets: [qemu:x86_64, qemu:arm64]\nkernels: [default]\ncases: [protocol.version]\n")
    run = cli("matrix", str(matrix), out=tmp_path / "out")
    assert run.status == 0, run.stderr
    data = json.loads((run.out / "matrix.json").read_text())
    assert data["matrix_schema"] == 1
    assert [(c["cell"], c["status"], c["dir"]) for c in data["cells"]] == [
        ("x86_64/qemu-x86_64", "done", "cells/qemu-x86_64"), ("arm64/qemu-arm64", "done", "cells/qemu-arm64")]
    assert [(c["cell"], c["id"], c["outcome"]) for c in data["cases"]] == [
        ("x86_64/qemu-x86_64", "protocol.version", "passed"), ("arm64/qemu-arm64", "protocol.version", "passed")]
    # each verdict stands beside the kernel it was reached on
    assert [c["kernel_release"] for c in data["cases"]] == [c["kernel_release"] for c in data["cells"]]
    assert all(c["kernel_release"].startswith("6.1.0-") for c in data["cases"])
    # and beside the driver that served it, read from the target (Debian's 6.1: the C driver)
    assert [c["driver"] for c in data["cases"]] == [c["driver"] for c in data["cells"]] == ["c", "c"]
    assert data["summary"] == {"passed": 2, "failed": 0, "error": 0, "skipped": 0, "not_applicable": 0}
    for cell in data["cells"]:
        cell_report = json.loads((run.out / cell["dir"] / "report.json").read_text())
        assert cell_report["schema"] == 2 and cell_report["target"]["arch"] == cell["cell"].split("/")[0]
    root = ET.parse(run.out / "junit.xml").getroot()
    assert root.get("tests") == "2"
    assert [s.get("name") for s in root.iter("testsuite")] == ["x86_64/qemu-x86_64", "arm64/qemu-arm64"]
    assert [t.get("classname") for t in root.iter("testcase")] == ["x86_64/qemu-x86_64.protocol", "arm64/qemu-arm64.protocol"]


def test_matrix_cells_report_their_own_timing_phases(tmp_path):
    """Cells run one after another in one process (-j 1); each cell's timings.phases is that cell's
    time only, not the sum over the cells before it."""
    matrix = tmp_path / "m.yaml"
    matrix.write_text("targets: [qemu:x86_64, qemu:arm64]\nkernels: [default]\ncases: [protocol.version]\n")
    run = cli("matrix", str(matrix), "-j", "1", out=tmp_path / "out")
    assert run.status == 0, run.stderr
    cells = json.loads((run.out / "matrix.json").read_text())["cells"]
    assert len(cells) == 2
    for cell in cells:
        timings = json.loads((run.out / cell["dir"] / "report.json").read_text())["timings"]
        assert timings == cell["timings"]
        phases = timings["phases"]
        # the cell's own guests: QEMU started -> READY fits in the boots the cell measured itself,
        # and its restores in the restore time it measured
        assert timings["boots"] + timings["restores"] == 1, (cell["cell"], timings)
        if timings["boots"]:
            assert 0 < phases["boot_to_ready"] <= timings["boot_s"], (cell["cell"], timings)
        else:
            assert 0 < phases["restore"] <= timings["restore_s"] + 0.001, (cell["cell"], timings)
        # host wall-time phases do not overlap (guest_uptime is inside boot_to_ready): they fit in the run
        assert sum(v for k, v in phases.items() if k != "guest_uptime") <= timings["total_s"] + 0.05, \
            (cell["cell"], timings)


def test_concurrent_cold_probe_builds(tmp_path):
    """Four processes build the probe into one empty cache at once: each gets a whole, working binary."""
    code = ("import sys; from harness.evidence.probe import ensure_probe; p = ensure_probe('x86_64'); "
            "print(p, p.stat().st_size)")
    env = {**os.environ, "BINDER_HARNESS_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len({path for path, _ in outs}) == 1
    binary = Path(outs[0][0])
    assert {int(size) for _, size in outs} == {binary.stat().st_size}
    assert subprocess.run(["file", str(binary)], capture_output=True, text=True).stdout.count("statically linked") == 1
    leftovers = [p.name for p in binary.parent.iterdir() if p.name != "binder-probe"]
    assert leftovers == []


def test_concurrent_cold_initramfs_builds(tmp_path):
    """Three processes build the same guest image with no initramfs cached: one whole cpio results."""
    from harness.files import cache_root

    cache = tmp_path / "cache"
    cache.mkdir()
    for part in ("debs", "kernels", "busybox"):  # the downloads stay warm (hard links); the build is cold
        if (cache_root() / part).is_dir():
            subprocess.run(["cp", "-al", str(cache_root() / part), str(cache / part)], check=True)
    code = ("from harness.building.build import build_image; from harness.building.recipes import recipe_for_arch; "
            "i = build_image(recipe_for_arch('x86_64'), progress=lambda _: None); print(i.initramfs)")
    env = {**os.environ, "BINDER_HARNESS_CACHE": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    paths = {out.strip() for out, _ in results}
    assert len(paths) == 1
    initramfs = Path(paths.pop())
    listing = subprocess.run(["cpio", "-t"], stdin=open(initramfs, "rb"), capture_output=True, text=True)
    assert listing.returncode == 0 and "init" in listing.stdout.split()
    assert [p.name for p in initramfs.parent.iterdir()] == [initramfs.name]


def test_pytest_xdist_workers_merge_into_one_report(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "cases/", "-q", "-p", "no:cacheprovider", "-n", "2", "--target", "qemu:x86_64",
         "--bh-out", str(out), "-k", "(version or ping or thread_exit) and not refs_after"],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=cli_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = ["protocol.version", "protocol.thread_exit", "protocol.ping", "compat.version"]
    expected = [i for i in (s.id for s in select_cases(["*"])) if i in ids]
    report = json.loads((out / "report.json").read_text())
    assert [c["id"] for c in report["cases"]] == expected
    assert report["jobs"] == 2 and sorted(g["dir"] for g in report["guests"]) == ["gw0", "gw1"]
    for case in report["cases"]:
        assert (out / case["dir"] / "probe-1.jsonl").is_file(), case["dir"]
        assert case["dir"].startswith(report["guests"][case["guest"]]["dir"] + "/")
    assert [t.get("name") for t in ET.parse(out / "junit.xml").getroot().iter("testcase")] == expected
    assert "gw0/console.log (guest console)" in read_page((out / "report.html").read_text()).text


def test_shipped_nightly_matrix_covers_every_kernel_on_both_arches():
    from harness.running.matrix import load_matrix
    from tests.helpers import REPO

    cells = {(c.target.text, c.recipe.name) for c in load_matrix(REPO / "cases" / "nightly.yaml").cells}
    assert cells == {(f"qemu:{arch}", f"qemu-{arch}{kernel}") for arch in ("x86_64", "arm64")
                     for kernel in ("", "-6.1.0-56", "-6.12", "-7.2")} | {
        ("qemu:x86_64", "qemu-x86_64-7.3"), ("qemu:x86_64", "qemu-x86_64-7.3-rust")}  # C and Rust on one source


def test_matrix_runs_cells_at_once_with_j(tmp_path):
    """-j 2 with two cells: both run at once, each its own `binder-harness run` on one guest, so the
    matrix takes less than the two cells one after another; the combined files are as with -j 1."""
    matrix = tmp_path / "m.yaml"
    matrix.write_text("targets: [qemu:x86_64]\nkernels: [default, qemu-x86_64-6.1.0-56]\n"
                      "cases: [protocol.version, limits.mmap_twice]\n")
    run = cli("matrix", str(matrix), "-j", "2", out=tmp_path / "out")
    assert run.status == 0, run.stderr
    data = json.loads((run.out / "matrix.json").read_text())
    assert [(c["cell"], c["status"]) for c in data["cells"]] == [
        ("x86_64/qemu-x86_64", "done"), ("x86_64/qemu-x86_64-6.1.0-56", "done")]
    assert data["summary"] == {"passed": 4, "failed": 0, "error": 0, "skipped": 0, "not_applicable": 0}
    cell_totals = [json.loads((run.out / c["dir"] / "report.json").read_text())["timings"]["total_s"]
                   for c in data["cells"]]
    assert data["timings"]["total_s"] < sum(cell_totals), (data["timings"], cell_totals)
    assert "[x86_64/qemu-x86_64-6.1.0-56]" in run.stderr
    assert tagged_processes() == set()


def test_jobs_auto_is_one_guest_per_core_for_per_case_guests_only(tmp_path):
    """-j auto: min(cores, 2) guests for two or more cases on QEMU guests each case has to itself;
    one for --shared-boot (its one guest serves every case), a device, or a single case."""
    from harness.cli import build_parser
    from harness.options import run_options
    from harness.running.parallel import AUTO_JOBS_CAP, auto_jobs, host_cores

    def jobs(*extra: str, cases: int = 47) -> int:
        args = build_parser().parse_args(["run", "-j", "auto", "--out", str(tmp_path), *extra])
        assert args.jobs is None  # decided once the cases are known
        return auto_jobs(run_options(args, tmp_path, "run"), cases)

    assert jobs() == jobs("--target", "qemu:arm64") == min(host_cores(), AUTO_JOBS_CAP)
    assert jobs(cases=1) == 1
    assert jobs("--shared-boot") == 1
    assert jobs("--target", "ssh://root@host") == jobs("--target", "local") == 1
