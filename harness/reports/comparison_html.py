"""The C-against-Rust table as HTML (harness/reports/driver_compare.py pairs the runs): a section of
a run's report.html (`binder-harness report RUN --compare OTHER`) and a page of its own
(`binder-harness compare C_RUN RUST_RUN --out FILE.html`)."""
from __future__ import annotations

import time
from functools import partial
from html import escape

from harness.judging.verdicts import Check
from harness.reports import driver_compare
from harness.reports.driver_compare import DriverComparison
from harness.reports.html import CSS, badge, fmt_value, guarded


def _both(c: str | None, rust: str | None) -> str:
    """One value when both sides have the same (or only one side has it), else both, labelled."""
    if c is None or rust is None or c == rust:
        return escape(c if c is not None else rust or "")
    return f"<b>C</b> {escape(c)}<br><b>Rust</b> {escape(rust)}"


def _measured_cell(check: Check | None) -> str:
    if check is None:
        return '<td class="note">(not made)</td>'
    return f'<td class="mono">{"✔" if check.passed else "✘"} {escape(fmt_value(check.measured))}</td>'


def _difference_rows(case: driver_compare.CaseComparison, hidden: dict[str, list[str]]) -> str:
    rows = []
    for d in driver_compare.listed(case, hidden):
        expected = _both(*(fmt_value(k.expected) if k else None for k in (d.c, d.rust)))
        ref = _both(*(k.ref if k else None for k in (d.c, d.rust)))
        rows.append(f'<tr><td>{escape(", ".join(d.kinds))}</td><td>{escape(d.name)}</td>'
                    f'<td class="exp mono">{expected}</td>{_measured_cell(d.c)}{_measured_cell(d.rust)}'
                    f'<td class="mono">{ref}</td></tr>')
    if not rows:
        return ""
    return ('<table class="diffs"><thead><tr><th>kind</th><th>check</th><th>expected</th><th>measured on C</th>'
            f'<th>measured on Rust</th><th>kernel function</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _comparison_row(case: driver_compare.CaseComparison, hidden: dict[str, list[str]]) -> str:
    notes = [f"{driver_compare.DRIVER_NAMES[driver]} {getattr(case, driver + '_outcome')}: {reason}"
             for driver, reason in case.reasons()]
    if note := driver_compare.unchecked_note(case):
        notes.append(note)
    table = _difference_rows(case, hidden)
    detail = "".join(f'<p class="reason">{escape(n)}</p>' for n in notes)
    if table:
        n = len(driver_compare.listed(case, hidden))
        open_ = " open" if not case.agree and n <= 5 else ""
        detail += f'<details{open_}><summary>the {n} checks that differ</summary>{table}</details>'
    return (f'<tr class="{"ok" if case.agree else "bad"}"><td class="mono">{escape(case.id)}</td>'
            f'<td>{badge(case.c_outcome)}</td><td>{badge(case.rust_outcome)}</td>'
            f'<td>{"yes" if case.agree else "<b>no</b>"}</td>'
            f'<td>{escape(driver_compare.counts(case, hidden))}{detail}</td></tr>')


def section(cmp: DriverComparison) -> str:
    """The C-against-Rust table: the count of cases that agree, both targets, the checks only one
    driver's runs make, then one row per case with every difference explained."""
    hidden = cmp.one_sided_everywhere()
    sides = "".join(
        f"<div>{escape(driver_compare.DRIVER_NAMES[s.driver])}</div><div class=\"mono\">{escape(s.kernel_release)} "
        f"({escape(s.arch)}), {escape(s.kernel_source or '?')}; {escape(s.file)}</div>" for s in (cmp.c, cmp.rust))
    lists = "".join(
        f'<p>Checks only the {driver_compare.DRIVER_NAMES[d]} run makes, in every case that makes them '
        f'(counted per row as "listed above"):</p><ul>{"".join(f"<li>{escape(n)}</li>" for n in names)}</ul>'
        for d, names in hidden.items() if names)
    rows = "".join(guarded(f"{c.id}: comparison row", partial(_comparison_row, c, hidden)) for c in cmp.cases)
    return (f'<p><b>{cmp.agreeing} of {len(cmp.cases)} cases agree</b> (the same outcome on both drivers); '
            f'{len(cmp.cases) - cmp.agreeing} differ. A <i>declared</i> difference is a check whose expectation '
            'differs, each citing its own driver\'s source; <i>verdict</i>: it passes on one driver only; '
            '<i>only c</i>/<i>only rust</i>: one run makes it; <i>same ref</i>: the expected values differ '
            'under one ref (a value taken from the run itself, such as a seed or an inode).</p>'
            f'<div class="grid">{sides}</div>{lists}'
            '<table class="comparison"><thead><tr><th>case</th><th>C</th><th>Rust</th><th>agree</th>'
            f'<th>differences</th></tr></thead><tbody>{rows}</tbody></table>')


def page(cmp: DriverComparison) -> str:
    """A self-contained page of the C-against-Rust table alone (binder-harness compare --out)."""
    title = f"binder-harness: C against Rust on {cmp.c.kernel_version} {cmp.c.arch}: {cmp.agreeing} of {len(cmp.cases)} agree"
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
    commands = "".join(f"<pre class=\"command\">{escape(s.command)}</pre>" for s in (cmp.c, cmp.rust) if s.command)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>The C binder driver against the Rust one, case by case</h1>"
            f'<div class="note">rendered {escape(generated)} from {escape(cmp.c.file)} and {escape(cmp.rust.file)}</div>'
            f'<div class="banner {"ok" if cmp.agreeing == len(cmp.cases) else "bad"}">{escape(cmp.summary_line())}</div>'
            f"{section(cmp)}<h2>Reproduce</h2>{commands}</body></html>\n")
