"""stress: seeded, reproducible random BC streams and ioctls, bounded in time."""
from __future__ import annotations

import random

from cases._expect import probe_completed
from harness.judging.cases import CaseContext, case


@case("stress.random_commands", expected_dmesg=(r".",), timeout=60)
def random_commands(ctx: CaseContext) -> None:
    """Random commands for 3 s leave the kernel without warnings and the probe alive; --seed replays."""
    seed = ctx.seed if ctx.seed is not None else random.SystemRandom().randrange(1, 2**31)
    ctx.evidence["seed"] = seed
    out = ctx.run_probe("random", seed=seed, duration_ms=3000)
    probe_completed(ctx, out)
    summary = out.one("summary") or {}
    ctx.evidence["operations"] = summary.get("ops")
    ctx.check("seed the probe used", (out.one("seed") or {}).get("seed"), seed, "probe")
    ctx.check("probe exit status (alive to the end, not killed)", out.status, 0, "binder_ioctl (no hang, no crash)")
    ctx.check_that("operations run", (summary.get("ops") or 0) > 0, summary.get("ops"), "> 0", "probe")
