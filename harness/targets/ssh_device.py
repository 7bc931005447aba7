"""Making a host reached over ssh ready for cases: its working directory, tracefs and debugfs
mounted, and a binder driver: already there, loaded with modprobe, or the --binder-module
given, checked against the host and loaded with insmod; else refused with one line."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Callable

from harness.errors import ConfigError, TargetUnavailable
from harness.building.kernel import read_modinfo
from harness.targets.base import MOUNT_SCRIPT, CommandResult, Facts, shell_command

Exec = Callable[[str, float], CommandResult]  # run an already-quoted command, with a timeout
Push = Callable[[Path, str, int], None]  # copy a local file to a remote path, with a mode


def prepare_device(label: str, facts: Facts, workdir: str, binder_module: Path | None,
                   exec_: Exec, push: Push, read_facts: Callable[[], Facts]) -> Facts:
    """Workdir, tracefs/debugfs mounts, and a binder driver: loaded, or refused with one line.
    Returns the host's facts as they are afterwards."""
    exec_(shell_command(["mkdir", "-p", workdir]), 20)
    if facts.is_root and (facts.tracefs is None or facts.debugfs is None):
        exec_(MOUNT_SCRIPT, 20)
    if binder_module is not None:
        load_module(label, facts, binder_module, workdir, exec_, push)
    elif not facts.binder_found and facts.is_root:
        exec_("modprobe binder_linux 2>&1", 30)
    facts = read_facts()
    if not facts.binder_found:
        why = "not root, so binder_linux cannot be loaded" if not facts.is_root else "modprobe binder_linux did not create it"
        raise TargetUnavailable(f"{label}: no /dev/binder and no binderfs on {facts.kernel_release} ({why})")
    return facts


def load_module(label: str, facts: Facts, module: Path, workdir: str, exec_: Exec, push: Push) -> None:
    """insmod --binder-module on the host, once it is known to fit (arch, vermagic) and the host
    has no binder loaded already (binder_linux cannot be unloaded)."""
    info = read_modinfo(module)
    if info.arch != facts.arch:
        raise ConfigError(f"--binder-module {module}: built for {info.arch}, but {label} is {facts.arch} ({facts.kernel_release})")
    if info.release != facts.kernel_release:
        raise ConfigError(f"--binder-module {module}: vermagic says {info.release or 'nothing'}, but {label} runs {facts.kernel_release}")
    if facts.binder_found:
        raise TargetUnavailable(f"{label}: binder is already loaded, and binder_linux cannot be unloaded; "
                                f"reboot the host to test {module.name}")
    if not facts.is_root:
        raise TargetUnavailable(f"{label}: --binder-module needs root to insmod")
    remote = f"{workdir}/{module.name}"
    push(module, remote, 0o644)
    res = exec_(f"insmod {shlex.quote(remote)} 2>&1", 30)
    if not res.ok:
        raise TargetUnavailable(f"{label}: insmod {module.name} failed: {res.output.strip()[:160]}")
