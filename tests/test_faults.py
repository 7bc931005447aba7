"""Faults a nightly run must survive, each made to happen for real: a real QEMU, the real
Debian kernel, real signals. After every one, the affected case is failed or errored with a
one-line reason, its evidence stays under cases/<id>/, the next case gets a fresh guest, no
QEMU process or temporary directory is left, and report.json and junit.xml are valid."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.evidence.trace import parse_ftrace
from tests.helpers import REPO, CliRun, cli, cli_env, finish_cli, start_cli, tagged_processes, wait_for_line

FAULT_CASES = str(REPO / "tests" / "fault_cases")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    """The harness's environment for one test: the fault cases, and a TMPDIR of its own, which
    both tags its processes and shows any temporary directory it leaves behind."""
    tmp.mkdir(exist_ok=True)
    return cli_env(BINDER_HARNESS_EXTRA_CASES=FAULT_CASES, TMPDIR=str(tmp), **extra)


def _processes(env: dict[str, str], name: str) -> set[int]:
    return tagged_processes(name, tag=f"TMPDIR={env['TMPDIR']}")


def assert_closed(out: Path, env: dict[str, str], case_ids: list[str]) -> dict:
    """What every fault must leave: valid reports naming every case, one-line reasons,
    no QEMU process and no temporary directory."""
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == 2  # harness/reports/model.py REPORT_SCHEMA
    assert [c["id"] for c in report["cases"]] == case_ids
    for case in report["cases"]:
        assert case["reason"] and "\n" not in case["reason"], case
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert [t.get("name") for t in suite.iter("testcase")] == case_ids
    assert sum(report["summary"].values()) == len(case_ids)
    assert _processes(env, "qemu-system-") == set(), "a QEMU process was left behind"
    left = sorted(p.name for p in Path(env["TMPDIR"]).iterdir() if p.name.startswith(("bh-share-", "bh-probe-")))
    assert left == [], f"temporary directories left behind: {left}"
    return report


def _case(report: dict, case_id: str) -> dict:
    return next(c for c in report["cases"] if c["id"] == case_id)


# -- faults inside the guest: one run, one fault per case, a healthy case after them ------------
FAULT_RUN = ["fault.panic", "fault.probe_hang", "fault.console_exit", "protocol.version"]


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    env = _env(tmp / "tmp")
    # one guest at a time: each fault's guest is replaced before the next case (with -j 2 the next
    # case may already run on the other guest; tests/test_parallel.py covers that layout)
    run = cli("run", *FAULT_RUN, "--target", "qemu:x86_64", "-j", "1", "--timeout", "1", out=tmp / "out", env=env)
    report = assert_closed(tmp / "out", env, FAULT_RUN)
    return run, report


def test_guest_kernel_panic_mid_case(fault_run):
    """sysrq 'c' panics the guest in the middle of a case."""
    run, report = fault_run
    case = _case(report, "fault.panic")
    assert case["outcome"] == "error"
    assert "Kernel panic - not syncing: sysrq triggered crash" in case["reason"]
    case_dir = run.out / "cases" / "fault.panic"
    assert "sysrq triggered crash" in (case_dir / "console.log").read_text()
    assert "sysrq triggered crash" in (case_dir / "console-tail.log").read_text()
    assert "Kernel panic" in (case_dir / "dmesg.txt").read_text()
    assert (case_dir / "probe-1.jsonl").read_text().strip(), "the probe output before the panic is kept"
    assert case["evidence"]["trace"].startswith("lost with the guest")


def test_probe_hang_is_killed_by_the_case_timeout(fault_run):
    """A probe scenario that runs for 10 minutes under --timeout 1: killed, partial evidence kept."""
    run, report = fault_run
    case = _case(report, "fault.probe_hang")
    assert case["outcome"] == "failed"
    assert case["reason"].startswith("probe run 1 (random) ends within the case time limit: expected done within 1 s, "
                                     "measured killed after 6 s (status 137)"), case["reason"]
    assert case["evidence"]["probe_timeouts"] == [{"run": 1, "scenario": "random", "killed_after_s": 6}]
    case_dir = run.out / "cases" / "fault.probe_hang"
    trace = parse_ftrace((case_dir / "trace.txt").read_text())
    assert trace.named("binder_ioctl"), "the partial trace is kept"
    assert '"ev"' in (case_dir / "probe-1.jsonl").read_text()
    assert (case_dir / "dmesg.txt").is_file()


def test_console_shell_exits(fault_run):
    """The console shell ends (init powers the guest off): QEMU exits mid-command."""
    run, report = fault_run
    case = _case(report, "fault.console_exit")
    assert case["outcome"] == "error"
    assert "QEMU exited during 'exit 0'" in case["reason"], case["reason"]
    assert "console shell exited" in (run.out / "cases" / "fault.console_exit" / "console.log").read_text()


def test_next_case_gets_a_fresh_guest(fault_run):
    run, report = fault_run
    assert _case(report, "protocol.version")["outcome"] == "passed"
    # every case on a guest of its own (restored from the snapshot, or booted when there is
    # none yet): the panicked one, probe_hang's, console_exit's, then protocol.version's
    assert report["timings"]["boots"] + report["timings"]["restores"] == 4
    assert [c["guest_start"]["fresh"] for c in report["cases"]] == [True] * 4
    assert run.status == 1
    assert report["target"]["accel"] in ("tcg", "kvm")


# -- faults from outside: QEMU stopped or killed, the harness interrupted -------------------------
def _during_sleep(tmp_path: Path, action, *extra: str, out: Path | None = None) -> tuple[CliRun, dict, dict[str, str]]:
    """Start a run of fault.sleep then protocol.version; do `action(proc, env)` while fault.sleep
    sits in the guest."""
    env = _env(tmp_path / "tmp")
    out = out or tmp_path / "out"
    proc = start_cli("run", "fault.sleep", "protocol.version", "--target", "qemu:x86_64", "-j", "1", *extra,
                     "--out", str(out), env=env)
    try:
        wait_for_line(proc, "fault.sleep ...")
        time.sleep(1.0)  # inside the guest's sleep now
        action(proc, env)
        run = finish_cli(proc, out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return run, assert_closed(out, env, ["fault.sleep", "protocol.version"]), env


def _started(pid: int) -> int:
    """A process's start time, in clock ticks since boot (/proc/PID/stat field 22)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def _signal_qemu(sig: int):
    """Signal the running case's QEMU: the oldest; a second one is the next case's guest,
    restored while this case runs."""
    def action(proc, env):
        pids = _processes(env, "qemu-system-")
        assert 1 <= len(pids) <= 2, pids
        os.kill(min(pids, key=_started), sig)
    return action


