"""The C driver against the Rust driver on the same kernel, case by case (issue 24).

Two reports (report.json, harness/reports/model.py), one whose target ran the C binder driver and
one the Rust driver (`target.driver`), of the same kernel version and arch, are paired by case id.
Per case: each side's outcome, whether they agree (the same outcome), and every difference the
checks show, each check paired with the other side's check of the same name (the n-th of a name
with the n-th, where a case makes a name more than once):

  declared     the same check expects different values, each side citing its own source (C refs
               name binder.c functions, Rust refs drivers/android/binder/*.rs): both expected values
               and both refs are shown
  same ref     the expected values differ under the same ref: a value the case takes from its own
               run (a seed, an inode number), or a per-driver expectation that does not cite its own
               source; both are shown
  verdict      the check passes on one side and fails on the other: both measured values and refs
  only c / only rust   a check one side makes and the other does not
and, for a case skipped, errored or absent on one side, that side's reason. A check that passes on
both, or fails on both, with the same expectation is no difference (its measured values may differ:
pids, addresses).

Nothing here depends on what today's runs measured: the table is a pure function of two reports.
`markdown` renders it for bench/; harness/reports/html.py renders the same for a page.
"""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.judging.verdicts import Check, Outcome
from harness.reports.model import Report, ReportCase

C, RUST = "c", "rust"
DRIVER_NAMES = {C: "C", RUST: "Rust"}
ABSENT = "absent"  # a case one report does not hold
# kinds of a check difference
DECLARED, SAME_REF, VERDICT, ONLY_C, ONLY_RUST = "declared", "same ref", "verdict", "only c", "only rust"
_VERSION = re.compile(r"^(\d+\.\d+(?:\.\d+)?)")
_SOURCE_VERSION = re.compile(r"=(\S+)")
_FIX_RUNS = ("compare a run on the C driver with one on the Rust driver of the same kernel, e.g. "
             "'binder-harness run --image qemu-x86_64-7.3 ...' and 'binder-harness run --image qemu-x86_64-7.3-rust ...'")


class CompareError(ConfigError):
    """Two reports that cannot be compared: one line naming the file and the fix."""


@dataclass(frozen=True)
class Side:
    """One run of the comparison: its report file and what its target was."""

    file: str  # its report.json, as given
    driver: str  # "c" or "rust"
    kernel_release: str
    kernel_version: str  # the release's leading x.y[.z]
    arch: str
    kernel_source: str = ""
    command: str = ""


@dataclass(frozen=True)
class CheckDifference:
    """One check that differs between the runs: the pair of checks of the same name (one of them
    None when only one side makes it) and what differs."""

    name: str
    c: Check | None
    rust: Check | None

    @property
    def kinds(self) -> tuple[str, ...]:
        if self.c is None:
            return (ONLY_RUST,)
        if self.rust is None:
            return (ONLY_C,)
        kinds = []
        if _differ(self.c.expected, self.rust.expected):
            kinds.append(DECLARED if self.c.ref != self.rust.ref else SAME_REF)
        if self.c.passed != self.rust.passed:
            kinds.append(VERDICT)
        return tuple(kinds)


@dataclass(frozen=True)
class CaseComparison:
    """One case on both drivers."""

    id: str
    c_outcome: str  # ABSENT when the C report does not hold it
    rust_outcome: str
    c_reason: str
    rust_reason: str
    differences: tuple[CheckDifference, ...]
    c_names: frozenset[str] = frozenset()  # the names of the checks each side made
    rust_names: frozenset[str] = frozenset()

    @property
    def agree(self) -> bool:
        return self.c_outcome == self.rust_outcome and self.c_outcome != ABSENT

    @property
    def both_checked(self) -> bool:
        """Both sides made checks: their one-sided checks are differences of the drivers' evidence,
        not of a case that did not run on one side."""
        return bool(self.c_names and self.rust_names)

    def of_kind(self, kind: str) -> list[CheckDifference]:
        return [d for d in self.differences if kind in d.kinds]

    def reasons(self) -> list[tuple[str, str]]:
        """(driver, reason) of each side the checks alone do not explain: one skipped, errored, not
        applicable, absent or of an outcome this harness does not know; and one that failed where the
        other did not and no check that fails on it alone says why."""
        out = []
        for driver, outcome, reason in ((C, self.c_outcome, self.c_reason), (RUST, self.rust_outcome, self.rust_reason)):
            if outcome == Outcome.PASSED:
                continue
            if outcome == Outcome.FAILED:
                fails_alone = any(VERDICT in d.kinds and not getattr(d, driver).passed for d in self.differences)
                if self.agree or fails_alone:
                    continue
            out.append((driver, reason or "(no reason given)"))
        return out


