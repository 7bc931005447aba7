"""A binder setup: which binder device a target's cases open, the binderfs the harness mounted
for them, and the resident context manager on /dev/binder (servicemanager's place).

`BinderSetup` does this for a session's targets (harness/running/runner.py); `start_resident`
is the one way a resident is started, by a session and by `binder-harness guest`
(harness/guest.py).
"""
from __future__ import annotations

import json
import shlex
from pathlib import PurePosixPath
from typing import Callable

from harness import timing
from harness.arches import abi_for
from harness.errors import ConfigError, TargetError
from harness.running.devices import (DEFAULT_DEVICE, GUEST_BINDERFS_LINE, PRIVATE_DEVICE, BinderDevice,
                                     binderfs_script, parse_binderfs)
from harness.targets import PRIVATE_DEVICES
from harness.targets.base import BootedGuest, Target
from harness.targets.binder_driver import DRIVER_SCRIPT, parse_driver

ProbePath = Callable[[str], str]  # the probe's path on the target for an ABI (pushed on first use)


def start_resident(target: Target, probe: str, binary: str, log: str, cases_on: str) -> int:
    """Start the probe's `resident` scenario on /dev/binder, in the background, from a copy of
    the probe at `probe` named `binary` (under its own name: each case's settle step kills
    leftover processes named like the probe), its output in `log`; returns its pid once it
    says it is ready, or raises one line. `cases_on` names the device the cases use instead."""
    spec = target.info().spec
    q = shlex.quote
    # setsid where there is one: adbd ends a shell's processes with its session
    start = (f"mkdir -p {q(str(PurePosixPath(binary).parent))} && cp {q(probe)} {q(binary)} && "
             f"s=$(command -v setsid); "
             f"($s {q(binary)} resident device=/dev/binder > {q(log)} 2>&1 < /dev/null &); "
             f"i=0; while [ $i -lt 50 ] && ! grep -q resident.ready {q(log)} 2>/dev/null; do sleep 0.1; i=$((i+1)); done; "
             f"cat {q(log)}")
    res = target.run_shell(start, 20)
    line = next((l for l in res.output.splitlines() if "resident.ready" in l), "")
    try:
        ready = json.loads(line)
    except ValueError:
        ready = {}
    if ready.get("errno_name") == "EBUSY":
        raise ConfigError(f"{spec}: /dev/binder already has a context manager (servicemanager, or a "
                          f"resident left running); drop --resident-context-manager: the cases run on {cases_on}")
    if not ready or ready.get("errno"):
        raise TargetError(f"{spec}: the resident context manager did not start on /dev/binder: "
                          f"{res.output.strip()[-200:] or 'no output'}")
    return int(ready["pid"])


