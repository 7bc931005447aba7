"""A minimal writer for the Linux initramfs "newc" cpio format.

The kernel unpacks concatenated newc archives in order, so an image can be
built from a cached base archive plus a small per-run archive appended to it.
"""
from __future__ import annotations

import io
import stat
from dataclasses import dataclass, field

_TRAILER = "TRAILER!!!"


@dataclass
class CpioWriter:
    """Collects entries in memory and renders one newc archive."""

    _buf: io.BytesIO = field(default_factory=io.BytesIO)
    _ino: int = 1
    _dirs: set[str] = field(default_factory=set)

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        name = name.lstrip("/")
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(
            f"{v:08x}"
            for v in (self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        )
        self._ino += 1
        out = self._buf
        out.write(header.encode("ascii"))
        out.write(encoded)
        out.write(b"\0" * (-(110 + len(encoded)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))

    def directory(self, path: str, mode: int = 0o755) -> None:
        """Add a directory and any missing parents."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub and sub not in self._dirs:
                self._dirs.add(sub)
                self._entry(sub, stat.S_IFDIR | mode, nlink=2)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        parent = path.strip("/").rpartition("/")[0]
        if parent:
            self.directory(parent)
        self._entry(path, stat.S_IFREG | mode, data)

    def symlink(self, path: str, target: str) -> None:
        parent = path.strip("/").rpartition("/")[0]
        if parent:
            self.directory(parent)
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def render(self) -> bytes:
        """Return the archive, trailer included. The writer can keep adding after."""
        tail = CpioWriter(_ino=self._ino)
        tail._entry(_TRAILER, 0)
        return self._buf.getvalue() + tail._buf.getvalue()
