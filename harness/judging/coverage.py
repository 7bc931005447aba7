"""Every command of the kernel's uapi, exercised: which cases exercised each BC_*, BR_* and
BINDER_* ioctl that the kernel under test's binder.h defines (harness/evidence/uapi.py), and
the one place where a command that user space cannot exercise is declared, with its reason.

Evidence, per case (its files, so a replay or a re-render reads the same):
- BC_* and BR_*: the kernel's own account. binder counts every command it reads and every
  return it writes (binder_thread_write: binder_stats.bc[_IOC_NR(cmd)]++; binder_stat_br)
  and print_binder_stats prints each nonzero global count as "BC_NAME: N" in debugfs `stats`,
  named by binder_command_strings / binder_return_strings. A case exercised a command when its
  count after the case (cases/<id>/stats-after.txt) exceeds the one before it (stats-before.txt).
- BINDER_* ioctls, and the two returns `stats` cannot show (FROM_PROBE): the probe's own record.
  Every ioctl of the probe, in every process of a run, goes through one wrapper
  (native_probe/seen.c) that counts each request code and each BR code the kernel returned;
  the probe prints the table as its {"ev":"commands"} line. binder_ioctl dispatches on the
  whole request code, and so does the match here (the codes are the header's, as the C
  compiler reads them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.evidence.debugfs import parse_binder_debugfs
from harness.judging.accounting import STATS_AFTER, STATS_BEFORE

# The commands the catalog does not exercise, each with why user space cannot, and the binder.c
# function that shows it (checked in Debian's 6.1.192, 6.12.117 and 7.2.13 sources).
EXCLUDED: dict[str, str] = {
    "BC_ATTEMPT_ACQUIRE": "defined, never implemented: binder_thread_write answers it with "
                          "pr_err(\"BC_ATTEMPT_ACQUIRE not supported\") and -EINVAL",
    "BC_ACQUIRE_RESULT": "defined, never implemented: binder_thread_write answers it with "
                         "pr_err(\"BC_ACQUIRE_RESULT not supported\") and -EINVAL",
    "BR_ATTEMPT_ACQUIRE": "defined, never sent: no path of binder_thread_read writes it "
                          "(only binder_return_strings names it)",
    "BR_ACQUIRE_RESULT": "defined, never sent: no path of binder_thread_read writes it "
                         "(only binder_return_strings names it)",
    "BR_FINISHED": "defined, never sent: no path of binder_thread_read writes it (only binder_return_strings names it)",
    "BR_OK": "never sent: it is the 'no error' value of thread->return_error/reply_error; binder_thread_read "
             "writes a BINDER_WORK_RETURN_ERROR's cmd only when it is not BR_OK (WARN_ON(e->cmd == BR_OK))",
    "BR_ERROR": "sent only when kzalloc of a binder_ref_death fails in binder_thread_write "
                "(BC_REQUEST_DEATH_NOTIFICATION: thread->return_error.cmd = BR_ERROR): out of memory, "
                "which user space cannot cause on demand",
    "BR_TRANSACTION_SEC_CTX": "needs the caller's security context from the LSM: binder_transaction calls "
                              "security_secid_to_secctx for a node with FLAT_BINDER_FLAG_TXN_SECURITY_CTX; Debian's "
                              "kernels boot AppArmor, where it fails, so the call ends in BR_FAILED_REPLY -22 "
                              "('failed to get security context', err_get_secctx_failed): protocol.ping asserts that "
                              "(measured on 6.1.192, 6.12.117 and 7.2.13)",
    "BINDER_SET_IDLE_TIMEOUT": "defined, never implemented: binder_ioctl has no case for it (default: -EINVAL)",
    "BINDER_SET_IDLE_PRIORITY": "defined, never implemented: binder_ioctl has no case for it (default: -EINVAL)",
}

# Returns binder's `stats` cannot show, each with why, taken from the probe's own record instead
# (BR_TRANSACTION_SEC_CTX is excluded above on Debian's kernels, and counted from here where it is sent).
FROM_PROBE: dict[str, str] = {
    "BR_NOOP": "binder_thread_read puts it at the head of every read with put_user, never through "
               "binder_stat_br, so stats never count it",
    "BR_TRANSACTION_SEC_CTX": "binder_stat_br counts by _IOC_NR, and its nr is BR_TRANSACTION's (2): stats "
                              "count it as BR_TRANSACTION",
}

PROBE_EVENT = "commands"  # native_probe/contract.h EV_COMMANDS
SOURCES = {
    "bc": "binder debugfs stats, global BC_* counts after the case minus before (binder_thread_write)",
    "br": "binder debugfs stats, global BR_* counts after the case minus before (binder_stat_br)",
    "ioctl": "the probe's record of every ioctl it issued (native_probe/seen.c probe_ioctl), matched by request code",
    "probe_br": "the probe's record of every BR the kernel returned to it (native_probe/seen.c), for: "
                + ", ".join(FROM_PROBE),
}


def stats_counts(text: str) -> dict[str, int]:
    """The global BC_*/BR_* counts of a debugfs `stats` text (absent: 0)."""
    return dict(parse_binder_debugfs(text).counters)


def stats_delta(before: str, after: str) -> dict[str, int]:
    """What a case added to each global BC_*/BR_* count of `stats`, the nonzero ones."""
    first, last = stats_counts(before), stats_counts(after)
    return {name: n - first.get(name, 0) for name, n in last.items() if n > first.get(name, 0)}


def probe_seen(jsonl_texts: list[str]) -> dict[str, dict[int, int]]:
    """The probe's {"ev":"commands"} lines of a case, summed: {"ioctls"|"bc"|"br": {code: count}}."""
    seen: dict[str, dict[int, int]] = {"ioctls": {}, "bc": {}, "br": {}}
    for text in jsonl_texts:
        for line in text.splitlines():
            if f'"ev":"{PROBE_EVENT}"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            for family, table in seen.items():
                for code, n in dict(record.get(family) or {}).items():
                    table[int(code)] = table.get(int(code), 0) + int(n)
    return seen