def test_qemu_killed_from_outside(tmp_path):
    run, report, _ = _during_sleep(tmp_path, _signal_qemu(signal.SIGKILL))
    case = _case(report, "fault.sleep")
    assert case["outcome"] == "error"
    assert "QEMU exited during" in case["reason"], case["reason"]
    assert _case(report, "protocol.version")["outcome"] == "passed"
    assert report["timings"]["boots"] + report["timings"]["restores"] == 2
    assert (run.out / "cases" / "fault.sleep" / "console.log").is_file()
    assert run.status == 1


def test_guest_stops_answering(tmp_path):
    """SIGSTOP on QEMU: the console goes silent; the harness kills it and boots a fresh guest."""
    run, report, _ = _during_sleep(tmp_path, _signal_qemu(signal.SIGSTOP), "--timeout", "1")
    case = _case(report, "fault.sleep")
    assert case["outcome"] == "error"
    assert "guest stopped answering during" in case["reason"], case["reason"]
    assert _case(report, "protocol.version")["outcome"] == "passed"
    assert report["timings"]["boots"] + report["timings"]["restores"] == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_harness_interrupted_mid_case(tmp_path, sig):
    def interrupt(proc, env):
        proc.send_signal(sig)

    run, report, env = _during_sleep(tmp_path, interrupt)
    assert run.status == 130, run.stderr
    assert run.stderr.strip().splitlines()[-1] == \
        "binder-harness: interrupted; the run directory holds what was collected"
    assert _case(report, "fault.sleep")["outcome"] == "error"
    assert _case(report, "fault.sleep")["reason"] == "interrupted"
    assert _case(report, "protocol.version") == {**_case(report, "protocol.version"), "outcome": "skipped",
                                                "reason": "not run: the run was interrupted"}
    assert _processes(env, "binder-harness") == set()
    assert (run.out / "report.html").is_file()


