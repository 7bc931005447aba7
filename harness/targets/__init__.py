"""Target specs (DESIGN §2) and the factory that turns one into a Target."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError

QEMU_ARCHES = ("x86_64", "arm64")


@dataclass(frozen=True)
class TargetOptions:
    binder_module: Path | None = None
    console_log: Path | None = None


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a target spec into (kind, rest); refuse anything unknown with one line."""
    if spec.startswith("qemu:"):
        arch = spec.split(":", 1)[1]
        if arch not in QEMU_ARCHES:
            raise ConfigError(f"--target {spec}: unknown QEMU arch {arch!r}; use qemu:x86_64 or qemu:arm64")
        return "qemu", arch
    raise ConfigError(f"--target {spec}: unknown target; use qemu:x86_64, qemu:arm64, ssh://USER@HOST[:PORT], adb[:SERIAL] or local")


def make_target(spec: str, options: TargetOptions, progress=print):
    kind, rest = parse_spec(spec)
    if kind == "qemu":
        from harness.images import build_image, recipe_for_arch
        from harness.targets.qemu import QemuTarget

        image = build_image(recipe_for_arch(rest), options.binder_module, progress)
        return QemuTarget(image, spec, console_log=options.console_log)
    raise ConfigError(f"--target {spec}: not supported yet")
