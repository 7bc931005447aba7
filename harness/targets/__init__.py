"""Target specs (DESIGN §2) and the factory that turns one into a Target."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from harness.arches import GUEST_ARCHES
from harness.errors import ConfigError

_QEMU_SPECS = " or ".join(f"qemu:{a}" for a in GUEST_ARCHES)
# --resident-context-manager on a QEMU guest: binder_linux gets a second device for the cases
# (binder_init -> init_binder_device per name); images/guest-init.sh passes this file's words
# to insmod binder_linux.ko.
PRIVATE_DEVICES = "binder,binder-harness"
PRIVATE_PARAMS = ("etc/binder-harness/binder_linux.ko.params", f"devices={PRIVATE_DEVICES}\n".encode(), 0o644)
_KNOWN = f"use {', '.join(f'qemu:{a}' for a in GUEST_ARCHES)}, ssh://USER@HOST[:PORT], adb[:SERIAL] or local"


@dataclass(frozen=True)
class TargetOptions:
    binder_module: Path | None = None
    console_log: Path | None = None
    kernel: Path | None = None  # --kernel: vmlinux, bzImage or arm64 Image replacing the recipe's kernel
    modules: Path | None = None  # --modules: modules tree or directory holding binder_linux.ko
    image: str | None = None  # --image: recipe name or path (default images/qemu-ARCH.yaml)
    trace_dat: bool = False  # --trace-dat: QEMU guests get trace-cmd (the recipe's trace_cmd: section)
    no_snapshot: bool = False  # --no-snapshot: QEMU guests boot, never restore or save a snapshot
    # --resident-context-manager: a context manager owns /dev/binder for the whole run (servicemanager's
    # place on Android); QEMU guests load binder_linux with a second, private device for the cases
    resident_cm: bool = False
    # ssh only
    identity: Path | None = None
    known_hosts: Path | None = None
    insecure_accept_host_key: bool = False


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a target spec into (kind, rest); refuse anything unknown with one line."""
    if spec.startswith("qemu:"):
        arch = spec.split(":", 1)[1]
        if arch not in GUEST_ARCHES:
            raise ConfigError(f"--target {spec}: unknown QEMU arch {arch!r}; use {_QEMU_SPECS}")
        return "qemu", arch
    if spec.startswith("ssh://"):
        from harness.targets.ssh import parse_ssh_spec

        parse_ssh_spec(spec)
        return "ssh", spec
    if spec == "adb":
        return "adb", ""
    if spec.startswith("adb:"):
        serial = spec[4:]
        if not serial or any(c.isspace() for c in serial):
            raise ConfigError(f"--target {spec}: empty or malformed serial; use adb or adb:SERIAL")
        return "adb", serial
    if spec == "local":
        return "local", ""
    raise ConfigError(f"--target {spec}: unknown target; {_KNOWN}")


def guest_arch(spec: str) -> str | None:
    """The arch of the guest this spec boots (qemu:ARCH), or None for a device it reaches."""
    kind, rest = parse_spec(spec)
    return rest if kind == "qemu" else None


def make_target(spec: str, options: TargetOptions, progress=print):
    kind, rest = parse_spec(spec)
    if kind != "qemu" and (options.kernel or options.modules or options.image):
        raise ConfigError(f"--target {spec}: --kernel, --modules and --image choose a QEMU guest's kernel; "
                          f"they do not apply to {kind} targets")
    if kind != "ssh" and (options.identity or options.known_hosts or options.insecure_accept_host_key):
        raise ConfigError(f"--target {spec}: --identity, --known-hosts and --insecure-accept-host-key apply to ssh:// targets only")
    if kind == "qemu":
        from harness.targets.qemu import QemuTarget

        from harness import timing

        with timing.phase("image"):
            image = qemu_image(options, rest, progress)
        return QemuTarget(image, spec, console_log=options.console_log, progress=progress,
                          use_snapshot=not options.no_snapshot)
    if kind == "ssh":
        from harness.targets.ssh import SshOptions, SshTarget, parse_ssh_spec

        ssh_opts = SshOptions(identity=options.identity, known_hosts=options.known_hosts,
                              insecure_accept_host_key=options.insecure_accept_host_key)
        return SshTarget(spec, parse_ssh_spec(spec), ssh_opts, options.binder_module, progress)
    if kind == "adb":
        from harness.targets.adb import AdbTarget

        return AdbTarget(spec, rest or None, options.binder_module, progress)
    from harness.targets.local import LocalTarget

    return LocalTarget(spec, options.binder_module)


_IMAGES: dict = {}  # (options but the console log, arch) -> GuestImage, built once per process


def qemu_image(options: TargetOptions, arch: str, progress=print):
    """The QEMU guest image these options ask for; with trace_dat it also holds trace-cmd.
    Built (or found in the cache) once per process: a run starts a guest for every case."""
    memo = (replace(options, console_log=None), arch)
    image = _IMAGES.get(memo)
    if image is not None and image.kernel.exists() and image.initramfs.exists():
        return image
    _IMAGES[memo] = image = _build_qemu_image(options, arch, progress)
    return image


def _build_qemu_image(options: TargetOptions, arch: str, progress=print):
    from harness.images.build import build_image
    from harness.images.recipes import resolve_recipe

    recipe = resolve_recipe(options.image, arch)
    extra_files: tuple = ()
    extra_modules: tuple[str, ...] = ()
    if options.trace_dat:
        from harness.images.guest_files import trace_cmd_files

        files, extra_modules = trace_cmd_files(recipe, progress)
        extra_files = tuple(files)
    if options.resident_cm:
        extra_files += (PRIVATE_PARAMS,)
    return build_image(recipe, options.binder_module, progress, kernel=options.kernel, modules=options.modules,
                       extra_files=extra_files, extra_modules=extra_modules)