def case_commands(stats_before: str | None, stats_after: str | None, jsonl_texts: list[str],
                  codes: dict[str, int]) -> dict[str, int]:
    """{command: count} a case exercised: BC/BR from `stats` (FROM_PROBE ones from the probe), ioctls
    from the probe, named by the header's `codes`."""
    out: dict[str, int] = {}
    if stats_before is not None and stats_after is not None:
        out.update({k: v for k, v in stats_delta(stats_before, stats_after).items() if k not in FROM_PROBE})
    seen = probe_seen(jsonl_texts)
    by_code = {code: name for name, code in codes.items()}
    for family, prefix in (("ioctls", "BINDER_"), ("br", "BR_")):
        for code, n in seen[family].items():
            name = by_code.get(code, "")
            if name.startswith(prefix) and (prefix == "BINDER_" or name in FROM_PROBE):
                out[name] = out.get(name, 0) + n
    return dict(sorted(out.items()))


def read_case_commands(case_dir: Path, codes: dict[str, int]) -> dict[str, int]:
    """case_commands from a case's files: stats-before/after.txt and probe-*.jsonl."""
    def text(name: str) -> str | None:
        path = case_dir / name
        return path.read_text(errors="replace") if path.is_file() else None

    probes = [p.read_text(errors="replace") for p in sorted(case_dir.glob("probe-*.jsonl"))]
    return case_commands(text(STATS_BEFORE), text(STATS_AFTER), probes, codes)


@dataclass(frozen=True)
class CommandCoverage:
    name: str
    family: str  # bc | br | ioctl
    cases: tuple[str, ...]  # the cases that exercised it
    excluded: str = ""  # the declared reason, when EXCLUDED names it

    @property
    def status(self) -> str:
        if self.excluded:
            return "excluded"
        return "exercised" if self.cases else "not covered"

    def as_json(self) -> dict:
        out: dict = {"name": self.name, "family": self.family, "status": self.status, "cases": list(self.cases),
                     "evidence": "probe" if self.family == "ioctl" or self.name in FROM_PROBE else "stats"}
        if self.excluded:
            out["excluded"] = self.excluded
        return out


def coverage(commands: list[tuple[str, str]], per_case: dict[str, dict[str, int]]) -> list[CommandCoverage]:
    """Each (name, family) of the header with the cases that exercised it, or its exclusion."""
    return [CommandCoverage(name, family, tuple(cid for cid, seen in per_case.items() if seen.get(name)),
                            EXCLUDED.get(name, "")) for name, family in commands]


def summary(rows: list[CommandCoverage]) -> dict:
    counts = {s: sum(r.status == s for r in rows) for s in ("exercised", "excluded", "not covered")}
    total = len(rows)
    done = counts["exercised"] + counts["excluded"]
    return {"total": total, "exercised": counts["exercised"], "excluded": counts["excluded"],
            "not_covered": counts["not covered"], "percent": round(100.0 * done / total, 1) if total else 0.0,
            "complete": total > 0 and done == total,
            "uncovered": [r.name for r in rows if r.status == "not covered"]}


def incomplete(section: dict) -> str:
    """'' when a report's coverage section is complete; else one line naming what is missing."""
    if not isinstance(section, dict) or "summary" not in section:
        why = section.get("error") if isinstance(section, dict) else None
        return f"no command coverage in the report ({why or 'no coverage section'})"
    s = section["summary"]
    if s.get("complete"):
        return ""
    return (f"{s.get('not_covered')} of {s.get('total')} commands of {section.get('header', '?')} neither exercised "
            f"by a case nor excluded in harness/judging/coverage.py: {', '.join(s.get('uncovered', []))}")
