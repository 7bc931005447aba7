"""The binderfs path of private binder devices, for real.

Debian's kernels have no binderfs, so tests/seeded_bugs/build.py builds binder_linux.ko from
Debian's linux-source-6.1 with binderfs compiled in (`build.FEATURES["binderfs"]`, out of tree
against the matching headers, with BTF). On it the guest's init mounts binderfs at /dev/binderfs
as Android's init does, and the harness makes each guest's device through binder-control
(BINDER_CTL_ADD). The parser tests read the script's real output, captured on that module's
guests (tests/data/binderfs/): made, already there, mounted by the harness, refused, none.
"""
from __future__ import annotations

import json
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from harness.running.devices import BINDERFS_DEVICE_NAME, binderfs_script, parse_binderfs
from harness.targets.base import parse_facts
from harness.targets.ssh import SshAddress, SshOptions, SshTarget
from tests.helpers import DATA, catalog, cli
from tests.seeded_bugs import build
from tests.test_adb_guest import AdbGuest
from tests.test_ssh_guest import Guest as SshGuest

CAPTURED = DATA / "binderfs"
DEVICE = f"/dev/binderfs/{BINDERFS_DEVICE_NAME}"
MADE_BY = "binderfs BINDER_CTL_ADD on /dev/binderfs/binder-control"


# --- the parser, on captured output --------------------------------------------------------------

def test_made_on_a_mounted_binderfs():
    a = parse_binderfs((CAPTURED / "mounted-made.txt").read_text())
    assert (a.state, a.mount, a.errno_name, a.device) == ("mounted", "/dev/binderfs", "", DEVICE)
    assert a.made and not a.existed
    assert (a.major, a.minor) == (246, 2)  # binder-control 0, binder 1 (devices=binder), then ours


def test_an_existing_device_is_told_apart():
    a = parse_binderfs((CAPTURED / "mounted-eexist.txt").read_text())
    assert (a.state, a.errno_name, a.device) == ("mounted", "EEXIST", DEVICE)
    assert a.existed and not a.made
    assert (a.major, a.minor) == (None, None)  # the kernel's copied-out numbers name a freed minor


def test_a_binderfs_the_harness_mounted():
    a = parse_binderfs((CAPTURED / "mounted-here-made.txt").read_text())
    assert (a.state, a.mount, a.device) == ("mounted_here", "/mnt/host/binderfs", "/mnt/host/binderfs/binder-harness-ctl")
    assert a.made


def test_a_refused_device_says_why():
    a = parse_binderfs((CAPTURED / "mounted-enospc.txt").read_text())  # mounted with max=1: binder took it
    assert (a.state, a.errno_name, a.device) == ("mounted", "ENOSPC", "")
    assert not a.made and not a.existed
    assert a.why == "BINDER_CTL_ADD binder-harness-ctl on /tmp/bfs/binder-control: ENOSPC"


def test_a_failed_mount_keeps_its_message():
    a = parse_binderfs((CAPTURED / "mount-failed.txt").read_text())
    assert (a.state, a.mount, a.errno_name) == ("mount_failed", "/proc/version/binderfs", "not run")
    assert a.why == "mkdir: can't create directory '/proc/version/': Not a directory"


def test_no_binderfs_and_no_answer():
    assert parse_binderfs((CAPTURED / "stock-none.txt").read_text()).state == "none"
    assert parse_binderfs("").state == ""
    assert parse_binderfs("binderfs=none\r\n").state == "none"


def test_the_device_facts_count_binderfs_as_binder():
    facts = parse_facts("arch=x86_64\nrelease=6.1.0-57-amd64\nuid=0\nbinderfs=registered\n")
    assert (facts.has_binder, facts.has_binderfs, facts.binder_found) == (False, True, True)
    assert not parse_facts("arch=x86_64\nuid=0\n").binder_found


def test_the_script_quotes_what_it_is_given():
    script = binderfs_script("/data/local/tmp/my probe", "/tmp/a dir/binderfs", "x;y")
    assert "'/data/local/tmp/my probe' binderfs_add" in script
    assert "m='/tmp/a dir/binderfs'" in script and "name='x;y'" in script


# --- the module and whole runs on it -------------------------------------------------------------

@pytest.fixture(scope="module")
def binderfs_ko() -> Path:
    build.ensure_build_deps(build.DEFAULT_RELEASE)
    return build.build_module("binderfs")


