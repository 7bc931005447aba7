"""Struct offsets that kprobes read, taken from the BTF of the kernel under test.

The target's own `/sys/kernel/btf/binder_linux` (split BTF on `/sys/kernel/btf/vmlinux`)
describes the module that is loaded, whoever built it, so a rebuilt module with another `struct
binder_buffer` still gets its `user_data` read at the right place (a module built without BTF
gets it from its DWARF before boot, harness/building/module_btf.py, and its offsets say so).
Binder built into the kernel is found in `/sys/kernel/btf/vmlinux` itself. The files are copied
on the target and read back through the transport (QEMU 9p, ssh, adb alike), once per target,
kernel and module in this process, and parsed here (harness/evidence/btf.py). A QEMU guest's
offsets are also kept on the host by its build id, so the next guest of the same files skips
the read.
"""
from __future__ import annotations

import json
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path

from harness.evidence import btf
from harness.building import module_btf
from harness.files import atomic_write_bytes, atomic_write_text, cache_root
from harness.targets.base import Target

MODULE = "binder_linux"
BTF_DIR = "/sys/kernel/btf"


@dataclass(frozen=True)
class FieldOffset:
    offset: int | None  # None: not found, see `source`
    source: str  # where it came from, e.g. "BTF /sys/kernel/btf/binder_linux", or why there is none
    kept_for_build: str = ""  # read from an earlier guest of this build id, kept on the host

    def as_evidence(self) -> dict:
        kept = {"kept_for_build": self.kept_for_build} if self.kept_for_build else {}
        return {"offset": self.offset, "from": self.source, **kept}


_CACHE: dict[tuple[str, str, str, str], FieldOffset] = {}
_LOCK = threading.Lock()


def _copy_script(remote_dir: str, names: dict[str, str]) -> str:
    d = shlex.quote(remote_dir)
    return f"mkdir -p {d}; " + "; ".join(
        f"if [ -r {shlex.quote(src)} ]; then cat {shlex.quote(src)} > {d}/.btf-{key}; echo btf-{key}=$?; fi"
        for key, src in names.items())


def _pull(target: Target, output: str, remote_dir: str, local_dir: Path, key: str) -> bytes | None:
    local = local_dir / f".btf-{key}"
    ok = f"btf-{key}=0" in output and target.pull(f"{remote_dir}/.btf-{key}", local)
    data = local.read_bytes() if ok else None
    local.unlink(missing_ok=True)
    return data


def _read_btf(target: Target, remote_dir: str, local_dir: Path) -> tuple[bytes | None, bytes | None, str]:
    """(module BTF, vmlinux BTF, problem) as the target's sysfs has them.

    vmlinux's BTF (4-5 MB) is kept on the host by the kernel's GNU build ID (from
    /sys/kernel/notes), so it crosses the transport once per kernel build, not per boot."""
    result = target.run_shell(_copy_script(remote_dir, {"mod": f"{BTF_DIR}/{MODULE}", "notes": "/sys/kernel/notes"}), 60)
    module = _pull(target, result.output, remote_dir, local_dir, "mod")
    notes = _pull(target, result.output, remote_dir, local_dir, "notes")
    build_id = btf.gnu_build_id(notes) if notes else None
    kept = cache_root() / "btf" / f"vmlinux-{build_id}.btf" if build_id else None
    base = kept.read_bytes() if kept is not None and kept.exists() else None
    if base is None:
        result = target.run_shell(_copy_script(remote_dir, {"base": f"{BTF_DIR}/vmlinux"}), 60)
        base = _pull(target, result.output, remote_dir, local_dir, "base")
        if base is not None and kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(kept, base)
    target.run_shell(f"rm -f {' '.join(shlex.quote(f'{remote_dir}/.btf-{k}') for k in ('mod', 'notes', 'base'))}", 20)
    problem = "" if base is not None else f"the target has no readable {BTF_DIR}/vmlinux (CONFIG_DEBUG_INFO_BTF)"
    return module, base, problem


def _made_note(binder_module: str) -> str:
    """How the module's BTF came to be, when the harness made it (harness/building/module_btf.py)."""
    return f" ({module_btf.MADE_BY})" if binder_module != "stock" and module_btf.made_on_host(binder_module) else ""


