"""Run reports: report.json (harness/reports/model.py), junit.xml, and run-wide files."""
from __future__ import annotations

import json
import os
import shlex
import time
import xml.etree.ElementTree as ET
from dataclasses import fields
from pathlib import Path

from harness import timing
from harness.reports import coverage, model
from harness.reports import html as html_report
from harness.files import atomic_path, atomic_write_text
from harness.building.fetch import MIRROR_ENV
from harness.building.packages import FETCH_ENV
from harness.judging.catalog import EXTRA_CASES_ENV
from harness.judging.verdicts import Check, Outcome
from harness.targets.accel import FORCE_ENV
from harness.targets.adb import ADB_ENV
from harness.reports import comparison_html
from harness.reports.driver_compare import DriverComparison
from harness.reports.model import Report, ReportCase, Target, Timings

# Environment that changes what a run does, so the reproduce line carries it. Secrets
# (BINDER_HARNESS_SSH_PASSPHRASE) are never listed here and never printed.
# the environment that changes what a run does, each name where the module that reads it declares it
REPRODUCE_ENV = (FORCE_ENV, FETCH_ENV, MIRROR_ENV, EXTRA_CASES_ENV, ADB_ENV)


def reproduce_command(argv: list[str]) -> str:
    """The command line that reproduces this run, prefixed by the environment that mattered."""
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in REPRODUCE_ENV if os.environ.get(k)]
    return " ".join([*env, shlex.join(argv)])


