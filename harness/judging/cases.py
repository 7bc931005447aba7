"""Case registry and the context a case runs in.

A case is a function in cases/*.py decorated with @case("family.name"). It runs
the probe through its CaseContext and records checks; it never knows which
transport the target uses.
"""
from __future__ import annotations

import fnmatch
import hashlib
import importlib
import json
import importlib.util
import os
import posixpath
import random
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.evidence import debugfs as binder_debugfs
from harness import timing
from harness.evidence import trace as tracing
from harness.judging import layout
from harness.judging.accounting import (ACCOUNTING_FILES, FAILED_LOG_AFTER, FAILED_LOG_BEFORE, FAILED_LOG_REF,
                                        STATS_AFTER, STATS_BEFORE, Accounting, FailedLogComparison,
                                        FailedTransactions, compare_failed_log, compare_stats, describe_counts,
                                        probe_ext_errors, snapshot_script)
from harness.judging.coverage import probe_seen
from harness.errors import ConfigError
from harness.files import REPO_ROOT, atomic_write_text
from harness.evidence.probe import ProbeOutput, parse_probe_output
from harness.targets.base import CommandResult, Target, shell_command
from harness.judging.verdicts import (BINDER_LOGGERS, UNCHECKED, ByKernel, CaseResult, Check, Declared, HealthReport,
                                      Line, Outcome, scan_dmesg, without_timestamp)

CASES_DIR = REPO_ROOT / "cases"
# Directories of your own case modules (os.pathsep-separated), loaded after the catalog.
EXTRA_CASES_ENV = "BINDER_HARNESS_EXTRA_CASES"
DMESG_FILE = ".dmesg-all.txt"  # the whole kernel log, saved on the target and pulled
# What a case asked of its target, step by step, beside its evidence, and every fact of its
# context a case decides a check by: `binder-harness judge` replays the case from it and the
# files it names (harness/judging/replay.py).
RECORDING_FILE = "recording.json"
# 2: adds `pristine` (CaseContext.pristine). Schema 1 recordings still load; judge derives
# `pristine` for them from report.json's guest_start (harness/running/judge.py).
RECORDING_SCHEMA = 2


def begin_line(case_id: str) -> str:
    """The line the runner writes to /dev/kmsg as a case begins: its dmesg window opens there."""
    return f"binder-harness: begin {case_id}"