def offsets_from_files(fields: tuple[str, ...], module: Path | None, kernel: Path) -> dict[str, FieldOffset]:
    """The same, from an image's own files before anything boots (a LAVA job is written before it
    runs): binder_linux.ko's .BTF, split on the BTF inside the kernel file. A module without BTF
    has it made from its DWARF, as the image that boots it has (module_btf.for_guest)."""
    base = btf.kernel_btf(kernel.read_bytes())
    note = ""
    if module is not None and base is not None:
        made = module_btf.for_guest(module, kernel)
        note = f" ({module_btf.MADE_BY})" if made != module else ""
        module = made
    mod = btf.elf_section(module.read_bytes(), ".BTF") if module is not None else None
    out: dict[str, FieldOffset] = {}
    for f in fields:
        struct_name, member = f.split(".", 1)
        if base is None:
            out[f] = FieldOffset(None, f"{kernel} carries no BTF (CONFIG_DEBUG_INFO_BTF)")
            continue
        data, what = (mod, f"BTF of {module}") if mod is not None else (base, f"BTF of {kernel}")
        try:
            out[f] = FieldOffset(btf.member_offset(data, struct_name, member, base if mod is not None else None,
                                                   what=what), what + (note if mod is not None else ""))
        except btf.BTFError as exc:
            out[f] = FieldOffset(None, str(exc))
    return out


def struct_offsets(target: Target, fields: tuple[str, ...], remote_dir: str, local_dir: Path) -> dict[str, FieldOffset]:
    """{"struct.member": FieldOffset} for the kernel and binder module running on `target`."""
    info = target.info()
    key_base = (info.spec, info.kernel_release, info.binder_module)
    with _LOCK:
        if all(key_base + (f,) in _CACHE for f in fields):
            return {f: _CACHE[key_base + (f,)] for f in fields}
        kept = _kept(info.build_id)
        if all(f in kept for f in fields):
            return {f: kept[f] for f in fields}
        module, base, problem = _read_btf(target, remote_dir, local_dir)
        out: dict[str, FieldOffset] = {}
        for f in fields:
            struct_name, member = f.split(".", 1)
            if base is None:
                out[f] = FieldOffset(None, problem)
            elif module is not None:
                try:
                    out[f] = FieldOffset(btf.member_offset(module, struct_name, member, base,
                                                           what=f"{BTF_DIR}/{MODULE}"),
                                         f"BTF {BTF_DIR}/{MODULE}{_made_note(info.binder_module)}")
                except btf.BTFError as exc:
                    out[f] = FieldOffset(None, str(exc))
            else:
                # no module BTF: binder built in (its types are in vmlinux), or a module built without BTF
                try:
                    out[f] = FieldOffset(btf.member_offset(base, struct_name, member, what=f"{BTF_DIR}/vmlinux"),
                                         f"BTF {BTF_DIR}/vmlinux")
                except btf.BTFError as exc:
                    out[f] = FieldOffset(None, f"{exc}, and there is no {BTF_DIR}/{MODULE} (a module loaded "
                                               "without BTF: build it with debug info, or run pahole -J --btf_base "
                                               "VMLINUX on it)")
            _CACHE[key_base + (f,)] = out[f]
        _keep(info.build_id, out)
        return out


# Offsets read from a guest's sysfs, kept on the host by the guest's build id (the hashes of
# the kernel and initramfs it runs: harness/targets/qemu.py): the next guest of the same
# build, restored or booted, has the same BTF, so it is not read again.
def _kept_path(build_id: str) -> Path:
    return cache_root() / "btf" / f"offsets-{build_id}.json"


def _kept(build_id: str) -> dict[str, FieldOffset]:
    if not build_id:
        return {}
    try:
        data = json.loads(_kept_path(build_id).read_text())
        return {f: FieldOffset(int(v["offset"]), str(v["from"]), build_id)
                for f, v in data.items() if isinstance(v.get("offset"), int)}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _keep(build_id: str, found: dict[str, FieldOffset]) -> None:
    if not build_id:
        return
    data = {f: {"offset": o.offset, "from": o.source} for f, o in found.items() if o.offset is not None}
    try:
        old = json.loads(_kept_path(build_id).read_text())
        data = {**(old if isinstance(old, dict) else {}), **data}
    except (OSError, ValueError):
        pass
    try:
        _kept_path(build_id).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(_kept_path(build_id), json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only cache: read the guest again next time
