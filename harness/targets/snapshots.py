"""Saved guests: a QEMU guest saved right after its READY line and restored instead of booted.

A snapshot lives in `cache_root()/snapshots/<key>/`: `state` (QEMU's migration stream),
`boot-dmesg.txt` (the kernel log guest-init saved before READY) and `meta.json` (what the key
was made of, and the state file's size and SHA256). The key covers everything that shapes the
saved guest: the kernel and the initramfs by content (the initramfs holds the module under
test, so a --binder-module gets its own snapshot), the QEMU binary by content and its
--version, the command line (machine, CPU, memory, firmware, kernel command line) and the
accelerator, so a snapshot taken under TCG is never restored under KVM or the other way round.

Every restore streams the file through `sha256sum` while QEMU loads it, and the guest is used
only when the sum matches the one recorded when it was saved: a guest restored from a file that
changed since (a bad disk, a partial copy) is never judged.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from harness.errors import TargetError
from harness.files import atomic_write_text, cache_root, sha256_file

FORMAT = 2  # bump when what goes into a snapshot changes (guest-init's save/restore steps)
KEEP = 12  # snapshots kept (70-90 MB each); the least recently used go first
_HASHES: dict[tuple[str, int, int], str] = {}


def snapshots_dir() -> Path:
    return cache_root() / "snapshots"


def file_sha256(path: Path) -> str:
    """SHA256 of a file, remembered per (path, size, mtime) in this process and in the cache."""
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo in _HASHES:
        return _HASHES[memo]
    store = snapshots_dir() / "file-hashes.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    name = "|".join(map(str, memo))
    digest = known.get(name) if isinstance(known, dict) else None
    if not isinstance(digest, str):
        digest = sha256_file(path)
        known = {k: v for k, v in (known if isinstance(known, dict) else {}).items()
                 if os.path.exists(k.split("|")[0])}  # forget files that are gone
        known[name] = digest
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(store, json.dumps(known, indent=0, sort_keys=True))
        except OSError:
            pass  # a read-only cache: hash again next time
    _HASHES[memo] = digest
    return digest


def qemu_version(binary: str) -> str:
    memo = ("version:" + binary, 0, Path(binary).stat().st_mtime_ns)
    if memo not in _HASHES:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
        _HASHES[memo] = out.splitlines()[0].strip() if out.strip() else "unknown"
    return _HASHES[memo]


def key_fields(argv: list[str], kernel: Path, initramfs: Path, share: str, accel: str) -> dict:
    """What the snapshot of the guest that `argv` boots depends on. The share directory is
    the only part of the command line that may differ between save and restore."""
    shape = [a.replace(share, "SHARE") for a in argv[1:]]
    return {
        "format": FORMAT,
        "qemu": {"sha256": file_sha256(Path(argv[0])), "version": qemu_version(argv[0])},
        "kernel_sha256": file_sha256(kernel),
        "initramfs_sha256": file_sha256(initramfs),
        "argv": [a.replace(str(kernel), "KERNEL").replace(str(initramfs), "INITRAMFS") for a in shape],
        "accel": accel,
    }


def key_of(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


class Snapshot:
    def __init__(self, key: str, fields: dict):
        self.key = key
        self.fields = fields
        self.dir = snapshots_dir() / key
        self.state = self.dir / "state"
        self.meta_path = self.dir / "meta.json"
        self.boot_dmesg = self.dir / "boot-dmesg.txt"

    def meta(self) -> dict | None:
        """The recorded metadata of a complete snapshot, or None when there is none."""
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("fields") != self.fields or not self.state.is_file():
            return None
        return meta

    def touch(self) -> None:
        try:
            os.utime(self.meta_path)
        except OSError:
            pass  # a read-only cache still restores

    def drop(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Held while this snapshot is checked and built: N guests starting at once (-j N)
        make it once, the others wait and restore it."""
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.dir.parent / f"{self.key}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def partial(self) -> Path:
        """Where QEMU writes a new state file before it is complete."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / f".state.{os.getpid()}.partial"

    def commit(self, partial: Path, boot_dmesg: str | None, boot_s: float, release: str, image: str) -> None:
        digest = sha256_file(partial)
        os.replace(partial, self.state)
        self.boot_dmesg.write_text(boot_dmesg or "")
        atomic_write_text(self.meta_path, json.dumps({
            "key": self.key, "fields": self.fields, "state_bytes": self.state.stat().st_size,
            "state_sha256": digest, "boot_s": round(boot_s, 3), "kernel_release": release,
            "image": image,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }, indent=1, sort_keys=True))


def prune(keep: int = KEEP) -> list[Path]:
    """Drop all but the `keep` most recently used snapshots (a restore touches its meta.json).
    A guest restoring from a dropped one goes on: its open state file lives until closed."""
    metas = sorted(snapshots_dir().glob("*/meta.json"), key=lambda m: m.stat().st_mtime, reverse=True)
    dropped = [m.parent for m in metas[keep:]]
    for d in dropped:
        shutil.rmtree(d, ignore_errors=True)
    return dropped


class Qmp:
    """A minimal QMP client over QEMU's unix socket: commands in, replies out, events skipped."""

    def __init__(self, path: Path, alive, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self.sock.connect(str(path))
                break
            except OSError as exc:
                if not alive():
                    raise TargetError("QEMU exited before its QMP socket answered") from exc
                if time.monotonic() > deadline:
                    raise TargetError(f"QEMU's QMP socket did not answer in {timeout:.0f} s") from exc
                time.sleep(0.01)
        self.sock.settimeout(timeout)
        self.buf = b""
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(65536)
            except OSError as exc:
                raise TargetError(f"QMP: {exc}") from None
            if not data:
                raise TargetError("QMP: QEMU closed its monitor")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command: str, **arguments) -> dict:
        msg = {"execute": command, **({"arguments": arguments} if arguments else {})}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise TargetError(f"QMP {command}: {reply['error'].get('desc', reply['error'])}")

    def close(self) -> None:
        self.sock.close()