def kernel_version(release: str) -> tuple[int, int]:
    """(major, minor) of a `uname -r` string; (0, 0) when it does not start with N.N."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


class CaseSkipped(Exception):
    """Raised by a case (or its context) when the target cannot run it; the message says why."""


class CaseNotApplicable(CaseSkipped):
    """Raised when a fact of the kernel under test rules the case out (compat cases on a kernel
    without CONFIG_COMPAT): outcome not_applicable, which does not stop exit status 0. Raise it
    only on a fact read from the target, never on a failure the case exists to catch; where
    unsure, raise CaseSkipped (code that knows only CaseSkipped treats it as one)."""


# fs/ioctl.c builds compat_ptr_ioctl (binder_fops.compat_ioctl, the compat cases' way in) only
# with CONFIG_COMPAT; grep exits 0 found, 1 not found, 2 unreadable (no CONFIG_KALLSYMS, no root).
# About 0.5 s under TCG, so asked once per kernel build in a run (harness/running/runner.py).
COMPAT_SCRIPT = "grep -qw compat_ptr_ioctl /proc/kallsyms; echo kallsyms_compat=$?"


def compat_missing(output: str) -> bool:
    """True only when COMPAT_SCRIPT's output shows a readable /proc/kallsyms without
    compat_ptr_ioctl: the kernel has no 32-bit compat layer. Anything else (unreadable, no
    output) is not a fact, and the case runs."""
    found = re.search(r"kallsyms_compat=(\d+)", output)
    return found is not None and found.group(1) == "1"


@dataclass(frozen=True)
class CaseSpec:
    id: str
    func: Callable[["CaseContext"], None]
    doc: str
    kprobes: tuple[tracing.Kprobe, ...] = ()
    trace: bool = False  # arm ftrace even without kprobes
    expected_dmesg: tuple[Line | ByKernel, ...] = ()  # the binder lines this case provokes (verdicts.Line)
    compat: bool = False  # run the 32-bit probe
    timeout: float = 60.0
    events: tuple[str, ...] = ()  # extra tracefs events, e.g. "binder/binder_alloc_page_start"
    failed_transactions: FailedTransactions | None = None  # where the failed log differs from the probe's view

    @property
    def wants_trace(self) -> bool:
        return self.trace or bool(self.kprobes) or bool(self.events)


REGISTRY: dict[str, CaseSpec] = {}


def case(case_id: str, *, kprobes: tuple[tracing.Kprobe, ...] = (), trace: bool = False,
         expected_dmesg: tuple[Declared, ...] = (), compat: bool = False, timeout: float = 60.0,
         events: tuple[str, ...] = (), failed_transactions: FailedTransactions | None = None):
    """Register a case function under a stable `family.name` id. `expected_dmesg` declares the
    binder kernel-log lines the case provokes, as verdicts.Line (exact, with counts where the
    rate limits allow; verdicts.ByKernel where the driver changed them); on a pristine guest any
    other binder line fails it (judge_health). `failed_transactions` declares where binder's
    failed-transaction log legitimately differs from the failures the probe reads
    (accounting.FailedTransactions; judge_failed_log)."""
    if not tracing.CASE_ID.match(case_id):
        raise ValueError(f"case id {case_id!r} must be lower-case family.name")

    def register(func: Callable[["CaseContext"], None]):
        REGISTRY[case_id] = CaseSpec(case_id, func, (func.__doc__ or "").strip(), kprobes, trace,
                                     _declared(expected_dmesg), compat, timeout, events, failed_transactions)
        return func

    return register


def _declared(expected_dmesg: tuple[Declared, ...]) -> tuple[Line | ByKernel, ...]:
    """A case's expected_dmesg with each plain string made a loose Line (verdicts.expected_lines)."""
    return tuple(d if isinstance(d, (Line, ByKernel)) else Line(d, loose=True) for d in expected_dmesg)


def load_cases(directory: Path = CASES_DIR) -> dict[str, CaseSpec]:
    """Import every module of the cases package once, then any $BINDER_HARNESS_EXTRA_CASES
    directories; return the registry."""
    root = str(directory.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    for path in sorted(directory.glob("*.py")):
        if not path.name.startswith("_"):
            importlib.import_module(f"{directory.name}.{path.stem}")
    for extra in extra_case_dirs():
        for path in sorted(extra.glob("*.py")):
            if not path.name.startswith("_"):
                _import_case_file(path)
    return REGISTRY


def extra_case_dirs() -> list[Path]:
    """The directories named by $BINDER_HARNESS_EXTRA_CASES; a missing one is a ConfigError."""
    dirs = [Path(d) for d in os.environ.get(EXTRA_CASES_ENV, "").split(os.pathsep) if d.strip()]
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"{EXTRA_CASES_ENV}: {d} is not a directory of case modules")
    return dirs


def _import_case_file(path: Path) -> None:
    """Import one case module by file path (once), naming it after its absolute path."""
    name = "bh_cases_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12] + "_" + path.stem
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot load as a case module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise ConfigError(f"{path}:{exc.lineno}: case module does not parse: {exc.msg}") from None


def select_cases(patterns: list[str]) -> list[CaseSpec]:
    """Resolve ids and globs (e.g. 'one_copy.*') to cases, in catalog order."""
    registry = load_cases()
    if not patterns:
        return list(registry.values())
    chosen: list[CaseSpec] = []
    for pattern in patterns:
        hits = [c for cid, c in registry.items() if fnmatch.fnmatchcase(cid, pattern)]
        if not hits:
            raise ConfigError(f"unknown case {pattern!r}; 'binder-harness list' shows the ids")
        chosen.extend(c for c in hits if c not in chosen)
    return chosen


