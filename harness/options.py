"""Every run option, declared once and bound to every front end: `binder-harness run`, `guest` and
`lava` (argparse; COMMANDS says which options each takes) and `pytest cases/` (the pytest plugin).

An Option names the field it fills (in RunOptions or its TargetOptions), its flag on each
front end (pytest's own flags, e.g. --timeout of pytest-timeout, are avoided with a `--bh-`
prefix), what kind of value it takes, and its help. `run_options` (and `target_options`, for
`guest`) turns the values a front end parsed into options, checking with one-line errors:
files and directories, positive seconds, case globs, and the target spec, parsed here once
into a TargetSpec, against the options that only some kinds of target can honour.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from harness.arches import DEFAULT_ARCH
from harness.errors import ConfigError
from harness.running.runner import RunOptions
from harness.targets import TargetOptions, check_options
from harness.targets.spec import FORMS, QEMU_SPECS, TargetSpec

TARGET_HELP = " | ".join(FORMS)


@dataclass(frozen=True)
class Option:
    field: str  # RunOptions or TargetOptions field
    cli: str  # flag of `binder-harness run`
    pytest: str  # flag of the pytest plugin
    kind: str  # str | seconds | int | file | dir | flag | globs (repeatable, case ids or globs)
    help: str

    @property
    def dest(self) -> str:
        return self.cli.lstrip("-").replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("target_spec", "--target", "--target", "str", f"target spec: {TARGET_HELP} (default qemu:{DEFAULT_ARCH}, "
                                                        "or the --image recipe's arch)"),
    Option("binder_module", "--binder-module", "--binder-module", "file",
           "binder_linux.ko to test instead of the stock driver"),
    Option("image", "--image", "--image", "str", "QEMU: image recipe, a name under images/ or a YAML path "
                                                 "(default: qemu-ARCH)"),
    Option("kernel", "--kernel", "--kernel", "file",
           "QEMU: kernel to boot instead of the recipe's: bzImage, vmlinux or arm64 Image"),
    Option("modules", "--modules", "--modules", "dir", "QEMU: modules for --kernel: a tree holding "
           "lib/modules/RELEASE, or a directory holding binder_linux.ko (without it, binder must be built in)"),
    Option("timeout", "--timeout", "--bh-timeout", "seconds", "per-case time limit in seconds"),
    Option("seed", "--seed", "--bh-seed", "int", "seed for stress cases (replays a run)"),
    Option("identity", "--identity", "--identity", "file",
           "ssh: private key file (default: the agent and ~/.ssh keys)"),
    Option("known_hosts", "--known-hosts", "--known-hosts", "file",
           "ssh: known_hosts file to check the host key against (default ~/.ssh/known_hosts)"),
    Option("insecure_accept_host_key", "--insecure-accept-host-key", "--insecure-accept-host-key", "flag",
           "ssh: accept any host key (ephemeral guests only)"),
    Option("shared_boot", "--shared-boot", "--shared-boot", "flag",
           "QEMU: run the cases one after another on one guest instead of each on its own pristine guest "
           "restored from the cached snapshot"),
    Option("no_snapshot", "--no-snapshot", "--no-snapshot", "flag",
           "QEMU: boot every guest instead of restoring (and saving) the cached snapshot of the booted guest"),
    Option("binder_device", "--binder-device", "--binder-device", "str",
           "run every case on this binder device (a private one, e.g. from binder_linux devices= or binderfs) "
           "instead of the one the harness chooses: its own through binderfs's binder-control where the "
           "target has binderfs, else /dev/binder"),
    Option("resident_cm", "--resident-context-manager", "--resident-context-manager", "flag",
           "start a resident context manager on /dev/binder before any case (servicemanager's place on Android) "
           "and run the cases on a private device: --binder-device, one made through binderfs's binder-control, "
           "or on QEMU guests binder_linux devices= (guest: with --adb-port, the guest's binder_linux gets a "
           "private /dev/binder-harness and the context manager stays for the guest's life)"),
    Option("trace_dat", "--trace-dat", "--bh-trace-dat", "flag",
           "also save each traced case's trace in trace-cmd's binary format, cases/ID/trace.dat (for trace-cmd "
           "report and KernelShark), written by trace-cmd extract on the target; QEMU guests get Debian's "
           "trace-cmd from the recipe's trace_cmd: section"),
    Option("not_applicable", "--not-applicable", "--not-applicable", "globs",
           "declare the cases matching this id or glob not applicable to this target (repeatable): they are not "
           "run and show as not_applicable, which, unlike a skipped case, does not stop exit status 0"),
)
_TYPES: dict[str, Callable[[str], Any]] = {"seconds": float, "int": int}
_TARGET_FIELDS = {f.name for f in fields(TargetOptions)}

# The options each subcommand takes from the table (pytest takes them all, as `run` does): what
# shapes a guest works wherever a guest is booted.
GUEST_SHAPE = ("target_spec", "image", "kernel", "modules", "binder_module")
COMMANDS: dict[str, tuple[str, ...]] = {
    "run": tuple(o.field for o in OPTIONS),
    "lava": (*GUEST_SHAPE, "timeout", "seed"),
    "guest": (*GUEST_SHAPE, "resident_cm"),
}
# The subcommands that boot a QEMU guest of their own, and why no other target will do
_QEMU_ONLY = {"lava": "a LAVA job boots a QEMU guest", "guest": "a guest is a QEMU target"}


def add_to_argparse(parser, command: str = "run") -> None:
    for o in OPTIONS:
        if o.field not in COMMANDS[command]:
            continue
        text = o.help
        if o.field == "target_spec" and command in _QEMU_ONLY:
            text = text.replace(TARGET_HELP, QEMU_SPECS.replace(" or ", " | "))
        if o.kind == "flag":
            parser.add_argument(o.cli, dest=o.dest, action="store_true", help=text)
        elif o.kind == "globs":
            parser.add_argument(o.cli, dest=o.dest, action="append", metavar="GLOB", default=None, help=text)
        else:
            parser.add_argument(o.cli, dest=o.dest, type=_TYPES.get(o.kind, str), default=None, help=text)


def add_to_pytest(group) -> None:
    for o in OPTIONS:
        if o.kind == "flag":
            group.addoption(o.pytest, dest=o.dest, action="store_true", default=False, help=o.help)
        elif o.kind == "globs":
            group.addoption(o.pytest, dest=o.dest, action="append", metavar="GLOB", default=None, help=o.help)
        else:
            group.addoption(o.pytest, dest=o.dest, type=_TYPES.get(o.kind, str), default=None, help=o.help)


def _checked(o: Option, value: Any) -> Any:
    if o.kind == "globs":
        return _case_globs(o, value or [])
    if o.kind == "seconds" and value is not None and value <= 0:
        raise ConfigError(f"{o.cli} {value}: must be a positive number of seconds")
    if value is None or o.kind not in ("file", "dir"):
        return value
    path = Path(value)
    if o.kind == "file" and not path.is_file():
        raise ConfigError(f"{o.cli} {value}: no such file")
    if o.kind == "dir" and not path.is_dir():
        raise ConfigError(f"{o.cli} {value}: no such directory; pass a modules tree (lib/modules/RELEASE) "
                          f"or a directory holding binder_linux.ko")
    return path


def _case_globs(o: Option, patterns: list[str]) -> tuple[str, ...]:
    """Case ids or globs, each naming at least one case of the catalog (a typo would silently
    declare nothing)."""
    import fnmatch

    from harness.judging.catalog import load_cases

    ids = list(load_cases())
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(i, pattern) for i in ids):
            raise ConfigError(f"{o.cli} {pattern}: matches no case; 'binder-harness list' shows the ids")
    return tuple(patterns)


def run_options(values: Any, out_dir: Path, command_line: str, command: str = "run") -> RunOptions:
    """RunOptions from a front end's parsed values (argparse Namespace or pytest's option object)."""
    spec, target, run = _parsed(values, command)
    return RunOptions(target_spec=spec, out_dir=out_dir, command_line=command_line, target=target, **run)


def target_options(values: Any, command: str) -> tuple[TargetSpec, TargetOptions]:
    """The target and what shapes it, for a subcommand that runs no cases (`guest`)."""
    spec, target, _ = _parsed(values, command)
    return spec, target


def _parsed(values: Any, command: str) -> tuple[TargetSpec, TargetOptions, dict[str, Any]]:
    """The spec, its TargetOptions (checked against it) and the other RunOptions fields; the
    options `command` does not take are at their defaults."""
    taken = COMMANDS[command]
    checked = {o.field: _checked(o, getattr(values, o.dest) if o.field in taken else _absent(o)) for o in OPTIONS}
    spec = _target_spec(checked.pop("target_spec"), checked["image"], command)
    target = TargetOptions(**{k: v for k, v in checked.items() if k in _TARGET_FIELDS})
    check_options(spec, target)
    return spec, target, {k: v for k, v in checked.items() if k not in _TARGET_FIELDS}


def _absent(o: Option) -> Any:
    return False if o.kind == "flag" else None


def _target_spec(text: str | None, image: str | None, command: str) -> TargetSpec:
    """--target, or qemu:ARCH of the --image recipe, or the default; the recipe must fit the target.
    The one place a spec is parsed from what a user typed."""
    from harness.building.recipes import find_recipe, load_recipe, resolve_recipe

    if text is None:
        text = f"qemu:{load_recipe(find_recipe(image)).arch}" if image else f"qemu:{DEFAULT_ARCH}"
    spec = TargetSpec.parse(text)
    if command in _QEMU_ONLY and spec.kind != "qemu":
        raise ConfigError(f"{command} --target {spec}: {_QEMU_ONLY[command]}; use {QEMU_SPECS}")
    if spec.arch is not None:
        resolve_recipe(image, spec.arch)
    return spec
