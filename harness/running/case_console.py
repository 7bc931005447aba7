"""What the guest's console and kernel log leave of one case: cases/<id>/console.log (the
console from where the case began), console-tail.log (the last lines of a guest that ended),
and the dmesg delta with its health verdict.
"""
from __future__ import annotations

import re
from pathlib import Path

from harness.judging.catalog import CaseSpec
from harness.judging.context import CaseContext
from harness.judging.health import check_health
from harness.judging.verdicts import CaseResult, Outcome, scan_dmesg
from harness.targets.base import KillableConsole, Target

_KERNEL_LINE = re.compile(r"^\s*\[\s*\d+\.\d+\]")
_OOPS = re.compile(r"BUG:|Oops|general protection|KASAN")


def console_size(console_log: Path) -> int:
    """Where the next case's console begins in console.log."""
    try:
        return console_log.stat().st_size
    except OSError:
        return 0


def keep_console(console_log: Path, case_dir: Path, start: int, spec: CaseSpec, result: CaseResult) -> None:
    """cases/<id>/console.log: what the guest console showed during the case. When the
    guest ended before its kernel log could be read, the console's kernel lines stand in
    for the dmesg delta (the console shows critical messages: oops, panic)."""
    if not case_dir.is_dir():
        return
    try:
        with open(console_log, "rb") as fh:
            fh.seek(start)
            text = fh.read().decode(errors="replace").replace("\r", "")
    except OSError:
        return
    if text:
        (case_dir / "console.log").write_text(text)
    if result.outcome == Outcome.ERROR and not (case_dir / "dmesg.txt").exists():
        kernel = [l for l in text.splitlines() if _KERNEL_LINE.match(l)]
        (case_dir / "dmesg.txt").write_text(
            "# the guest ended before its kernel log could be read; kernel lines from its console:\n"
            + "".join(l + "\n" for l in kernel))
        bad = scan_dmesg("\n".join(kernel), spec.expected_dmesg).bad_lines
        if bad:
            result.evidence["dmesg_bad_lines"] = bad[:20]


def save_console_tail(target: Target | None, case_dir: Path) -> None:
    """cases/<id>/console-tail.log: the last console lines of a guest that crashed or wedged."""
    if isinstance(target, KillableConsole):
        (case_dir / "console-tail.log").write_text(target.last_console_lines(200))


def kernel_health(ctx: CaseContext, case_dir: Path) -> bool:
    """Write the case's dmesg delta and judge its health; True when an oops tainted the kernel
    (the guest must not serve another case)."""
    delta = ctx.dmesg()
    (case_dir / "dmesg.txt").write_text(delta)
    health = check_health(ctx, delta)
    return bool(health.bad_lines) and bool(_OOPS.search("\n".join(health.bad_lines)))