@dataclass
class CaseContext:
    """What a case sees: the target, its probe, tracing, and the place to record checks."""

    spec: CaseSpec
    target: Target
    probe: str  # path of the probe binary on the target
    case_dir: Path  # host directory for this case's evidence
    remote_dir: str  # target directory for this case's evidence
    tracefs: str | None
    debugfs: str | None
    seed: int | None = None  # None: one is drawn for the case, kept in its recording so it replays
    timeout: float = 60.0  # the case's time budget; each probe run gets this by default
    trace_dat: bool = False  # also save trace.dat with the target's trace-cmd (run --trace-dat)
    pristine: bool = False  # the case's guest is fresh from a boot or restore: no earlier case touched its driver
    binder_device: str = "/dev/binder"  # the device every probe run opens (--binder-device, a private one)
    result: CaseResult = field(init=False)
    _probe_runs: int = 0
    _trace: tracing.Trace | None = None
    _tracing: bool = False
    _marker_pid: int = 0
    _commands: int = 0  # commands this context has sent to the target
    _dmesg_saved_at: int = -1  # _commands when the kernel log was last saved to DMESG_FILE
    _steps: list[dict] = field(default_factory=list)  # what recording.json holds

    def __post_init__(self) -> None:
        self.result = CaseResult(self.spec.id)
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(1, 2**31)

    def _record_step(self, step: dict) -> None:
        """Add one step (a probe run, the trace, a kernel-log read) to cases/<id>/recording.json,
        rewritten at once so a case that takes its guest down keeps what it had asked."""
        self._steps.append(step)
        recording = {"recording_schema": RECORDING_SCHEMA, "case": self.spec.id,
                     "kernel_release": self.target.info().kernel_release, "arch": self.target.info().arch,
                     "seed": self.seed, "timeout": self.timeout, "binder_device": self.binder_device,
                     "pristine": self.pristine, "steps": self._steps}
        atomic_write_text(self.case_dir / RECORDING_FILE, json.dumps(recording, indent=1) + "\n")

    @property
    def evidence(self) -> dict[str, Any]:
        return self.result.evidence

    # -- running things --------------------------------------------------------
    def run(self, argv: list[str], timeout: float = 30.0) -> CommandResult:
        self._commands += 1
        return self.target.run(argv, timeout)

    def run_probe(self, scenario: str, /, timeout: float | None = None, **args: Any) -> ProbeOutput:
        """Run one probe scenario; its JSON lines are kept in the case's probe.jsonl."""
        timeout = timeout or self.timeout
        self._probe_runs += 1
        stem = f"{self.remote_dir}/probe-{self._probe_runs}"
        argv = [self.probe, scenario, *(f"{k}={v}" for k, v in args.items()), f"timeout={int(timeout)}"]
        if self.binder_device != "/dev/binder":
            argv.append(f"device={self.binder_device}")
        cmd = f"{shell_command(argv, timeout + 5)} > {shlex.quote(stem + '.jsonl')} 2> {shlex.quote(stem + '.stderr')}"
        self._commands += 1
        t0 = time.monotonic()
        with timing.phase("probe"):
            result = self.target.run_shell(cmd, timeout + 5)
        timed_out = result.status in (124, 137) and time.monotonic() - t0 >= timeout + 4
        if timed_out:
            # the target-side timeout killed a probe that hung: the case fails on that first
            self.check_that(f"probe run {self._probe_runs} ({scenario}) ends within the case time limit",
                            False, f"killed after {int(timeout) + 5} s (status {result.status}); its partial "
                            f"output is in probe-{self._probe_runs}.jsonl", f"done within {int(timeout)} s", "probe")
            self.evidence.setdefault("probe_timeouts", []).append(
                {"run": self._probe_runs, "scenario": scenario, "killed_after_s": int(timeout) + 5})
        text = self._pull_text(stem + ".jsonl", f"probe-{self._probe_runs}.jsonl")
        stderr = self._pull_text(stem + ".stderr", f"probe-{self._probe_runs}.stderr")
        out = parse_probe_output(text)
        out.status = result.status
        out.stderr = stderr
        self.evidence.setdefault("probe_runs", []).append(
            {"scenario": scenario, "args": {k: str(v) for k, v in args.items()}, "status": result.status})
        self._record_step({"step": "probe", "run": self._probe_runs, "scenario": scenario,
                           "args": {k: str(v) for k, v in args.items()}, "timeout": int(timeout),
                           "status": result.status, "timed_out": timed_out,
                           "files": [f"probe-{self._probe_runs}.jsonl", f"probe-{self._probe_runs}.stderr"]})
        return out

    def _pull_text(self, remote: str, name: str) -> str:
        local = self.case_dir / name
        if not self.target.pull(remote, local):
            return ""
        return local.read_text(errors="replace")

    def read_file(self, path: str, timeout: float = 10.0) -> str:
        result = self.run(["cat", path], timeout)
        if not result.ok:
            raise CaseSkipped(f"cannot read {path} on {self.target.spec}: {result.output.strip()[:100]}")
        return result.output

    def setup_script(self) -> str:
        """Shell the runner runs as the case begins, in one round trip: the case's directory, its
        begin line in the kernel log, and binder's `stats` as they stand (accounting.STATS_BEFORE)."""
        script = f"mkdir -p {shlex.quote(self.remote_dir)}; echo {shlex.quote(begin_line(self.spec.id))} > /dev/kmsg"
        if self.debugfs:
            script += "; " + snapshot_script(f"{self.debugfs}/binder", self.remote_dir, "before")
        return script

    def _save_dmesg(self) -> str:
        """Shell that waits until the case's processes and binder's deferred release are done,
        then saves the whole kernel log beside the case's evidence (read back by pull: a file
        travels faster than the console, and the log grows with every case), and binder's
        `stats` as the case leaves them (accounting.STATS_AFTER). Its last line does the saving."""
        save = f"dmesg > {shlex.quote(f'{self.remote_dir}/{DMESG_FILE}')}"
        if self.debugfs:
            save += "; " + snapshot_script(f"{self.debugfs}/binder", self.remote_dir, "after")
        return f"{binder_debugfs.settle_script(self.debugfs, posixpath.basename(self.probe))}\n{save}"

    def _settled(self, output: str) -> None:
        problem = binder_debugfs.settle_outcome(output)
        if problem:
            self.evidence["dmesg_window"] = f"closed late: {problem}"

    def dmesg(self) -> str:
        """Kernel log lines written since this case began, up to the end of its work.

        When the case's begin line is not in the log (the ring buffer wrapped, or it was
        cleared), the window is unknown: this returns "" and evidence `dmesg_window` says so,
        rather than charging the case with the whole log."""
        with timing.phase("dmesg"):
            saved = self._dmesg_saved_at == self._commands  # stop_trace saved it; nothing ran since
            if not saved:
                self._commands += 1
                res = self.target.run_shell(self._save_dmesg(), 30)
                saved = res.ok
                self._settled(res.output)
            out = self._pull_text(f"{self.remote_dir}/{DMESG_FILE}", DMESG_FILE) if saved else ""
            (self.case_dir / DMESG_FILE).unlink(missing_ok=True)
            if saved and self.debugfs:
                for name in ACCOUNTING_FILES:
                    self._pull_text(f"{self.remote_dir}/{name}", name)
            if not out:
                out = self.target.dmesg(20)
        marker = begin_line(self.spec.id)
        if marker not in out:
            self.evidence["dmesg_window"] = (f"unknown: the case's begin line '{marker}' is not in the kernel log "
                                             "(ring buffer wrapped or cleared)")
            delta = ""
        else:
            delta = out[out.rfind(marker):].split("\n", 1)[-1]
        self._record_step({"step": "dmesg", "delta": delta, "dmesg_window": self.evidence.get("dmesg_window")})
        return delta

    # -- tracing ---------------------------------------------------------------
    def start_trace(self, prefix: str = "") -> None:
        """Arm tracing; `prefix` is shell run first in the same round trip (the case's setup)."""
        if self.tracefs is None:
            raise CaseSkipped(f"{self.target.spec} has no tracefs (mount it, or run as root)")
        kprobes = self._placed(tuple(k.for_kernel(self.kernel) for k in self.spec.kprobes))
        script = tracing.arm_script(self.tracefs, kprobes, self.spec.id, extra_events=self.spec.events)
        if prefix:
            script = f"{prefix}\n{script}"
        self._commands += 1
        with timing.phase("arm_trace"):
            result = self.target.run_shell(script, 20)
        if not result.ok:
            raise CaseSkipped(f"cannot arm tracing on {self.target.spec} (status {result.status}): "
                              f"{result.output.strip().splitlines()[-1:] or ''}")
        self._tracing = True
        self._marker_pid = tracing.marker_pid(result.output)

    def _placed(self, kprobes: tuple[tracing.Kprobe, ...]) -> tuple[tracing.Kprobe, ...]:
        """The kprobes with every struct field they read at its offset on the kernel under test,
        from the target's BTF; evidence `struct_offsets` says where each came from."""
        fields = tuple(dict.fromkeys(f for k in kprobes for f in k.struct_fields))
        if not fields:
            return kprobes
        with timing.phase("struct_offsets"):
            found = layout.struct_offsets(self.target, fields, self.remote_dir, self.case_dir)
        self.evidence["struct_offsets"] = {f: o.as_evidence() for f, o in found.items()}
        missing = [f"{f}: {o.source}" for f, o in found.items() if o.offset is None]
        if missing:
            raise CaseSkipped(f"kprobe fetch args need struct offsets the kernel under test does not describe: "
                              f"{'; '.join(missing)}")
        offsets = {f: o.offset for f, o in found.items() if o.offset is not None}
        return tuple(k.with_offsets(offsets) for k in kprobes)

    def stop_trace(self) -> tracing.Trace:
        """Stop tracing, keep trace.txt with the case, and return it parsed."""
        if not self._tracing:
            return self._trace or tracing.Trace([], [], [])
        self._tracing = False
        remote = f"{self.remote_dir}/trace.txt"
        self._commands += 1
        with timing.phase("collect_trace"):
            # the kernel log is saved in the same round trip; dmesg() uses it if nothing ran since
            dat = f"{self.remote_dir}/trace.dat" if self.trace_dat else ""
            # the case's work is waited for first, so the trace holds binder's deferred release too
            settle, save = self._save_dmesg().rsplit("\n", 1)
            script = f"{settle}\n{tracing.collect_script(self.tracefs or '', remote, self._marker_pid, dat)}\n{save}"
            result = self.target.run_shell(script, 120 if dat else 60)
            self._settled(result.output)
            if result.ok:
                self._dmesg_saved_at = self._commands
            text = self._pull_text(remote, "trace.txt")
            if dat:
                self._keep_trace_dat(dat, tracing.trace_dat_status(result.output))
        self._trace = tracing.parse_ftrace(text)
        self._record_step({"step": "trace", "files": ["trace.txt"] if text else [],
                           "dmesg_window": self.evidence.get("dmesg_window"),
                           "trace_dat": self.evidence.get("trace_dat")})
        return self._trace

    def _keep_trace_dat(self, remote: str, status: str | None) -> None:
        """Pull trace.dat beside trace.txt, or say in the evidence why there is none."""
        if status == "missing":
            self.evidence["trace_dat"] = f"not available: {self.target.spec} has no trace-cmd in its PATH"
            return
        log = self._pull_text(remote + ".log", "trace.dat.log").strip()
        (self.case_dir / "trace.dat.log").unlink(missing_ok=True)
        local = self.case_dir / "trace.dat"
        if status == "0" and self.target.pull(remote, local) and local.stat().st_size > 0:
            return
        local.unlink(missing_ok=True)
        why = log.splitlines()[-1] if log else "no message"
        self.evidence["trace_dat"] = f"not available: trace-cmd extract exited {status or 'unknown'} ({why[:200]})"

    # -- the kernel under test ---------------------------------------------------
    @property
    def kernel(self) -> tuple[int, int]:
        """(major, minor) of the kernel under test, from its release (e.g. 6.12.117+deb13-amd64)."""
        return kernel_version(self.target.info().kernel_release)

    def by_kernel(self, table: dict[tuple[int, int], Any]) -> Any:
        """The entry of a version table (a driver behaviour that changed) for the kernel under
        test: the one keyed by the highest (major, minor) at or below its version."""
        fits = [v for v in table if v <= self.kernel]
        if not fits:
            raise CaseSkipped(f"no expectation for Linux {'.'.join(map(str, self.kernel))}: the case knows "
                              f"{', '.join('.'.join(map(str, v)) for v in sorted(table))} and later")
        return table[max(fits)]

    # -- checks ----------------------------------------------------------------
    def check(self, name: str, measured: Any, expected: Any, ref: str) -> bool:
        """Record measured == expected, citing the kernel function `ref`."""
        return self.check_that(name, measured == expected, measured, expected, ref)

    def check_that(self, name: str, passed: bool, measured: Any, expected: Any, ref: str) -> bool:
        self.result.checks.append(Check(name, expected, measured, bool(passed), ref))
        return bool(passed)


