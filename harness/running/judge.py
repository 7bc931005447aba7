"""`binder-harness judge RUN_DIR`: re-judge a run's recorded evidence with no target.

Every case that ran to its end on its target is replayed from cases/<id>/ (recording.json,
probe output, trace.txt, dmesg.txt; harness/judging/replay.py) by this harness's own case
code, and report.json, junit.xml and report.html are rewritten. A case whose recorded outcome
is an error or a skip (its guest died, it never ran, the target could not run it) keeps that
verdict: nothing was measured to judge again. report.json gains `"judged"`: when, by what, and
which cases kept their recorded verdict and why.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

from harness.errors import ConfigError
from harness.judging.cases import RECORDING_FILE, load_cases
from harness.judging.replay import RecordingError, load_recording, replay_case
from harness.judging.verdicts import UNCHECKED, CaseResult, Check, Outcome, summarize
from harness.reports import report
from harness.reports.html import load_report


# A case's "judged" while its evidence waits for `judge` (a LAVA job's, harness/running/lava.py):
# it is replayed, though its recorded outcome is "skipped" (not judged) until then.
PENDING = "pending"


def _recorded(case: dict) -> CaseResult:
    """A report.json case as a CaseResult, as it was written."""
    result = CaseResult(case["id"], Outcome(case.get("outcome", "error")), case.get("reason", ""),
                        float(case.get("duration_s", 0.0)), dict(case.get("evidence") or {}),
                        [Check(c["name"], c["expected"], c["measured"], bool(c["passed"]), c["ref"])
                         for c in case.get("checks", [])], case.get("guest"))
    return result


def judge_run(run_dir: Path) -> dict:
    """Replay every case of RUN_DIR, rewrite its reports, and return the new report dict."""
    data = load_report(run_dir)
    registry = load_cases()
    kept: dict[str, str] = {}
    results: list[dict] = []
    for case in data["cases"]:
        if not isinstance(case, dict) or not isinstance(case.get("id"), str):
            raise ConfigError(f"{run_dir / 'report.json'}: a 'cases' entry has no 'id'; re-run to regenerate it")
        recorded = _recorded(case)
        case_dir = run_dir / str(case.get("dir") or f"cases/{recorded.id}")
        try:
            recording = load_recording(case_dir)
        except RecordingError as exc:
            raise ConfigError(f"{exc}; re-run the case to record it again") from None
        spec = registry.get(recorded.id)
        if recorded.outcome in UNCHECKED and case.get("judged") != PENDING:
            kept[recorded.id] = f"recorded {recorded.outcome}: nothing measured to judge again"
            result = recorded
        elif spec is None:
            result = CaseResult(recorded.id, Outcome.ERROR,
                                f"not judged: case {recorded.id} is not in this harness's catalog",
                                recorded.duration_s, recorded.evidence, [], recorded.guest)
        elif recording is None:
            result = CaseResult(recorded.id, Outcome.ERROR,
                                f"needs a live target: {case_dir / RECORDING_FILE} is missing (a run made before "
                                "recordings were kept); run the case again", recorded.duration_s,
                                recorded.evidence, [], recorded.guest)
        else:
            device = recorded.evidence.get("binder_device")
            if isinstance(device, dict) and device.get("path") and not recording.get("binder_device"):
                # recorded before recordings named their device: report.json's evidence says which it was
                recording = {**recording, "binder_device": device["path"]}
            result = replay_case(spec, case_dir, recording)
            for key, value in recorded.evidence.items():  # what the runner noted beside the case
                result.evidence.setdefault(key, value)
            result.duration_s, result.guest = recorded.duration_s, recorded.guest
        entry = result.to_json()
        if "dir" in case:
            entry["dir"] = case["dir"]
        results.append(entry)
    data["cases"] = results
    data["summary"] = summarize(c["outcome"] for c in results)
    data["judged"] = {"by": "binder-harness judge", "at": datetime.datetime.now(datetime.timezone.utc)
                      .isoformat(timespec="seconds"), "kept_as_recorded": kept}
    try:
        report.rewrite(data, run_dir)
    except OSError as exc:
        raise ConfigError(f"{exc.filename or run_dir}: cannot write ({exc.strerror})") from None
    return data


def verdicts(data: dict) -> dict[str, tuple[str, str]]:
    """{case id: (outcome, reason)} of a report dict: what judging must reproduce."""
    return {c["id"]: (c["outcome"], c["reason"]) for c in data["cases"]}


def load_verdicts(run_dir: Path) -> dict[str, tuple[str, str]]:
    return verdicts(json.loads((run_dir / "report.json").read_text()))
