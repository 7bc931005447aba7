"""Verdicts: what a case expected, what it measured, and the outcome that follows.

A case records Checks; each names the kernel function its expectation comes
from. The first failing check becomes the case's one-line reason.
"""
from __future__ import annotations

import re
from pathlib import Path
from dataclasses import asdict, dataclass, field
from enum import Enum, IntEnum
from typing import Any, Iterable

from harness.evidence.drivers import C_DRIVER


class Outcome(str, Enum):
    """A case's outcome. A str, so it compares equal to, and is written to JSON as, its value."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"  # not judged: the target or harness could not run it (never a pass)
    NOT_APPLICABLE = "not_applicable"  # declared not to apply: by the user (--not-applicable) or from target facts

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


# The fixed order of report.json's "summary" (DESIGN §2; not_applicable added after the first four)
OUTCOMES = tuple(o.value for o in Outcome)
# Outcomes the checks do not decide: the case errored, was not judged, or does not apply
UNCHECKED = (Outcome.ERROR, Outcome.SKIPPED, Outcome.NOT_APPLICABLE)


class ExitStatus(IntEnum):
    """The exit status of every command that judges cases (run, matrix, judge, and `pytest cases/`),
    kept here once: a run is green only when every selected case passed."""

    PASSED = 0  # every case passed (cases declared not applicable aside)
    FAILED = 1  # some case failed or errored
    USAGE = 2  # bad usage or configuration: one line names the problem
    NOT_JUDGED = 3  # no case failed, but some case was skipped (not judged), or none was judged at all
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; the run directory holds what was collected


def summarize(outcomes: Iterable[str]) -> dict[str, int]:
    """How many of each outcome: {"passed", "failed", "error", "skipped", "not_applicable"} in that
    order, then any outcome not known here (a report from elsewhere) after them."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for outcome in outcomes:
        key = str(outcome)
        counts[key] = counts.get(key, 0) + 1
    return counts


def not_judged(summary: dict[str, int]) -> int:
    """Cases that were neither judged nor declared not applicable: skipped ones, and any outcome
    this harness does not know (a report from elsewhere)."""
    judged = (Outcome.PASSED, Outcome.FAILED, Outcome.ERROR, Outcome.NOT_APPLICABLE)
    return sum(n for key, n in summary.items() if key not in judged)


def summary_line(summary: dict[str, int]) -> str:
    """'3 passed, 0 failed, 0 error, 0 skipped'; with skipped cases they come first:
    'NOT JUDGED: 5 skipped; 1 passed, 0 failed, 0 error'; and ', 2 not applicable' when some are.
    Every line of a run that exits 3 (exit_status) starts 'NOT JUDGED:'."""
    counts = ", ".join(f"{summary.get(o, 0)} {o}" for o in OUTCOMES[:3])
    unjudged = [f"{n} {key}" for key, n in summary.items()
                if n and (key == Outcome.SKIPPED or key not in OUTCOMES)]
    if unjudged:
        line = f"NOT JUDGED: {', '.join(unjudged)}; {counts}"
    elif not any(summary.get(o, 0) for o in OUTCOMES[:3]):
        line = f"NOT JUDGED: no case judged; {counts}, 0 skipped"
    else:
        line = f"{counts}, 0 skipped"
    declared = summary.get(Outcome.NOT_APPLICABLE, 0)
    return f"{line}, {declared} not applicable" if declared else line


def exit_status(summary: dict[str, int]) -> ExitStatus:
    """0 only when every case passed (or was declared not applicable, with at least one passed);
    1 when any failed or errored; else 3: a skipped case is not a pass, nor is a run that judged nothing."""
    if summary.get(Outcome.FAILED, 0) or summary.get(Outcome.ERROR, 0):
        return ExitStatus.FAILED
    if not_judged(summary) or not summary.get(Outcome.PASSED, 0):
        return ExitStatus.NOT_JUDGED
    return ExitStatus.PASSED


@dataclass(frozen=True)
class Check:
    name: str  # what was compared, e.g. "size 4096: user->buffer bytes"
    expected: Any
    measured: Any
    passed: bool
    ref: str  # the kernel function the expectation comes from

    def describe(self) -> str:
        return f"{self.name}: expected {self.expected}, measured {self.measured} ({self.ref})"