# The names of the health checks judged only on a pristine guest begin with these: the kernel-log
# rule (_judge_binder_lines) and binder's accounting (judge_accounting).
KERNEL_LOG_CHECK, ACCOUNTING_CHECK = "kernel log: ", "driver accounting: "
PRISTINE_ONLY_CHECKS = (KERNEL_LOG_CHECK, ACCOUNTING_CHECK)


def judge_health(ctx: CaseContext, delta: str) -> HealthReport:
    """DESIGN §4 health, on a case's dmesg delta: WARNING/BUG/Oops/... fail the case, and an
    unknown dmesg window errors it. On a pristine guest (the case's own restore or boot) a binder
    line the case did not declare fails it, with the line as the reason, and each declared line
    with a count must appear exactly that often; on a shared boot (earlier cases used up printk's
    rate limits) they are evidence only. The same for a live run (harness/running/runner.py) and a
    replayed one (harness/judging/replay.py)."""
    result = ctx.result
    health = scan_dmesg(delta, ctx.spec.expected_dmesg, ctx.kernel)
    result.evidence["dmesg_bad_lines"] = health.bad_lines[:20]
    if health.unexpected_binder_lines:
        result.evidence["unexpected_binder_messages"] = health.unexpected_binder_lines[:20]
    window = str(result.evidence.get("dmesg_window", ""))
    if window.startswith("unknown") and result.outcome not in UNCHECKED:
        result.outcome, result.reason = Outcome.ERROR, f"kernel health not judged: dmesg window {window}"
    if result.outcome not in UNCHECKED:
        ctx.check_that("kernel health: dmesg delta free of WARNING/BUG/Oops/KASAN/Call Trace",
                       not health.bad_lines, health.bad_lines[0] if health.bad_lines else "none",
                       "none", "dmesg (WARN/BUG/oops handlers)")
        if ctx.pristine:
            _judge_binder_lines(ctx, health)
        judge_accounting(ctx)
        judge_failed_log(ctx, delta)
    return health