@dataclass(frozen=True)
class DriverComparison:
    """The whole table: both sides and every case, in the C run's order (then any case only the
    Rust run holds)."""

    c: Side
    rust: Side
    cases: tuple[CaseComparison, ...]

    @property
    def agreeing(self) -> int:
        return sum(c.agree for c in self.cases)

    def summary_line(self) -> str:
        return (f"{self.agreeing} of {len(self.cases)} cases agree (the same outcome on both drivers), "
                f"{len(self.cases) - self.agreeing} differ; C on {self.c.kernel_release}, Rust on "
                f"{self.rust.kernel_release} ({self.c.arch})")

    def one_sided_everywhere(self) -> dict[str, list[str]]:
        """Per driver, the check names only that side makes, in at least two cases where both sides
        made checks and never paired with the other side's (e.g. C's failed-transaction log checks):
        named once above the table rather than in every row. A case one side made no checks in
        (skipped, errored) does not count: its reason explains it."""
        one_sided: dict[str, set[str]] = {C: set(), RUST: set()}
        shared: set[str] = set()
        cases: dict[str, dict[str, int]] = {C: defaultdict(int), RUST: defaultdict(int)}
        for case in self.cases:
            if not case.both_checked:
                continue
            shared |= case.c_names & case.rust_names
            for driver, mine, theirs in ((C, case.c_names, case.rust_names), (RUST, case.rust_names, case.c_names)):
                for name in mine - theirs:
                    one_sided[driver].add(name)
                    cases[driver][name] += 1
        return {driver: sorted(n for n in names if cases[driver][n] >= 2 and n not in shared)
                for driver, names in one_sided.items()}


def _differ(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str)


def kernel_version(release: str) -> str | None:
    """The leading x.y[.z] of a kernel release ("7.3.4+deb13-amd64" -> "7.3.4"), None if it has none."""
    m = _VERSION.match(release or "")
    return m.group(1) if m else None


def _side(report: Report, file: str) -> Side:
    t = report.target
    if t.driver not in (C, RUST):
        said = f"is '{t.driver}'" if t.driver else "is not recorded"
        raise CompareError(f"{file}: target.driver {said}; re-run it with this binder-harness (it records the "
                           f"driver, 'c' or 'rust', the target runs), then compare")
    version = kernel_version(t.kernel_release or "")
    if version is None:
        raise CompareError(f"{file}: target.kernel_release is {t.kernel_release or 'not recorded'!s}, not a kernel "
                           f"version; give a run that booted its kernel (one with its cases judged)")
    return Side(file, t.driver, t.kernel_release or "", version, t.arch or "?", t.kernel_source or "", report.command)


def refusal(a: Report, b: Report, a_file: str, b_file: str) -> str | None:
    """Why two reports cannot be compared (one line naming the file and the fix), or None."""
    try:
        sa, sb = _side(a, a_file), _side(b, b_file)
    except CompareError as exc:
        return str(exc)
    if sa.driver == sb.driver:
        return (f"{b_file}: target.driver is '{sb.driver}', as in {a_file}; {_FIX_RUNS}")
    if sa.arch != sb.arch:
        return f"{b_file}: target.arch is {sb.arch}, {a_file}'s is {sa.arch}; {_FIX_RUNS}"
    if sa.kernel_version != sb.kernel_version:
        return (f"{b_file}: kernel {sb.kernel_release} (version {sb.kernel_version}) is not {a_file}'s "
                f"{sa.kernel_release} (version {sa.kernel_version}); {_FIX_RUNS}")
    src_a, src_b = _SOURCE_VERSION.search(sa.kernel_source), _SOURCE_VERSION.search(sb.kernel_source)
    if src_a and src_b and src_a.group(1) != src_b.group(1):
        return (f"{b_file}: target.kernel_source is source version {src_b.group(1)}, {a_file}'s is "
                f"{src_a.group(1)}; {_FIX_RUNS}")
    return None


