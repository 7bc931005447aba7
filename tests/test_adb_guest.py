"""The adb transport against real `binder-harness guest --adb-port` instances: Debian's adbd in
the real Debian kernel under QEMU, reached through the host's real `adb` client.

Nothing here is mocked: the peer is adbd 34.0.5 from bookworm-backports, the client is the
platform `adb`. Verdicts over adb are compared with the same cases on the QEMU console. The
error tests break a real adbd: run as Android's unprivileged `shell` user, killed mid-run,
offline, and a device whose tracefs is gone.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cases._expect import LOG_LINE_CHECK
from harness.judging.health import PRISTINE_ONLY_CHECKS
from tests.helpers import GuestCommand, REPO, catalog, cli, finish_cli, start_cli, wait_for_line

pytestmark = pytest.mark.usefixtures("host_adb")

ARCHES = ["x86_64", "arm64"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _adb(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["adb", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class AdbGuest(GuestCommand):
    def __init__(self, arch: str, tmp: Path, *extra: str):
        self.arch = arch
        self.port = _free_port()
        self.serial = f"127.0.0.1:{self.port}"
        self.stderr_path = tmp / f"adb-guest-{arch}.stderr"
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "guest", "--target", f"qemu:{arch}", "--adb-port", str(self.port),
             *extra], cwd=REPO, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.strip() == "READY":
                break
        if not self.lines or self.lines[-1] != "READY":
            self.stop(signal.SIGTERM)
            raise AssertionError(f"adb guest {arch} did not come up: {self.stderr_path.read_text()[-2000:]}")
        details = next(l.split(":", 1)[1].strip() for l in self.lines if l.startswith("details:"))
        self.info = json.loads(Path(details).read_text())
        self.spec = self.info["target"]

    def shell(self, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return _adb("-s", self.serial, "shell", command, timeout=timeout)



def _qemu_for_port(port: int) -> list[int]:
    proc = subprocess.run(["pgrep", "-f", f"hostfwd=tcp:127.0.0.1:{port}-"], capture_output=True, text=True)
    return [int(p) for p in proc.stdout.split()]


@pytest.fixture(scope="module", params=ARCHES)
def guest(request, tmp_path_factory):
    g = AdbGuest(request.param, tmp_path_factory.mktemp(f"adb-{request.param}"))
    yield g
    status = g.stop(signal.SIGINT if g.arch == "x86_64" else signal.SIGTERM)
    assert status == 0, g.stderr_path.read_text()[-2000:]
    assert _qemu_for_port(g.port) == [], "a QEMU process was left behind"
    assert g.serial not in _adb("devices").stdout, "the guest's adb connection outlived it"


def _one_error_line(run, *needles: str) -> str:
    assert run.status == 2, run.stderr
    assert "Traceback" not in run.stderr
    errors = [l for l in run.stderr.strip().splitlines() if l.startswith("binder-harness:")]
    assert len(errors) == 1, run.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_guest_prints_how_to_reach_it(guest):
    text = "\n".join(guest.lines)
    assert f"adb connect {guest.serial}" in text and f"--target adb:{guest.serial}" in text
    # Debian's adbd asks no auth: the forward must listen on loopback only
    qemu = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode().replace("\0", " ")
                    for pid in _qemu_for_port(guest.port))
    assert f"hostfwd=tcp:127.0.0.1:{guest.port}-:5555" in qemu
    assert guest.shell("id -u").stdout.strip() == "0"


def test_same_verdicts_over_adb_and_console(guest, tmp_path):
    """The whole default catalog through the real adb client and the real adbd, against the same
    catalog on the QEMU console of the same kernel: the same verdicts, every case passed."""
    ids = catalog()
    assert len(ids) >= 40
    over_adb = cli("run", "--target", guest.spec, out=tmp_path / "adb", timeout=1200)
    console = cli("run", "--target", f"qemu:{guest.arch}", out=tmp_path / "console", timeout=1200)
    a, c = over_adb.report, console.report
    assert a["target"]["spec"] == guest.spec and a["target"]["arch"] == c["target"]["arch"] == guest.arch
    assert a["target"]["kernel_release"] == c["target"]["kernel_release"]
    # the same checks, passed on both; only a pristine guest (the console's per-case restore, not a
    # long-lived device) asserts binder's rate-limited log lines (cases/_expect.py note_dmesg), its
    # undeclared lines and its accounting (PRISTINE_ONLY_CHECKS)
    def checks(report: dict) -> dict:
        return {x["id"]: (x["outcome"], sorted((k["name"], k["passed"]) for k in x["checks"]
                                               if not k["name"].startswith((LOG_LINE_CHECK, *PRISTINE_ONLY_CHECKS))))
                for x in report["cases"]}
    assert checks(a) == checks(c)
    assert [(x["id"], x["outcome"]) for x in a["cases"]] == [(i, "passed") for i in ids]
    assert (over_adb.status, console.status) == (0, 0), over_adb.stderr[-2000:] + console.stderr[-2000:]
    sizes = lambda r: [(t["size"], t["copied_bytes"]) for t in next(x for x in r["cases"]
                       if x["id"] == "one_copy.sync_sizes")["evidence"]["transactions"]]
    assert sizes(a) == sizes(c)
    assert "B|" in (tmp_path / "adb" / "trace.txt").read_text()


def test_resident_context_manager_over_adb(tmp_path):
    """Android's situation: /dev/binder is owned by a resident context manager; the cases run on
    the private /dev/binder-harness (binder_linux devices=), and the resident still answers."""
    g = AdbGuest("x86_64", tmp_path, "--resident-context-manager")
    try:
        assert g.info["resident_pid"] > 0 and g.info["binder_device"] == "/dev/binder-harness"
        assert "--binder-device /dev/binder-harness" in "\n".join(g.lines)
        # the whole catalog on the devices= path, beside the resident
        run = cli("run", "--target", g.spec, "--binder-device", "/dev/binder-harness", out=tmp_path / "run",
                  timeout=1200)
        assert {c["id"]: c["reason"] for c in run.report["cases"] if c["outcome"] != "passed"} == {}
        assert [c["id"] for c in run.report["cases"]] == catalog()
        assert run.status == 0, run.stderr[-2000:]
        for case in run.report["cases"]:
            assert case["evidence"]["binder_device"]["path"] == "/dev/binder-harness", case["id"]
        ping = g.shell("/var/run/binder-resident/binder-resident ping_cm device=/dev/binder")
        assert '"reply":true' in ping.stdout, ping.stdout + ping.stderr
        assert g.shell(f"kill -0 {g.info['resident_pid']} && echo alive").stdout.strip() == "alive"
        # Android's case: /dev/binder already has its context manager, so the run may not start another
        taken = cli("run", "protocol.ping", "--target", g.spec, "--binder-device", "/dev/binder-harness",
                    "--resident-context-manager", out=tmp_path / "taken")
        _one_error_line(taken, "/dev/binder already has a context manager",
                        "drop --resident-context-manager: the cases run on /dev/binder-harness (named with --binder-device)")
        # the resident's device is taken: running there without --binder-device says so in the verdicts
        busy = cli("run", "protocol.context_mgr_busy", "--target", g.spec, out=tmp_path / "busy")
        assert busy.status == 1 and busy.report["cases"][0]["outcome"] == "failed"
    finally:
        assert g.stop(signal.SIGTERM) == 0


def test_binder_device_that_does_not_exist(guest, tmp_path):
    if guest.arch != "x86_64":
        pytest.skip("checked on x86_64")
    run = cli("run", "protocol.version", "--target", guest.spec, "--binder-device", "/dev/nope", out=tmp_path / "r")
    _one_error_line(run, "/dev/nope", "no such character device")


def test_broken_adbd_errors(tmp_path):
    """Each against the real adbd, one guest, in an order that breaks it step by step."""
    g = AdbGuest("x86_64", tmp_path)
    user_serial = ""
    try:
        # 1. adbd without root: Android's `shell` user (uid 2000), reached through `adb forward`
        lib = g.shell("ls -d /lib/*-linux-gnu/android").stdout.strip()
        g.shell(f"(su shell -s /bin/sh -c 'ADBD_PORT=5556 LD_LIBRARY_PATH={lib} /usr/sbin/adbd' "
                f"< /dev/null > /tmp/adbd-shell.log 2>&1 &); sleep 1")
        host_port = _free_port()
        assert _adb("-s", g.serial, "forward", f"tcp:{host_port}", "tcp:5556").returncode == 0
        user_serial = f"127.0.0.1:{host_port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "connected to" not in _adb("connect", user_serial).stdout:
            time.sleep(0.5)
        assert _adb("-s", user_serial, "shell", "id -u").stdout.strip() == "2000"
        run = cli("run", "protocol.version", "one_copy.sync_sizes", "--target", f"adb:{user_serial}",
                  out=tmp_path / "noroot")
        assert "Traceback" not in run.stderr
        assert [c["outcome"] for c in run.report["cases"]] == ["skipped", "skipped"]
        assert all("not root" in c["reason"] for c in run.report["cases"]), run.report["cases"]
        assert "no root" in run.stderr
        _adb("disconnect", user_serial)
        user_serial = ""

        # 2. tracefs gone: /sys/kernel under a read-only tmpfs, so nothing can mount it again
        g.shell("umount /sys/kernel/debug; umount /sys/kernel/tracing; mount -t tmpfs -o ro none /sys/kernel")
        run = cli("run", "protocol.version", "one_copy.sync_sizes", "--target", g.spec, out=tmp_path / "notrace")
        assert "Traceback" not in run.stderr
        outcomes = {c["id"]: (c["outcome"], c["reason"]) for c in run.report["cases"]}
        assert outcomes["protocol.version"][0] == "passed", outcomes
        assert outcomes["one_copy.sync_sizes"][0] == "skipped" and "no tracefs" in outcomes["one_copy.sync_sizes"][1]

        # 3. adbd killed mid-run: the case running errors with one line, the run still ends with a report.
        # The kill comes when the run reaches its third case, whatever the host's speed.
        pids = " ".join(g.shell("pidof adbd").stdout.split())  # the root adbd and step 1's
        proc = start_cli("run", "protocol.version", "protocol.ping", "protocol.freeze", "limits.free_reuse",
                         "protocol.thread_exit", "protocol.refcounts", "--target", g.spec,
                         "--out", str(tmp_path / "killed"))
        wait_for_line(proc, "protocol.freeze ...")
        # setsid: out of the adb shell session, which adbd ends (with its processes) when the call returns
        g.shell(f"setsid sh -c 'kill -9 {pids}' > /dev/null 2>&1 < /dev/null &")
        run = finish_cli(proc, tmp_path / "killed")
        assert "Traceback" not in run.stderr
        assert run.status == 1, run.stderr
        report = json.loads((tmp_path / "killed" / "report.json").read_text())
        errored = [c for c in report["cases"] if c["outcome"] == "error"]
        print(f"\nadbd killed mid-run: exit {run.status}; " + "; ".join(f"{c['id']}: {c['outcome']}: {c['reason']}"
                                                               for c in report["cases"]))
        assert errored, report["cases"]
        assert all("\n" not in c["reason"] and "Traceback" not in c["reason"] for c in errored)
        assert [c["id"] for c in report["cases"]][-1] == "protocol.refcounts", "every case is in the report"
        assert any("offline" in c["reason"] or "closed" in c["reason"] for c in errored)
        # cases after repeated failures to reach it say it was lost, in adb's terms, not a guest's boot
        given_up = [c["reason"] for c in errored if c["reason"].startswith("not run:")]
        assert all(r.startswith(f"not run: {g.spec} was lost during the run: could not be reached again 2 times "
                                f"in a row (lost during the run: ") for r in given_up), given_up

        # 4. the dead adbd's device, offline or gone: one line naming the target, exit 2
        run = cli("run", "protocol.version", "--target", g.spec, out=tmp_path / "offline")
        print(f"after adbd died: {_one_error_line(run, g.serial)}")
    finally:
        if user_serial:
            _adb("disconnect", user_serial)
        g.stop(signal.SIGTERM)


def test_resident_context_manager_on_the_console(tmp_path):
    """The same on a QEMU console guest: binder_linux devices=binder,binder-harness, the resident on
    /dev/binder, the cases on /dev/binder-harness, and the resident answering PING at the end."""
    cases = ["protocol.context_mgr_busy", "protocol.ping", "one_copy.sync_sizes"]
    run = cli("run", *cases, "--target", "qemu:x86_64", "--resident-context-manager", out=tmp_path / "run")
    assert run.status == 0, run.stderr
    report = run.report
    for case in report["cases"]:
        assert case["outcome"] == "passed", case
        assert case["evidence"]["binder_device"] == {
            "path": "/dev/binder-harness", "made_by": "binder_linux devices=binder,binder-harness at insmod by the guest's init"}
    resident = report["resident_context_manager"]
    assert resident["device"] == "/dev/binder" and resident["still_running"] is True
    assert resident["ping_after_run"] == "answered"
