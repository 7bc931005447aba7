"""Cases for tests/test_snapshots.py: one leaves the driver poisoned, the next looks at it.

Loaded only when BINDER_HARNESS_EXTRA_CASES names this directory. Neither is a verdict on
binder: they show whether a case starts on a driver no earlier case touched.
"""
from __future__ import annotations

import posixpath
import re

from harness.judging.catalog import case
from harness.judging.context import CaseContext

FULL_ASYNC = 2 * 1024 * 1024  # half of a 4 MiB area (binder_alloc_mmap_handler)
# The probe under another name: the harness ends a case's leftover probe processes, not these.
HOLDER = "/tmp/poison-holder"


@case("poison.leave_async", trace=False, timeout=60)
def leave_async(ctx: CaseContext) -> None:
    """A server that holds oneway buffers is frozen (SIGSTOP) mid-run, client and all, under a
    name the harness does not clean up after: its binder_proc, and the async space its held
    buffers use, outlive the case."""
    debugfs = f"{ctx.debugfs}/binder"
    script = (
        f"cp {ctx.probe} {HOLDER}; ({HOLDER} async_exact map=4194304 sizes=8 max=100000 timeout=600 >/dev/null 2>&1 &); "
        f"i=0; while [ $i -lt 2000 ]; do "
        f"v=$(grep 'free async space' {debugfs}/stats | awk '{{print $4}}' | sort -n | head -1); "
        f"[ -n \"$v\" ] && [ \"$v\" -lt {FULL_ASYNC} ] && break; i=$((i+1)); done; "
        f"kill -STOP $(pidof {posixpath.basename(HOLDER)}); sleep 0.2; grep 'free async space' {debugfs}/stats")
    out = ctx.target.run_shell(script, 60).output
    values = [int(v) for v in re.findall(r"free async space:?\s+(\d+)", out)]
    ctx.evidence["free_async_space"] = values
    ctx.check_that("a stopped server holds async space", bool(values) and min(values) < FULL_ASYNC,
                   min(values) if values else "no binder proc", f"below {FULL_ASYNC}",
                   "binder_alloc_new_buf_locked (async space taken by held oneway buffers)")


@case("poison.sees_pristine", trace=False)
def sees_pristine(ctx: CaseContext) -> None:
    """The driver as this case finds it: no binder_proc, no async space in use, no probe left."""
    state = ctx.read_file(f"{ctx.debugfs}/binder/state")
    procs = re.findall(r"^proc (\d+)", state, re.M)
    left = ctx.target.run_shell(f"pidof {posixpath.basename(HOLDER)} || true", 10).output.split()
    ctx.evidence["procs"] = procs
    ctx.check("binder procs at the start of the case", len(procs), 0, "binder debugfs state (print_binder_proc)")
    ctx.check("poison-holder processes left from earlier cases", left, [], "pidof")