def judge_accounting(ctx: CaseContext) -> Accounting | None:
    """Binder's own accounting is back to its baseline after the case (cases/<id>/stats-before.txt
    and stats-after.txt, read around it; accounting.py): every active count of `stats` as before
    the case, and no proc entry the case made. Checked on a pristine guest, where nothing but the
    case uses binder; evidence `binder_accounting` elsewhere. None when the files are missing
    (no debugfs, or the case never reached its end)."""
    before, after = (ctx.case_dir / STATS_BEFORE, ctx.case_dir / STATS_AFTER)
    if not (before.exists() and after.exists()):
        return None
    acct = compare_stats(before.read_text(errors="replace"), after.read_text(errors="replace"))
    ctx.evidence["binder_accounting"] = acct.problem or {
        "active": {kind: list(counts) for kind, counts in acct.active.items()}, "procs_left": acct.procs_left}
    if ctx.pristine and not acct.problem:
        ref = "binder_stats_created / binder_stats_deleted (print_binder_stats: KIND: active N)"
        ctx.check_that(f"{ACCOUNTING_CHECK}binder stats active counts back to their values before the case",
                       not acct.changed, acct.describe_changed(), "none changed", ref)
        ctx.check(f"{ACCOUNTING_CHECK}binder procs the case left in stats", acct.procs_left, [],
                  "binder_deferred_release -> binder_free_proc (print_binder_proc_stats: proc PID)")
    return acct


