"""Snapshot and restore of a QEMU guest (the snapshots themselves: harness/targets/snapshots.py).

`start_from_snapshot` restores a guest from its cached snapshot, or boots it and saves one;
a restore is checked (the state file's SHA256, QEMU running, the 9p share remounted) before
any case trusts it, and a snapshot that does not restore is dropped and rebuilt.
"""
from __future__ import annotations

import os
import shlex
import shutil
import threading
import time
from pathlib import Path
from typing import Protocol

from harness import timing
from harness.errors import TargetError
from harness.files import sha256_file
from harness.building.build import GuestImage
from harness.targets import snapshots
from harness.targets.accel import Accel
from harness.targets.base import CommandResult
from harness.targets.qemu_console import SerialConsole
from harness.targets.qemu_share import GUEST_SHARE, MOUNT_9P, Share

RESTORE_TIMEOUT_S = 30.0
# Before a save: one buffer of all free memory but 48 MiB, filled from /dev/zero and let go.
ZERO_FREE_MEMORY = ("n=$(awk '/^MemFree:/ {print int($2 / 1024) - 48}' /proc/meminfo); "
                    "[ \"$n\" -gt 0 ] && dd if=/dev/zero of=/dev/null bs=${n}M count=1 2>/dev/null; true")


class RestoreFailed(Exception):
    """A snapshot did not give a guest this harness can vouch for; `why` is one line."""


class SnapshotGuest(Protocol):
    """What snapshot and restore use of a QEMU guest (harness/targets/qemu.py's QemuTarget)."""

    spec: str
    image: GuestImage
    accel: Accel
    console: SerialConsole
    share: Share
    boot_s: float
    restore_s: float
    started: str
    snapshot_key: str

    def progress(self, line: str) -> object: ...
    def qemu_argv(self) -> list[str]: ...
    def qmp_path(self) -> Path: ...
    def alive(self) -> bool: ...
    def run_shell(self, command: str, timeout: float = 30.0) -> CommandResult: ...
    def boot_dmesg(self) -> str | None: ...
    def stop(self) -> None: ...
    def ready_to_start_again(self) -> None: ...
    def boot_with_fallback(self, qmp: bool = False) -> None: ...


def start_from_snapshot(guest: SnapshotGuest, snap: snapshots.Snapshot) -> None:
    """Restore `snap`, or boot (and save it). Restored without the lock: -j N guests restore
    at once; the first guest to find none builds it, the others wait, then restore it."""
    failed: tuple[dict, RestoreFailed] | None = None
    meta = snap.meta()
    if meta is not None:
        try:
            restore(guest, snap, meta)
            return
        except RestoreFailed as exc:
            failed = (meta, exc)
            guest.ready_to_start_again()
    with snap.locked():
        meta = snap.meta()
        if meta is not None and (failed is None or meta.get("state_sha256") != failed[0].get("state_sha256")):
            try:  # another guest made it (or made it again) meanwhile
                restore(guest, snap, meta)
                return
            except RestoreFailed as exc:
                failed = (meta, exc)
                guest.ready_to_start_again()
        if failed is not None:
            guest.progress(f"{guest.spec}: snapshot {snap.key} did not restore ({failed[1]}); "
                           "dropped it, booting to rebuild it")
            snap.drop()
        guest.boot_with_fallback(qmp=True)
        if guest.accel.name == snap.fields["accel"]:  # a KVM that fell back to TCG saves nothing
            save(guest, snap)


