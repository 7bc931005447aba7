"""Where a run's wall time goes: named phases, summed over the run.

report.json carries them as timings.phases ({name: seconds}) beside boot_s and
total_s, so bench/ can tell the guest's boot and the probe's run apart from the
harness's own overhead. Phases (all host wall time):

  startup         process start -> the run begins (interpreter, imports, argument checks)
  image           kernel, busybox and initramfs ready (a cache hit when warm)
  qemu_spawn      QEMU process started
  boot_to_ready   QEMU started -> the guest's READY line (firmware, kernel, init)
  guest_uptime    the guest's own uptime at READY (kernel + init, without firmware)
  snapshot_key    the snapshot's key computed (file hashes are remembered by size and mtime)
  snapshot_save   a booted guest saved as the snapshot (unmount 9p, migrate, remount)
  restore         a guest restored from the snapshot, instead of qemu_spawn + boot_to_ready:
                  QEMU started -> the VM runs, its state file's SHA256 checked, the share
                  remounted and the clock set on the console; the next case's guest is
                  restored while a case runs, so this overlaps the cases' phases
  spare_wait      what the cases waited for their guests restored in the background
  boot_dmesg      the boot's dmesg saved (a restored guest's comes with its snapshot)
  case_setup      per case: directories, probe push, the begin line in /dev/kmsg
  arm_trace       per case: tracing armed
  probe           per case: probe scenarios running (console round trip included)
  collect_trace   per case: tracing stopped and trace.txt pulled
  dmesg           per case: the dmesg delta read
  judge           per case: parsing and checks on the host

The phases are per process; one that makes several runs (matrix cells, one after another)
calls reset() before each, so a run's report holds only its own phases.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager

_phases: dict[str, float] = {}


def add(name: str, seconds: float) -> None:
    _phases[name] = _phases.get(name, 0.0) + max(0.0, seconds)


@contextmanager
def phase(name: str):
    t0 = time.monotonic()
    try:
        yield
    finally:
        add(name, time.monotonic() - t0)


def reset() -> None:
    """Forget every phase: the next run starts from zero."""
    _phases.clear()


def snapshot() -> dict[str, float]:
    return {k: round(v, 3) for k, v in _phases.items()}


def process_age() -> float:
    """Seconds since this process started (0.0 where /proc cannot tell)."""
    try:
        stat = open("/proc/self/stat").read()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float(open("/proc/uptime").read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0
