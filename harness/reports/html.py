"""report.html: one self-contained page for a bug ticket (DESIGN §5).

Rendered from report.json (harness/reports/model.py) and the files beside it (cases/<id>/trace.txt,
probe-*.jsonl, dmesg.txt, console.log). No scripts, fonts, images or links to
fetch: styles and SVG charts are inline, and logs fold into <details>.
"""
from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any, Callable

from harness.reports import charts
from harness.evidence.contract import event
from harness.files import atomic_write_text
from harness.evidence.probe import parse_probe_output
from harness.evidence.trace import parse_ftrace
from harness.reports.trace_views import buffer_use, transaction_timelines
from harness.judging.verdicts import Check, ExitStatus, Outcome, exit_status, summary_line
from harness.reports.model import Report, ReportCase

LOG_LIMIT = 200_000  # bytes of any one log shown; the tail is kept
TIMELINE_ROWS = 30
# the verdict table, worst first: a skipped case was not judged; a not_applicable one was declared not to apply
OUTCOME_ORDER = (Outcome.FAILED, Outcome.ERROR, Outcome.SKIPPED, Outcome.PASSED, Outcome.NOT_APPLICABLE)
BANNER = {ExitStatus.PASSED: "ok", ExitStatus.FAILED: "bad", ExitStatus.NOT_JUDGED: "notjudged"}
# DESIGN §4: binder copies a payload once; a pipe and an AF_UNIX socket copy it twice.
EXPECTED_COPIES = {"binder": 1.0, "pipe": 2.0, "unix_socket": 2.0, "posix_mq": 2.0, "sysv_mq": 2.0,
                   "shared_memory": 0.0}
# Classes of the two ways a page says it is not whole (tests/report_html.py reads them): the one-line
# note that stands in for one part of one case (or of the page) that could not be rendered, and the
# page-level fallback, kept for a report that cannot be read at all.
DEGRADED = "degraded"
FALLBACK = "fallback"


def _read_log(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            if size > LOG_LIMIT:
                fh.seek(size - LOG_LIMIT)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:  # said where the log would be, not raised over the page
        return f"[{path.name} could not be read: {exc.strerror or exc}]"
    if size > LOG_LIMIT:
        text = f"[... first {size - LOG_LIMIT} bytes left out; the full file is {path.name} in the run directory]\n" \
               + text.split("\n", 1)[-1]
    return text


# -- charts for one case -------------------------------------------------------------
def fmt_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)  # as report.json writes it


