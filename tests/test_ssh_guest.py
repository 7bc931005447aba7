"""The ssh transport against real `binder-harness guest` instances on both arches.

Each guest is the real Debian kernel under QEMU with dropbear; the harness
reaches it through QEMU's user network on 127.0.0.1 only. Verdicts over ssh are
compared with the same cases run on the QEMU console. Every guest is stopped
with a signal and the test checks that no QEMU and no harness process is left.
"""
from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest

from harness.judging.catalog import load_cases
from harness.targets.ssh import SshAddress, SshOptions, SshTarget
from tests.helpers import GuestCommand, REPO, cli, offsets_as_read

ARCHES = ["x86_64", "arm64"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _qemu_for_port(port: int) -> list[int]:
    """QEMU processes serving this port's forward (other sessions' QEMUs do not count)."""
    proc = subprocess.run(["pgrep", "-f", f"hostfwd=tcp:127.0.0.1:{port}-"], capture_output=True, text=True)
    return [int(p) for p in proc.stdout.split()]


class Guest(GuestCommand):
    def __init__(self, arch: str, tmp: Path, *extra: str):
        self.arch = arch
        self.port = _free_port()
        self.stderr_path = tmp / f"guest-{arch}.stderr"
        self._stderr = open(self.stderr_path, "w")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "guest", "--target", f"qemu:{arch}", "--ssh-port", str(self.port),
             *extra],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.stdout_lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # blocks until READY, or EOF if the guest failed
            self.stdout_lines.append(line.rstrip("\n"))
            if line.strip() == "READY":
                break
        self.ready_s = time.monotonic() - t0
        if not self.stdout_lines or self.stdout_lines[-1] != "READY":
            self.stop(signal.SIGTERM)
            raise AssertionError(f"guest {arch} did not come up: {self.stderr_path.read_text()[-2000:]}")
        details = next(l.split(":", 1)[1].strip() for l in self.stdout_lines if l.startswith("details:"))
        self.info = json.loads(Path(details).read_text())
        self.identity = self.info["identity"]
        self.known_hosts = self.info["known_hosts"]
        self.spec = self.info["target"]

    def ssh_args(self) -> list[str]:
        return ["--target", self.spec, "--identity", self.identity, "--known-hosts", self.known_hosts]



@pytest.fixture(scope="module", params=ARCHES)
def guest(request, tmp_path_factory):
    g = Guest(request.param, tmp_path_factory.mktemp(f"guest-{request.param}"))
    print(f"\nguest {g.arch}: ready in {g.ready_s:.1f} s on port {g.port}")
    yield g
    # SIGINT for one arch, SIGTERM for the other: both must stop cleanly
    status = g.stop(signal.SIGINT if g.arch == "x86_64" else signal.SIGTERM)
    assert status == 0, g.stderr_path.read_text()[-2000:]
    assert _qemu_for_port(g.port) == [], "a QEMU process was left behind"
    assert not Path(g.identity).exists(), "the per-guest client key outlived the guest"


def _comparable_cases() -> list[str]:
    """one_copy.sync_sizes and every limits case the catalog has (none yet: see the report)."""
    registry = load_cases()
    return ["one_copy.sync_sizes"] + sorted(c for c in registry if c.startswith("limits."))


def _verdicts(report: dict) -> dict[str, tuple]:
    out = {}
    for case in report["cases"]:
        ev = case["evidence"]
        measured = tuple((t["size"], t["copied_bytes"], t["copies_per_byte"]) for t in ev.get("transactions", []))
        out[case["id"]] = (case["outcome"], measured)
    return out


def test_guest_prints_how_to_reach_it(guest):
    text = "\n".join(guest.stdout_lines)
    kh_line = guest.info["known_hosts_line"]
    assert kh_line.startswith(f"[127.0.0.1]:{guest.port} ssh-ed25519 ")
    assert Path(guest.known_hosts).read_text().strip() == kh_line
    assert f"ssh -i {guest.identity}" in text and f"-p {guest.port} root@127.0.0.1" in text
    assert f"--target ssh://root@127.0.0.1:{guest.port} --identity {guest.identity}" in text
    assert guest.info["host_key_fingerprint"].startswith("SHA256:") and guest.info["host_key_fingerprint"] in text
    assert oct(Path(guest.identity).stat().st_mode & 0o777) == "0o600"
    assert "PRIVATE KEY" not in text + guest.stderr_path.read_text(), "key contents were printed"


