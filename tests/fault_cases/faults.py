"""Cases that break the guest on purpose, for the harness's fault tests.

Loaded only when BINDER_HARNESS_EXTRA_CASES names this directory (tests/test_faults.py
does). Each does one real thing to the real guest; none of them is a verdict on binder.
"""
from __future__ import annotations

from harness.judging.catalog import case
from harness.judging.context import CaseContext


@case("fault.panic", trace=True)
def panic(ctx: CaseContext) -> None:
    """Crash the guest kernel: sysrq 'c' panics it (panic=-1 and -no-reboot end QEMU)."""
    ctx.run_probe("version")
    ctx.target.run_shell("echo c > /proc/sysrq-trigger", 10)
    ctx.check("the guest survived sysrq c", "yes", "no", "sysrq_handle_crash")


@case("fault.probe_hang", trace=True)
def probe_hang(ctx: CaseContext) -> None:
    """A probe scenario that runs far longer than the case's time limit (--timeout)."""
    out = ctx.run_probe("random", seed=7, duration_ms=600_000)
    ctx.check("probe exit status", out.status, 0, "probe")


@case("fault.sleep", trace=True)
def sleep(ctx: CaseContext) -> None:
    """Sit in a guest command for a while, so a test can do something to QEMU or the harness."""
    ctx.run_probe("version")
    result = ctx.run(["sleep", "8"], timeout=ctx.timeout)
    ctx.check("sleep exit status", result.status, 0, "sleep")


@case("fault.console_stop")
def console_stop(ctx: CaseContext) -> None:
    """Stop the console shell itself: the guest runs on, but the console never answers."""
    ctx.target.run_shell("kill -STOP $$", ctx.timeout)
    ctx.check("the console answered", "yes", "no", "console")


@case("fault.console_exit")
def console_exit(ctx: CaseContext) -> None:
    """End the console shell: init powers the guest off and QEMU exits."""
    ctx.target.run_shell("exit 0", ctx.timeout)
    ctx.check("the console answered", "yes", "no", "console")
