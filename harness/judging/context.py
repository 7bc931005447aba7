"""The context a case runs in: CaseContext runs the probe, arms and reads the trace, reads the
case's kernel log and binder's files, records every step for `binder-harness judge`, and holds
the case's checks. The same context is replayed from a recording (harness/judging/replay.py).
"""
from __future__ import annotations

import json
import posixpath
import random
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import timing
from harness.evidence import kprobes
from harness.evidence import debugfs as binder_debugfs
from harness.evidence.drivers import C_DRIVER, DriverFacts
from harness.evidence import trace as tracing
from harness.evidence.probe import ProbeOutput, parse_probe_output
from harness.files import atomic_write_text
from harness.judging import layout
from harness.judging.accounting import ACCOUNTING_FILES, snapshot_script
from harness.judging.catalog import CaseSkipped, CaseSpec
from harness.judging.verdicts import CaseResult, Check
from harness.targets import binder_driver
from harness.targets.base import CommandResult, Target, shell_command


DMESG_FILE = ".dmesg-all.txt"  # the whole kernel log, saved on the target and pulled
# What a case asked of its target, step by step, beside its evidence, and every fact of its
# context a case decides a check by: `binder-harness judge` replays the case from it and the
# files it names (harness/judging/replay.py).
RECORDING_FILE = "recording.json"
# 2: adds `pristine` (CaseContext.pristine). Schema 1 recordings still load; judge derives
# `pristine` for them from report.json's guest_start (harness/running/rejudge.py).
RECORDING_SCHEMA = 2
PROBE_LOGS_DEFAULT = "/sys/kernel/debug/binder"  # the probe's logs= default (native_probe/probe.h BINDER_LOGS_DEFAULT)


def begin_line(case_id: str) -> str:
    """The line the runner writes to /dev/kmsg as a case begins: its dmesg window opens there."""
    return f"binder-harness: begin {case_id}"


def kernel_version(release: str) -> tuple[int, int]:
    """(major, minor) of a `uname -r` string; (0, 0) when it does not start with N.N."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)



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
    driver: DriverFacts = C_DRIVER  # the target's binder driver (harness/evidence/drivers.py)
    binderfs: str | None = None  # where the target's binderfs is mounted (the Rust driver keeps binder_logs/ there)
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
                     "pristine": self.pristine, "driver": self.driver.name, "steps": self._steps}
        atomic_write_text(self.case_dir / RECORDING_FILE, json.dumps(recording, indent=1) + "\n")

    @property
    def binder_logs(self) -> str | None:
        """The directory of binder's stats/state/proc files on the target (debugfs binder/ for the
        C driver, binderfs binder_logs/ for the Rust one), or None when it has none."""
        return self.driver.logs_path(self.debugfs, self.binderfs)

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
        if self.binder_logs and self.binder_logs != PROBE_LOGS_DEFAULT:
            argv.append(f"logs={self.binder_logs}")
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
        if self.binder_logs:
            script += "; " + snapshot_script(self.binder_logs, self.remote_dir, "before")
        return script

    def _save_dmesg(self) -> str:
        """Shell that waits until the case's processes and binder's deferred release are done,
        then saves the whole kernel log beside the case's evidence (read back by pull: a file
        travels faster than the console, and the log grows with every case), and binder's
        `stats` as the case leaves them (accounting.STATS_AFTER). Its last line does the saving."""
        save = f"dmesg > {shlex.quote(f'{self.remote_dir}/{DMESG_FILE}')}"
        if self.binder_logs:
            save += "; " + snapshot_script(self.binder_logs, self.remote_dir, "after")
        settle = binder_debugfs.settle_script(self.binder_logs, posixpath.basename(self.probe),
                                              self.driver.counts_objects)
        return f"{settle}\n{save}"

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
            if saved and self.binder_logs:
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
        wanted, unplaceable = self.driver.kprobes(self.spec.kprobes)
        events, instead, no_event = self.driver.events(self.spec.events)
        if unplaceable or no_event:
            self.evidence["kprobes_missing"] = {k: f"the {self.driver.name} driver has no such function or event"
                                                for k in unplaceable + no_event}
        kprobes = self._placed(tuple(k.for_kernel(self.kernel) for k in wanted + instead))
        script = tracing.arm_script(self.tracefs, kprobes, self.spec.id, extra_events=events,
                                    binder_events=self.driver.trace_events)
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
        for name in tracing.missing_kprobes(result.output):
            self.evidence.setdefault("kprobes_missing", {})[name] = "this kernel has no such function to probe"

    def _placed(self, kprobes: tuple[kprobes.Kprobe, ...]) -> tuple[kprobes.Kprobe, ...]:
        """The kprobes with every struct field they read at its offset on the kernel under test,
        from the target's BTF; evidence `struct_offsets` says where each came from."""
        kprobes = self._on_rust_symbols(kprobes)
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

    def _on_rust_symbols(self, kprobes: tuple[kprobes.Kprobe, ...]) -> tuple[kprobes.Kprobe, ...]:
        """The kprobes on Rust functions placed on their mangled names in the target's
        /proc/kallsyms (binder_driver.rust_symbols); evidence `rust_symbols` says what was found."""
        paths = tuple(k.rust_path for k in kprobes if k.rust_path)
        if not paths:
            return kprobes
        with timing.phase("rust_symbols"):
            found = binder_driver.rust_symbols(self.target, paths)
        self.evidence["rust_symbols"] = {k.name: found[k.rust_path].as_evidence() for k in kprobes if k.rust_path}
        missing = [f"{k.name}: {found[k.rust_path].why}" for k in kprobes if k.rust_path and not found[k.rust_path].symbol]
        if missing:
            raise CaseSkipped(f"kprobes on Rust functions the kernel under test does not name: {'; '.join(missing)}")
        return tuple(k.with_symbol(found[k.rust_path].symbol or "") if k.rust_path else k for k in kprobes)

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
    def arch(self) -> str:
        """The target's arch (harness/targets/base.py TargetInfo.arch: x86_64, arm64, ...)."""
        return self.target.info().arch

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

    def by_driver(self, table: dict[str, Any]) -> Any:
        """The entry of a driver table for the driver serving the target: a behaviour in which the
        C driver (binder.c) and the Rust driver (drivers/android/binder/*.rs) differ, each entry
        citing its own driver's source. {"c": ..., "rust": ...}; a driver the table lacks is not judged."""
        if self.driver.name not in table:
            raise CaseSkipped(f"no expectation for the {self.driver.name} driver: the case knows "
                              f"{', '.join(sorted(table))}")
        return table[self.driver.name]

    # -- checks ----------------------------------------------------------------
    def check(self, name: str, measured: Any, expected: Any, ref: str) -> bool:
        """Record measured == expected, citing the kernel function `ref`."""
        return self.check_that(name, measured == expected, measured, expected, ref)

    def check_that(self, name: str, passed: bool, measured: Any, expected: Any, ref: str) -> bool:
        self.result.checks.append(Check(name, expected, measured, bool(passed), ref))
        return bool(passed)