def judge_failed_log(ctx: CaseContext, delta: str = "") -> FailedLogComparison | None:
    """binder's failed_transaction_log holds exactly the failures the probe saw: its entries new
    since the case began (cases/<id>/failed-log-before.txt, failed-log-after.txt), counted by
    return, equal the BR_FAILED_REPLY / BR_DEAD_REPLY / BR_FROZEN_REPLY the probe read (its
    {"ev":"commands"} record, all processes), as the case declares (CaseSpec.failed_transactions),
    and each extended error the probe read names a new entry with the same return and errno, and each
    failure line of the case's kernel log (`delta`) the same return, errno and binder.c line.
    Checked on a pristine guest; evidence `failed_transaction_log` elsewhere. None when the files
    are missing (no debugfs, or the case never reached its end)."""
    before, after = (ctx.case_dir / FAILED_LOG_BEFORE, ctx.case_dir / FAILED_LOG_AFTER)
    if not (before.exists() and after.exists()):
        return None
    probes = [p.read_text(errors="replace") for p in sorted(ctx.case_dir.glob("probe-*.jsonl"))]
    declared = ctx.spec.failed_transactions
    cmp = compare_failed_log(before.read_text(errors="replace"), after.read_text(errors="replace"),
                             probe_seen(probes)["br"], declared, probe_ext_errors(probes), delta)
    ctx.evidence["failed_transaction_log"] = cmp.problem or {
        "new": [e.describe() for e in cmp.new], "logged": cmp.logged, "probe_saw": cmp.seen,
        "expected": cmp.expected, "wrapped": cmp.wrapped, "extended_errors_unmatched": list(cmp.ext_mismatches),
        "kernel_log_lines_unmatched": list(cmp.line_mismatches)}
    if not ctx.pristine or cmp.problem:
        return cmp
    why = f" ({declared.ref})" if declared is not None and declared.ref else ""
    extra = cmp.differing()
    if declared is not None and declared.uncounted:
        ctx.evidence["failed_transaction_log_uncounted"] = declared.uncounted
    else:
        ctx.check_that(f"{ACCOUNTING_CHECK}failed_transaction_log entries of the case, by return"
                       + (" (ring of 32 wrapped: at most)" if cmp.wrapped else ""),
                       cmp.matches, cmp.describe() + (f" [{extra}]" if extra and not cmp.matches else ""),
                       describe_counts(cmp.expected) + why, FAILED_LOG_REF)
    ctx.check_that(f"{ACCOUNTING_CHECK}extended errors the probe read, as the failed log holds them",
                   not cmp.ext_mismatches, "; ".join(cmp.ext_mismatches[:3]) or f"all {cmp.ext_read} match",
                   f"all {cmp.ext_read} match",
                   "binder_transaction: binder_set_extended_error(t_debug_id, return_error, return_error_param) "
                   "and binder_transaction_log_failed entry")
    ctx.check_that(f"{ACCOUNTING_CHECK}failed_transaction_log entries as the kernel log's failure lines give them "
                   "(debug id, return, errno, line)", not cmp.line_mismatches,
                   "; ".join(cmp.line_mismatches[:3]) or f"all {cmp.lines_read} match", f"all {cmp.lines_read} match",
                   "binder_transaction: binder_debug(BINDER_DEBUG_FAILED_TRANSACTION, ... failed %d/%d/%d ... line %d) "
                   "and binder_transaction_log_failed entry (return_error_line)")
    return cmp


def _judge_binder_lines(ctx: CaseContext, health: HealthReport) -> None:
    """On a pristine guest: no binder line the case did not declare, and each counted one as often
    as declared."""
    counted = {line.pattern: n for line, n in health.line_counts if line.count is not None}
    if counted:
        ctx.evidence["binder_line_counts"] = counted
    unexpected = health.unexpected_binder_lines
    first = without_timestamp(unexpected[0]) if unexpected else "none"
    more = f" (+{len(unexpected) - 1} more in evidence unexpected_binder_messages)" if len(unexpected) > 1 else ""
    ctx.check_that(f"{KERNEL_LOG_CHECK}binder lines the case does not declare", not unexpected, first + more, "none",
                   BINDER_LOGGERS)
    for line, n in health.line_counts:
        if line.count is not None:
            ctx.check(f"{KERNEL_LOG_CHECK}lines {line.describe()}", n, line.count, line.ref or BINDER_LOGGERS)