def restore(guest: SnapshotGuest, snap: snapshots.Snapshot, meta: dict) -> None:
    """Start QEMU on the saved state (hashed as it streams in), wait until it runs, check
    the hash, remount the 9p share and set the clock. Any failure ends QEMU: RestoreFailed."""
    t0 = time.monotonic()
    guest.progress(f"restore {guest.spec} from snapshot {snap.key} ...")
    # QEMU reads the state file itself from the descriptor it inherits: `exec:cat FILE` cost a
    # shell, a cat and a pipe, about 0.08 s of CPU a restore (bench/README.md)
    try:
        state = os.open(snap.state, os.O_RDONLY)
    except OSError as exc:
        raise RestoreFailed(f"cannot open the state file: {exc.strerror}") from None
    argv = [*guest.qemu_argv(), "-qmp", f"unix:{guest.qmp_path()},server=on,wait=off",
            "-incoming", f"fd:{state}"]
    try:
        guest.console.spawn(argv, RESTORE_TIMEOUT_S, pass_fd=state)
    finally:
        os.close(state)
    # hashed beside QEMU's load, not in its way (hashlib releases the GIL and uses SHA-NI), once per
    # process and version of the file: a file that changes gets a new mtime (or inode, or size)
    digest: list[str] = []
    hashing = threading.Thread(target=lambda: digest.append(_state_sha256(snap.state)), daemon=True)
    hashing.start()
    try:
        qmp = snapshots.Qmp(guest.qmp_path(), guest.alive, RESTORE_TIMEOUT_S)
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
        out = guest.run_shell(f"{MOUNT_9P} && {{ hwclock -u -s 2>/dev/null || date -u -s @{now} >/dev/null; }} "
                              f"&& echo restored-ok", 15)
        if "restored-ok" not in out.output:
            raise RestoreFailed(f"the restored guest could not remount its share: {out.output.strip()[:120]}")
    except (TargetError, RestoreFailed, OSError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, RestoreFailed):
            last = guest.console.last_line()
            why = f"{why}; last console line: {last}" if last != "none" else why
        guest.console.end()
        raise RestoreFailed(why) from None
    shutil.copyfile(snap.boot_dmesg, guest.share.path / ".boot-dmesg.txt")
    snap.touch()
    guest.restore_s = time.monotonic() - t0
    timing.add("restore", guest.restore_s)
    guest.started, guest.snapshot_key = "restored", snap.key


# SHA256 of each state file this process has read, by (path, inode, size, mtime): a whole catalog
# restores the same file once per case, and hashing its 60 MB took 0.05 s of CPU each time
_HASHED: dict[tuple[str, int, int, int], str] = {}


def _state_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = sha256_file(path)
    return _HASHED[key]


def save(guest: SnapshotGuest, snap: snapshots.Snapshot) -> None:
    """Save the guest just booted (9p unmounted: QEMU refuses to migrate a mounted share),
    then let it go on, remounted, as the booted guest it is. A save that fails costs only
    the snapshot, with one line saying why."""
    t0 = time.monotonic()
    boot_dmesg = guest.boot_dmesg()
    partial = snap.partial()
    qmp = None
    try:
        # Free pages still hold what boot left there (the compressed kernel, the initramfs
        # image); zeroed, QEMU saves them as zero pages and the state file is a quarter the size.
        guest.run_shell(ZERO_FREE_MEMORY, 60)
        if not guest.run_shell(f"umount {GUEST_SHARE}", 10).ok:
            raise TargetError("the guest could not unmount its 9p share")
        qmp = snapshots.Qmp(guest.qmp_path(), guest.alive, 20)
        qmp.execute("stop")  # paused first: the save takes a tenth of the time
        qmp.execute("migrate", uri="exec:cat > " + shlex.quote(str(partial)))
        deadline = time.monotonic() + 120
        while (status := qmp.execute("query-migrate").get("status")) != "completed":
            if status in ("failed", "cancelled") or time.monotonic() > deadline:
                raise TargetError(f"migration {status}")
            time.sleep(0.02)
        snap.commit(partial, boot_dmesg, guest.boot_s, guest.image.identity.release, guest.image.recipe.name)
        guest.snapshot_key = snap.key
        snapshots.prune()
        guest.progress(f"saved snapshot {snap.key} of {guest.spec} "
                       f"({snap.state.stat().st_size / 1e6:.0f} MB in {time.monotonic() - t0:.1f} s)")
    except (TargetError, OSError) as exc:
        partial.unlink(missing_ok=True)
        guest.progress(f"{guest.spec}: could not save a snapshot ({str(exc).splitlines()[0]}); "
                       "this guest goes on as booted")
    finally:
        if qmp is not None:
            try:
                qmp.execute("cont")
            finally:
                qmp.close()
    if not guest.run_shell(f"mountpoint -q {GUEST_SHARE} || {MOUNT_9P}", 10).ok:
        guest.stop()
        raise TargetError(f"{guest.spec}: the guest could not remount its 9p share after the snapshot")
    timing.add("snapshot_save", time.monotonic() - t0)