# -- KVM that is there but broken: tests/test_accel.py, for every kind of host ------------------
def test_unknown_accel_is_bad_usage(tmp_path):
    run = cli("run", "protocol.version", out=tmp_path / "out", env=cli_env(BINDER_HARNESS_ACCEL="hvf"))
    assert run.status == 2
    assert run.stderr.strip().splitlines() == [
        "binder-harness: BINDER_HARNESS_ACCEL=hvf: use kvm, tcg, or leave it unset (kvm when a real boot works)"]


# -- an output directory that is full or read-only ----------------------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    """Mount a fresh tmpfs with the given options; unmounted at the end whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounts: list[Path] = []

    def mount(options: str) -> Path:
        where = tmp_path / f"mnt{len(mounts)}"
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "bh-test", str(where)], check=True)
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_tiny_output_dir_is_refused(tmpfs):
    out = tmpfs("size=64k") / "run"
    run = cli("run", "protocol.version", out=out)
    assert run.status == 2
    assert run.stderr.strip().splitlines() == [
        f"binder-harness: --out {out}: only 64 KiB free on its filesystem; a run needs at least 4 MiB "
        "(reports, logs, traces); free space or give another --out"]


def test_read_only_output_dir_is_refused(tmpfs):
    out = tmpfs("size=1m,ro")
    run = cli("run", "protocol.version", out=out)
    assert run.status == 2
    assert run.stderr.strip().splitlines() == [
        f"binder-harness: --out {out}: not writable (Read-only file system); give a writable directory"]


def _fill(directory: Path) -> None:
    """Take every free byte of directory's filesystem."""
    with open(directory / "filler", "wb") as fh:
        chunk = b"\0" * 65536
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_output_dir_fills_up_mid_case(tmp_path, tmpfs):
    """The run directory's filesystem fills while a case runs: that case errors, the rest are
    not run, and the space set aside at the start still takes report.json and junit.xml."""
    out = tmpfs("size=8m") / "run"
    run, report, _ = _during_sleep(tmp_path, lambda proc, env: _fill(out), out=out)
    assert run.status == 1, run.stderr
    sleep, version = report["cases"]
    assert sleep["outcome"] == "error"
    assert sleep["reason"].startswith(f"cannot write evidence to {out} (No space left on device)"), sleep["reason"]
    assert version["outcome"] == "error"
    assert version["reason"].startswith("not run: cannot write evidence"), version["reason"]
    assert (out / "cases" / "fault.sleep" / "probe-1.jsonl").is_file()
    assert not (out / ".bh-reserve").exists()


def test_share_dirs_of_dead_harness_processes_are_swept(tmp_path):
    """SIGKILL skips every cleanup; the next QemuTarget removes what a dead harness left."""
    from harness.targets.qemu import sweep_stale_shares

    dead = _dead_pid()
    stale = tmp_path / f"bh-share-{dead}-abc"
    live = tmp_path / f"bh-share-{os.getpid()}-def"
    other = tmp_path / "bh-share-notapid"
    for d in (stale, live, other):
        d.mkdir()
    assert sweep_stale_shares(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
