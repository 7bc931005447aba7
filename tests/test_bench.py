"""bench/ runs end to end on one small case. CI never judges the figures (shared
machines are noisy); this only proves the benchmark still works."""
from __future__ import annotations

import json
import subprocess

from harness.files import REPO_ROOT


def test_bench_quick_runs_one_case_end_to_end(tmp_path):
    out = tmp_path / "bench"
    run = subprocess.run([str(REPO_ROOT / "bench" / "run.sh"), "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    one = results["one_case"]["x86_64"]
    assert one["runs"] == 1 and one["median_s"] > 0
    phases = one["phases_median_s"]
    # the guest was booted, or restored from the cached snapshot (the default once one exists)
    assert phases.get("boot_to_ready", 0) + phases.get("restore", 0) > 0 and phases["probe"] > 0
    assert 0 < one["overhead_s"] < one["median_s"]
    md = (out / "results.md").read_text()
    assert "one case (one_copy.sync_sizes), warm, qemu:x86_64" in md and results["commit"] in md