def test_the_binderfs_module_is_built_with_btf(binderfs_ko):
    from harness.evidence.btf import elf_section
    from harness.building import module_btf
    from harness.building.build import ensure_kernel
    from harness.building.recipes import recipe_for_arch

    blob = binderfs_ko.read_bytes()
    # built against Debian's headers, as a user's module: DWARF, and the BTF the harness makes from it
    assert elf_section(blob, ".debug_info")
    kernel = ensure_kernel(recipe_for_arch("x86_64"), progress=lambda _: None).kernel
    assert elf_section(module_btf.for_guest(binderfs_ko, kernel).read_bytes(), ".BTF")
    assert b"binderfs_fill_super" in blob and b"binder-control" in blob
    # what Debian's 6.1 does not export is not asked for (modpost: "put_ipc_ns", "init_ipc_ns" undefined)
    undefined = subprocess.run(["nm", "-u", str(binderfs_ko)], capture_output=True, text=True, check=True).stdout.split()
    assert "register_filesystem" in undefined
    assert "put_ipc_ns" not in undefined and "init_ipc_ns" not in undefined
    src = build.patched_sources("binderfs")
    assert src["binderfs.c"].count("binderfs build:") == 4  # the include, 2x init_ipc_ns, put_ipc_ns
    assert "binder_linux-y\t+= binderfs.o" in src["Makefile"] and "-DCONFIG_ANDROID_BINDERFS=1" in src["Makefile"]


def test_the_catalog_passes_on_a_binderfs_device_beside_a_resident_context_manager(binderfs_ko, tmp_path):
    """The resident context manager on /dev/binder (-> /dev/binderfs/binder), every case of the default
    catalog on a device of its guest's own made through binder-control, and the resident still
    answering PING after the last case."""
    cases = catalog()
    assert len(cases) >= 40
    run = cli("run", "--target", "qemu:x86_64", "--binder-module", str(binderfs_ko), "--resident-context-manager",
              out=tmp_path / "run", timeout=1800)
    report = run.report
    assert [c["id"] for c in report["cases"]] == cases
    failed = {c["id"]: c["reason"] for c in report["cases"] if c["outcome"] != "passed"}
    assert failed == {}
    assert run.status == 0, run.stderr[-2000:]
    assert report["target"]["binder_module"] == str(binderfs_ko)
    for case in report["cases"]:
        assert case["evidence"]["binder_device"] == {"path": DEVICE, "made_by": MADE_BY}, case["id"]
        resident = case["evidence"]["resident_context_manager"]  # each case's guest had its own resident
        assert (resident["device"], resident["still_running"], resident["ping_after_run"]) == \
            ("/dev/binder", True, "answered"), case["id"]
    resident = report["resident_context_manager"]
    assert resident["device"] == "/dev/binder"
    assert resident["still_running"] is True
    assert resident["ping_after_run"] == "answered"
    # each case's guest booted the module with binderfs and the guest init's mount
    boot_logs = [tmp_path / "run" / "dmesg.txt", *(tmp_path / "run" / "guests").glob("*/dmesg.txt")]  # -j 1, -j N
    assert any("binder-harness: binderfs mounted at /dev/binderfs" in p.read_text() for p in boot_logs), boot_logs
    # judged again offline, on the device each case recorded (the maps line names it)
    judged = cli("judge", str(tmp_path / "run"))
    assert judged.status == 0, judged.stderr[-2000:]
    after = json.loads((tmp_path / "run" / "report.json").read_text())
    assert after["judged"]["kept_as_recorded"] == {}
    assert [(c["id"], c["outcome"]) for c in after["cases"]] == [(c, "passed") for c in cases]