class BinderSetup:
    """The binder device of a session's cases (`device`), set up on each new target.

    `label` names the target in errors; `binder_device` is --binder-device; with `resident_cm`
    a resident context manager owns /dev/binder for the run, recorded in `record`
    (report.json's top-level fields) under resident_context_manager."""

    def __init__(self, label: str, binder_device: str | None, resident_cm: bool, progress, record: dict):
        self.label = label
        self.binder_device = binder_device
        self.resident_cm = resident_cm
        self.progress = progress
        self.record = record
        self.device: BinderDevice = DEFAULT_DEVICE  # where this target's cases open binder
        self.resident: dict = {}  # the resident context manager on /dev/binder, when one was asked for
        self.own_binderfs = ""  # a binderfs mounted on the target (none there), unmounted at the end
        self.binderfs = ""  # where the cases' binderfs is mounted (the Rust driver's binder_logs/ are there)
        self._driver: dict | None = None  # which binder driver the target runs (binder_driver.py), read once

    def set_up(self, target: Target, boot_dmesg: str, probe_path: ProbePath) -> None:
        """On a target just started: choose the cases' device; start the resident if asked."""
        self.device = self._choose_device(target, boot_dmesg, probe_path)
        if self.resident_cm:
            self._start_resident(target, probe_path)

    def driver(self, target: Target) -> dict:
        """report.json's target `driver` ("c", "rust", ...) and what it was read from: one shell
        round trip, once per session (every guest of a run boots the same kernel)."""
        if self._driver is None:
            with timing.phase("binder_driver"):
                self._driver = parse_driver(target.run_shell(DRIVER_SCRIPT, 30).output).as_json()
        return self._driver

    # -- which binder device the cases use -----------------------------------------
    def _choose_device(self, target: Target, boot_dmesg: str, probe_path: ProbePath) -> BinderDevice:
        """The device cases open (harness/running/devices.py): the one named with --binder-device;
        where the target has binderfs, one of their own made through binder-control; with a
        resident context manager on /dev/binder, binder_linux's devices= parameter where the
        harness loads the module; else /dev/binder."""
        label = self.label
        if self.binder_device:
            device = BinderDevice(self.binder_device, "named with --binder-device")
        elif made := self._binderfs_device(target, boot_dmesg, probe_path):
            return made
        elif self.resident_cm:
            if not isinstance(target, BootedGuest):
                raise ConfigError(f"{label}: --resident-context-manager needs a private binder device for the cases; "
                                  f"name one with --binder-device PATH")
            device = BinderDevice(PRIVATE_DEVICE, f"binder_linux devices={PRIVATE_DEVICES} at insmod by the guest's init")
        else:
            return DEFAULT_DEVICE
        if not target.run(["test", "-c", device.path], 10).ok:
            raise ConfigError(f"{label}: --binder-device {device.path}: no such character device on the target; "
                              f"list them with ls -l /dev/binder*")
        return device

    def _binderfs_device(self, target: Target, boot_dmesg: str, probe_path: ProbePath) -> BinderDevice | None:
        """A device of the cases' own through binderfs's binder-control (BINDER_CTL_ADD), made
        once per target (each restored guest makes its own: one ioctl); None when the target has
        no binderfs. An existing device of that name (an earlier run on a long-lived target) is
        reused, and made_by says so."""
        if isinstance(target, BootedGuest) and GUEST_BINDERFS_LINE not in boot_dmesg:
            return None  # guest-init mounts binderfs wherever the kernel has it, and says so in the log
        info = target.info()
        abi = abi_for(info.arch, False)
        if not info.is_root or abi is None:
            return None  # binder-control is root's (0600); the cases are skipped without root anyway
        label = self.label
        own = f"{target.workdir}/binderfs"
        res = target.run_shell(binderfs_script(probe_path(abi), own), 30)
        answer = parse_binderfs(res.output)
        if answer.state == "none":
            return None
        if answer.state == "mounted_here":
            self.own_binderfs = answer.mount
        if answer.state in ("mounted", "mounted_here"):
            self.binderfs = answer.mount
        if answer.state == "mount_failed":
            raise ConfigError(f"{label}: the kernel has binderfs, but mounting it at {answer.mount} failed "
                              f"({answer.why or 'no output'}); mount it as Android does (mkdir /dev/binderfs; "
                              f"mount -t binder binder /dev/binderfs) or name a device with --binder-device PATH")
        if answer.state not in ("mounted", "mounted_here"):
            raise TargetError(f"{label}: looking for binderfs gave no answer: {res.output.strip()[-200:] or 'no output'}")
        control = f"{answer.mount}/binder-control"
        if answer.made:
            return BinderDevice(answer.device, f"binderfs BINDER_CTL_ADD on {control}")
        if answer.existed:
            self.progress(f"{label}: {answer.device} already exists (BINDER_CTL_ADD: EEXIST; an earlier run "
                          f"made it, say); the cases reuse it")
            return BinderDevice(answer.device, f"binderfs: already there (BINDER_CTL_ADD on {control}: EEXIST), reused")
        failed = answer.why or f"BINDER_CTL_ADD on {control}: {answer.errno_name or 'no device appeared'}"
        hint = " (SELinux? adb root, or setenforce 0 on a userdebug build)" if "EACCES" in failed else ""
        raise ConfigError(f"{label}: binderfs gave the cases no device: {failed}{hint}; "
                          f"name one with --binder-device PATH")

    def unmount(self, target: Target) -> None:
        """Before a target the harness reaches (not boots) is let go: unmount the binderfs this
        setup mounted there, before the target removes its workdir; lazily, should a probe
        still hold a device."""
        if self.own_binderfs and not isinstance(target, BootedGuest) and target.alive():
            try:
                target.run(["umount", "-l", self.own_binderfs], 10)
            except TargetError:
                pass
        self.own_binderfs = ""

    # -- the resident context manager on /dev/binder --------------------------------
    def _start_resident(self, target: Target, probe_path: ProbePath) -> None:
        """A resident context manager on /dev/binder, standing in for servicemanager: the probe's
        `resident` scenario, left running in the background for the whole run."""
        if self.device.path == "/dev/binder":
            raise ConfigError(f"{self.label}: the resident context manager owns /dev/binder; "
                              f"the cases need another device (--binder-device PATH)")
        abi = abi_for(target.info().arch, False)
        assert abi is not None
        pid = start_resident(target, probe_path(abi), f"{target.workdir}/bin/binder-resident",
                             f"{target.workdir}/resident.jsonl", f"{self.device.path} ({self.device.made_by})")
        self.resident = {"device": "/dev/binder", "pid": pid, "started": True}
        self.record["resident_context_manager"] = dict(self.resident)
        self.progress(f"resident context manager on /dev/binder (pid {pid}); cases run on {self.device.path}")

    def _ping_resident(self, target: Target | None, probe_path: ProbePath) -> None:
        """After the cases: the resident context manager still answers PING on /dev/binder."""
        if not self.resident or target is None or not target.alive():
            return
        abi = abi_for(target.info().arch, False)
        assert abi is not None
        res = target.run([probe_path(abi), "ping_cm", "device=/dev/binder", "timeout=10"], 20)
        alive = target.run_shell(f"kill -0 {int(self.resident['pid'])}", 10).ok
        answered = res.ok and '"reply":true' in res.output
        self.record["resident_context_manager"] = {**self.resident, "still_running": alive,
                                                   "ping_after_run": "answered" if answered else res.output.strip()[-200:]}
        self.progress(f"resident context manager on /dev/binder: {'answered PING' if answered else 'did NOT answer PING'} "
                      f"after the run")

    def close_resident(self, target: Target | None, probe_path: ProbePath) -> None:
        """Ask the resident context manager for PING (it must still answer), then end it."""
        if not self.resident:
            return
        try:
            self._ping_resident(target, probe_path)
            if target is not None and target.alive():  # leave no context manager behind
                target.run_shell(f"kill {int(self.resident['pid'])} 2>/dev/null; true", 10)
        except TargetError as exc:
            self.record["resident_context_manager"] = {**self.resident, "ping_after_run": f"not asked: {exc}"}