def _number(value: Any) -> float | None:
    """value as a float when it is a finite JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def copies_by_mechanism(evidence: dict) -> list[tuple[str, float]]:
    """(mechanism, copies per byte) when evidence["copies_per_byte"] has one_copy.vs_pipe's shape:
    an object of mechanism names to numbers. Anything else: no bars."""
    value = evidence.get("copies_per_byte")
    if not isinstance(value, dict):
        return []
    bars = {str(k): _number(v) for k, v in value.items()}
    return [(k, v) for k, v in bars.items() if v is not None] if None not in bars.values() else []


def copies_by_size(evidence: dict) -> list[tuple[int, float]]:
    """(payload size, copies per byte) when evidence["transactions"] has the one-copy checks' shape
    (cases/_one_copy_checks.py): a list of per-size objects, each with an integer "size" and, when the
    trace saw it, a numeric "copies_per_byte". Anything else (stress.valid_traffic's count): no bars."""
    value = evidence.get("transactions")
    if not isinstance(value, list) or not all(
            isinstance(t, dict) and _number(t.get("size")) is not None and float(t["size"]).is_integer()
            for t in value):
        return []
    return [(int(t["size"]), per) for t in value if (per := _number(t.get("copies_per_byte"))) is not None]


def copies_chart(evidence: dict) -> str | None:
    """Copies per byte: by mechanism (one_copy.vs_pipe) or by payload size (transactions)."""
    by_mech = copies_by_mechanism(evidence)
    if by_mech:
        return charts.bar_chart("Kernel copies per payload byte, by mechanism (traced)", by_mech,
                                {k: v for k, v in EXPECTED_COPIES.items() if k in dict(by_mech)})
    by_size = copies_by_size(evidence)
    if by_size:
        bars = [(charts.human_bytes(size), per) for size, per in by_size]
        return charts.bar_chart("binder: kernel copies per payload byte, by payload size (traced)", bars,
                                {label: 1.0 for label, _ in bars})
    return None


@lru_cache(maxsize=64)
def _trace_charts(path: str, mtime_ns: int, size: int, pids_json: str, areas_json: str) -> tuple[str, ...]:
    """Timeline and buffer-use charts of one case trace (cached: write_all runs after every case)."""
    trace = parse_ftrace(Path(path).read_text(errors="replace"))
    pids: dict = json.loads(pids_json)
    areas = {int(k): v for k, v in json.loads(areas_json).items()}
    names = {v: k for k, v in pids.items() if isinstance(v, int)}
    out: list[str] = []
    timelines = transaction_timelines(trace)
    if timelines:
        rows = []
        for t in timelines[:TIMELINE_ROWS]:
            payload = charts.human_bytes(t.data_size) if t.data_size is not None else "?"
            label = f"#{t.debug_id} {payload}{' oneway' if t.oneway else ''}"
            rows.append(charts.TimelineRow(label, (t.end - t.start) * 1e6,
                                           [(k, (ts - t.start) * 1e6) for k, ts in t.marks]))
        more = f" (first {TIMELINE_ROWS} of {len(timelines)})" if len(timelines) > TIMELINE_ROWS else ""
        out.append(charts.timeline_chart(f"Transaction timeline from the kernel trace: time after send{more}", rows))
    use = buffer_use(trace)
    if use:
        origin = min(u.points[0][0] for u in use.values())
        series, limit = [], None
        for pid, u in sorted(use.items()):
            role = names.get(pid, "process")
            series.append(charts.StepSeries(f"{role} {pid} area (peak {charts.human_bytes(u.peak)})",
                                            [((t - origin) * 1e3, v) for t, v in u.points]))
            if pid in areas:
                limit = max(limit or 0, areas[pid])
        out.append(charts.step_chart("Buffer space held in each receiving process's binder area "
                                     "(ms after the first allocation)", series, limit,
                                     f"mapped area {charts.human_bytes(limit)}" if limit else ""))
    return tuple(out)


def _areas(case_dir: Path) -> dict[int, int]:
    """Mapped binder area size per pid, from the probe's 'map' lines."""
    areas: dict[int, int] = {}
    for path in sorted(case_dir.glob("probe-*.jsonl")):
        for rec in parse_probe_output(path.read_text(errors="replace")).records:
            if rec.get("ev") == event("map") and isinstance(rec.get("pid"), int) and isinstance(rec.get("size"), int):
                areas[rec["pid"]] = rec["size"]
    return areas


def trace_charts(case: ReportCase, case_dir: Path) -> list[str]:
    """The trace views of one case: transaction timeline and buffer use, from its trace.txt."""
    trace = case_dir / "trace.txt"
    if not trace.is_file():
        return []
    st = trace.stat()
    pids = case.evidence.get("pids")
    pids = {str(k): v for k, v in pids.items() if _number(v) is not None} if isinstance(pids, dict) else {}
    return list(_trace_charts(str(trace), st.st_mtime_ns, st.st_size, json.dumps(pids, sort_keys=True),
                              json.dumps(_areas(case_dir), sort_keys=True)))


# -- the page ---------------------------------------------------------------------------
CSS = """
:root{--ink:#1f2933;--muted:#66727f;--line:#d9dee3;--bg:#f6f8fa;--pass:#2f9e44;--fail:#d9480f;--err:#c92a2a;--skip:#e67700;--na:#868e96}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px 64px;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--ink);background:#fff;max-width:1280px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:16px;margin:0}
code,pre,.mono{font-family:ui-monospace,'SFMono-Regular',Menlo,Consolas,monospace;font-size:12.5px}
pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px;overflow:auto;max-height:480px;white-space:pre-wrap;word-break:break-all}
.banner{padding:12px 16px;border-radius:8px;color:#fff;font-size:16px;font-weight:600;margin:12px 0}
.banner.ok{background:var(--pass)}.banner.bad{background:var(--fail)}.banner.notjudged{background:var(--skip)}
.grid{display:grid;grid-template-columns:190px 1fr;gap:3px 16px;margin:8px 0}
.grid div:nth-child(odd){color:var(--muted)}
table{border-collapse:collapse;width:100%;margin:8px 0}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg);font-weight:600;font-size:13px}
td.num{text-align:right;white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600}
.passed{background:var(--pass)}.failed{background:var(--fail)}.error{background:var(--err)}.skipped{background:var(--skip)}.not_applicable{background:var(--na)}
tr.bad td{background:#fff4e6}
td.exp{color:#1864ab}td.meas{font-weight:600}tr.bad td.meas{color:var(--fail)}
.case{border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin:16px 0}
a{color:#1864ab;text-decoration:none}
.case .head{display:flex;gap:12px;align-items:center;flex-wrap:wrap}
.reason{margin:6px 0 0;font-size:14px}
.note.degraded,.note.fallback{color:var(--err);font-weight:600}
.charts{display:flex;flex-direction:column;gap:18px;margin:14px 0}
svg.chart{max-width:100%;height:auto}
details{margin:6px 0}summary{cursor:pointer;color:#1864ab}
.note{color:var(--muted);font-size:12.5px}
table.diffs{font-size:12px;margin:4px 0;table-layout:fixed}table.diffs td,table.diffs th{padding:3px 6px;word-break:break-word}
table.comparison td:nth-child(5){max-width:860px}
"""


def badge(outcome: str) -> str:
    return f'<span class="badge {escape(outcome)}">{escape(outcome)}</span>'


def _details(summary: str, text: str | None, open_: bool = False) -> str:
    if text is None:
        return ""
    body = escape(text) if text.strip() else "(empty)"
    return f'<details{" open" if open_ else ""}><summary>{escape(summary)}</summary><pre>{body}</pre></details>'


def _identity(report: Report) -> str:
    target, timings = report.target, report.timings
    module = target.binder_module or "?"
    module_text = "stock binder_linux.ko from the kernel package" if module == "stock" else f"custom: {module}"
    boots = "?" if timings.boots is None else timings.boots
    rows: list[tuple[str, object]] = [
        ("target", target.spec), ("arch", target.arch or "?"),
        ("kernel release", target.kernel_release or "?"),
        ("accel", ": ".join(v for v in (target.accel or "?", target.accel_reason or "") if v)),
        ("binder module", module_text),
    ]
    if target.driver:
        rows.append(("driver", target.driver))
    if target.missing:
        rows.append(("not known", target.missing))
    if target.binder_module_sha256:
        rows.append(("module sha256", target.binder_module_sha256))
    if target.accel == "none":  # ssh, adb, local: a device reached, not a guest booted
        rows.append(("connected", f"{boots} time(s): a device the harness does not boot"))
    else:
        rows.append(("boot", f"{timings.boot_s:.2f} s ({boots} boot(s))"))
        if timings.restores:  # guests restored from a snapshot of an earlier boot, not booted
            rows.append(("restore", f"{timings.restore_s or 0:.2f} s ({timings.restores} restore(s))"))
    rows.append(("total", f"{timings.total_s:.2f} s"))
    if report.seed is not None:
        rows.append(("seed", report.seed))
    cells = "".join(f"<div>{escape(k)}</div><div class=\"mono\">{escape(str(v))}</div>" for k, v in rows)
    return f'<div class="grid">{cells}</div>'


def _verdict_table(cases: list[ReportCase]) -> str:
    """One row per case; for a failed case, the first failing check's expected and measured values."""
    rows = []
    for c in cases:
        row = guarded(f"{c.id}: verdict row", lambda: _verdict_row(c))
        rows.append(row if row.startswith("<tr") else
                    f'<tr class="bad"><td class="mono">{escape(c.id)}</td><td colspan="7">{row}</td></tr>')
    return ('<table class="verdicts"><thead><tr><th>case</th><th>outcome</th><th>reason</th><th>checks ok</th>'
            '<th>expected</th><th>measured</th><th>kernel function</th><th>time</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _verdict_row(c: ReportCase) -> str:
    checks = c.checks
    failing = [k for k in checks if not k.passed]
    first = failing[0] if failing else None
    exp, meas, ref = (fmt_value(first.expected), fmt_value(first.measured), first.ref) if first else ("", "", "")
    return (f'<tr class="{"bad" if failing else "ok"}"><td class="mono"><a href="#{escape(c.id)}">'
            f'{escape(c.id)}</a></td><td>{badge(c.outcome)}</td>'
            f'<td>{escape(c.reason)}</td>'
            f'<td class="num">{len(checks) - len(failing)}/{len(checks)}</td>'
            f'<td class="exp mono">{escape(exp)}</td><td class="meas mono">{escape(meas)}</td>'
            f'<td class="mono">{escape(ref)}</td>'
            f'<td class="num">{c.duration_s:.2f} s</td></tr>')


def _checks_table(checks: list[Check]) -> str:
    ordered = sorted(checks, key=lambda c: c.passed)  # failing checks first
    rows = []
    for c in ordered:
        rows.append(f'<tr class="{"ok" if c.passed else "bad"}"><td>{"✔" if c.passed else "✘"}</td>'
                    f'<td>{escape(c.name)}</td>'
                    f'<td class="exp mono">{escape(fmt_value(c.expected))}</td>'
                    f'<td class="meas mono">{escape(fmt_value(c.measured))}</td>'
                    f'<td class="mono">{escape(c.ref)}</td></tr>')
    return ('<table class="checks"><thead><tr><th></th><th>check</th><th>expected</th><th>measured</th>'
            f'<th>kernel function</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def guarded(where: str, part: Callable[[], str]) -> str:
    """part's HTML, or when it fails on odd input, one line naming where and the error instead:
    one case's odd evidence degrades that part of its own section, never the page."""
    try:
        return part()
    except Exception as exc:  # noqa: BLE001 - whatever the evidence holds, the rest of the page renders
        error = (str(exc).splitlines() or [""])[0]
        return (f'<p class="note {DEGRADED}">{escape(where)} could not be rendered '
                f'({escape(type(exc).__name__)}: {escape(error)}); report.json holds what it would show</p>')


def _case_head(case: ReportCase) -> str:
    checks = case.checks
    failing = sum(not c.passed for c in checks)
    return (f'<div class="head"><h3 class="mono">{escape(case.id)}</h3>{badge(case.outcome)}'
            f'<span class="note">{case.duration_s:.2f} s · {len(checks)} checks, '
            f'{failing} failing</span></div><p class="reason">{escape(case.reason)}</p>')


def _case_checks(case: ReportCase) -> str:
    checks = case.checks
    if not checks:
        return ""
    failing = sum(not c.passed for c in checks)
    label = f"{len(checks)} checks: measured against expected, " + (
        f"{failing} failing, listed first" if failing else "all passed")
    open_ = " open" if failing or len(checks) <= 15 else ""
    return f'<details{open_}><summary>{escape(label)}</summary>{_checks_table(checks)}</details>'


def _case_logs(case_dir: Path) -> str:
    parts = []
    for name, title in (("dmesg.txt", "dmesg delta"), ("error.txt", "harness error"),
                        ("console.log", "guest console during the case"),
                        ("console-tail.log", "console tail (last 200 lines)")):
        parts.append(_details(title, _read_log(case_dir / name), open_=name == "error.txt"))
    for path in sorted(case_dir.glob("probe-*.jsonl")) + sorted(case_dir.glob("probe-*.stderr")):
        text = _read_log(path)
        if path.suffix == ".stderr" and not (text or "").strip():
            continue
        parts.append(_details(f"probe output {path.name}", text))
    return "".join(parts)


def _case_section(case: ReportCase, run_dir: Path) -> str:
    """One case's section, each part rendered on its own (_guarded): head, copies chart, trace views,
    checks, evidence and logs."""
    case_id = case.id
    case_dir = case.files(run_dir)  # cases/<id>, or a merged pytest -n run's gwN/cases/<id>

    def part(name: str, render_part: Callable[[], str]) -> str:
        return guarded(f"{case_id}: {name}", render_part)

    charts_html = "".join((part("copies chart", lambda: copies_chart(case.evidence) or ""),
                           part("trace views", lambda: "".join(trace_charts(case, case_dir)))))
    return "".join((
        f'<section class="case" id="{escape(case_id)}">',
        part("heading", lambda: _case_head(case)),
        f'<div class="charts">{charts_html}</div>' if charts_html else "",
        part("checks", lambda: _case_checks(case)),
        part("evidence", lambda: _details("evidence (report.json)",
                                          json.dumps(case.evidence, indent=1, default=str))),
        part("logs", lambda: _case_logs(case_dir)),
        "</section>"))


def _coverage_section(section: Any) -> str:
    """Every command of the kernel's binder.h: the cases that exercised it, or its declared exclusion
    (report.json `coverage`, harness/reports/coverage.py)."""
    if not isinstance(section, dict):
        return '<p class="note">no command coverage in this report</p>'
    if "commands" not in section:
        return f'<p class="note">command coverage not known: {escape(str(section.get("error", "?")))}</p>'
    s = section.get("summary") or {}
    head = (f'<p><b>{escape(str(s.get("percent", "?")))}%</b> of the {escape(str(s.get("total", "?")))} commands of '
            f'<span class="mono">{escape(str(section.get("header", "?")))}</span> exercised or excluded: '
            f'{escape(str(s.get("exercised", "?")))} exercised, {escape(str(s.get("excluded", "?")))} excluded, '
            f'{escape(str(s.get("not_covered", "?")))} not covered.</p>')
    sources = section.get("sources") or {}
    notes = "".join(f"<li><b>{escape(str(k))}</b>: {escape(str(v))}</li>" for k, v in sources.items())
    rows = []
    for c in section["commands"]:
        if not isinstance(c, dict):
            continue
        status = str(c.get("status", "?"))
        cases = ", ".join(str(x) for x in c.get("cases") or [])
        excluded = str(c.get("excluded") or "")
        detail = (excluded + (f" (also sent by: {cases})" if cases else "")) if excluded else cases
        rows.append(f'<tr class="{"bad" if status == "not covered" else "ok"}"><td class="mono">'
                    f'{escape(str(c.get("name", "?")))}</td><td>{escape(str(c.get("family", "")))}</td>'
                    f'<td>{escape(status)}</td><td>{escape(str(c.get("evidence", "")))}</td>'
                    f'<td class="mono">{escape(detail)}</td></tr>')
    return (head + f'<ul class="note">{notes}</ul><table class="coverage"><thead><tr><th>command</th><th>kind</th>'
            '<th>status</th><th>evidence</th><th>cases, or why excluded</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


Section = tuple[str, Callable[[], str]]  # a heading and what renders its body


def render(report: Report, run_dir: Path, after_verdicts: tuple[Section, ...] = ()) -> str:
    """The whole page as text; `after_verdicts` follow the verdicts (the C-against-Rust table of this
    run and another: harness/reports/comparison_html.py)."""
    cases = sorted(report.cases, key=lambda c: OUTCOME_ORDER.index(c.outcome) if c.outcome in OUTCOME_ORDER else 0)
    s = report.summary
    verdict = summary_line(s)  # a run with skipped cases says "NOT JUDGED: N skipped" first
    target = report.target
    title = f"binder-harness: {verdict} on {target.kernel_release or '?'} {target.arch or ''}"
    command = report.command or "(not recorded)"
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
    files = sorted(p.name for p in run_dir.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if run_dir.is_dir() else []
    body = [
        f"<h1>binder-harness report</h1><div class=\"note\">rendered {escape(generated)} from report.json "
        f"(schema {report.schema})</div>",
        f'<div class="banner {BANNER[exit_status(s)] if cases else "bad"}">{escape(verdict)}</div>',
        "<h2>Verdicts</h2>", _verdict_table(cases),
        *(part for title, body in after_verdicts for part in (f"<h2>{escape(title)}</h2>", guarded(title, body))),
        "<h2>Target and kernel</h2>", guarded("target and kernel", lambda: _identity(report)),
        "<h2>Commands of the kernel's uapi</h2>",
        guarded("command coverage", lambda: _coverage_section(report.coverage)),
        "<h2>Reproduce</h2><p>Run this from a binder-harness checkout "
        "(<code>scripts/setup</code> installs what it needs):</p>",
        f"<pre class=\"command\">{escape(command)}</pre>",
        f"<p class=\"note\">The run directory beside this file holds: {escape(', '.join(files))}; "
        "per-case evidence is under cases/&lt;id&gt;/. trace.txt is ftrace text: open it in the Perfetto UI.</p>",
        "<h2>Cases</h2>", *(_case_section(c, run_dir) for c in cases),
        "<h2>Run logs</h2>",
        *(_details(f"{path.relative_to(run_dir)} (guest console)", _read_log(path))
          for path in _console_logs(run_dir, report)),
        _details("dmesg.txt (boot and per-case kernel log)", _read_log(run_dir / "dmesg.txt")),
    ]
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


def _console_logs(run_dir: Path, report: Report) -> list[Path]:
    """console.log of a one-guest run, or each guest's console of a run on several guests
    (report "guests": guests/N/console.log for -j N, gwN/console.log for pytest -n N)."""
    single = run_dir / "console.log"
    guests = [run_dir / g.console for g in report.guests or [] if ".." not in Path(g.console).parts]
    return ([single] if single.is_file() else []) + guests or [single]


def write(report: Report, run_dir: Path, after_verdicts: tuple[Section, ...] = ()) -> Path:
    """Write run_dir/report.html atomically and return its path."""
    path = run_dir / "report.html"
    atomic_write_text(path, render(report, run_dir, after_verdicts))
    return path


def fallback(report: Report, exc: BaseException) -> str:
    """A minimal valid page when the report itself cannot be rendered (a case's odd evidence degrades
    only its own section): the verdicts that can be read still show, and the error is named."""
    cases = [c for c in report.cases if isinstance(c, ReportCase)] if isinstance(report.cases, list) else []
    try:
        body = json.dumps(report.to_json(), indent=1, default=str)
    except Exception as dump_exc:  # noqa: BLE001 - the page is what is left to say it
        body = f"report.json could not be shown either ({type(dump_exc).__name__}: {dump_exc})"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>binder-harness report"
            f"</title><style>{CSS}</style></head><body><h1>binder-harness report</h1>"
            f"<p class=\"note {FALLBACK}\">The full page could not be rendered ({escape(type(exc).__name__)}: "
            f"{escape(str(exc))}); run 'binder-harness report DIR' after fixing it.</p>"
            f"{_verdict_table(cases)}<pre>{escape(body)}</pre></body></html>\n")
