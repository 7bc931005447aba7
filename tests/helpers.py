"""Shared helpers for the harness's own tests: run the CLI for real, read reports."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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


def assert_judge_reproduces(run: CliRun) -> dict:
    """`binder-harness judge` on an untouched copy of the run's directory reproduces the live
    verdicts exactly: every case's outcome and reason, every check (name, passed, expected,
    measured, ref) in order, every other field of the case (guest_start, evidence, ...), the
    summary and the exit status, with no note of anything it could not replay. Returns the
    judged report."""
    copy = run.out.parent / f"{run.out.name}-judged"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run.out, copy)
    live = run.report
    judged_run = cli("judge", str(copy))
    assert "Traceback" not in judged_run.stderr, judged_run.stderr
    judged = json.loads((copy / "report.json").read_text())
    assert [c["id"] for c in judged["cases"]] == [c["id"] for c in live["cases"]]
    for before, after in zip(live["cases"], judged["cases"]):
        names = ([c["name"] for c in before["checks"]], [c["name"] for c in after["checks"]])
        assert names[0] == names[1], (before["id"], "live only:", [n for n in names[0] if n not in names[1]],
                                      "judged only:", [n for n in names[1] if n not in names[0]])
        for live_check, judged_check in zip(before["checks"], after["checks"]):
            assert judged_check == live_check, before["id"]
        assert (after["outcome"], after["reason"]) == (before["outcome"], before["reason"]), before["id"]
        assert {k: v for k, v in after.items() if k != "judged"} == before, before["id"]
        assert after["judged"] == ("recorded" if before["outcome"] in ("error", "skipped") else "replayed"), \
            (before["id"], after["judged"])
    assert judged["judged"]["notes"] == {}
    assert judged["summary"] == live["summary"]
    assert judged_run.status == run.status, judged_run.stderr
    return judged


def one_error_line(run: CliRun) -> str:
    """The run failed as bad usage: exit 2 and exactly one line on stderr, no traceback."""
    lines = run.stderr.strip().splitlines()
    assert run.status == 2, run.stderr
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


# Every process a test starts inherits this tag, so leftovers can be told apart
# from QEMUs that other users of the machine run at the same time.
TEST_TAG = f"BINDER_HARNESS_TEST_TAG={uuid.uuid4().hex}"


def catalog() -> list[str]:
    """The default catalog's case ids, in run order, as `binder-harness list` prints them."""
    return cli("list").stdout.split()


def offsets_as_read(offsets: dict, run: CliRun) -> dict:
    """A case's evidence.struct_offsets as read, whether this guest read them or an earlier one of
    its build did (then `kept_for_build` must name the run's target.build_id)."""
    out = {}
    for field, o in offsets.items():
        o = dict(o)
        assert o.pop("kept_for_build", run.report["target"]["build_id"]) == run.report["target"]["build_id"]
        out[field] = o
    return out


def cli_env(**extra: str) -> dict[str, str]:
    """The environment a test's harness runs in: the session tag plus `extra`."""
    return {**os.environ, TEST_TAG.split("=")[0]: TEST_TAG.split("=")[1], **extra}


def cli(*args: str, out: Path | None = None, timeout: float = 600, env: dict[str, str] | None = None) -> CliRun:
    """Run `binder-harness ARGS [--out OUT]` as a user would."""
    argv = [sys.executable, "-m", "harness.cli", *args]
    if out is not None:
        argv += ["--out", str(out)]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env or cli_env())
    return CliRun(proc.returncode, proc.stdout, proc.stderr, out or Path("."))


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `binder-harness ARGS` in the background; its progress lines come on stderr."""
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=REPO, env=env or cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 90) -> list[str]:
    """Read the harness's progress lines until one contains `text`."""
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"the harness ended before {text!r}: {''.join(seen)}")
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} within {timeout} s: {''.join(seen)}")


def finish_cli(proc: subprocess.Popen, out: Path, timeout: float = 120) -> CliRun:
    stdout, stderr = proc.communicate(timeout=timeout)
    return CliRun(proc.returncode, stdout, stderr, out)


class GuestCommand:
    """A `binder-harness guest` running in the background (`proc`, its stderr in `_stderr`)."""

    proc: subprocess.Popen
    _stderr: IO[str]

    def stop(self, sig: int) -> int:
        """Stop it as a user would (SIGINT or SIGTERM), killing it only if it hangs; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.proc.returncode


def tagged_processes(name: str = "qemu-system-", tag: str = TEST_TAG) -> set[int]:
    """Live processes started by this test session (by the tag in their environment);
    `tag` (KEY=VALUE) narrows it to one test's processes."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if name.encode() in cmdline and tag.encode() in environ.split(b"\0"):
            found.add(int(entry.name))
    return found


def qemu_processes() -> set[int]:
    return tagged_processes()


def read_newc(blob: bytes) -> dict[str, tuple[int, bytes]]:
    """The entries of a newc cpio archive: {name: (mode, data)}."""
    entries, pos = {}, 0
    while True:
        assert blob[pos:pos + 6] == b"070701"
        fields = [int(blob[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = blob[pos + 110: pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        data = blob[pos:pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, data)


def host_tool(command: str, package: str) -> str:
    """The path of a host tool the tests drive, or a failed test naming the Debian package:
    `scripts/setup --test` installs every one of them, so under the README's test command a
    missing tool is a broken setup, never a reason to skip."""
    import shutil

    import pytest

    path = shutil.which(command)
    if path is None:
        pytest.fail(f"the host has no {command}: install Debian's {package} package (scripts/setup --test does)",
                    pytrace=False)
    return path