def _pair_checks(c: list[Check], rust: list[Check]) -> list[CheckDifference]:
    """Every check of either side that differs, in the C case's order, then the Rust case's own; the
    n-th check of a name on one side is paired with the n-th of that name on the other."""
    left: dict[str, list[Check]] = defaultdict(list)
    for check in rust:
        left[check.name].append(check)
    out: list[CheckDifference] = []
    for check in c:
        diff = CheckDifference(check.name, check, left[check.name].pop(0) if left[check.name] else None)
        if diff.kinds:
            out.append(diff)
    made_by_c = Counter(k.name for k in c)
    seen: Counter[str] = Counter()
    for check in rust:
        seen[check.name] += 1
        if seen[check.name] > made_by_c[check.name]:
            out.append(CheckDifference(check.name, None, check))
    return out


def _case(case_id: str, c: ReportCase | None, rust: ReportCase | None) -> CaseComparison:
    return CaseComparison(
        case_id, c.outcome if c else ABSENT, rust.outcome if rust else ABSENT,
        c.reason if c else "not in this run", rust.reason if rust else "not in this run",
        tuple(_pair_checks(c.checks if c else [], rust.checks if rust else [])),
        frozenset(k.name for k in c.checks) if c else frozenset(),
        frozenset(k.name for k in rust.checks) if rust else frozenset())


def compare(a: Report, b: Report, a_file: str = "report.json", b_file: str = "report.json") -> DriverComparison:
    """The C-against-Rust table of two reports, given in either order; CompareError (one line naming
    the file and the fix) when they are not one C and one Rust run of the same kernel version and arch."""
    why = refusal(a, b, a_file, b_file)
    if why:
        raise CompareError(why)
    sa, sb = _side(a, a_file), _side(b, b_file)
    (c_side, c_report), (r_side, r_report) = sorted(((sa, a), (sb, b)), key=lambda p: p[0].driver != C)
    c_cases = {k.id: k for k in c_report.cases}
    r_cases = {k.id: k for k in r_report.cases}
    ids = list(c_cases) + [i for i in r_cases if i not in c_cases]
    return DriverComparison(c_side, r_side, tuple(_case(i, c_cases.get(i), r_cases.get(i)) for i in ids))


