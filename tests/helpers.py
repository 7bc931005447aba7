"""Shared helpers for the harness's own tests: run the CLI for real, read reports."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@dataclass
class CliRun:
    status: int
    stdout: str
    stderr: str
    out: Path

    @property
    def report(self) -> dict:
        return json.loads((self.out / "report.json").read_text())

    def case(self, case_id: str) -> dict:
        return next(c for c in self.report["cases"] if c["id"] == case_id)


def cli(*args: str, out: Path | None = None, timeout: float = 600) -> CliRun:
    """Run `binder-harness ARGS [--out OUT]` as a user would."""
    argv = [sys.executable, "-m", "harness.cli", *args]
    if out is not None:
        argv += ["--out", str(out)]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    return CliRun(proc.returncode, proc.stdout, proc.stderr, out or Path("."))


def qemu_processes() -> set[int]:
    """QEMU processes started from this checkout (their cwd is REPO); other checkouts'
    test runs on the same machine boot guests of their own at any time."""
    proc = subprocess.run(["pgrep", "-f", "qemu-system-"], capture_output=True, text=True)
    mine = set()
    for pid in (int(p) for p in proc.stdout.split()):
        try:
            if Path(f"/proc/{pid}/cwd").resolve() == REPO:
                mine.add(pid)
        except OSError:  # exited meanwhile, or not ours to inspect
            continue
    return mine
