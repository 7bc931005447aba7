"""report.json's command coverage: per case `evidence.commands` and the top-level `coverage`
section (every command of the kernel under test's binder.h with the cases that exercised it,
or its declared exclusion: harness/judging/coverage.py).

The header is the one of the run's recipe kernel (harness/building/uapi.py), kept in the run
directory as uapi.json the first time, so `binder-harness judge` and `report` need no download.
A run on a kernel that is not a recipe's Debian package (--kernel, ssh, adb, local) has no header
of known source: its coverage section says so, and its cases' commands still name BC/BR.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.errors import ConfigError
from harness.files import atomic_write_text
from harness.building.recipes import find_recipe, load_recipe
from harness.building.uapi import UapiHeader, ensure_uapi_header, header_from_json
from harness.judging import coverage
from harness.judging.accounting import STATS_AFTER, STATS_BEFORE
from harness.reports.model import Report

UAPI_FILE = "uapi.json"
_memo: dict[tuple, dict[str, int]] = {}  # a case's files (names, sizes, mtimes) -> its commands


def run_header(report: Report, out: Path) -> tuple[UapiHeader | None, str]:
    """The run's binder.h (from uapi.json, else fetched for its recipe and kept there), or None and why."""
    kept = out / UAPI_FILE
    if kept.is_file():
        try:
            return header_from_json(json.loads(kept.read_text()), str(kept)), ""
        except (ValueError, ConfigError) as exc:
            return None, str(exc)
    target = report.target
    image, source = target.image, target.kernel_source or ""
    if not image or not source.startswith("debian "):
        return None, (f"the kernel under test ({target.kernel_release or '?'}) is not a recipe's Debian kernel, "
                      "so its binder.h is not known")
    try:
        header = ensure_uapi_header(load_recipe(find_recipe(image)), progress=lambda _msg: None)
    except ConfigError as exc:
        return None, f"binder.h of {image}: {exc}"
    atomic_write_text(kept, json.dumps(header.as_json(), indent=1) + "\n")
    return header, ""


def _commands(case_dir: Path, codes: dict[str, int]) -> dict[str, int]:
    files = sorted([*case_dir.glob("probe-*.jsonl"), case_dir / STATS_BEFORE, case_dir / STATS_AFTER])
    key = (str(case_dir), id(codes), tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file()))
    if key not in _memo:
        _memo[key] = coverage.read_case_commands(case_dir, codes)
    return _memo[key]


def annotate(report: Report, out: Path) -> None:
    """Set each case's evidence.commands and the report's `coverage` section, from the run's files."""
    header, why = run_header(report, out)
    codes = header.codes if header else {}
    per_case: dict[str, dict[str, int]] = {}
    for case in report.cases:
        case_dir = case.files(out)
        if not case_dir.is_dir():
            continue
        seen = _commands(case_dir, codes)
        if seen:
            case.evidence["commands"] = seen
            per_case[case.id] = seen
    if header is None:
        report.coverage = {"error": why}
        return
    rows = coverage.coverage([(c.name, c.family) for c in header.commands.all], per_case)
    report.coverage = {"header": header.source, "header_sha256": header.sha256, "sources": coverage.SOURCES,
                       "summary": coverage.summary(rows), "commands": [r.as_json() for r in rows]}
