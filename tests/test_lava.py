"""`binder-harness lava` jobs run for real by Debian's lava-dispatcher (`lava-run`, locally, no
server), and `binder-harness judge` on the job's directory gives the verdicts a direct run gives."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import cli, one_error_line
from tests.seeded_bugs import build

CASES = ("one_copy.sync_sizes", "limits.*")


def _lava(tmp: Path, *args: str) -> dict:
    """Render, run with lava-run, judge; return the judged report."""
    assert shutil.which("lava-run"), "lava-run is missing: scripts/setup --test installs lava-dispatcher"
    rendered = cli("lava", *args, out=tmp)
    assert rendered.status == 0, rendered.stderr
    for name in ("job.yaml", "device.yaml", "dispatcher.yaml", "kernel", "initramfs.cpio"):
        assert (tmp / name).is_file(), name
    proc = subprocess.run(["sh", str(tmp / "run.sh")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (tmp / "output" / "lava-run.log").read_text()[-3000:]
    assert '"lvl": "results"' in (tmp / "output" / "lava-run.log").read_text()
    judged = cli("judge", str(tmp))
    assert "Traceback" not in judged.stderr
    return json.loads((tmp / "report.json").read_text())


def _verdicts(report: dict) -> dict:
    return {c["id"]: (c["outcome"], c["reason"], [(k["name"], k["passed"]) for k in c["checks"]])
            for c in report["cases"]}


def test_lava_job_gives_the_verdicts_of_a_direct_run(tmp_path):
    lava = _lava(tmp_path / "lava", *CASES)
    # the job runs its cases one after another on one boot: the direct run that matches is a shared boot
    # (on per-case guests, the rate-limited log lines are asserted too, which one shared boot cannot)
    direct = cli("run", *CASES, "--shared-boot", "--target", "qemu:x86_64", out=tmp_path / "direct", timeout=600)
    assert direct.status == 0, direct.stderr
    assert _verdicts(lava) == _verdicts(direct.report)
    assert all(c["outcome"] == "passed" for c in lava["cases"]) and len(lava["cases"]) >= 9
    assert lava["lava"]["job_result"] == "pass"
    assert set(lava["lava"]["lava_test_case"].values()) == {"pass"}
    assert lava["target"]["kernel_release"] == direct.report["target"]["kernel_release"]


def test_lava_job_with_the_double_copy_module_fails_like_a_direct_run(tmp_path):
    build.ensure_build_deps(build.DEFAULT_RELEASE)
    module = str(build.build_module("double_copy"))
    lava = _lava(tmp_path / "lava", "one_copy.sync_sizes", "--binder-module", module)
    direct = cli("run", "one_copy.sync_sizes", "--target", "qemu:x86_64", "--binder-module", module,
                 out=tmp_path / "direct", timeout=600)
    assert direct.status == 1
    assert _verdicts(lava) == _verdicts(direct.report)
    assert "expected 1.0, measured 2.0" in lava["cases"][0]["reason"]


def test_lava_job_boots_the_image_asked_for(tmp_path):
    """--image shapes the job's guest as it shapes a run's: the job boots Debian's 6.12, and the
    verdict is judged on 6.12."""
    lava = _lava(tmp_path / "lava", "one_copy.sync_sizes", "--image", "qemu-x86_64-6.12")
    manifest = json.loads((tmp_path / "lava" / "lava.json").read_text())
    assert (manifest["target"]["spec"], manifest["target"]["image"]) == ("qemu:x86_64", "qemu-x86_64-6.12")
    assert lava["target"]["kernel_release"].startswith("6.12."), lava["target"]
    assert [(c["id"], c["outcome"]) for c in lava["cases"]] == [("one_copy.sync_sizes", "passed")]


@pytest.mark.parametrize("args, needle", [
    (("lava", "--target", "ssh://root@127.0.0.1", "--out", "{tmp}/x"), "a LAVA job boots a QEMU guest"),
    (("lava", "--timeout", "0", "--out", "{tmp}/x"), "--timeout 0.0: must be a positive number of seconds"),
    (("lava", "--image", "qemu-arm64-6.12", "--target", "qemu:x86_64", "--out", "{tmp}/x"),
     "recipe qemu-arm64-6.12 is for arm64, but the target is qemu:x86_64"),
    (("lava", "no.such_case", "--out", "{tmp}/x"), "unknown case 'no.such_case'"),
    (("lava", "--binder-module", "{tmp}/nope.ko", "--out", "{tmp}/x"), "--binder-module"),
])
def test_lava_bad_usage_is_one_line(tmp_path, args, needle):
    line = one_error_line(cli(*(a.format(tmp=tmp_path) for a in args)))
    assert needle in line


def test_judge_of_a_job_not_run_yet_is_one_line(tmp_path):
    rendered = cli("lava", "protocol.version", out=tmp_path)
    assert rendered.status == 0, rendered.stderr
    line = one_error_line(cli("judge", str(tmp_path)))
    assert "lava-run.log: missing; run the job first" in line
