"""Replay a case on recorded evidence: the judging half of a run, without a target.

A live CaseContext writes cases/<id>/recording.json as the case asks its target for things:
each probe run (scenario, arguments, exit status, its probe-N.jsonl and probe-N.stderr), the
trace (trace.txt) and each kernel-log read (the delta it returned), and the facts of its context
a case decides checks by (kernel release, seed, time limit, binder device, whether its guest was
pristine). ReplayContext answers the same calls, in the same order, from those files, with the
same context, so a case function runs unchanged and records the same checks;
`binder-harness judge RUN_DIR` (harness/running/rejudge.py) does that for every case and rewrites
the reports.

A case that asks for something the recording does not hold (a probe scenario or arguments it
did not run then, a command on the target) cannot be decided offline: it ends in
NeedsLiveTarget, and its verdict says which call needs a live target.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from harness.evidence import trace as tracing
from harness.evidence.drivers import driver_facts
from harness.evidence.probe import ProbeOutput, parse_probe_output
from harness.judging.catalog import CaseSkipped, CaseSpec
from harness.judging.context import RECORDING_FILE, RECORDING_SCHEMA, CaseContext, kernel_version
from harness.judging.health import check_health
from harness.judging.verdicts import CaseResult, Outcome, judge
from harness.targets.base import CommandResult, Target


class NeedsLiveTarget(Exception):
    """The case asked for something its recording does not hold; the message says what."""


class RecordingError(Exception):
    """A recording.json that cannot be read; the message names the file and the problem."""


# The recording schemas this harness replays: 1 lacks `pristine` (the caller supplies it).
RECORDING_SCHEMAS_READ = (1, RECORDING_SCHEMA)
# Evidence the runner puts in a case's context before the case function runs (the device it
# opens, the struct offsets its kprobes were placed with): report.json's values are put back
# before a replay, so the case sees its context as it did live.
EVIDENCE_BEFORE_THE_CASE = ("binder_device", "struct_offsets", "kprobes_missing", "rust_symbols")


def load_recording(case_dir: Path) -> dict | None:
    """cases/<id>/recording.json, or None when the case left none (it never reached its target)."""
    path = case_dir / RECORDING_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise RecordingError(f"{path}: field 'steps' missing; a recording is a JSON object with a 'steps' list")
    if data.get("recording_schema") not in RECORDING_SCHEMAS_READ:
        raise RecordingError(f"{path}: recording_schema {data.get('recording_schema')!r}; this harness reads "
                             f"{' and '.join(map(str, RECORDING_SCHEMAS_READ))}")
    return data


@dataclass
class ReplayContext(CaseContext):
    """A CaseContext whose target is the recording: the case's calls are answered from files."""

    recording: dict | None = None
    _cursor: dict | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        rec = self.recording or {}
        steps = rec.get("steps", [])
        self._cursor = {"probe": [s for s in steps if s.get("step") == "probe"],
                        "dmesg": [s for s in steps if s.get("step") == "dmesg"],
                        "trace": [s for s in steps if s.get("step") == "trace"]}
        for step in steps:  # what the live context noted about its windows
            for key in ("dmesg_window", "trace_dat"):
                if step.get(key):
                    self.evidence[key] = step[key]

    def _next(self, kind: str) -> dict | None:
        assert self._cursor is not None
        queue = self._cursor[kind]
        return queue.pop(0) if queue else None

    # -- the calls a case makes --------------------------------------------------
    def run(self, argv: list[str], timeout: float = 30.0) -> CommandResult:
        raise NeedsLiveTarget(f"the case runs {' '.join(argv)[:80]!r} on its target, which a recording cannot answer")

    def run_probe(self, scenario: str, /, timeout: float | None = None, **args: Any) -> ProbeOutput:
        self._probe_runs += 1
        wanted = {k: str(v) for k, v in args.items()}
        step = self._next("probe")
        if step is None or step.get("scenario") != scenario or step.get("args") != wanted:
            recorded = (f"recorded: {step.get('scenario')} {step.get('args')}" if step
                        else "the recording has no more probe runs")
            raise NeedsLiveTarget(f"probe run {self._probe_runs} ({scenario} {wanted}) was not recorded ({recorded})")
        n = step.get("run", self._probe_runs)
        if step.get("timed_out"):
            self.check_that(f"probe run {n} ({scenario}) ends within the case time limit", False,
                            f"killed after {step['timeout'] + 5} s (status {step['status']}); its partial "
                            f"output is in probe-{n}.jsonl", f"done within {step['timeout']} s", "probe")
            self.evidence.setdefault("probe_timeouts", []).append(
                {"run": n, "scenario": scenario, "killed_after_s": step["timeout"] + 5})
        out = parse_probe_output(self._text(f"probe-{n}.jsonl"))
        out.status = int(step.get("status", 0))
        out.stderr = self._text(f"probe-{n}.stderr")
        self.evidence.setdefault("probe_runs", []).append(
            {"scenario": scenario, "args": wanted, "status": out.status})
        return out

    def read_file(self, path: str, timeout: float = 10.0) -> str:
        raise NeedsLiveTarget(f"the case reads {path} on its target, which a recording cannot answer")

    def dmesg(self) -> str:
        step = self._next("dmesg")
        if step is None:
            raise NeedsLiveTarget("the case reads the kernel log more often than the recording did")
        return str(step.get("delta", ""))

    def start_trace(self, prefix: str = "") -> None:
        raise NeedsLiveTarget("the case arms tracing itself, which a recording cannot answer")

    def stop_trace(self) -> tracing.Trace:
        if self._trace is None:
            step = self._next("trace")
            text = self._text("trace.txt") if step is not None and step.get("files") else ""
            self._trace = tracing.parse_ftrace(text)
        return self._trace

    @property
    def arch(self) -> str:
        return str((self.recording or {}).get("arch", ""))

    @property
    def kernel(self) -> tuple[int, int]:
        return kernel_version(str((self.recording or {}).get("kernel_release", "")))

    def _text(self, name: str) -> str:
        path = self.case_dir / name
        return path.read_text(errors="replace") if path.exists() else ""


