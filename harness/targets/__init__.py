"""The options that shape or reach a target, checked against its spec (harness/targets/spec.py),
and the factory that turns both into a Target."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from harness.errors import ConfigError
from harness.targets.spec import TargetSpec

# --resident-context-manager on a QEMU guest: binder_linux gets a second device for the cases
# (binder_init -> init_binder_device per name); images/guest-init.sh passes this file's words
# to insmod binder_linux.ko.
PRIVATE_DEVICES = "binder,binder-harness"
PRIVATE_PARAMS = ("etc/binder-harness/binder_linux.ko.params", f"devices={PRIVATE_DEVICES}\n".encode(), 0o644)


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


def check_options(spec: TargetSpec, options: TargetOptions) -> None:
    """Refuse, with one line and before anything boots or connects, an option this kind of target
    cannot honour. harness/options.py calls it where a run's (or guest's, or LAVA job's) options
    are made; make_target takes options that passed."""
    if spec.kind != "qemu" and (options.kernel or options.modules or options.image):
        raise ConfigError(f"--target {spec}: --kernel, --modules and --image choose a QEMU guest's kernel; "
                          f"they do not apply to {spec.kind} targets")
    if spec.kind != "ssh" and (options.identity or options.known_hosts or options.insecure_accept_host_key):
        raise ConfigError(f"--target {spec}: --identity, --known-hosts and --insecure-accept-host-key apply to ssh:// targets only")
    if options.binder_module is not None and spec.kind == "adb":
        raise ConfigError(f"--binder-module: not supported on adb targets ({spec}); Android kernels carry binder built in")
    if options.binder_module is not None and spec.kind == "local":
        raise ConfigError(f"{spec}: --binder-module is not supported on this host's running kernel; "
                          f"load it yourself (insmod) and run without --binder-module")


def make_target(spec: TargetSpec, options: TargetOptions, progress=print):
    """The Target for `spec`, not started; `options` passed check_options."""
    if spec.kind == "qemu":
        from harness.targets.qemu import QemuTarget

        from harness import timing

        assert spec.arch is not None
        with timing.phase("image"):
            image = qemu_image(options, spec.arch, progress)
        return QemuTarget(image, spec.text, console_log=options.console_log, progress=progress,
                          use_snapshot=not options.no_snapshot)
    if spec.kind == "ssh":
        from harness.targets.ssh import SshAddress, SshOptions, SshTarget

        ssh_opts = SshOptions(identity=options.identity, known_hosts=options.known_hosts,
                              insecure_accept_host_key=options.insecure_accept_host_key)
        return SshTarget(spec.text, SshAddress(spec.user, spec.host, spec.port), ssh_opts, options.binder_module,
                         progress)
    if spec.kind == "adb":
        from harness.targets.adb import AdbTarget

        return AdbTarget(spec.text, spec.serial, progress)
    from harness.targets.local import LocalTarget

    return LocalTarget(spec.text)


_IMAGES: dict = {}  # (options but the console log, arch) -> GuestImage, built once per process


def qemu_image(options: TargetOptions, arch: str, progress=print):
    """The QEMU guest image these options ask for; with trace_dat it also holds trace-cmd.
    Built (or found in the cache) once per process: a run starts a guest for every case."""
    from harness.building.recipes import resolve_recipe

    memo = (replace(options, console_log=None), arch)
    image = _IMAGES.get(memo)
    if image is not None and image.kernel.exists() and image.initramfs.exists():
        return image
    _IMAGES[memo] = image = build_qemu_image(options, resolve_recipe(options.image, arch), progress)
    return image


def build_qemu_image(options: TargetOptions, recipe, progress=print, extra_files: tuple = (),
                     extra_modules: tuple[str, ...] = ()):
    """The guest image of `recipe` (options.image's, resolved by the caller) shaped by the options
    (--kernel, --modules, --binder-module, --trace-dat, --resident-context-manager), plus the
    caller's files and modules: `run`, `guest` and `lava` build their guests here."""
    from harness.building.build import build_image

    if options.trace_dat:
        from harness.building.guest_files import trace_cmd_files

        files, more = trace_cmd_files(recipe, progress)
        extra_files += tuple(files)
        extra_modules += tuple(m for m in more if m not in extra_modules)
    if options.resident_cm:
        extra_files += (PRIVATE_PARAMS,)
    return build_image(recipe, options.binder_module, progress, kernel=options.kernel, modules=options.modules,
                       extra_files=extra_files, extra_modules=extra_modules)
