"""A stand-in for qemu-system-* that behaves like QEMU on a host with a given kind of KVM.

Installed on PATH by tests/test_accel.py under the real binary's name. Without `-accel kvm`
it execs the real QEMU unchanged. With it, it acts as $BH_FAKE_KVM says, printing QEMU's own
failure text (copied from QEMU 7.2 on real hosts):

  works     KVM boots the guest: the real QEMU runs it (under TCG, the only accelerator
            every host has), so the harness sees a boot under "KVM" reach READY
  refuses   QEMU refuses -accel kvm at start and exits 1
  dies      the kernel dies at once with "KVM internal error ... emulation failure";
            QEMU then sits in the paused VM until killed
  stalls    no boot progress at all: QEMU spins, printing nothing
  dies-in:CASE   boots like `works`, then dies as `dies` when the harness begins CASE
                 (it sends "binder-harness: begin CASE" over the console)

The real binary is $BH_REAL_QEMU.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import time

INTERNAL_ERROR = b"""KVM internal error. Suberror: 1
extra data[0]: 0x0000000000000001
extra data[1]: 0x74204dc70f48f00f
extra data[2]: 0x894d0824448b4c66
extra data[3]: 0x0000000000001000
emulation failure
RAX=ffff888004840040 RBX=0000000000000000 RCX=0000000080400040 RDX=0000000000400001
RIP=ffffffff8132ae50 RFL=00000006 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=0
Code=24 5b 80 41 81 e3 00 00 00 40 48 8b 4c 24 58 74 31 48 89 f0 <f0> 48 0f c7 4d 20 74 66 4c 8b 44 24 08
"""


def as_tcg(argv: list[str]) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        prev = argv[i - 1] if i else ""
        out.append("tcg" if prev == "-accel" and arg == "kvm" else "max" if prev == "-cpu" and arg == "host" else arg)
    return out


def stall() -> None:
    while True:
        time.sleep(3600)


def relay_until(argv: list[str], case_id: str) -> None:
    """Run the real QEMU, relaying the console both ways, until the harness begins case_id."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             preexec_fn=lambda: prctl(1, signal.SIGKILL))
    assert child.stdin is not None and child.stdout is not None
    trigger = f"binder-harness: begin {case_id}".encode()
    seen = b""
    while True:
        ready, _, _ = select.select([0, child.stdout], [], [])
        if child.stdout in ready:
            data = os.read(child.stdout.fileno(), 65536)
            if not data:
                sys.exit(child.wait())
            os.write(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                child.kill()
                sys.exit(0)
            seen = (seen + data)[-4096:]
            if trigger in seen:
                child.kill()
                child.wait()
                os.write(1, INTERNAL_ERROR)
                stall()
            child.stdin.write(data)
            child.stdin.flush()


def main() -> None:
    real = os.environ["BH_REAL_QEMU"]
    argv = [real, *sys.argv[1:]]
    mode = os.environ.get("BH_FAKE_KVM", "works")
    if not any(a == "kvm" and argv[i - 1] == "-accel" for i, a in enumerate(argv)):
        os.execv(real, argv)
    if mode == "works":
        os.execv(real, as_tcg(argv))
    if mode == "refuses":
        name = os.path.basename(sys.argv[0])
        os.write(2, b"Could not access KVM kernel module: No such file or directory\n"
                    + f"{name}: -accel kvm: failed to initialize kvm: No such file or directory\n".encode())
        sys.exit(1)
    if mode == "dies":
        os.write(1, INTERNAL_ERROR)
        stall()
    if mode == "stalls":
        stall()
    if mode.startswith("dies-in:"):
        relay_until(as_tcg(argv), mode.split(":", 1)[1])
    sys.exit(f"qemu_wrapper: unknown BH_FAKE_KVM={mode}")


if __name__ == "__main__":
    main()
