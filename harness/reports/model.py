"""report.json as one typed model: every writer builds a Report, every reader loads one (DESIGN §2).

REPORT_SCHEMA is report.json's own version, its top-level "schema". It is not the judge's
recording schema (cases/<id>/recording.json "recording_schema", harness/judging/context.py
RECORDING_SCHEMA), nor matrix.json's "matrix_schema" or lava.json's "lava_schema".

  schema 1  target, cases, summary, timings, command, seed, and the fields added since (DESIGN §2);
            a case's files are under cases/<id>/ unless its "dir" says otherwise (pytest -n N)
  schema 2  the same fields; every case names its "dir", and target.driver ("c" or "rust") is
            written where a target says which driver it runs

Both load; only schema 2 is written: `binder-harness judge` on a schema-1 run directory rewrites
its report.json as schema 2 (`binder-harness report` renders it and leaves it as it is). "summary"
is never read: it is counted from the cases when written.
A field this model does not know (a newer harness's) is kept in `extra` and written back.

Dataclasses and a small loader rather than pydantic: the model is a few plain records whose
evidence and checks' values are free JSON (a case's measured values), the rest of the harness
is dataclasses (Check and CaseResult are reused as they are), and a bad report.json must give
one line naming the file and field, which the loader says directly rather than by reformatting
a validation error tree. No dependency is added for it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, TypeVar

from harness.errors import ConfigError
from harness.files import atomic_write_text
from harness.judging.verdicts import Check, CaseResult, Outcome, summarize

REPORT_FILE = "report.json"
REPORT_SCHEMA = 2
REPORT_SCHEMAS_READ = (1, REPORT_SCHEMA)
CASES_DIR = "cases"  # a case's files: cases/<id>/ unless its "dir" says otherwise
_FIX = "re-run to regenerate it, or read it with the binder-harness version that wrote it"

T = TypeVar("T")


class ReportError(ConfigError):
    """A report.json this model cannot read: one line naming the file and the field."""


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a JSON object",
               list: "a JSON list", type(None): "null"}


def _shown(value: object) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, (dict, list)) else \
        ("a JSON object" if isinstance(value, dict) else "a JSON list")
    return text if len(text) <= 60 else text[:57] + "..."


class _Fields:
    """Typed access to one JSON object of a report.json, with errors naming the file and field."""

    def __init__(self, data: object, where: str, file: str):
        self.where, self.file = where, file
        if not isinstance(data, dict):
            raise ReportError(f"{file}: field '{where or '(top level)'}' is {_shown(data)}, expected a JSON object; "
                              f"{_FIX}")
        self.data: dict[str, Any] = data

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, problem: str) -> ReportError:
        return ReportError(f"{self.file}: field '{self.name(key)}' {problem}; {_FIX}")

    def get(self, key: str, kinds: tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.error(key, "is missing")
            return default
        value = self.data[key]
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise self.error(key, f"is {_shown(value)}, expected {' or '.join(_KIND_NAMES[k] for k in kinds)}")
        return value

    def value(self, key: str) -> Any:
        """Any JSON value (a check's expected or measured value); it must be there."""
        if key not in self.data:
            raise self.error(key, "is missing")
        return self.data[key]

    def text(self, key: str, default: Any = ...) -> Any:
        return self.get(key, (str,), default)

    def optional(self, key: str, kinds: tuple[type, ...]) -> Any:
        """The value at key, or None when it is absent or null."""
        return self.get(key, (*kinds, type(None)), None)

    def sub(self, key: str, default: Any = ...) -> _Fields | None:
        value = self.get(key, (dict,), default)
        return None if value is None else _Fields(value, self.name(key), self.file)

    def items(self, key: str, read: Callable[[_Fields], T], default: Any = ...) -> list[T] | None:
        value = self.get(key, (list,), default)
        if value is None:
            return None
        return [read(_Fields(v, f"{self.name(key)}[{i}]", self.file)) for i, v in enumerate(value)]

    def rest(self, known: type, derived: tuple[str, ...] = ()) -> dict[str, Any]:
        """The fields a dataclass does not declare (nor `derived` from those it does), kept as they were."""
        names = {f.name for f in fields(known)} | set(derived)
        return {k: v for k, v in self.data.items() if k not in names}


def _without_none(pairs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pairs.items() if v is not None}


@dataclass
class Target:
    """report.json's `target`: what the cases ran on (runner.describe_target)."""

    spec: str  # qemu:x86_64, ssh://..., adb:SERIAL, local
    arch: str | None = None
    kernel_release: str | None = None
    accel: str | None = None  # kvm, tcg, or none for a device the harness does not boot
    accel_reason: str | None = None
    binder_module: str | None = None  # "stock" or the --binder-module path
    build_id: str | None = None
    binder_module_sha256: str | None = None
    image: str | None = None  # the image recipe's name
    kernel_source: str | None = None  # "debian PACKAGE=VERSION" or a file
    driver: str | None = None  # schema 2: "c" or "rust", where the target says
    boot_error: str | None = None  # no boot or connection succeeded: why
    missing: str | None = None  # which fields are unknown, and why
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, f: _Fields) -> Target:
        known = {x.name: f.optional(x.name, (str,)) for x in fields(cls) if x.name not in ("spec", "extra")}
        return cls(spec=f.text("spec"), **known, extra=f.rest(cls))

    def to_json(self) -> dict[str, Any]:
        return _without_none({x.name: getattr(self, x.name) for x in fields(self) if x.name != "extra"}) | self.extra


