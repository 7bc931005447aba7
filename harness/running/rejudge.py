"""`binder-harness judge RUN_DIR`: re-judge a run's recorded evidence with no target.

Every case that ran to its end on its target is replayed from cases/<id>/ (recording.json,
probe output, trace.txt, dmesg.txt; harness/judging/replay.py) by this harness's own case
code, with the context it had live (its recording's kernel, seed, time limit, device and
whether its guest was pristine; the evidence the runner gave it before it ran), and
report.json, junit.xml and report.html are rewritten. On unedited evidence that gives the live
run's checks, names and outcomes, again. A case whose recorded outcome is an error or a skip
(its guest died, it never ran, the target could not run it) keeps that verdict: nothing was
measured to judge again. Every field of a case that judging does not recompute (guest_start,
guest, duration_s, dir, ...) is kept as recorded.

report.json (harness/reports/model.py) gains `"judged"`: when, by what, which cases kept their
recorded verdict and why, and a note per case whose replay could not make every check its live run made. Each case
gains `"judged"`: "replayed", "recorded" (kept as recorded), or "replayed; " and that note.
"""
from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import replace
from pathlib import Path

from harness.errors import ConfigError
from harness.judging.catalog import CaseSpec, load_cases
from harness.judging.context import RECORDING_FILE
from harness.judging.replay import (EVIDENCE_BEFORE_THE_CASE, RecordingError, load_recording,
                                    replay_case)
from harness.judging.verdicts import UNCHECKED, CaseResult, Outcome, explain_denial
from harness.reports import model, report
from harness.reports.model import GuestStart, Judged, Report, ReportCase

# How runner.guest_start names a guest the harness booted or restored itself: with `fresh`
# (the case was the first it served) that is CaseContext.pristine.
OWN_GUESTS = ("booted", "restored")
PRISTINE_UNKNOWN = ("checks a case makes only on a pristine guest could not be replayed: neither its "
                    f"{RECORDING_FILE} (recording_schema 1) nor report.json's guest_start says whether its guest was")


# A case's "judged" while its evidence waits for `judge` (a LAVA job's, harness/running/lava.py):
# it is replayed, though its recorded outcome is "skipped" (not judged) until then.
PENDING = "pending"


def pristine_from_guest_start(guest_start: GuestStart | None) -> bool | None:
    """Whether a case's guest was pristine (CaseContext.pristine), from its report.json
    guest_start (runner.guest_start): a guest the harness booted or restored, serving its first
    case. None when guest_start does not say."""
    if guest_start is None or not guest_start.how:
        return None
    return guest_start.fresh and guest_start.how in OWN_GUESTS


def _with_context(recording: dict, recorded: ReportCase) -> tuple[dict, list[str]]:
    """The recording with the context facts an older one lacks, from report.json, and a note
    for each that nothing recorded says."""
    recording = dict(recording)
    notes: list[str] = []
    device = recorded.binder_device
    if device is not None and not recording.get("binder_device"):
        # recorded before recordings named their device: report.json's evidence says which it was
        recording["binder_device"] = device.path
    if not isinstance(recording.get("pristine"), bool):
        pristine = pristine_from_guest_start(recorded.guest_start)
        if pristine is None:
            notes.append(PRISTINE_UNKNOWN)
        else:
            recording["pristine"] = pristine
    return recording, notes


def _unreproduced(recorded: CaseResult, replayed: CaseResult) -> list[str]:
    """Notes naming checks the live run made that the replay did not, and the other way round."""
    live = Counter(c.name for c in recorded.checks)
    again = Counter(c.name for c in replayed.checks)
    notes = []
    for what, names in (("made live, not in this replay", live - again), ("made in this replay, not live", again - live)):
        if names:
            shown = "; ".join(sorted(names.elements())[:5]) + (" ..." if sum(names.values()) > 5 else "")
            notes.append(f"{sum(names.values())} checks {what}: {shown}")
    return notes


def _replay(spec: CaseSpec, case_dir: Path, recording: dict, case: ReportCase) -> tuple[CaseResult, list[str]]:
    """The case replayed with its live context, every field judging does not recompute kept,
    and the notes on what could not be reproduced."""
    recording, notes = _with_context(recording, case)
    recorded = case.result()
    before = {k: recorded.evidence[k] for k in EVIDENCE_BEFORE_THE_CASE if k in recorded.evidence}
    result = replay_case(spec, case_dir, recording, before)
    for key, value in recorded.evidence.items():  # what the runner noted beside the case
        result.evidence.setdefault(key, value)
    result.duration_s, result.guest, result.guest_start = recorded.duration_s, recorded.guest, recorded.guest_start
    if result.outcome == Outcome.FAILED:
        explain_denial(result, case_dir)  # a failure SELinux caused says so, as live
    if recorded.checks:  # a verdict was reached before (not a LAVA job's collected evidence)
        notes += _unreproduced(recorded, result)
    return result, notes


def _entry(result: CaseResult, case: ReportCase, judged: str) -> ReportCase:
    """The case as report.json gets it: what judging decided, every other field of the recorded
    case kept (its files, and fields this harness does not know), and how it was judged."""
    return replace(ReportCase.of(result), dir=case.dir, judged=judged, extra=case.extra)


def judge_run(run_dir: Path) -> Report:
    """Replay every case of RUN_DIR, rewrite its reports, and return the new report."""
    data = model.load_run(run_dir)
    registry = load_cases()
    kept: dict[str, str] = {}
    notes: dict[str, str] = {}
    results: list[ReportCase] = []
    for case in data.cases:
        recorded = case.result()
        case_dir = case.files(run_dir)
        try:
            recording = load_recording(case_dir)
        except RecordingError as exc:
            raise ConfigError(f"{exc}; re-run the case to record it again") from None
        spec = registry.get(recorded.id)
        judged = "replayed"
        if (case.known_outcome is None or case.known_outcome in UNCHECKED) and case.judged != PENDING:
            kept[case.id] = f"recorded {case.outcome}: nothing measured to judge again"
            results.append(replace(case, judged="recorded"))  # as it was, an outcome not known here too
            continue
        if spec is None:
            result = CaseResult(recorded.id, Outcome.ERROR,
                                f"not judged: case {recorded.id} is not in this harness's catalog",
                                recorded.duration_s, recorded.evidence, [], recorded.guest, recorded.guest_start)
        elif recording is None:
            result = CaseResult(recorded.id, Outcome.ERROR,
                                f"needs a live target: {case_dir / RECORDING_FILE} is missing (a run made before "
                                "recordings were kept); run the case again", recorded.duration_s,
                                recorded.evidence, [], recorded.guest, recorded.guest_start)
        else:
            result, case_notes = _replay(spec, case_dir, recording, case)
            if case_notes:
                notes[recorded.id] = "; ".join(case_notes)
                judged = f"replayed; {notes[recorded.id]}"
        results.append(_entry(result, case, judged))
    data.cases = results
    data.judged = Judged("binder-harness judge", datetime.datetime.now(datetime.timezone.utc)
                         .isoformat(timespec="seconds"), kept, notes)
    try:
        report.rewrite(data, run_dir)
    except OSError as exc:
        raise ConfigError(f"{exc.filename or run_dir}: cannot write ({exc.strerror})") from None
    return data
