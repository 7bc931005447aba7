"""one_copy: the receiver reads the sender's bytes straight from its own
read-only mapping, copied once by the kernel (DESIGN §4, the seed articles' claim)."""
from __future__ import annotations

from cases._one_copy_checks import judge_delivery
from harness.cases import CaseContext, case
from harness.trace import COPY_USER_TO_BUFFER, USERCOPY_CHECK

SIZES = (8, 4096, 10000, 65536, 1024 * 1024 - 8 * 1024)
MAP_BYTES = 4 * 1024 * 1024


def _delivery(ctx: CaseContext, mode: str) -> None:
    out = ctx.run_probe("sync", sizes=",".join(map(str, SIZES)), map=MAP_BYTES, mode=mode)
    judge_delivery(ctx, out, ctx.stop_trace(), SIZES, mode)


@case("one_copy.sync_sizes", kprobes=(COPY_USER_TO_BUFFER, USERCOPY_CHECK))
def sync_sizes(ctx: CaseContext) -> None:
    """Synchronous calls of 8 B to 1 MiB-8 KiB land in the server's mapping, copied once."""
    _delivery(ctx, "call")