def target_of(info: dict[str, Any]) -> Target:
    """report.json's `target` from what a run knows of its target (runner.describe_target's fields)."""
    return Target.read(_Fields(info, "target", "(the run's target)"))


@dataclass
class GuestStart:
    """A case's `guest_start` (runner.guest_start): how its guest came to be, and whether the case
    was the first it served."""

    how: str  # "restored" (from `snapshot`), "booted", or "connected" for a device
    snapshot: str | None = None
    fresh: bool = False

    @classmethod
    def read(cls, f: _Fields) -> GuestStart:
        return cls(f.text("how"), f.optional("snapshot", (str,)), f.get("fresh", (bool,)))

    @classmethod
    def of(cls, value: dict | None) -> GuestStart | None:
        return None if value is None else cls.read(_Fields(value, "guest_start", "(a case result)"))

    def to_json(self) -> dict[str, Any]:
        return {"how": self.how, "snapshot": self.snapshot, "fresh": self.fresh}


@dataclass(frozen=True)
class DeviceNote:
    """A case's evidence.binder_device: the binder device it opened, and how that came to be."""

    path: str
    made_by: str = ""


def _read_check(f: _Fields) -> Check:
    return Check(f.text("name"), f.value("expected"), f.value("measured"),
                 f.get("passed", (bool,)), f.text("ref"))


def _check_json(c: Check) -> dict[str, Any]:
    return {"name": c.name, "expected": c.expected, "measured": c.measured, "passed": c.passed, "ref": c.ref}


