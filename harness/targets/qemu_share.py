"""File transfer with a QEMU guest: a host directory shared over virtio-9p, mounted at
/mnt/host in the guest, so the probe's output and the trace land on the host as they are
written: a guest that dies mid-case still leaves its partial evidence behind."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from harness.errors import TargetError

GUEST_SHARE = "/mnt/host"
# images/guest-init.sh's 9p mount, made again on a restored guest (a snapshot is saved unmounted)
MOUNT_9P = f"mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host {GUEST_SHARE}"


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


class Share:
    """The host side of one guest's 9p share (`path`); `spec` names the guest in errors."""

    def __init__(self, spec: str):
        self.spec = spec
        sweep_stale_shares()
        self.path = Path(tempfile.mkdtemp(prefix=f"bh-share-{os.getpid()}-"))

    def host_path(self, remote: str) -> Path:
        if not remote.startswith(GUEST_SHARE + "/"):
            raise TargetError(f"{self.spec}: {remote} is outside the shared directory {GUEST_SHARE}")
        rel = Path(remote[len(GUEST_SHARE) + 1 :])
        if ".." in rel.parts:
            raise TargetError(f"{self.spec}: refusing path with '..': {remote}")
        return self.path / rel

    def push(self, local: Path, remote: str, mode: int = 0o755) -> None:
        dest = self.host_path(remote)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dest)
        dest.chmod(mode)

    def pull(self, remote: str, local: Path) -> bool:
        src = self.host_path(remote)
        if not src.exists():
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, local)
        return True

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