@dataclass
class CaseResult:
    id: str
    outcome: Outcome = Outcome.PASSED
    reason: str = ""
    duration_s: float = 0.0
    evidence: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    guest: int | None = None  # which guest ran it, in a run on several guests (-j N)
    guest_start: dict | None = None  # restored or booted, from which snapshot, fresh (runner.guest_start)

    def __post_init__(self) -> None:
        self.outcome = Outcome(self.outcome)

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "id": self.id, "outcome": str(self.outcome), "reason": self.reason,
            "duration_s": round(self.duration_s, 3), "evidence": self.evidence,
            "checks": [asdict(c) for c in self.checks],
        }
        if self.guest is not None:
            out["guest"] = self.guest
        if self.guest_start is not None:
            out["guest_start"] = self.guest_start
        return out


def judge(result: CaseResult) -> None:
    """Set outcome and reason from the checks, unless the case already errored, was skipped or
    does not apply."""
    if result.outcome in UNCHECKED:
        return
    failed = [c for c in result.checks if not c.passed]
    if failed:
        result.outcome = Outcome.FAILED
        more = f" (+{len(failed) - 1} more failed checks)" if len(failed) > 1 else ""
        result.reason = failed[0].describe() + more
    elif not result.checks:
        result.outcome = Outcome.ERROR
        result.reason = "the case recorded no checks"
    else:
        result.outcome = Outcome.PASSED
        result.reason = f"{len(result.checks)} checks passed"


# -- kernel health (DESIGN §4 "health") -----------------------------------------
HEALTH_PATTERNS = re.compile(r"WARNING:|BUG:|Oops|KASAN|general protection|Call Trace")
# The C driver logs as "binder: " (built in) or "binder_linux: " (the module), the Rust driver as
# "rust_binder: " (harness/evidence/drivers.py log_prefixes): every one is a binder line.
BINDER_MESSAGE = re.compile(r"(?:\b|(?<=\brust_))binder(_linux|_alloc|_debug)?: ")
# printk rate limiting: says how many earlier lines were dropped, by any case
RATELIMIT_NOTICE = re.compile(r"\d+ callbacks suppressed")


# Whom a binder line comes from, for a line no case declared: drivers/android/binder.c logs user
# errors through binder_user_error, failed and dead transactions through binder_debug
# (binder_txn_error), broken invariants through pr_err; binder_alloc.c through binder_alloc_debug.
BINDER_LOGGERS = C_DRIVER.loggers  # the C driver's; each driver's is DriverFacts.loggers
# A pattern loose enough to fullmatch one of these declares nothing exact.
_LOOSE_PROBES = ("", "x", "binder-harness: any message at all")


@dataclass(frozen=True)
class Line:
    """A binder kernel-log line a case provokes by design (its `expected_dmesg`).

    `pattern` must match the whole message after the module's prefix (``binder_linux: ``),
    e.g. ``r"\\d+:\\d+ got transaction to invalid handle, 12345"``; `count`, where the printk
    rate limits allow (binder_user_error and binder_debug each let 10 lines through per 5 s,
    binder_alloc_debug 10 per call site), is how many of them a pristine guest logs, None when
    the case provokes more than the limit lets through; `ref` is the kernel function that
    prints it. `loose` is the old form (a plain regex string, searched anywhere in the line),
    for a case that cannot know its lines in advance (a fuzzer). `driver` names the driver that
    prints it (drivers.py DriverFacts.name): a line is expected only where that driver serves;
    "c" by default, since binder.c's lines came first; "rust" lines cite drivers/android/binder/."""

    pattern: str
    count: int | None = None
    ref: str = ""
    loose: bool = False
    driver: str = "c"

    def __post_init__(self) -> None:
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"expected_dmesg pattern {self.pattern!r} is not a regular expression ({exc}); "
                             "write the line's text with regex escapes") from None
        if self.count is not None and self.count < 1:
            raise ValueError(f"expected_dmesg {self.pattern!r}: count {self.count} must be at least 1, "
                             "or None when rate limits make it vary")
        if not self.loose and any(compiled.fullmatch(p) for p in _LOOSE_PROBES):
            raise ValueError(f"expected_dmesg pattern {self.pattern!r} matches any message; declare the "
                             "line's own text (digits as \\d+)")

    def matches(self, message: str) -> bool:
        """Whether a binder message (the text after its prefix) is this line."""
        if self.loose:
            return re.search(self.pattern, message) is not None
        return re.fullmatch(self.pattern, message) is not None

    def describe(self) -> str:
        return f"/{self.pattern}/"


