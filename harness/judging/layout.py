"""Struct offsets that kprobes read, taken from the BTF of the kernel under test.

The target's own `/sys/kernel/btf/binder_linux` (split BTF on `/sys/kernel/btf/vmlinux`)
describes the module that is loaded, whoever built it, so a rebuilt module with another
`struct binder_buffer` still gets its `user_data` read at the right place. Binder built into
the kernel is found in `/sys/kernel/btf/vmlinux` itself. The files are copied on the target
and read back through the transport (QEMU 9p, ssh, adb alike), once per target, kernel and
module in this process, and parsed here (harness/evidence/btf.py).
"""
from __future__ import annotations

import shlex
import threading
from dataclasses import dataclass
from pathlib import Path

from harness.evidence import btf
from harness.targets.base import Target

MODULE = "binder_linux"
BTF_DIR = "/sys/kernel/btf"


@dataclass(frozen=True)
class FieldOffset:
    offset: int | None  # None: not found, see `source`
    source: str  # where it came from, e.g. "BTF /sys/kernel/btf/binder_linux", or why there is none

    def as_evidence(self) -> dict:
        return {"offset": self.offset, "from": self.source}


_CACHE: dict[tuple[str, str, str, str], FieldOffset] = {}
_LOCK = threading.Lock()


def _read_btf(target: Target, remote_dir: str, local_dir: Path) -> tuple[bytes | None, bytes | None, str]:
    """(module BTF, vmlinux BTF, problem) as the target's sysfs has them, in one round trip."""
    names = {"mod": f"{BTF_DIR}/{MODULE}", "base": f"{BTF_DIR}/vmlinux"}
    script = f"mkdir -p {shlex.quote(remote_dir)}; " + "; ".join(f"if [ -r {shlex.quote(src)} ]; then cat {shlex.quote(src)} > "
                       f"{shlex.quote(f'{remote_dir}/.btf-{key}')}; echo btf-{key}=$?; fi"
                       for key, src in names.items())
    result = target.run_shell(script, 60)
    got: dict[str, bytes | None] = {}
    for key in names:
        local = local_dir / f".btf-{key}"
        ok = f"btf-{key}=0" in result.output and target.pull(f"{remote_dir}/.btf-{key}", local)
        got[key] = local.read_bytes() if ok else None
        local.unlink(missing_ok=True)
    target.run_shell(f"rm -f {shlex.quote(remote_dir)}/.btf-mod {shlex.quote(remote_dir)}/.btf-base", 20)
    problem = "" if got["base"] is not None else f"the target has no readable {names['base']} (CONFIG_DEBUG_INFO_BTF)"
    return got["mod"], got["base"], problem


def struct_offsets(target: Target, fields: tuple[str, ...], remote_dir: str, local_dir: Path) -> dict[str, FieldOffset]:
    """{"struct.member": FieldOffset} for the kernel and binder module running on `target`."""
    info = target.info()
    key_base = (info.spec, info.kernel_release, info.binder_module)
    with _LOCK:
        if all(key_base + (f,) in _CACHE for f in fields):
            return {f: _CACHE[key_base + (f,)] for f in fields}
        module, base, problem = _read_btf(target, remote_dir, local_dir)
        out: dict[str, FieldOffset] = {}
        for f in fields:
            struct_name, member = f.split(".", 1)
            if base is None:
                out[f] = FieldOffset(None, problem)
            elif module is not None:
                try:
                    out[f] = FieldOffset(btf.member_offset(module, struct_name, member, base,
                                                           what=f"{BTF_DIR}/{MODULE}"), f"BTF {BTF_DIR}/{MODULE}")
                except btf.BTFError as exc:
                    out[f] = FieldOffset(None, str(exc))
            else:
                # no module BTF: binder built in (its types are in vmlinux), or a module built without BTF
                try:
                    out[f] = FieldOffset(btf.member_offset(base, struct_name, member, what=f"{BTF_DIR}/vmlinux"),
                                         f"BTF {BTF_DIR}/vmlinux")
                except btf.BTFError as exc:
                    out[f] = FieldOffset(None, f"{exc}, and there is no {BTF_DIR}/{MODULE} (a module built "
                                               "without BTF: build it with pahole and the kernel's vmlinux)")
            _CACHE[key_base + (f,)] = out[f]
        return out
