"""A case the kernel under test cannot place, as a module without BTF leaves one_copy's cases:
its kprobe reads a struct member that no kernel has, so the harness's own BTF lookup on the
real guest finds no offset and the case is skipped (not judged). Loaded only by
tests/test_exit_status.py (BINDER_HARNESS_EXTRA_CASES), to show that such a run is not green."""
from __future__ import annotations

from harness.evidence.kprobes import Kprobe
from harness.judging.catalog import case
from harness.judging.context import CaseContext

NO_SUCH_MEMBER = Kprobe("not_judged_copy", "binder_alloc_copy_user_to_buffer "
                                           "x=+{binder_buffer.no_such_member}($arg2):x64")


@case("notjudged.missing_offset", kprobes=(NO_SUCH_MEMBER,))
def missing_offset(ctx: CaseContext) -> None:
    """Never reached: arming its kprobe needs an offset the kernel's BTF does not have."""
    ctx.check("reached the case body", True, False, "binder_alloc_copy_user_to_buffer")
