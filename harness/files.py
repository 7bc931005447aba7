"""The bottom layer: where the repository and the cache are, and writes that never leave half a file.

Every file or directory the harness hands to a later reader (a report, a cached kernel, a
download, a probe binary) is built in a temporary sibling and renamed into place, so a
reader sees the old version or the whole new one, never a part. Temporary names start with
a dot and end in `.tmp`, so listings (`images list`, a run bundle) pass over them.

This module imports nothing from harness.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_ENV = "BINDER_HARNESS_CACHE"


def sha256_file(path: Path) -> str:
    """The SHA256 of a file's content, hex, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    """~/.cache/binder-harness, or $BINDER_HARNESS_CACHE; created when missing."""
    root = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "binder-harness"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def temp_sibling(path: Path) -> Path:
    """A hidden name beside `path`, unique to this process and thread."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; when the block ends it is renamed over
    `path`, and when the block raises it is removed."""
    tmp = temp_sibling(path)
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary sibling."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary sibling."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_dir(final: Path, build: Callable[[Path], object]) -> Path:
    """The directory `final`, built when missing: build(tmp) fills a temporary sibling, which
    is then renamed into place. When another process won the race, theirs is kept."""
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
    try:
        build(tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process won the race; theirs is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