# -- Markdown, for bench/ --------------------------------------------------------------------------
def shown(value: Any, limit: int = 160) -> str:
    """A check value as report.json writes it, cut to `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def counts(case: CaseComparison, hidden: dict[str, list[str]]) -> str:
    """One short line of what differs in a case, e.g. "2 declared; 3 pass on C only; 4 only C"."""
    parts = []
    for kind, label in ((DECLARED, "declared"), (SAME_REF, "expected differs, same ref")):
        if n := len(case.of_kind(kind)):
            parts.append(f"{n} {label}")
    verdict = case.of_kind(VERDICT)
    for driver in (C, RUST):
        if n := sum(1 for d in verdict if getattr(d, driver).passed):
            parts.append(f"{n} pass on {DRIVER_NAMES[driver]} only")
    for kind, driver in ((ONLY_C, C), (ONLY_RUST, RUST)):
        mine = case.of_kind(kind)
        if mine and not case.both_checked:
            parts.append(f"{len(mine)} only {DRIVER_NAMES[driver]} (the other made none)")
        elif mine:
            common = sum(d.name in hidden[driver] for d in mine)
            parts.append(f"{len(mine)} only {DRIVER_NAMES[driver]}" + (f" ({common} listed above)" if common else ""))
    for driver, _ in case.reasons():
        parts.append(f"{DRIVER_NAMES[driver]}: {getattr(case, driver + '_outcome')}")
    return "; ".join(parts) or "none"


def explained(diff: CheckDifference) -> str:
    """One line explaining a check difference, with values and refs."""
    c, r = diff.c, diff.rust
    if c is None or r is None:
        only = c or r
        assert only is not None
        who = DRIVER_NAMES[C if c else RUST]
        return (f"only {who}: {'passed' if only.passed else 'FAILED'}, expected {shown(only.expected)}, "
                f"measured {shown(only.measured)} ({only.ref})")
    parts = []
    if DECLARED in diff.kinds or SAME_REF in diff.kinds:
        refs = f"C ({c.ref}), Rust ({r.ref})" if c.ref != r.ref else f"both ({c.ref})"
        parts.append(f"expected C {shown(c.expected)}, Rust {shown(r.expected)}; refs {refs}")
    if VERDICT in diff.kinds:
        refs = f" ({c.ref})" if c.ref == r.ref else f" (C: {c.ref}; Rust: {r.ref})"
        parts.append(f"{'passes on C, fails on Rust' if c.passed else 'passes on Rust, fails on C'}: "
                     f"measured C {shown(c.measured)}, Rust {shown(r.measured)}"
                     + ("" if DECLARED in diff.kinds or SAME_REF in diff.kinds else f", expected {shown(c.expected)}")
                     + ("" if DECLARED in diff.kinds or SAME_REF in diff.kinds else refs))
    return "; ".join(parts)


def listed(case: CaseComparison, hidden: dict[str, list[str]]) -> list[CheckDifference]:
    """The differences a case's explanation lists one by one: not a one-sided check named above the
    table, nor the one-sided checks of a case the other side made no checks in (counted instead)."""
    def one_by_one(d: CheckDifference) -> bool:
        if ONLY_C in d.kinds or ONLY_RUST in d.kinds:
            driver = C if ONLY_C in d.kinds else RUST
            return case.both_checked and d.name not in hidden[driver]
        return True
    return [d for d in case.differences if one_by_one(d)]


def unchecked_note(case: CaseComparison) -> str | None:
    """"N checks only C: Rust made none" for a case one side made no checks in."""
    if case.both_checked or not case.differences:
        return None
    driver = C if case.c_names else RUST
    other = RUST if driver == C else C
    return (f"{len(case.differences)} checks only {DRIVER_NAMES[driver]}: {DRIVER_NAMES[other]} made none "
            f"({getattr(case, other + '_outcome')})")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(cmp: DriverComparison, heading: str = "##") -> str:
    """The table as Markdown: one row per case, then each differing case's explanation."""
    hidden = cmp.one_sided_everywhere()
    lines = [f"{heading} C against Rust, case by case",
             "",
             f"**{cmp.agreeing} of {len(cmp.cases)} cases agree** (the same outcome on both drivers); "
             f"{len(cmp.cases) - cmp.agreeing} differ.",
             "",
             f"- C: `{cmp.c.kernel_release}` ({cmp.c.arch}), {cmp.c.kernel_source or '?'}; `{cmp.c.file}`",
             f"- Rust: `{cmp.rust.kernel_release}` ({cmp.rust.arch}), {cmp.rust.kernel_source or '?'}; `{cmp.rust.file}`",
             ""]
    for driver in (C, RUST):
        if hidden[driver]:
            lines.append(f"Checks only the {DRIVER_NAMES[driver]} run makes, in every case that makes them "
                         f"(counted per row as \"listed above\"):")
            lines += [f"- {_md_cell(n)}" for n in hidden[driver]]
            lines.append("")
    lines += ["| case | C | Rust | agree | differences |", "| --- | --- | --- | --- | --- |"]
    for case in cmp.cases:
        lines.append(f"| `{case.id}` | {case.c_outcome} | {case.rust_outcome} | {'yes' if case.agree else '**no**'} | "
                     f"{_md_cell(counts(case, hidden))} |")
    lines += ["", f"{heading}# Every difference, explained", ""]
    for case in cmp.cases:
        items = [(d, explained(d)) for d in listed(case, hidden)]
        reasons = case.reasons()
        note = unchecked_note(case)
        if not items and not reasons and not note:
            continue
        lines.append(f"**`{case.id}`**: C {case.c_outcome}, Rust {case.rust_outcome}"
                     f"{'' if case.agree else ' (they differ)'}")
        lines += [f"- {DRIVER_NAMES[driver]} {getattr(case, driver + '_outcome')}: {_md_cell(reason)}"
                  for driver, reason in reasons]
        lines += [f"- {note}"] if note else []
        lines += [f"- {', '.join(d.kinds)}: `{_md_cell(d.name)}`: {_md_cell(text)}" for d, text in items]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
