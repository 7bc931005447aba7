"""KVM only where a real guest boots under it, on any host (DESIGN §6, "A KVM that lies").

Three kinds of host, each tested on every machine: KVM works; QEMU refuses -accel kvm at
start; the kernel dies (or makes no progress) mid-boot under KVM. The kind this machine has
is used for real: a real boot with no remembered decision tells which. The others are
injected by tests/kvm_hosts/qemu_wrapper.py, a qemu-system-* on PATH that passes everything
through but, for -accel kvm, does what QEMU does on such a host. These tests check the
harness's fallback, not binder: the case they run is an ordinary catalog case on the real
driver, and it must pass whatever the accelerator did.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from harness.arches import GUEST_ARCHES, host_arch
from harness.judging.catalog import select_cases
from harness.running.runner import RunOptions, run_cases
from harness.targets import accel
from harness.targets.spec import TargetSpec
from tests.helpers import REPO, TEST_TAG

CASE = "protocol.version"
WRAPPER = REPO / "tests" / "kvm_hosts" / "qemu_wrapper.py"
ARCH = host_arch() if host_arch() in GUEST_ARCHES else "x86_64"
BINARY = GUEST_ARCHES[ARCH].qemu_binary


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A fresh host boot as far as the harness can tell: no remembered KVM decision, and the
    processes this test starts carry the session's tag (tests/conftest.py checks none is left)."""
    monkeypatch.setattr(accel, "_stamp", lambda: tmp_path / "kvm-probe.json")
    monkeypatch.setenv(*TEST_TAG.split("=", 1))
    monkeypatch.delenv(accel.FORCE_ENV, raising=False)
    return tmp_path


def kvm_usable() -> bool:
    return os.access(accel.KVM_DEVICE, os.R_OK | os.W_OK)


def inject(monkeypatch, tmp_path: Path, mode: str) -> None:
    """Put the stand-in QEMU first on PATH, acting as a host whose KVM does `mode`. On a host
    without a usable /dev/kvm the harness is also shown one (it never opens it: QEMU does)."""
    real = shutil.which(BINARY)
    assert real, f"{BINARY} is not installed"
    bindir = tmp_path / "fake-bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / BINARY
    script.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(WRAPPER)!r}, run_name='__main__')\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("BH_REAL_QEMU", real)
    monkeypatch.setenv("BH_FAKE_KVM", mode)
    if mode == "works" or mode.startswith("dies-in:"):
        # the stand-in "KVM" is TCG, which on a loaded host boots slower than the bound a
        # real KVM is held to; a working KVM is what these modes stand for
        monkeypatch.setattr(accel, "KVM_BOOT_BOUND_S", 120.0)
    if not kvm_usable():
        device = tmp_path / "kvm"
        device.write_text("")
        monkeypatch.setattr(accel, "KVM_DEVICE", str(device))


def run(tmp_path: Path, name: str, cases: tuple[str, ...] = (CASE,)) -> tuple[dict, list[str], float]:
    lines: list[str] = []
    out = tmp_path / name
    t0 = time.monotonic()
    run_cases(select_cases(list(cases)), RunOptions(target_spec=TargetSpec.parse(f"qemu:{ARCH}"), out_dir=out), lines.append)
    return json.loads((out / "report.json").read_text()), lines, time.monotonic() - t0


def remembered(tmp_path: Path) -> list[dict]:
    return list(json.loads((tmp_path / "kvm-probe.json").read_text())["qemu"].values())


@pytest.fixture(scope="module")
def real_host(tmp_path_factory) -> tuple[str, dict]:
    """This machine's own kind of KVM, told by a real boot of the real guest with nothing
    remembered: 'works', 'refuses', 'fails' (mid-boot, or no progress), or 'none'."""
    if not kvm_usable() or host_arch() not in GUEST_ARCHES:
        return "none", {}
    tmp = tmp_path_factory.mktemp("real-kvm")
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(accel, "_stamp", lambda: tmp / "kvm-probe.json")
        mp.setenv(*TEST_TAG.split("=", 1))
        mp.delenv(accel.FORCE_ENV, raising=False)
        report, _, _ = run(tmp, "real")
    finally:
        mp.undo()
    reason = report["target"]["accel_reason"]
    kind = ("works" if report["target"]["accel"] == "kvm" else
            "refuses" if "at start" in reason else "fails")
    return kind, report


def test_kvm_that_works_is_used(host, monkeypatch, real_host):
    kind, report = real_host
    if kind != "works":
        inject(monkeypatch, host, "works")
        report, _, _ = run(host, "works")
        assert remembered(host) == [{"accel": "kvm", "reason": report["target"]["accel_reason"]}]
        again, _, _ = run(host, "works-again")  # the next run takes the remembered decision
        assert again["target"]["accel"] == "kvm"
    assert report["target"]["accel"] == "kvm"
    assert report["target"]["accel_reason"].startswith("a real boot reached READY under KVM in ")
    assert report["cases"][0]["outcome"] == "passed", report["cases"][0]