@dataclass
class ReportCase:
    """One case of report.json: its verdict, checks, time, evidence envelope and where its files are.

    `outcome` is kept as written: an outcome this harness does not know (a report from elsewhere)
    is never shown as a pass. `evidence` is free JSON: the values the case measured (byte counts,
    errnos, BR codes, ...) in an envelope of what the harness notes of every case, under keys of
    its own: binder_device {path, made_by} and resident_context_manager (runner), struct_offsets,
    probe_runs, probe_timeouts, dmesg_window, dmesg_bad_lines, unexpected_binder_messages,
    binder_line_counts, binder_accounting, trace_dat (judging/context.py and health.py), trace and accel_fallback
    (runner), selinux (verdicts.explain_denial) and commands (reports/coverage.py)."""

    id: str
    outcome: str
    reason: str = ""
    duration_s: float = 0.0
    evidence: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    guest: int | None = None  # which guest ran it, in a run on several guests
    guest_start: GuestStart | None = None
    dir: str = ""  # its files, relative to the run directory; cases/<id> when not given (schema 1)
    judged: str | None = None  # binder-harness judge: "replayed", "recorded", "pending" (a LAVA job's), ...
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.outcome = str(self.outcome)  # an Outcome is written as its value
        self.dir = self.dir or f"{CASES_DIR}/{self.id}"

    @classmethod
    def read(cls, f: _Fields) -> ReportCase:
        checks = f.items("checks", _read_check, [])
        start = f.sub("guest_start", None)
        return cls(f.text("id"), f.text("outcome"), f.text("reason", ""), f.get("duration_s", (float,), 0.0),
                   f.get("evidence", (dict,), {}), checks or [], f.optional("guest", (int,)),
                   GuestStart.read(start) if start else None, f.text("dir", ""),
                   f.optional("judged", (str,)), f.rest(cls))

    @classmethod
    def of(cls, result: CaseResult, dir: str = "") -> ReportCase:
        """A case result as report.json gets it."""
        return cls(result.id, str(result.outcome), result.reason, round(result.duration_s, 3), result.evidence,
                   list(result.checks), result.guest, GuestStart.of(result.guest_start), dir)

    def result(self) -> CaseResult:
        """The case as a CaseResult, as it was written (an unknown outcome is an error)."""
        outcome = self.known_outcome or Outcome.ERROR
        return CaseResult(self.id, outcome, self.reason, self.duration_s, dict(self.evidence), list(self.checks),
                          self.guest, self.guest_start.to_json() if self.guest_start else None)

    @property
    def known_outcome(self) -> Outcome | None:
        try:
            return Outcome(self.outcome)
        except ValueError:
            return None

    @property
    def binder_device(self) -> DeviceNote | None:
        """evidence.binder_device, when the case says which device it opened."""
        note = self.evidence.get("binder_device")
        if not isinstance(note, dict) or not isinstance(note.get("path"), str) or not note["path"]:
            return None
        return DeviceNote(note["path"], str(note.get("made_by") or ""))

    def files(self, run_dir: Path) -> Path:
        """The directory of its evidence: its `dir`, or cases/<id> for a `dir` that leads out of the run directory."""
        where = self.dir if ".." not in Path(self.dir).parts and not Path(self.dir).is_absolute() else None
        return run_dir / (where or f"{CASES_DIR}/{self.id}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "outcome": self.outcome, "reason": self.reason,
                               "duration_s": self.duration_s, "evidence": self.evidence,
                               "checks": [_check_json(c) for c in self.checks]}
        out |= _without_none({"guest": self.guest, "guest_start": self.guest_start.to_json() if self.guest_start
                              else None, "dir": self.dir, "judged": self.judged})
        return out | self.extra


@dataclass
class Timings:
    """report.json's `timings`: seconds and counts of the run, and its phases (harness/timing.py)."""

    boot_s: float = 0.0
    total_s: float = 0.0
    boots: int | None = None
    restore_s: float | None = None
    restores: int | None = None  # guests restored from a snapshot instead of booted
    phases: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, f: _Fields) -> Timings:
        return cls(f.get("boot_s", (float,), 0.0), f.get("total_s", (float,), 0.0), f.optional("boots", (int,)),
                   f.optional("restore_s", (float,)), f.optional("restores", (int,)), f.optional("phases", (dict,)),
                   f.rest(cls))

    def to_json(self) -> dict[str, Any]:
        return _without_none({x.name: getattr(self, x.name) for x in fields(self) if x.name != "extra"}) | self.extra


@dataclass
class Guest:
    """One guest of a run on several (-j N: its boots and cases; pytest -n N: its run directory)."""

    guest: int
    cases: list[str]
    console: str  # its console.log, relative to the run directory
    boots: int = 0
    restores: int = 0
    boot_s: float | None = None
    restore_s: float | None = None
    dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, f: _Fields) -> Guest:
        return cls(f.get("guest", (int,)), f.get("cases", (list,), []), f.text("console"),
                   f.get("boots", (int,), 0), f.get("restores", (int,), 0), f.optional("boot_s", (float,)),
                   f.optional("restore_s", (float,)), f.optional("dir", (str,)), f.rest(cls))

    def to_json(self) -> dict[str, Any]:
        return _without_none({x.name: getattr(self, x.name) for x in fields(self) if x.name != "extra"}) | self.extra


@dataclass
class Judged:
    """report.json's `judged` after binder-harness judge: when, by what, the cases that kept their
    recorded verdict and why, and a note per case whose replay could not make every live check."""

    by: str
    at: str
    kept_as_recorded: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, f: _Fields) -> Judged:
        return cls(f.text("by"), f.text("at"), f.get("kept_as_recorded", (dict,), {}), f.get("notes", (dict,), {}))

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "at": self.at, "kept_as_recorded": self.kept_as_recorded, "notes": self.notes}


@dataclass
class LavaResult:
    """report.json's `lava` for a LAVA job's run directory: the job's result, its log, and what
    lava-test-case said per case."""

    job_result: str
    log: str
    lava_test_case: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, f: _Fields) -> LavaResult:
        return cls(f.text("job_result"), f.text("log"), f.get("lava_test_case", (dict,), {}))

    def to_json(self) -> dict[str, Any]:
        return {"job_result": self.job_result, "log": self.log, "lava_test_case": self.lava_test_case}


