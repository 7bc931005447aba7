"""The QEMU target: boot a guest image and drive its serial console with pexpect.

Files travel over a virtio-9p share mounted at /mnt/host in the guest, so the
probe's output and the trace land on the host as they are written: a guest
that dies mid-case still leaves its partial evidence behind.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shlex
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import BinaryIO

import pexpect

from harness import timing
from harness.arches import GUEST_ARCHES
from harness.errors import ConfigError, GuestCrashed, TargetError
from harness.files import sha256_file
from harness.images.build import GuestImage
from harness.targets import accel as accels
from harness.targets import snapshots
from harness.targets.accel import KVM_FAILURE, KvmFailed
from harness.targets.base import CommandResult, StartStop, TargetInfo, shell_command

GUEST_SHARE = "/mnt/host"
_READY = re.compile(rb"binder-harness: READY (\S+) ([\d.]+)[^\n]*\n")
_PANIC = re.compile(rb"Kernel panic - not syncing[^\n]*")
# What images/guest-init.sh prints before READY when the guest cannot serve a case.
_INIT_FAILED = re.compile(rb"binder-harness: (?:insmod \S+ failed|no /dev/binder|9p mount failed)[^\r\n]*")
# images/guest-init.sh's 9p mount, made again on a restored guest (a snapshot is saved unmounted)
MOUNT_9P = f"mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host {GUEST_SHARE}"
RESTORE_TIMEOUT_S = 30.0
# Before a save: one buffer of all free memory but 48 MiB, filled from /dev/zero and let go.
ZERO_FREE_MEMORY = ("n=$(awk '/^MemFree:/ {print int($2 / 1024) - 48}' /proc/meminfo); "
                    "[ \"$n\" -gt 0 ] && dd if=/dev/zero of=/dev/null bs=${n}M count=1 2>/dev/null; true")


class RestoreFailed(Exception):
    """A snapshot did not give a guest this harness can vouch for; `why` is one line."""


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork: dlopen is not fork-safe


def _die_with_parent() -> None:
    """Run in the QEMU child: get SIGKILL if the harness dies, so no QEMU outlives it.
    (Linux sends it when the thread that started QEMU ends; sessions stop their own guests.)"""
    _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def find_firmware(name: str, binary: str) -> str | None:
    """The path of a firmware file QEMU ships (e.g. qboot.rom), or None when this QEMU has none."""
    if not name:
        return None
    if os.path.isabs(name):
        return name if os.path.isfile(name) else None
    dirs = [Path(binary).resolve().parent.parent / "share" / "qemu", Path("/usr/share/qemu"), Path("/usr/local/share/qemu")]
    for d in dirs:
        if (d / name).is_file():
            return str(d / name)
    return None


def sweep_stale_shares(tmp: Path | None = None) -> list[Path]:
    """Remove share directories left by harness processes that died without cleaning up
    (SIGKILL skips every finally); a live process's directories are left alone."""
    removed = []
    for path in Path(tmp or tempfile.gettempdir()).glob("bh-share-*-*"):
        pid = path.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class QemuTarget(StartStop):
    """A guest booted from a GuestImage, or restored from a snapshot of one (snapshots.py).

    With `use_snapshot`, start() restores the cached snapshot of this exact guest when there
    is one, and otherwise boots, saves the snapshot, and goes on with the booted guest.
    `started` says which ("booted" or "restored") and `snapshot_key` which snapshot."""

    def __init__(self, image: GuestImage, spec: str, console_log: Path | None = None,
                 boot_timeout: float = 90.0, extra_args: tuple[str, ...] = (), progress=print,
                 use_snapshot: bool = False):
        self.image = image
        self.spec = spec
        self.console_log = console_log
        self.boot_timeout = boot_timeout
        self.extra_args = extra_args
        self.progress = progress
        self.binary = shutil.which(image.recipe.qemu.binary) or ""
        if not self.binary:
            raise ConfigError(f"{image.recipe.qemu.binary} not found; install Debian's qemu-system-x86 / qemu-system-arm")
        self.accel = accels.choose(image.recipe.arch, self.binary)
        sweep_stale_shares()
        self.share = Path(tempfile.mkdtemp(prefix=f"bh-share-{os.getpid()}-"))
        self.workdir = GUEST_SHARE
        self.boot_s = 0.0
        self.restore_s = 0.0
        self.use_snapshot = use_snapshot
        self.started = ""  # "booted" or "restored", once started
        self.snapshot_key = ""  # the snapshot restored, or saved from this boot
        self._child: pexpect.spawn | None = None
        self._log_fh: BinaryIO | None = None
        self._seq = 0
        self._tail: deque[bytes] = deque(maxlen=200)
        self._build_id = ""

    # -- lifecycle -----------------------------------------------------------
    def qemu_argv(self) -> list[str]:
        q = self.image.recipe.qemu
        machine = q.machine
        if self.accel.name == "kvm":
            extra = GUEST_ARCHES[self.image.recipe.arch].kvm_machine_options
            machine = f"{machine},{extra}" if extra else machine
            accel = ["-accel", "kvm", "-cpu", "host"]
        else:
            accel = ["-accel", "tcg", "-cpu", q.cpu]
        # A minimal firmware (qboot) reaches the kernel in about a tenth of SeaBIOS's time
        # under TCG; a QEMU without it boots with its default firmware, only slower.
        bios = find_firmware(q.bios, self.binary)
        return [
            self.binary, "-M", machine, *accel, "-m", str(q.memory_mb), "-smp", str(q.smp),
            *(["-bios", bios] if bios else []),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
            "-kernel", str(self.image.kernel), "-initrd", str(self.image.initramfs),
            "-append", self.image.recipe.cmdline,
            "-virtfs", f"local,path={self.share},mount_tag=host,security_model=none,id=host",
            *self.extra_args,
        ]

    def start(self) -> None:
        """Restore this guest's snapshot, or boot (and save one). A KVM that fails (at start,
        mid-boot, or by making no progress) is remembered as unusable for this host boot and
        the guest boots again under TCG at once."""
        if self.console_log is not None:
            self.console_log.parent.mkdir(parents=True, exist_ok=True)
            self._log_fh = open(self.console_log, "ab")
        snap = self._snapshot()
        if snap is None:
            self._boot_with_fallback()
            return
        failed: tuple[dict, RestoreFailed] | None = None
        meta = snap.meta()
        if meta is not None:  # restored without the lock: -j N guests restore at once
            try:
                self._restore(snap, meta)
                return
            except RestoreFailed as exc:
                failed = (meta, exc)
                self._ready_to_start_again()
        with snap.locked():  # the first guest builds it; the others wait, then restore it
            meta = snap.meta()
            if meta is not None and (failed is None or meta.get("state_sha256") != failed[0].get("state_sha256")):
                try:  # another guest made it (or made it again) meanwhile
                    self._restore(snap, meta)
                    return
                except RestoreFailed as exc:
                    failed = (meta, exc)
                    self._ready_to_start_again()
            if failed is not None:
                self.progress(f"{self.spec}: snapshot {snap.key} did not restore ({failed[1]}); "
                              "dropped it, booting to rebuild it")
                snap.drop()
            self._boot_with_fallback(qmp=True)
            if self.accel.name == snap.fields["accel"]:  # a KVM that fell back to TCG saves nothing
                self._save(snap)

    def restorable(self) -> bool:
        """start() would restore the cached snapshot rather than boot."""
        snap = self._snapshot()
        return snap is not None and snap.meta() is not None

    def move_console_log(self, path: Path) -> None:
        """Go on logging the console into `path`, after what it logged so far (a guest started
        in the background logs apart until a case takes it). Not while a command runs."""
        old = self.console_log
        if self._log_fh is not None:
            self._log_fh.close()
        with open(path, "ab") as out:
            if old is not None and old.exists():
                out.write(old.read_bytes())
                old.unlink()
        self.console_log = path
        self._log_fh = open(path, "ab")
        if self._child is not None:
            self._child.logfile_read = _Tee(self._log_fh, self._tail)

    def _ready_to_start_again(self) -> None:
        """After a failed restore: the share and the console log as a fresh start wants them."""
        self.share.mkdir(exist_ok=True)
        if self._log_fh is None and self.console_log is not None:
            self._log_fh = open(self.console_log, "ab")

    def _snapshot(self) -> snapshots.Snapshot | None:
        """The snapshot this guest would restore from, or None when it boots: snapshots off,
        or a KVM not yet shown to boot this host's guests (only a real boot proves it)."""
        if not self.use_snapshot or (self.accel.name == "kvm" and not self.accel.proven and not self.accel.forced):
            return None
        with timing.phase("snapshot_key"):
            fields = snapshots.key_fields(self.qemu_argv(), self.image.kernel, self.image.initramfs,
                                          str(self.share), self.accel.name)
        return snapshots.Snapshot(snapshots.key_of(fields), fields)

    def _boot_with_fallback(self, qmp: bool = False) -> None:
        t0 = time.monotonic()
        try:
            self._boot(qmp)
        except KvmFailed as exc:
            if self.accel.forced:
                raise
            self._end_qemu()
            timing.add("kvm_fallback", time.monotonic() - t0)
            self.progress(f"{self.spec}: {exc.why}; booting again under TCG")
            self.accel = accels.fell_back(exc.why)
            self._boot(qmp)
            accels.remember(self.binary, self.accel)
            return
        if self.accel.name == "kvm" and not self.accel.proven:
            self.accel = accels.proven(self.boot_s)
            accels.remember(self.binary, self.accel)

    def _qmp_path(self) -> Path:
        return self.share / ".qmp"

    def _spawn(self, argv: list[str], timeout: float) -> None:
        self._child = pexpect.spawn(argv[0], argv[1:], timeout=timeout, maxread=65536,
                                    preexec_fn=_die_with_parent, echo=False, env={**os.environ, "TERM": "dumb"})
        # pexpect sleeps 50 ms before every send by default (for password prompts);
        # a console shell needs no such pause, and a case makes several round trips.
        self._child.delaybeforesend = None
        self._child.logfile_read = _Tee(self._log_fh, self._tail)

    def _restore(self, snap: snapshots.Snapshot, meta: dict) -> None:
        """Start QEMU on the saved state (hashed as it streams in), wait until it runs, check
        the hash, remount the 9p share and set the clock. Any failure ends QEMU: RestoreFailed."""
        t0 = time.monotonic()
        argv = [*self.qemu_argv(), "-qmp", f"unix:{self._qmp_path()},server=on,wait=off",
                "-incoming", "exec:" + shlex.join(["cat", str(snap.state)])]
        self.progress(f"restore {self.spec} from snapshot {snap.key} ...")
        self._spawn(argv, RESTORE_TIMEOUT_S)
        # hashed beside QEMU's load, not in its way (hashlib releases the GIL and uses SHA-NI)
        digest: list[str] = []
        hashing = threading.Thread(target=lambda: digest.append(sha256_file(snap.state)), daemon=True)
        hashing.start()
        try:
            qmp = snapshots.Qmp(self._qmp_path(), self.alive, RESTORE_TIMEOUT_S)
            try:
                deadline = time.monotonic() + RESTORE_TIMEOUT_S
                while (status := qmp.execute("query-status").get("status")) != "running":
                    if status == "paused":  # saved paused (global state): loaded, so let it run
                        qmp.execute("cont")
                        continue
                    if status not in ("inmigrate", "prelaunch") or time.monotonic() > deadline:
                        raise RestoreFailed(f"QEMU is {status} after loading it")
                    time.sleep(0.01)
            finally:
                qmp.close()
            hashing.join(max(0.0, deadline - time.monotonic()))
            got = digest[0] if digest else ""
            if got != meta.get("state_sha256"):
                raise RestoreFailed(f"the state file's SHA256 {got[:12] or 'unknown'} is not the "
                                    f"{str(meta.get('state_sha256'))[:12]} saved")
            now = int(time.time())
            out = self.run_shell(f"{MOUNT_9P} && {{ hwclock -u -s 2>/dev/null || date -u -s @{now} >/dev/null; }} "
                                 f"&& echo restored-ok", 15)
            if "restored-ok" not in out.output:
                raise RestoreFailed(f"the restored guest could not remount its share: {out.output.strip()[:120]}")
        except (TargetError, RestoreFailed, OSError, ValueError) as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, RestoreFailed):
                last = self._last_line()
                why = f"{why}; last console line: {last}" if last != "none" else why
            self._end_qemu()
            self._child = None
            raise RestoreFailed(why) from None
        shutil.copyfile(snap.boot_dmesg, self.share / ".boot-dmesg.txt")
        snap.touch()
        self.restore_s = time.monotonic() - t0
        timing.add("restore", self.restore_s)
        self.started, self.snapshot_key = "restored", snap.key

    def _save(self, snap: snapshots.Snapshot) -> None:
        """Save the guest just booted (9p unmounted: QEMU refuses to migrate a mounted share),
        then let it go on, remounted, as the booted guest it is. A save that fails costs only
        the snapshot, with one line saying why."""
        t0 = time.monotonic()
        boot_dmesg = self.boot_dmesg()
        partial = snap.partial()
        qmp = None
        try:
            # Free pages still hold what boot left there (the compressed kernel, the initramfs
            # image); zeroed, QEMU saves them as zero pages and the state file is a quarter the size.
            self.run_shell(ZERO_FREE_MEMORY, 60)
            if not self.run_shell(f"umount {GUEST_SHARE}", 10).ok:
                raise TargetError("the guest could not unmount its 9p share")
            qmp = snapshots.Qmp(self._qmp_path(), self.alive, 20)
            qmp.execute("stop")  # paused first: the save takes a tenth of the time
            qmp.execute("migrate", uri="exec:cat > " + shlex.quote(str(partial)))
            deadline = time.monotonic() + 120
            while (status := qmp.execute("query-migrate").get("status")) != "completed":
                if status in ("failed", "cancelled") or time.monotonic() > deadline:
                    raise TargetError(f"migration {status}")
                time.sleep(0.02)
            snap.commit(partial, boot_dmesg, self.boot_s, self.image.identity.release, self.image.recipe.name)
            self.snapshot_key = snap.key
            snapshots.prune()
            self.progress(f"saved snapshot {snap.key} of {self.spec} "
                          f"({snap.state.stat().st_size / 1e6:.0f} MB in {time.monotonic() - t0:.1f} s)")
        except (TargetError, OSError) as exc:
            partial.unlink(missing_ok=True)
            self.progress(f"{self.spec}: could not save a snapshot ({str(exc).splitlines()[0]}); "
                          "this guest goes on as booted")
        finally:
            if qmp is not None:
                try:
                    qmp.execute("cont")
                finally:
                    qmp.close()
        if not self.run_shell(f"mountpoint -q {GUEST_SHARE} || {MOUNT_9P}", 10).ok:
            self.stop()
            raise TargetError(f"{self.spec}: the guest could not remount its 9p share after the snapshot")
        timing.add("snapshot_save", time.monotonic() - t0)

    def _boot(self, qmp: bool = False) -> None:
        argv = self.qemu_argv()
        if qmp:
            argv += ["-qmp", f"unix:{self._qmp_path()},server=on,wait=off"]
        t0 = time.monotonic()
        self._spawn(argv, self.boot_timeout)
        assert self._child is not None
        t_spawned = time.monotonic()
        timing.add("qemu_spawn", t_spawned - t0)
        bound = self.boot_timeout
        if self.accel.name == "kvm" and not self.accel.forced:
            bound = min(bound, accels.KVM_BOOT_BOUND_S)
        idx = self._expect([_READY, _PANIC], bound, "boot")
        if idx == 1:
            raise self._crashed("kernel panic during boot")
        init_failed = _INIT_FAILED.search(self._child.before or b"")
        if init_failed:  # e.g. a module the kernel cannot load: no case could run on this guest
            self.stop()
            raise TargetError(f"{self.spec}: guest init: {init_failed.group(0).decode(errors='replace').strip()}")
        timing.add("boot_to_ready", time.monotonic() - t_spawned)
        timing.add("guest_uptime", float(self._child.match.group(2)))
        # The shell printed READY after its banner (guest-init.sh), so no command
        # is needed to swallow it.
        self.boot_s = time.monotonic() - t0
        self.started = "booted"

    def boot_dmesg(self) -> str | None:
        """The kernel log as guest-init saved it before READY, or None when it did not."""
        try:
            return (self.share / ".boot-dmesg.txt").read_text(errors="replace")
        except OSError:
            return None

    def stop(self) -> None:
        self._end_qemu()
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        shutil.rmtree(self.share, ignore_errors=True)

    def _end_qemu(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            # SIGKILL at once: the guest keeps no state worth a clean shutdown, and
            # pexpect's terminate() sleeps 0.1 s between its gentler signals.
            if child.isalive():
                try:
                    os.kill(child.pid, signal.SIGKILL)
                    child.wait()  # reaped: close() then has nothing to terminate
                except (ProcessLookupError, pexpect.ExceptionPexpect):
                    pass
            child.delayafterclose = 0
            child.ptyproc.delayafterclose = 0  # ptyprocess sleeps 0.1 s on close otherwise
            child.close(force=True)

    def alive(self) -> bool:
        return self._child is not None and self._child.isalive()

    def kill(self) -> None:
        """SIGKILL QEMU now, from any thread; whoever waits on the console sees it exit."""
        child = self._child
        if child is not None and child.pid:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def drain_console(self, timeout: float) -> bool:
        """Read what the console printed (into console.log) for up to timeout; False once QEMU has exited."""
        if self._child is None:
            return False
        try:
            self._child.read_nonblocking(65536, timeout)
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            return False
        return self.alive()

    # -- console -------------------------------------------------------------
    def last_console_lines(self, n: int = 200) -> str:
        text = b"".join(self._tail).decode(errors="replace").replace("\r", "")
        return "\n".join(text.splitlines()[-n:])

    def _crashed(self, what: str) -> GuestCrashed:
        if self._child is not None:  # read to the end first: the panic line may have come in halves
            try:
                self._child.expect(pexpect.EOF, timeout=5)
            except (pexpect.TIMEOUT, pexpect.EOF):
                pass
        panic = _PANIC.search(b"".join(self._tail))
        last = self._last_line()
        detail = (panic.group(0).decode(errors="replace").strip() if panic
                  else f"last console line: {last}" if last != "none" else "see console.log")
        self.stop()
        return GuestCrashed(f"{self.spec}: {what}: {detail}")

    def _expect(self, patterns: list, timeout: float, what: str) -> int:
        """Wait for one of `patterns`; under KVM, QEMU's KVM failure text ends the wait at once."""
        assert self._child is not None
        kvm = self.accel.name == "kvm"
        try:
            idx = self._child.expect([*patterns, *([KVM_FAILURE] if kvm else [])], timeout=timeout)
        except pexpect.EOF:
            if kvm and what == "boot" and not self.accel.forced:
                raise self._kvm_failed("QEMU exited at start under KVM", f"last console line: {self._last_line()}")
            raise self._crashed(f"QEMU exited during {what}") from None
        except pexpect.TIMEOUT:
            if kvm and what == "boot" and not self.accel.forced:
                raise self._kvm_failed(f"no boot progress under KVM in {timeout:.0f} s", "") from None
            self.stop()
            raise TargetError(f"{self.spec}: guest stopped answering during {what} (no response in {timeout:.0f} s)") from None
        if idx == len(patterns):
            signature = self._child.match.group(0).decode(errors="replace").strip()
            raise self._kvm_failed(accels.cause(signature, "at boot" if what == "boot" else "during a case"), signature)
        return idx

    def _kvm_failed(self, why: str, detail: str) -> KvmFailed:
        """KVM failed: end QEMU now (it would sit in a paused VM or spin). A failure after a
        boot that worked is remembered here; one at boot, once TCG has booted (start)."""
        self._end_qemu()
        if not self.accel.forced and self.accel.proven and self.accel.name == "kvm":
            accels.remember(self.binary, accels.fell_back(why))
        return KvmFailed(f"{self.spec}: {why}" + (f": {detail}" if detail and detail != why else ""), why,
                         forced=self.accel.forced)

    def _last_line(self) -> str:
        last = [l for l in self.last_console_lines(5).splitlines() if l.strip()]
        return last[-1].strip()[:200] if last else "none"

    def run(self, argv: list[str], timeout: float = 30.0) -> CommandResult:
        return self.run_shell(shell_command(argv, timeout), timeout)

    def run_shell(self, command: str, timeout: float = 30.0) -> CommandResult:
        """Run an already-quoted shell command line on the console."""
        if not self.alive():
            raise TargetError(f"{self.spec}: guest is not running")
        self._seq += 1
        if len(command) > 1000:  # the tty line discipline caps a line at 4095 bytes
            script = self.share / f".cmd-{self._seq}.sh"
            script.write_text(command + "\n")
            command = f"sh {GUEST_SHARE}/{script.name}"
        marker = re.compile(rb"@@BH%d:(\d+)@@" % self._seq)
        child = self._child
        assert child is not None  # alive()
        child.sendline(f"{command}; echo \"@@BH{self._seq}:$?@@\"".encode())
        idx = self._expect([marker, _PANIC], timeout + 15, f"'{command[:60]}'")
        if idx == 1:
            raise self._crashed("kernel panic")
        out = child.before.decode(errors="replace").replace("\r", "")
        return CommandResult(int(child.match.group(1)), out.lstrip("\n"))

    def dmesg(self, timeout: float = 20.0) -> str:
        return self.run(["dmesg"], timeout).output

    # -- files ---------------------------------------------------------------
    def _host_path(self, remote: str) -> Path:
        if not remote.startswith(GUEST_SHARE + "/"):
            raise TargetError(f"{self.spec}: {remote} is outside the shared directory {GUEST_SHARE}")
        rel = Path(remote[len(GUEST_SHARE) + 1 :])
        if ".." in rel.parts:
            raise TargetError(f"{self.spec}: refusing path with '..': {remote}")
        return self.share / rel

    def push(self, local: Path, remote: str, mode: int = 0o755) -> None:
        dest = self._host_path(remote)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dest)
        dest.chmod(mode)

    def pull(self, remote: str, local: Path) -> bool:
        src = self._host_path(remote)
        if not src.exists():
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, local)
        return True

    def info(self) -> TargetInfo:
        return TargetInfo(
            spec=self.spec, arch=self.image.recipe.arch, kernel_release=self.image.identity.release,
            accel=self.accel.name, accel_reason=self.accel.reason, binder_module=self.image.binder_module, is_root=True,
            tracefs="/sys/kernel/tracing", debugfs="/sys/kernel/debug", build_id=self.build_id(),
        )

    def build_id(self) -> str:
        """The guest's software, named by its files' hashes (remembered per file in the cache)."""
        if not self._build_id:
            both = snapshots.file_sha256(self.image.kernel) + snapshots.file_sha256(self.image.initramfs)
            self._build_id = hashlib.sha256(both.encode()).hexdigest()[:24]
        return self._build_id


class _Tee:
    """pexpect logfile: append console bytes to console.log and keep the last lines."""

    def __init__(self, fh, tail: deque[bytes]):
        self.fh, self.tail = fh, tail

    def write(self, data: bytes) -> None:
        self.tail.extend(data.splitlines(keepends=True))
        if self.fh is not None:
            try:
                self.fh.write(data)
            except OSError:  # disk full: keep driving the guest; the runner notices the run dir
                self.fh = None

    def flush(self) -> None:
        if self.fh is not None:
            try:
                self.fh.flush()
            except OSError:
                self.fh = None
