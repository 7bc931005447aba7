"""one_copy.sync_sizes as it was before offsets came from BTF: the copy kprobe reads
binder_buffer->user_data at a fixed +88 (Debian's 6.1/6.12/7.2 layout). Loaded only by
tests/test_layout.py (BINDER_HARNESS_EXTRA_CASES) to show that a module with another
layout defeats a fixed offset, while the catalog's own case, placed by BTF, passes."""
from __future__ import annotations

from dataclasses import replace

from cases._one_copy_checks import judge_delivery
from cases.one_copy import MAP_BYTES, SIZES
from harness.evidence.kprobes import COPY_USER_TO_BUFFER, USERCOPY_CHECK
from harness.judging.catalog import case
from harness.judging.context import CaseContext

FIXED_88 = replace(COPY_USER_TO_BUFFER, spec=COPY_USER_TO_BUFFER.spec.replace("{binder_buffer.user_data}", "88"))


@case("layout.fixed_offset_88", kprobes=(FIXED_88, USERCOPY_CHECK))
def fixed_offset_88(ctx: CaseContext) -> None:
    """one_copy.sync_sizes with user_data read at +88 whatever the module's layout."""
    out = ctx.run_probe("sync", sizes=",".join(map(str, SIZES)), map=MAP_BYTES, mode="call")
    judge_delivery(ctx, out, ctx.stop_trace(), SIZES, "call")