def replay_case(spec: CaseSpec, case_dir: Path, recording: dict,
                evidence_before: dict[str, Any] | None = None) -> CaseResult:
    """Run the case function on its recording, then kernel health on its dmesg delta, and judge.

    `evidence_before`: what the runner had put in the case's evidence before the case ran
    (EVIDENCE_BEFORE_THE_CASE, from report.json). A recording without `pristine` (schema 1)
    replays as on a guest that was not pristine, unless the caller puts it in."""
    ctx = ReplayContext(spec, cast(Target, None), "", case_dir, "", None, None,
                        seed=recording.get("seed"), timeout=float(recording.get("timeout") or spec.timeout),
                        pristine=recording.get("pristine") is True,
                        binder_device=recording.get("binder_device") or "/dev/binder",
                        driver=driver_facts(str(recording.get("driver") or "c")), recording=recording)
    result = ctx.result
    for key, value in (evidence_before or {}).items():
        if key in EVIDENCE_BEFORE_THE_CASE:
            result.evidence.setdefault(key, value)
    try:
        spec.func(ctx)
    except CaseSkipped as exc:
        result.outcome, result.reason = Outcome.SKIPPED, str(exc)
    except NeedsLiveTarget as exc:
        result.outcome, result.reason = Outcome.ERROR, f"needs a live target: {exc}"
    except Exception as exc:  # noqa: BLE001 - a bug in the case, named as the runner names it
        result.outcome = Outcome.ERROR
        result.reason = f"harness error: {type(exc).__name__}: {exc}".splitlines()[0]
    delta = case_dir / "dmesg.txt"
    if delta.exists():  # the runner keeps it whenever the target outlived the case
        check_health(ctx, delta.read_text(errors="replace"))
    judge(result)
    return result
