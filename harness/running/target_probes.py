"""The probe on a session's target: pushed once per ABI to each new target, and whether the
target's kernel has the 32-bit compat layer the compat cases go through (asked once per
kernel build)."""
from __future__ import annotations

from harness import timing
from harness.evidence.probe import ensure_probe
from harness.judging.catalog import COMPAT_SCRIPT, compat_missing
from harness.targets.base import Target


class TargetProbes:
    def __init__(self) -> None:
        self._paths: dict[str, str] = {}  # per ABI, on the current target
        self._compat: dict[str, bool] = {}  # per kernel build: it has the 32-bit compat layer

    def forget(self) -> None:
        """A new target: its probes are pushed afresh."""
        self._paths = {}

    def path(self, target: Target | None, abi: str) -> str:
        """The probe for `abi` on `target`, pushed there on first use."""
        if abi not in self._paths:
            assert target is not None, "the probe is pushed to a started target"
            remote = f"{target.workdir}/bin/binder-probe-{abi}"
            target.push(ensure_probe(abi), remote, 0o755)  # every push makes the directory
            self._paths[abi] = remote
        return self._paths[abi]

    def has_compat(self, target: Target) -> bool:
        """The kernel under test has the 32-bit compat layer the compat cases go through (or it
        cannot be told: then they run); asked once per kernel build."""
        info = target.info()
        key = f"{info.spec} {info.kernel_release} {info.build_id}"
        if key not in self._compat:
            with timing.phase("compat_check"):
                self._compat[key] = not compat_missing(target.run_shell(COMPAT_SCRIPT, 30).output)
        return self._compat[key]
