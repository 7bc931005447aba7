"""`binder-harness matrix FILE --out DIR [-j N]`: targets x kernels x cases in one command.

A matrix file is YAML:

    targets: [qemu:x86_64, qemu:arm64]
    kernels: [default, qemu-x86_64-6.1.0-56, qemu-arm64-6.1.0-56]   # image recipes
    cases: ["one_copy.*", "limits.*"]                               # optional; default every case
    timeout: 90                                                     # optional per-case limit, seconds
    seed: 4242                                                      # optional, for stress cases
    not_applicable: ["compat.*"]                                    # optional, as run --not-applicable

A cell is one target with one kernel recipe of the same arch (`default` is the target's
own images/qemu-ARCH recipe); every kernel must fit some target. With `-j N` up to N cells
run at once, each as its own `binder-harness run` process on N // (cells at once) guests
(with -j 1, one after another in this process), each into DIR/cells/<recipe>/ as an ordinary run
(report.json, junit.xml, report.html, evidence). After every cell DIR gets:

  matrix.json   {"matrix_schema": 1, "file", "command",
                 "cells": [{"cell": "x86_64/qemu-x86_64", "target", "image", "dir",
                            "status": "done|error|not run", "error", "kernel_release", "driver", "accel",
                            "summary": {passed, failed, error, skipped, not_applicable}, "timings"}],
                 "cases": [{"cell", "kernel_release", "driver", "id", "outcome", "reason", "duration_s"}],
                 "summary": {passed, failed, error, skipped, not_applicable}, "timings": {"total_s"},
                 "driver_comparisons": [{"c_cell", "rust_cell", "arch", "kernel_version", "cases", "agree",
                                         "html", "md"}]}
  rust-vs-c-ARCH-VERSION.html and .md   for each C cell and Rust cell of the same kernel version and
                arch (e.g. qemu-x86_64-7.3 and qemu-x86_64-7.3-rust): the C-against-Rust table, case by
                case, with the count of cases that agree (harness/reports/driver_compare.py)
  junit.xml     one <testsuite> per cell (named by the cell), testcases classed "<cell>.<family>"
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness import timing
from harness.reports import driver_compare, model, report
from harness.reports import comparison_html
from harness.reports.driver_compare import DriverComparison
from harness.reports.model import Report, ReportCase, Target
from harness.judging.catalog import CaseSpec, select_cases
from harness.errors import ConfigError
from harness.files import atomic_write_text
from harness.building.recipes import Recipe, YamlFields, YamlMap, find_recipe, load_recipe, read_yaml_map, resolve_recipe
from harness.running.runner import RunOptions, run_cases
from harness.targets import TargetOptions
from harness.targets.spec import TargetSpec
from harness.judging.verdicts import ExitStatus, Outcome, summarize

MATRIX_SCHEMA = 1


@dataclass(frozen=True)
class Cell:
    target: TargetSpec  # qemu:ARCH
    recipe: Recipe

    @property
    def id(self) -> str:
        return f"{self.recipe.arch}/{self.recipe.name}"

    @property
    def dir_name(self) -> str:
        return f"cells/{self.recipe.name}"


@dataclass(frozen=True)
class Matrix:
    path: Path
    cells: tuple[Cell, ...]
    cases: tuple[CaseSpec, ...]
    timeout: float | None = None
    seed: int | None = None
    not_applicable: tuple[str, ...] = ()  # ids or globs declared not to apply (run --not-applicable)


@dataclass
class CellOutcome:
    cell: Cell
    status: str = "not run"  # done | error | not run
    error: str = ""
    report: Report | None = None  # the cell's report.json, when it left one


# -- reading the file ------------------------------------------------------------------------
def _read(path: Path) -> YamlMap:
    return read_yaml_map(path, "matrix file", "a matrix file is a YAML mapping with 'targets', 'kernels' and 'cases'")


def _strings(f: YamlFields, key: str, example: str, default=...) -> list[str]:
    values = f.get(key, list, default)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise f.error(key, f"must be a non-empty list of strings, e.g. [{example}]")
    return values


def load_matrix(path: Path) -> Matrix:
    """Read and check a matrix file; every problem is one line naming file, line and field."""
    f = YamlFields(_read(path))
    f.check_known({"targets", "kernels", "cases", "timeout", "seed", "not_applicable"})
    targets = _strings(f, "targets", "qemu:x86_64, qemu:arm64")
    arches: dict[str, TargetSpec] = {}
    for text in targets:
        try:
            spec = TargetSpec.parse(text)
        except ConfigError as exc:
            raise f.error("targets", str(exc).replace("--target ", "")) from None
        if spec.arch is None:
            raise f.error("targets", f"{spec}: only qemu:ARCH targets boot the kernels a matrix names")
        if spec.arch in arches:
            raise f.error("targets", f"names qemu:{spec.arch} twice")
        arches[spec.arch] = spec
    cells: list[Cell] = []
    for name in _strings(f, "kernels", "default, qemu-x86_64-6.1.0-56"):
        recipes = [resolve_recipe(None, arch) for arch in arches] if name == "default" else [_recipe(f, name, path)]
        for recipe in recipes:
            if recipe.arch not in arches:
                raise f.error("kernels", f"{name} is a {recipe.arch} kernel, and no target is qemu:{recipe.arch}; "
                                         f"add it to 'targets' or drop the kernel")
            cell = Cell(arches[recipe.arch], recipe)
            if any(c.id == cell.id for c in cells):
                raise f.error("kernels", f"names {cell.id} twice")
            cells.append(cell)
    patterns = _strings(f, "cases", "one_copy.*", default=["*"])
    try:
        cases = select_cases(patterns)
    except ConfigError as exc:
        raise f.error("cases", str(exc)) from None
    timeout = f.get("timeout", (int, float), None)
    if timeout is not None and timeout <= 0:
        raise f.error("timeout", f"must be a positive number of seconds, got {timeout}")
    not_applicable = _strings(f, "not_applicable", "compat.*") if f.has("not_applicable") else []
    for pattern in not_applicable:
        try:
            select_cases([pattern])
        except ConfigError as exc:
            raise f.error("not_applicable", str(exc)) from None
    return Matrix(path, tuple(cells), tuple(cases), timeout, f.get("seed", int, None), tuple(not_applicable))


def _recipe(f: YamlFields, name: str, matrix_path: Path) -> Recipe:
    try:
        return load_recipe(find_recipe(name, matrix_path.parent))
    except ConfigError as exc:
        raise f.error("kernels", f"{name}: {exc}") from None


# -- running it --------------------------------------------------------------------------------
def run_matrix(matrix: Matrix, out: Path, jobs: int, command_line: str, progress=print) -> list[CellOutcome]:
    """Run every cell into out/cells/<recipe>/, rewriting the combined files after each.

    With -j N and several cells, up to N cells run at once, each as its own `binder-harness run`
    process (its own guests, timings and signals) on N // (cells at once) guests; otherwise the
    cells run one after another in this process, each on N guests."""
    t0 = time.monotonic()
    outcomes = [CellOutcome(c) for c in matrix.cells]
    lock = threading.Lock()

    def combined_now() -> None:
        with lock:
            write_combined(matrix, outcomes, out, command_line, time.monotonic() - t0)

    try:
        at_once = min(jobs, len(outcomes))
        if at_once > 1:
            _run_cells_at_once(matrix, outcomes, out, at_once, max(1, jobs // at_once), progress, combined_now)
        else:
            for outcome in outcomes:
                _run_cell(matrix, outcome, out, jobs, command_line, progress)
                combined_now()
    finally:
        combined_now()
    return outcomes


def _run_cells_at_once(matrix: Matrix, outcomes: list[CellOutcome], out: Path, at_once: int, guests: int,
                       progress, combined_now) -> None:
    """Cells from one queue, `at_once` running at a time, each a child `binder-harness run`."""
    queue = list(outcomes)
    procs: dict[int, subprocess.Popen] = {}
    stopping = threading.Event()
    take = threading.Lock()

    def worker() -> None:
        while not stopping.is_set():
            with take:
                if not queue:
                    return
                outcome = queue.pop(0)
            _run_cell_process(matrix, outcome, out, guests, progress, procs, stopping)
            combined_now()

    threads = [threading.Thread(target=worker, name=f"cells-{n}", daemon=True) for n in range(at_once)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        stopping.set()
        for proc in list(procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the child closes its run directory, as on Ctrl-C
        for t in threads:
            t.join(60)
        raise


def _run_cell_process(matrix: Matrix, outcome: CellOutcome, out: Path, guests: int, progress,
                      procs: dict[int, subprocess.Popen], stopping: threading.Event) -> None:
    cell = outcome.cell
    cell_dir = out / cell.dir_name
    argv = [sys.executable, "-m", "harness.cli", "run", *(c.id for c in matrix.cases), "--target", cell.target.text,
            "--image", str(cell.recipe.path), "--out", str(cell_dir), "-j", str(guests)]
    if matrix.timeout is not None:
        argv += ["--timeout", str(matrix.timeout)]
    if matrix.seed is not None:
        argv += ["--seed", str(matrix.seed)]
    for pattern in matrix.not_applicable:
        argv += ["--not-applicable", pattern]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # Ctrl-C reaches it through us, once
    procs[id(outcome)] = proc
    last = ""
    assert proc.stderr is not None
    for line in proc.stderr:
        line = line.rstrip("\n")
        if line.strip():
            last = line
            progress(f"[{cell.id}] {line}")
    status = proc.wait()
    if status in (ExitStatus.PASSED, ExitStatus.FAILED, ExitStatus.NOT_JUDGED):  # the cell ran: its report says how
        outcome.status = "done"
    else:
        outcome.status = "error"
        outcome.error = "interrupted" if status == ExitStatus.INTERRUPTED or stopping.is_set() else \
            (last.removeprefix("binder-harness: ") or f"binder-harness run exited {status}")
    _load_cell_report(outcome, cell_dir)


def _run_cell(matrix: Matrix, outcome: CellOutcome, out: Path, jobs: int, command_line: str, progress) -> None:
    cell = outcome.cell
    cell_dir = out / cell.dir_name
    options = RunOptions(target_spec=cell.target, out_dir=cell_dir, timeout=matrix.timeout, seed=matrix.seed,
                         not_applicable=matrix.not_applicable,
                         command_line=f"{command_line}  # cell {cell.id}",
                         target=TargetOptions(image=str(cell.recipe.path)))
    cell_progress = lambda line: progress(f"[{cell.id}] {line}")  # noqa: E731
    timing.reset()  # the phases in this cell's report.json are this cell's alone
    try:
        report.prepare_out_dir(cell_dir)
        specs = list(matrix.cases)
        if jobs > 1 and len(specs) > 1:
            from harness.running.parallel import run_parallel

            run_parallel(specs, options, jobs, cell_progress)
        else:
            run_cases(specs, options, cell_progress)
        outcome.status = "done"
    except ConfigError as exc:  # this cell cannot run (e.g. its kernel cannot be fetched); the next may
        outcome.status, outcome.error = "error", str(exc)
        cell_progress(f"cell error: {exc}")
    except KeyboardInterrupt:
        outcome.status, outcome.error = "error", "interrupted"
        _load_cell_report(outcome, cell_dir)
        raise
    _load_cell_report(outcome, cell_dir)


def _load_cell_report(outcome: CellOutcome, cell_dir: Path) -> None:
    try:
        outcome.report = model.read(cell_dir / model.REPORT_FILE)
    except ConfigError:  # none, or unreadable: cell_report stands in for it
        outcome.report = None


def cell_report(matrix: Matrix, outcome: CellOutcome, command_line: str = "") -> Report:
    """The cell's report, with every case it never reached an error that says why; for a cell that
    left no report.json, one standing in for it: its target as far as the matrix knows it."""
    cell = outcome.cell
    found = outcome.report or Report(Target(cell.target.text, arch=cell.recipe.arch, image=cell.recipe.name,
                                            boot_error=outcome.error or "cell not run"),
                                     command=f"{command_line}  # cell {cell.id}" if command_line else "")
    seen = {c.id for c in found.cases}
    why = f"cell not run: {outcome.error}" if outcome.error else "cell not run"
    return replace(found, cases=[*found.cases, *(ReportCase(s.id, Outcome.ERROR, why)
                                                  for s in matrix.cases if s.id not in seen)])


def combined(matrix: Matrix, outcomes: list[CellOutcome], command_line: str, total_s: float) -> dict:
    cells: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    for o in outcomes:
        rep = cell_report(matrix, o)
        release = rep.target.kernel_release or ""
        driver = rep.target.driver or ""  # "c" or "rust", as the cell's target said (binder_driver.py)
        for c in rep.cases:  # each verdict with the kernel it was reached on
            cases.append({"cell": o.cell.id, "kernel_release": release, "driver": driver, "id": c.id, "outcome": c.outcome,
                          "reason": c.reason, "duration_s": c.duration_s})
        cells.append({"cell": o.cell.id, "target": o.cell.target.text, "image": o.cell.recipe.name,
                      "dir": o.cell.dir_name, "status": o.status, "error": o.error,
                      "kernel_release": release, "driver": driver, "accel": rep.target.accel or "",
                      "accel_reason": rep.target.accel_reason or "",
                      "summary": rep.summary, "timings": o.report.timings.to_json() if o.report else {}})
    return {"matrix_schema": MATRIX_SCHEMA, "file": str(matrix.path), "command": command_line,
            "cells": cells, "cases": cases, "summary": summarize(c["outcome"] for c in cases),
            "timings": {"total_s": round(total_s, 3)}}


def combined_junit(matrix: Matrix, outcomes: list[CellOutcome], data: dict) -> str:
    s = data["summary"]
    root = ET.Element("testsuites", name="binder-harness matrix", tests=str(len(data["cases"])),
                      failures=str(s["failed"]), errors=str(s["error"]), skipped=str(report.junit_skipped(s)),
                      time=f"{data['timings']['total_s']:.3f}")
    for o in outcomes:
        suite = ET.fromstring(report.junit_xml(cell_report(matrix, o))).find("testsuite")
        assert suite is not None, "report.junit_xml writes one testsuite"
        suite.set("name", o.cell.id)
        for tc in suite.iter("testcase"):
            tc.set("classname", f"{o.cell.id}.{tc.get('name', '').split('.')[0]}")
        root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def driver_comparisons(outcomes: list[CellOutcome]) -> list[tuple[CellOutcome, CellOutcome, DriverComparison]]:
    """Each C cell with each Rust cell of the same kernel version and arch that both left a report:
    (C cell, Rust cell, their table) (harness/reports/driver_compare.py)."""
    found = []
    ran = [o for o in outcomes if o.report is not None]
    for a in ran:
        for b in ran:
            assert a.report is not None and b.report is not None
            if a.report.target.driver == "c" and b.report.target.driver == "rust" and \
                    driver_compare.refusal(a.report, b.report, a.cell.dir_name, b.cell.dir_name) is None:
                found.append((a, b, driver_compare.compare(a.report, b.report, f"{a.cell.dir_name}/{model.REPORT_FILE}",
                                                           f"{b.cell.dir_name}/{model.REPORT_FILE}")))
    return found


def write_comparisons(outcomes: list[CellOutcome], out: Path) -> list[dict[str, Any]]:
    """rust-vs-c-ARCH-VERSION.html and .md in the matrix directory for each C and Rust cell pair of
    the same kernel; matrix.json's `driver_comparisons` lists them with the count of cases that agree."""
    listed = []
    for c_cell, rust_cell, cmp in driver_comparisons(outcomes):
        name = f"rust-vs-c-{cmp.c.arch}-{cmp.c.kernel_version}"
        atomic_write_text(out / f"{name}.html", comparison_html.page(cmp))
        atomic_write_text(out / f"{name}.md", driver_compare.markdown(cmp))
        listed.append({"c_cell": c_cell.cell.id, "rust_cell": rust_cell.cell.id, "arch": cmp.c.arch,
                       "kernel_version": cmp.c.kernel_version, "cases": len(cmp.cases), "agree": cmp.agreeing,
                       "html": f"{name}.html", "md": f"{name}.md"})
    return listed


def write_combined(matrix: Matrix, outcomes: list[CellOutcome], out: Path, command_line: str, total_s: float) -> dict:
    data = combined(matrix, outcomes, command_line, total_s)
    data["driver_comparisons"] = write_comparisons(outcomes, out)
    atomic_write_text(out / "matrix.json", json.dumps(data, indent=1) + "\n")
    atomic_write_text(out / "junit.xml", combined_junit(matrix, outcomes, data))
    return data