def append_text(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


def append_trace(path: Path, text: str) -> None:
    """Add one case's ftrace text to the run's trace.txt, keeping a single header."""
    if path.exists() and path.stat().st_size:
        text = "\n".join(l for l in text.splitlines() if not l.startswith("#"))
    append_text(path, text)


def run_report(state) -> Report:
    """The report of a run's state (runner.RunState): its target, each case result, the timings;
    state.extra holds more of the report's fields (jobs and guests, resident_context_manager)."""
    known = {f.name for f in fields(Report)}
    more = {k: v for k, v in state.extra.items() if k in known}
    extra = {k: v for k, v in state.extra.items() if k not in known}
    target = model.target_of(state.target_info) if state.target_info else Target(state.options.target_spec.text)
    timings = Timings(boot_s=round(state.boot_s, 3), total_s=round(time.monotonic() - state.started, 3),
                      boots=state.boots, restore_s=round(state.restore_s, 3), restores=state.restores,
                      phases=timing.snapshot())
    return Report(target, [ReportCase.of(r) for r in state.results], timings, state.options.command_line,
                  state.options.seed, **more, extra=extra)


def _check_lines(checks: list[Check]) -> str:
    """Failing checks first: each with expected, measured and the kernel function."""
    ordered = sorted(checks, key=lambda c: c.passed)
    return "\n".join(f"{'PASS' if c.passed else 'FAIL'} {c.describe()}" for c in ordered)


# JUnit has no outcome between pass and failure but <skipped>: both outcomes that are not a pass
# and not a failure go there, told apart by its type (and the testcase's "outcome" property)
JUNIT_SKIPPED_TYPE = {Outcome.SKIPPED: "binder-harness.not_judged", Outcome.NOT_APPLICABLE: "binder-harness.not_applicable"}


def junit_skipped(summary: dict) -> int:
    """The <testsuite skipped=...> count: cases not judged and cases not applicable."""
    return sum(int(summary.get(o, 0)) for o in JUNIT_SKIPPED_TYPE)


def junit_xml(report: Report) -> str:
    """JUnit XML (the <testsuites> form pytest writes): one testcase per case; the reason is the
    failure message, the checks its text, and the evidence the testcase's properties. A skipped
    (not judged) or not_applicable case is a <skipped> testcase, never a pass."""
    cases = report.cases
    s = report.summary
    total = f"{report.timings.total_s:.3f}"
    root = ET.Element("testsuites", name="binder-harness", tests=str(len(cases)), failures=str(s["failed"]),
                      errors=str(s["error"]), skipped=str(junit_skipped(s)), time=total)
    suite = ET.SubElement(root, "testsuite", name="binder-harness", tests=str(len(cases)), failures=str(s["failed"]),
                          errors=str(s["error"]), skipped=str(junit_skipped(s)), time=total,
                          timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"))
    props = ET.SubElement(suite, "properties")
    for key, value in report.target.to_json().items():
        ET.SubElement(props, "property", name=f"target.{key}", value=str(value))
    if report.command:
        ET.SubElement(props, "property", name="command", value=report.command)
    for case in cases:
        family, _, name = case.id.partition(".")
        tc = ET.SubElement(suite, "testcase", classname=f"{family}.{report.target.spec}",
                           name=case.id, time=f"{case.duration_s:.3f}")
        cprops = ET.SubElement(tc, "properties")
        ET.SubElement(cprops, "property", name="outcome", value=case.outcome)
        ET.SubElement(cprops, "property", name="reason", value=case.reason)
        for key, value in case.evidence.items():
            ET.SubElement(cprops, "property", name=key, value=json.dumps(value, default=str)[:2000])
        body = _check_lines(case.checks)
        outcome = case.known_outcome
        if outcome == Outcome.FAILED:
            ET.SubElement(tc, "failure", message=case.reason, type="binder-harness.failed").text = body
        elif outcome == Outcome.ERROR:
            ET.SubElement(tc, "error", message=case.reason, type="binder-harness.error").text = body
        elif outcome in JUNIT_SKIPPED_TYPE:
            ET.SubElement(tc, "skipped", message=case.reason, type=JUNIT_SKIPPED_TYPE[outcome])
        elif outcome != Outcome.PASSED:  # an outcome this harness does not know: not a pass either
            ET.SubElement(tc, "error", message=f"outcome {case.outcome}: {case.reason}",
                          type="binder-harness.unknown_outcome").text = body
        ET.SubElement(tc, "system-out").text = body
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


# Space set aside in the run directory when it is created, released when the disk fills,
# so report.json and junit.xml can still be written at the end.
RESERVE_NAME = ".bh-reserve"
RESERVE_BYTES = 1 << 20
MIN_FREE_BYTES = 4 << 20


def prepare_out_dir(out: Path, flag: str = "--out") -> None:
    """Create the run directory, check it takes files and has room, and set the reserve aside.
    ConfigError (one line) when it cannot hold a run."""
    from harness.errors import ConfigError

    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{flag} {out}: not writable ({exc.strerror}); give a writable directory") from None
    st = os.statvfs(out)
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_BYTES and not (out / RESERVE_NAME).exists():
        raise ConfigError(f"{flag} {out}: only {free // 1024} KiB free on its filesystem; a run needs at least "
                          f"{MIN_FREE_BYTES >> 20} MiB (reports, logs, traces); free space or give another {flag}")
    reserve = out / RESERVE_NAME
    try:
        with open(reserve, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
    except OSError as exc:
        reserve.unlink(missing_ok=True)
        raise ConfigError(f"{flag} {out}: cannot set aside {RESERVE_BYTES >> 10} KiB for the reports "
                          f"({exc.strerror}); free space or give another {flag}") from None


def release_reserve(out: Path) -> bool:
    """Give back the space set aside by prepare_out_dir; True if there was some."""
    try:
        (out / RESERVE_NAME).unlink()
        return True
    except OSError:
        return False


def _output_error(exc: BaseException) -> bool:
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


# report.html during a run: rendered at most this often (it grows with every case; rendering it
# after each one cost a whole catalog 2-3 s under TCG), and at once after a case that did not pass
HTML_EVERY_S = 10.0


def write_all(state, final: bool = False) -> Report:
    """Write report.json and junit.xml atomically, and report.html at the end, after a case that
    did not pass, or when the last one is HTML_EVERY_S old; called after every case, so an
    interrupted run still leaves a complete, valid set. When the disk is full, the reserve is
    given back and report.json and junit.xml come first."""
    out: Path = state.options.out_dir
    with timing.phase("report"):
        data = run_report(state)
        now = time.monotonic()
        html = (final or now - state.html_at >= HTML_EVERY_S
                or any(r.outcome != Outcome.PASSED for r in state.results[-1:]))
        if html:
            state.html_at = now
        try:
            _write_reports(data, out, html=html, compact=not final)
        except OSError as exc:
            if not _output_error(exc) or not release_reserve(out):
                raise
            (out / "report.html").unlink(missing_ok=True)  # 'binder-harness report DIR' renders it again
            _write_reports(data, out, html=False, compact=not final)
            return data
        if final:
            release_reserve(out)
    return data


def write_final(state) -> Report | None:
    """The last write of a run: reports, then the reserve goes. A run directory that cannot
    take even report.json is said on stderr, not raised over the verdicts."""
    import sys

    try:
        return write_all(state, final=True)
    except OSError as exc:
        print(f"binder-harness: cannot write report.json in {state.options.out_dir} ({exc.strerror})",
              file=sys.stderr)
        return None


def rewrite(data: Report, out: Path) -> None:
    """Write report.json, junit.xml and report.html from a report (binder-harness judge, lava, a merged run)."""
    _write_reports(data, out)


def _write_reports(data: Report, out: Path, html: bool = True, compact: bool = False) -> None:
    coverage.annotate(data, out)  # per case evidence.commands, and the run's `coverage` section
    model.write(data, out, compact)
    atomic_write_text(out / "junit.xml", junit_xml(data))
    if html:
        write_html(data, out)


def write_html(data: Report, out: Path, comparison: DriverComparison | None = None) -> Path:
    """report.html from the report and the run directory (and the C-against-Rust table of this run
    and another, when given); a renderer bug never loses the page."""
    after = ((("C driver against Rust driver", lambda: comparison_html.section(comparison)),)
             if comparison is not None else ())
    try:
        return html_report.write(data, out, after)
    except Exception as exc:  # noqa: BLE001 - the verdicts must still reach the ticket
        atomic_write_text(out / "report.html", html_report.fallback(data, exc))
        return out / "report.html"


def bundle(run_dir: Path) -> Path:
    """RUN_DIR.tar.gz beside the run directory: the whole run, for a ticket attachment."""
    import tarfile

    run_dir = run_dir.resolve()
    dest = run_dir.with_name(run_dir.name + ".tar.gz")
    with atomic_path(dest) as tmp, tarfile.open(tmp, "w:gz") as tar:
        tar.add(run_dir, arcname=run_dir.name,
                filter=lambda info: None if Path(info.name).name.startswith(".") else info)
    return dest