def test_same_verdicts_over_ssh_and_console(guest, tmp_path):
    cases = _comparable_cases()
    t0 = time.monotonic()
    over_ssh = cli("run", *cases, *guest.ssh_args(), out=tmp_path / "ssh")
    ssh_s = time.monotonic() - t0
    assert over_ssh.status == 0, over_ssh.stderr
    t0 = time.monotonic()
    console = cli("run", *cases, "--target", f"qemu:{guest.arch}", out=tmp_path / "console")
    console_s = time.monotonic() - t0
    assert console.status == 0, console.stderr
    print(f"\n{guest.arch}: {', '.join(cases)} over ssh {ssh_s:.1f} s, on the console (with boot) {console_s:.1f} s")
    ssh_report, console_report = over_ssh.report, console.report
    assert ssh_report["target"]["spec"] == guest.spec
    assert ssh_report["target"]["arch"] == console_report["target"]["arch"] == guest.arch
    assert ssh_report["target"]["kernel_release"] == console_report["target"]["kernel_release"]
    assert _verdicts(ssh_report) == _verdicts(console_report)
    assert [c["outcome"] for c in ssh_report["cases"]] == ["passed"] * len(cases)
    # the copy kprobe's struct offset is read from the device's own BTF over ssh as well
    # (the console guest's may have been read by an earlier guest of the same build and kept on the host)
    from_btf = {"binder_buffer.user_data": {"offset": 88, "from": "BTF /sys/kernel/btf/binder_linux"}}
    assert over_ssh.case("one_copy.sync_sizes")["evidence"]["struct_offsets"] == from_btf
    assert offsets_as_read(console.case("one_copy.sync_sizes")["evidence"]["struct_offsets"], console) == from_btf
    assert "B|" in (tmp_path / "ssh" / "trace.txt").read_text()


def test_pytest_plugin_over_ssh(guest, tmp_path):
    if guest.arch != "x86_64":
        pytest.skip("the plugin path is the same on both arches; checked on x86_64")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "cases/", "-q", "-p", "no:cacheprovider", *guest.ssh_args(),
         "--bh-out", str(tmp_path / "run"), "-k", "sync_sizes"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def _one_error_line(run, *needles: str) -> str:
    assert run.status == 2, run.stderr
    assert "Traceback" not in run.stderr
    errors = [l for l in run.stderr.strip().splitlines() if l.startswith("binder-harness:")]
    assert len(errors) == 1, run.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _random_ed25519_line(name: str) -> str:
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + os.urandom(32)
    return f"{name} ssh-ed25519 {base64.b64encode(blob).decode()}\n"


def test_wrong_host_key_is_refused(guest, tmp_path):
    if guest.arch != "x86_64":
        pytest.skip("transport errors do not depend on the guest arch")
    bad = tmp_path / "known_hosts"
    bad.write_text(_random_ed25519_line(f"[127.0.0.1]:{guest.port}"))
    run = cli("run", "one_copy.sync_sizes", "--target", guest.spec, "--identity", guest.identity,
              "--known-hosts", str(bad), out=tmp_path / "o")
    line = _one_error_line(run, guest.spec, "host key mismatch", guest.info["host_key_fingerprint"])
    assert "refusing to connect" in line


def test_unknown_host_key_is_refused_unless_accepted(guest, tmp_path):
    if guest.arch != "x86_64":
        pytest.skip("transport errors do not depend on the guest arch")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    run = cli("run", "one_copy.sync_sizes", "--target", guest.spec, "--identity", guest.identity,
              "--known-hosts", str(empty), out=tmp_path / "o")
    line = _one_error_line(run, guest.spec, "is not in", guest.info["known_hosts_line"])
    assert "--insecure-accept-host-key" in line
    # the explicit opt-in for ephemeral guests connects (and says what it accepted)
    target = SshTarget(guest.spec, SshAddress("root", "127.0.0.1", guest.port),
                       SshOptions(identity=Path(guest.identity), known_hosts=empty, insecure_accept_host_key=True),
                       progress=lambda _: None)
    with target:
        assert target.host_key_fingerprint == guest.info["host_key_fingerprint"]
    assert empty.read_text() == "", "known_hosts must never be written"


def test_wrong_key_file_is_refused(guest, tmp_path):
    if guest.arch != "x86_64":
        pytest.skip("transport errors do not depend on the guest arch")
    other = tmp_path / "other_key"
    paramiko.ECDSAKey.generate().write_private_key_file(str(other))
    run = cli("run", "one_copy.sync_sizes", "--target", guest.spec, "--identity", str(other),
              "--known-hosts", guest.known_hosts, out=tmp_path / "o")
    _one_error_line(run, guest.spec, "authentication refused for user root", str(other))
    notkey = tmp_path / "notkey"
    notkey.write_text("this is not a key\n")
    run = cli("run", "one_copy.sync_sizes", "--target", guest.spec, "--identity", str(notkey),
              "--known-hosts", guest.known_hosts, out=tmp_path / "o2")
    _one_error_line(run, f"--identity {notkey}", "not a private key")


def test_unreachable_host(tmp_path):
    port = _free_port()  # nothing listens there
    run = cli("run", "one_copy.sync_sizes", "--target", f"ssh://root@127.0.0.1:{port}",
              "--insecure-accept-host-key", out=tmp_path)
    _one_error_line(run, f"ssh://root@127.0.0.1:{port}", "host unreachable")