def test_a_long_lived_target_reuses_its_device_and_mounts_binderfs_where_none_is(binderfs_ko, tmp_path):
    """Over ssh, on a guest that stays up: the first run makes the device through the guest's
    /dev/binderfs, the second finds it there (EEXIST) and reuses it, saying so. With binderfs
    unmounted (and /dev/binder gone with it), a run mounts binderfs under its workdir, makes its
    device there, and unmounts it when done."""
    g = SshGuest("x86_64", tmp_path, "--binder-module", str(binderfs_ko))
    try:
        first = cli("run", "protocol.ping", *g.ssh_args(), out=tmp_path / "first")
        second = cli("run", "protocol.ping", *g.ssh_args(), out=tmp_path / "second")
        with SshTarget(g.spec, SshAddress("root", "127.0.0.1", g.port),
                       SshOptions(identity=Path(g.identity), known_hosts=Path(g.known_hosts)),
                       progress=lambda _: None) as guest:
            assert guest.run_shell("rm /dev/binder && umount /dev/binderfs && echo gone", 10).output.strip() == "gone"
            own = cli("run", "protocol.ping", *g.ssh_args(), out=tmp_path / "own")
            assert own.status == 0, own.stderr[-2000:]
            own_device = own.report["cases"][0]["evidence"]["binder_device"]
            workdir = own_device["path"].rsplit("/", 2)[0]
            after = guest.run_shell(f"grep -c ' binder ' /proc/mounts; test -e {shlex.quote(workdir)} && echo left "
                                    f"|| echo removed", 10).output.split()
            # a binderfs with room for one device, which its "binder" takes: the ioctl is refused (ENOSPC)
            guest.run_shell("mount -t binder -o max=1 binder /dev/binderfs", 10)
            full = cli("run", "protocol.ping", *g.ssh_args(), out=tmp_path / "full")
    finally:
        assert g.stop(signal.SIGTERM) == 0
    for run in (first, second, own):
        assert run.status == 0, run.stderr[-2000:]
        assert run.report["cases"][0]["outcome"] == "passed"
    device = lambda run: run.report["cases"][0]["evidence"]["binder_device"]
    assert device(first) == {"path": DEVICE, "made_by": MADE_BY}
    assert device(second) == {"path": DEVICE, "made_by": "binderfs: already there (BINDER_CTL_ADD on "
                                                         "/dev/binderfs/binder-control: EEXIST), reused"}
    assert f"{DEVICE} already exists (BINDER_CTL_ADD: EEXIST" in second.stderr
    assert workdir.startswith("/tmp/binder-harness.")
    assert own_device == {"path": f"{workdir}/binderfs/{BINDERFS_DEVICE_NAME}",
                          "made_by": f"binderfs BINDER_CTL_ADD on {workdir}/binderfs/binder-control"}
    # the run unmounted its binderfs before removing its workdir (the guest's own was unmounted above)
    assert after == ["0", "removed"]
    errors = [l for l in full.stderr.strip().splitlines() if l.startswith("binder-harness:")]
    assert full.status == 2 and "Traceback" not in full.stderr and errors == [
        f"binder-harness: {g.spec}: binderfs gave the cases no device: BINDER_CTL_ADD {BINDERFS_DEVICE_NAME} on "
        f"/dev/binderfs/binder-control: ENOSPC; name one with --binder-device PATH"]


@pytest.mark.usefixtures("host_adb")
def test_an_android_like_adb_target_gets_its_device_through_binder_control(binderfs_ko, tmp_path):
    """Android's situation with binderfs: a resident context manager owns /dev/binder
    (-> /dev/binderfs/binder) and the run, given no device, makes its own through binder-control."""
    g = AdbGuest("x86_64", tmp_path, "--resident-context-manager", "--binder-module", str(binderfs_ko))
    try:
        assert g.info["resident_pid"] > 0 and g.info["binder_device"] == ""
        printed = "\n".join(g.lines)
        assert f"target:      --target {g.spec}\n" in printed and "--binder-device" not in printed
        assert "cases use a device each run makes through /dev/binderfs/binder-control" in printed
        cases = ["protocol.context_mgr_busy", "protocol.ping", "one_copy.sync_sizes"]
        run = cli("run", *cases, "--target", g.spec, out=tmp_path / "run")
        assert run.status == 0, run.stderr[-2000:]
        assert [c["outcome"] for c in run.report["cases"]] == ["passed"] * len(cases)
        assert {c["evidence"]["binder_device"]["made_by"] for c in run.report["cases"]} == {MADE_BY}
        ping = g.shell("/var/run/binder-resident/binder-resident ping_cm device=/dev/binder")
        assert '"reply":true' in ping.stdout, ping.stdout + ping.stderr
        # /dev/binder is taken, as servicemanager takes it: the run's own resident is refused in one line
        taken = cli("run", "protocol.ping", "--target", g.spec, "--resident-context-manager", out=tmp_path / "taken")
        errors = [l for l in taken.stderr.strip().splitlines() if l.startswith("binder-harness:")]
        assert taken.status == 2 and "Traceback" not in taken.stderr and errors == [
            f"binder-harness: {g.spec}: /dev/binder already has a context manager (servicemanager, or a resident "
            f"left running); drop --resident-context-manager: the cases run on {DEVICE} (binderfs: already there "
            f"(BINDER_CTL_ADD on /dev/binderfs/binder-control: EEXIST), reused)"]
    finally:
        assert g.stop(signal.SIGTERM) == 0