@dataclass(frozen=True)
class ByKernel:
    """Lines the driver changed between versions: {(major, minor): lines}, keyed by the first
    Linux version measured with them. The kernel under test gets the entry of the highest key at
    or below its version (none below the lowest key), as CaseContext.by_kernel does for checks."""

    table: tuple[tuple[tuple[int, int], tuple[Line, ...]], ...]

    def __init__(self, table: dict[tuple[int, int], tuple[Line, ...]]) -> None:
        object.__setattr__(self, "table", tuple(sorted(table.items())))

    def for_kernel(self, version: tuple[int, int] | None) -> tuple[Line, ...]:
        """The lines for `version`; every entry's lines when the version is not known."""
        if version is None:
            return tuple(line for _, lines in self.table for line in lines)
        fits = [lines for v, lines in self.table if v <= version]
        return fits[-1] if fits else ()


Declared = Line | ByKernel | str  # one entry of a case's expected_dmesg


def expected_lines(declared: Iterable[Declared], kernel: tuple[int, int] | None = None,
                   driver: str | None = None) -> tuple[Line, ...]:
    """A case's `expected_dmesg` as Lines for the kernel under test and the driver serving it
    (None: every driver's): a plain string is a loose (unanchored) C-driver pattern, a ByKernel
    the entry for `kernel`."""
    lines: list[Line] = []
    for d in declared:
        if isinstance(d, ByKernel):
            lines.extend(d.for_kernel(kernel))
        else:
            lines.append(d if isinstance(d, Line) else Line(d, loose=True))
    return tuple(line for line in lines if driver is None or line.driver == driver)


@dataclass(frozen=True)
class HealthReport:
    bad_lines: list[str]
    unexpected_binder_lines: list[str]
    expected_binder_lines: list[str]
    # each declared line with how many lines of the window it matched
    line_counts: tuple[tuple[Line, int], ...] = ()


def without_timestamp(line: str) -> str:
    """A kernel-log line without its leading ``[   12.345678] ``."""
    return _TIMESTAMP.sub("", line.strip(), count=1)


_TIMESTAMP = re.compile(r"^\[[\s\d.]+\]\s*")


def binder_message(line: str) -> str | None:
    """The message of a binder kernel-log line (after ``binder_linux: `` or the like), without
    the timestamp; None for any other line, and for printk's "N callbacks suppressed"."""
    m = BINDER_MESSAGE.search(line)
    if m is None or RATELIMIT_NOTICE.search(line):
        return None
    return line[m.end():].rstrip()


def scan_dmesg(text: str, expected: Iterable[Declared] = (), kernel: tuple[int, int] | None = None,
               driver: str = "c") -> HealthReport:
    """Find kernel-health failures, and sort binder messages into those the case declared for
    `kernel` and `driver` (each counted against the first declared Line it matches) and those it did not."""
    bad: list[str] = []
    unexpected: list[str] = []
    seen: list[str] = []
    lines = expected_lines(expected, kernel, driver)
    counts = [0] * len(lines)
    for raw in text.splitlines():
        if HEALTH_PATTERNS.search(raw):
            bad.append(raw.strip())
            continue
        message = binder_message(raw)
        if message is None:
            continue
        hit = next((i for i, line in enumerate(lines) if line.matches(message)), None)
        if hit is None:
            unexpected.append(raw.strip())
        else:
            counts[hit] += 1
            seen.append(raw.strip())
    return HealthReport(bad, unexpected, seen, tuple(zip(lines, counts)))


_AVC_DENIED = re.compile(r"avc:\s+denied\s+\{[^}]*\}.*")
_OPEN_EACCES = re.compile(r"open (/dev/[\w./-]+): EACCES")


def selinux_denial(dmesg: str, probe_output: str) -> str | None:
    """One line when SELinux (an `avc: denied` kernel line), or by all signs it (EACCES opening
    the binder device as root), stopped the probe; None otherwise. On Android the fix is root
    through adbd or, on a userdebug build, permissive mode."""
    fix = "run `adb root`, or `adb shell setenforce 0` on a userdebug build"
    avc = _AVC_DENIED.search(dmesg)
    if avc:
        return f"SELinux denied the probe ({avc.group(0).strip()[:160]}); {fix}"
    opened = _OPEN_EACCES.search(probe_output)
    if opened:
        return f"the probe may not open {opened.group(1)} (EACCES as root: SELinux enforcing?); {fix}"
    return None


def explain_denial(result: CaseResult, case_dir: Path) -> None:
    """A case that failed because SELinux denied the probe says so, with the fix, in one line
    (from its kept dmesg.txt and probe output; the same live and when judged)."""
    def read(path: Path) -> str:
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""
    probe = "\n".join(read(p) for p in sorted(case_dir.glob("probe-*.jsonl")))
    denial = selinux_denial(read(case_dir / "dmesg.txt"), probe)
    if denial:
        result.evidence["selinux"] = denial
        result.reason = denial