def test_target_interface_over_ssh(guest, tmp_path):
    """The shared interface on a real ssh peer: info, run (status, output, timeout), push, pull, dmesg,
    the SFTP-less fallback, and reconnecting after the connection drops."""
    if guest.arch != "x86_64":
        pytest.skip("the transport is arch-independent; the probe ABI path is covered by the verdict test")
    target = SshTarget(guest.spec, SshAddress("root", "127.0.0.1", guest.port),
                       SshOptions(identity=Path(guest.identity), known_hosts=Path(guest.known_hosts)),
                       progress=lambda _: None)
    with target:
        info = target.info()
        assert (info.arch, info.is_root, info.accel, info.binder_module) == ("x86_64", True, "none", "stock")
        assert info.kernel_release.startswith("6.1.0-")
        assert info.tracefs == "/sys/kernel/tracing" and info.debugfs == "/sys/kernel/debug"
        assert target.workdir.startswith("/tmp/binder-harness.")
        res = target.run(["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
        assert (res.status, sorted(res.output.split())) == (3, ["err", "out"])
        quoted = target.run(["printf", "%s|", "a b", "$HOME", "it's"], 10)
        assert quoted.output == "a b|$HOME|it's|"
        slow = target.run(["sleep", "30"], 1)
        assert slow.status in (124, 137)
        src = tmp_path / "blob"
        src.write_bytes(os.urandom(300_000))
        remote = f"{target.workdir}/sub/blob"
        target.push(src, remote, 0o640)
        assert target.run(["stat", "-c", "%a %s", remote], 10).output.split() == ["640", "300000"]
        assert target.pull(remote, tmp_path / "back") and (tmp_path / "back").read_bytes() == src.read_bytes()
        assert target.pull(f"{target.workdir}/missing", tmp_path / "none") is False
        assert "Linux version" in target.dmesg()
        # a server without SFTP: the same through cat
        target._sftp.close()
        target._sftp_missing, target._sftp = True, None
        target.push(src, f"{target.workdir}/cat-blob", 0o755)
        assert target.pull(f"{target.workdir}/cat-blob", tmp_path / "cat-back")
        assert (tmp_path / "cat-back").read_bytes() == src.read_bytes()
        assert target.pull(f"{target.workdir}/missing", tmp_path / "none2") is False
        # the connection drops (as over a flaky link): the next command reconnects
        target._client.get_transport().close()
        assert target.run(["echo", "back"], 10).output.strip() == "back"
        workdir = target.workdir
    with SshTarget(guest.spec, SshAddress("root", "127.0.0.1", guest.port),
                   SshOptions(identity=Path(guest.identity), known_hosts=Path(guest.known_hosts)),
                   progress=lambda _: None) as again:
        assert again.run(["test", "-e", workdir], 10).status == 1, "stop() leaves the workdir behind"


def test_guest_refuses_a_busy_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        run = cli("guest", "--target", "qemu:x86_64", "--ssh-port", str(port), timeout=120)
    line = _one_error_line(run, f"--ssh-port {port}", "not free")
    assert line


def test_guest_needs_a_qemu_target():
    _one_error_line(cli("guest", "--target", "adb"), "guest --target adb")


def test_guest_of_another_kernel_over_ssh(tmp_path):
    """`guest --image` boots the recipe's kernel, as `run --image` does: a 6.12 guest that the
    printed ssh command reaches (OpenSSH, not the harness's paramiko) and one case passes on over
    ssh, judged on 6.12."""
    ssh_client = shutil.which("ssh")
    assert ssh_client, "ssh is missing: scripts/setup --test installs openssh-client"
    g = Guest("x86_64", tmp_path, "--image", "qemu-x86_64-6.12")
    try:
        release = g.info["kernel_release"]
        assert release.startswith("6.12."), release
        printed = next(l.split(":", 1)[1].strip() for l in g.stdout_lines if l.startswith("ssh:"))
        argv = shlex.split(printed)
        assert argv[0] == "ssh"
        reached = subprocess.run([ssh_client, "-o", "BatchMode=yes", *argv[1:], "uname -r"],
                                 capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert reached.returncode == 0, reached.stderr
        assert reached.stdout.splitlines()[0] == release
        run = cli("run", "one_copy.sync_sizes", *g.ssh_args(), out=tmp_path / "run")
        assert run.status == 0, run.stderr
        target = run.report["target"]
        assert (target["spec"], target["kernel_release"], target["arch"]) == (g.spec, release, "x86_64")
        assert [(c["id"], c["outcome"]) for c in run.report["cases"]] == [("one_copy.sync_sizes", "passed")]
    finally:
        status = g.stop(signal.SIGTERM)
    assert status == 0, g.stderr_path.read_text()[-2000:]
    assert _qemu_for_port(g.port) == [], "a QEMU process was left behind"