@dataclass
class Report:
    """One run's report.json."""

    target: Target
    cases: list[ReportCase] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    command: str = ""
    seed: int | None = None
    coverage: dict[str, Any] | None = None  # harness/reports/coverage.py's section
    jobs: int | None = None  # guests run at once (-j N)
    guests: list[Guest] | None = None
    resident_context_manager: dict[str, Any] | None = None  # --resident-context-manager: how it fared
    lava: LavaResult | None = None
    judged: Judged | None = None
    schema: int = REPORT_SCHEMA  # as read; always written as REPORT_SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, int]:
        """How many cases of each outcome, counted from the cases (verdicts.summarize)."""
        return summarize(c.outcome for c in self.cases)

    @classmethod
    def read(cls, f: _Fields) -> Report:
        schema = f.data.get("schema")
        if isinstance(schema, bool) or schema not in REPORT_SCHEMAS_READ:
            raise ReportError(f"{f.file}: field 'schema' is {_shown(schema) if 'schema' in f.data else 'missing'}, "
                              f"expected {' or '.join(map(str, REPORT_SCHEMAS_READ))}; render it with the "
                              "binder-harness version that wrote it")
        for key, kind in (("target", dict), ("cases", list), ("timings", dict)):  # the shape first, then each part
            f.get(key, (kind,))
        target, timings = f.sub("target"), f.sub("timings")
        assert target is not None and timings is not None
        lava, judged = f.sub("lava", None), f.sub("judged", None)
        return cls(Target.read(target), f.items("cases", ReportCase.read) or [], Timings.read(timings),
                   f.text("command", ""), f.optional("seed", (int,)), f.optional("coverage", (dict,)),
                   f.optional("jobs", (int,)), f.items("guests", Guest.read, None),
                   f.optional("resident_context_manager", (dict,)), LavaResult.read(lava) if lava else None,
                   Judged.read(judged) if judged else None, schema, f.rest(cls, derived=("summary",)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": REPORT_SCHEMA, "target": self.target.to_json(),
                               "cases": [c.to_json() for c in self.cases], "summary": self.summary,
                               "timings": self.timings.to_json(), "command": self.command, "seed": self.seed}
        out |= _without_none({
            "coverage": self.coverage, "jobs": self.jobs,
            "guests": [g.to_json() for g in self.guests] if self.guests is not None else None,
            "resident_context_manager": self.resident_context_manager,
            "lava": self.lava.to_json() if self.lava else None,
            "judged": self.judged.to_json() if self.judged else None})
        return out | self.extra

    def text(self, compact: bool = False) -> str:
        """report.json's text: indented, or on one line (`compact`: json's C encoder, several times
        faster, for the copies written after each case while a run goes on)."""
        if compact:
            return json.dumps(self.to_json(), default=str, separators=(",", ":")) + "\n"
        return json.dumps(self.to_json(), indent=1, default=str) + "\n"


def from_json(data: object, file: str = REPORT_FILE) -> Report:
    """The Report of a parsed report.json; ReportError (one line, naming `file` and the field) when
    it is not one."""
    return Report.read(_Fields(data, "", file))


def case_from_json(data: object, file: str) -> ReportCase:
    """One parsed report.json case (e.g. kept in a file of its own); ReportError (one line) when it is not one."""
    return ReportCase.read(_Fields(data, "case", file))


def read(path: Path) -> Report:
    """The Report in a report.json file; ReportError (one line) when it is missing or not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: missing; give a run directory made by 'binder-harness run --out DIR'") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc}); {_FIX}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ReportError(f"{path}: not valid JSON ({str(exc).splitlines()[0]}); re-run to regenerate it") from None
    return from_json(data, str(path))


def load_run(run_dir: Path) -> Report:
    """RUN_DIR/report.json; ReportError (one line) when RUN_DIR is not a run directory."""
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a directory; give a run directory made by 'binder-harness run --out DIR'")
    return read(run_dir / REPORT_FILE)


def write(report: Report, run_dir: Path, compact: bool = False) -> Path:
    """RUN_DIR/report.json, written atomically (on one line when `compact`: Report.text)."""
    path = run_dir / REPORT_FILE
    atomic_write_text(path, report.text(compact))
    return path