def test_kvm_refused_at_start_falls_back(host, monkeypatch, real_host):
    kind, report = real_host
    if kind != "refuses":
        inject(monkeypatch, host, "refuses")
        report, lines, _ = run(host, "refuses")
        assert any("QEMU refused KVM at start; booting again under TCG" in l for l in lines), lines
        assert remembered(host) == [{"accel": "tcg", "reason": "QEMU refused KVM at start, fell back"}]
    assert report["target"]["accel"] == "tcg"
    assert report["target"]["accel_reason"] in ("QEMU refused KVM at start, fell back",
                                                "QEMU exited at start under KVM, fell back")
    assert report["cases"][0]["outcome"] == "passed", report["cases"][0]
    assert report["timings"]["boots"] == 1


@pytest.mark.parametrize("mode", ["dies", "stalls"])
def test_kvm_failing_mid_boot_falls_back_at_once(host, monkeypatch, real_host, mode):
    kind, report = real_host
    if kind == "fails" and mode == "dies":
        elapsed = None  # this machine's own KVM: how long it took to fail is its own
    else:
        inject(monkeypatch, host, mode)
        report, lines, elapsed = run(host, mode)
        assert any("booting again under TCG" in l for l in lines), lines
    reason = report["target"]["accel_reason"]
    assert report["target"]["accel"] == "tcg"
    # this host's own KVM may fail mid-boot in any of the ways QEMU reports (one host here:
    # an assertion in QEMU's KVM code, "QEMU aborted under KVM at boot")
    assert reason in {*(accel.fell_back(c).reason for c in accel.mid_boot_causes()),
                      f"no boot progress under KVM in {accel.KVM_BOOT_BOUND_S:.0f} s, fell back"}, reason
    if mode == "dies" and elapsed is not None:
        # recognised when QEMU prints it, not after a timeout: the whole run is one TCG boot
        # and one case longer than the injected failure
        assert reason == "KVM internal error at boot, fell back"
        assert elapsed < accel.KVM_BOOT_BOUND_S + 20
    if mode == "stalls":
        assert reason == f"no boot progress under KVM in {accel.KVM_BOOT_BOUND_S:.0f} s, fell back"
    assert report["cases"][0]["outcome"] == "passed", report["cases"][0]
    if elapsed is not None:
        assert remembered(host) == [{"accel": "tcg", "reason": reason}]
        again, lines, _ = run(host, f"{mode}-again")  # no second KVM attempt this host boot
        assert again["target"]["accel_reason"] == reason
        assert not any("under KVM" in l and "booting again" in l for l in lines), lines


def test_kvm_failing_during_a_case_runs_it_again_on_tcg(host, monkeypatch):
    inject(monkeypatch, host, f"dies-in:{CASE}")
    report, lines, _ = run(host, "mid-case", ("protocol.ping", CASE))
    ping, version = report["cases"]
    assert ping["outcome"] == "passed", ping
    assert version["outcome"] == "passed", version
    assert version["evidence"]["accel_fallback"].endswith(
        "KVM internal error during a case: KVM internal error. Suberror: 1"), version["evidence"]
    assert (host / "mid-case" / "cases" / CASE / "kvm-failure.log").read_text().count("emulation failure") == 1
    assert report["target"]["accel"] == "tcg"
    assert report["target"]["accel_reason"] == "KVM internal error during a case, fell back"
    # ping's guest, version's KVM guest (failed), version's TCG guest: each case on its own
    assert report["timings"]["boots"] + report["timings"]["restores"] == 3
    assert any("running it again on a TCG guest" in l for l in lines), lines


def test_forced_kvm_on_a_failing_host_errors_clearly(host, monkeypatch):
    inject(monkeypatch, host, "dies")
    monkeypatch.setenv(accel.FORCE_ENV, "kvm")
    report, _, elapsed = run(host, "forced", (CASE, "protocol.ping", "protocol.thread_exit"))
    first, second, third = report["cases"]
    assert first["outcome"] == second["outcome"] == third["outcome"] == "error"
    assert first["reason"] == f"qemu:{ARCH}: KVM internal error at boot: KVM internal error. Suberror: 1"
    assert third["reason"].startswith("not run: the guest failed to boot 2 times in a row"), third["reason"]
    assert report["target"]["accel"] == "kvm"
    assert report["target"]["accel_reason"] == "BINDER_HARNESS_ACCEL=kvm"
    assert report["target"]["boot_error"] == first["reason"]
    assert report["target"]["kernel_release"]  # known from the image, though no boot worked
    assert elapsed < 60  # recognised at once: waiting out two 90 s boot timeouts would take 180 s
    assert not (host / "kvm-probe.json").exists()  # a forced choice is not remembered
