"""Build the native probe for a target ABI and parse what it prints.

The probe is static C, cross-built with Debian's compilers and cached by the
hash of its sources, so an edit to native_probe/ rebuilds it and nothing else does.
"""
from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.arches import ABIS
from harness.evidence.contract import event
from harness.errors import ConfigError
from harness.files import REPO_ROOT, atomic_path, cache_root

PROBE_SRC = REPO_ROOT / "native_probe"

def _compiler(abi: str) -> str:
    if abi not in ABIS:
        raise ConfigError(f"unknown probe ABI {abi!r}; use one of {', '.join(ABIS)}")
    spec = ABIS[abi]
    if shutil.which(spec.compiler):
        return spec.compiler
    if platform.machine() in spec.uname and shutil.which("gcc"):
        return "gcc"
    raise ConfigError(f"{spec.compiler} not found; install it with: apt-get install {spec.packages}")


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(PROBE_SRC.rglob("*")):
        if path.is_file() and "build" not in path.relative_to(PROBE_SRC).parts and path.suffix in (".c", ".h", "") :
            digest.update(str(path.relative_to(PROBE_SRC)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_probe(abi: str) -> Path:
    """Return the path of a static probe binary for `abi`, building it if needed."""
    cc = _compiler(abi)
    final = cache_root() / "probe" / f"{abi}-{_source_hash()}" / "binder-probe"
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bh-probe-") as tmp:
        proc = subprocess.run(["make", "-s", "-C", str(PROBE_SRC), f"CC={cc}", f"OUT={tmp}"],
                              capture_output=True, text=True)
        built = Path(tmp) / "binder-probe"
        if proc.returncode != 0 or not built.exists():
            first = next((l for l in proc.stderr.splitlines() if "error" in l), proc.stderr.strip()[:200])
            raise ConfigError(f"building the {abi} probe with {cc} failed: {first}")
        with atomic_path(final) as staged:
            shutil.copyfile(built, staged)
            staged.chmod(0o755)
    return final


@dataclass
class ProbeOutput:
    """The JSON lines one probe run printed, plus the lines that were not JSON."""

    records: list[dict] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    status: int = 0  # the probe's exit status (137: killed by the timeout)
    stderr: str = ""

    def events(self, ev: str, **match) -> list[dict]:
        """The lines of event `ev` (declared in native_probe/contract.h) whose fields match."""
        ev = event(ev)
        return [r for r in self.records if r.get("ev") == ev and all(r.get(k) == v for k, v in match.items())]

    def one(self, ev: str, **match) -> dict | None:
        found = self.events(ev, **match)
        return found[0] if found else None

    @property
    def done(self) -> dict | None:
        return self.one("done")


def parse_probe_output(text: str) -> ProbeOutput:
    """Parse probe stdout: one JSON object per line; anything else is kept as a bad line."""
    out = ProbeOutput()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            out.bad_lines.append(line)
            continue
        if isinstance(record, dict) and "ev" in record:
            out.records.append(record)
        else:
            out.bad_lines.append(line)
    return out
