"""KernelCI KCIDB JSON (`--kcidb FILE` on run, matrix and judge).

One document per command: the kernel under test is a KCIDB build (its checkout names where
the kernel came from: a Debian package or a file), and each case a test of that build, with
its path `binder.<case id>`, its status from STATUS, its one-line reason as the comment and its
measured evidence in `misc`. A matrix gives one build per cell. The document is
checked in the tests against the schema of PyPI's kcidb-io.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from harness.files import atomic_write_text

ORIGIN = "binder_harness"
VERSION = {"major": 5, "minor": 3}
# KCIDB's statuses (kcidb-io schema v5): a case not judged (skipped: the target or harness could
# not run it) is MISS, "didn't run due to a failure in the test harness", which outranks PASS in
# KCIDB's summary of a build; a case declared not applicable is SKIP, "did not run ... because it
# was not applicable". Neither is ever PASS, nor is an outcome not listed here (ERROR).
STATUS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "MISS", "not_applicable": "SKIP"}


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _path_part(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text) or "_"


def _arch(arch: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", arch.lower())


def document(reports: list[dict]) -> dict:
    """The KCIDB document for one or more run reports (schema-1 report.json dicts)."""
    checkouts: dict[str, dict] = {}
    builds: dict[str, dict] = {}
    tests: list[dict] = []
    for rep in reports:
        target = rep.get("target") or {}
        source = str(target.get("kernel_source") or target.get("kernel_release") or target.get("spec", "unknown"))
        checkout_id = f"{ORIGIN}:{_key(source)}"
        checkouts.setdefault(checkout_id, {"id": checkout_id, "origin": ORIGIN, "valid": True,
                                           "comment": f"kernel from {source}", "misc": {"kernel_source": source}})
        module = str(target.get("binder_module", "stock"))
        build_id = f"{ORIGIN}:{_key(source, target.get('kernel_release'), module, target.get('binder_module_sha256'))}"
        build = {"id": build_id, "checkout_id": checkout_id, "origin": ORIGIN,
                 "comment": f"{target.get('kernel_release', 'unknown release')}, binder_linux.ko: {module}",
                 "misc": {k: target[k] for k in ("kernel_release", "binder_module", "binder_module_sha256", "image")
                          if k in target}}
        if target.get("arch"):
            build["architecture"] = _arch(str(target["arch"]))
        if target.get("image"):
            build["config_name"] = str(target["image"])
        if "boot_error" not in target:
            build["status"] = "PASS"  # the kernel booted and ran cases
        builds.setdefault(build_id, build)
        run_key = _key(target, rep.get("command"), rep.get("timings"), rep.get("seed"))
        environment = {"comment": f"{target.get('spec', '?')} ({target.get('accel', 'no accelerator')})",
                       "misc": {k: target[k] for k in ("spec", "accel", "accel_reason") if k in target}}
        for case in rep.get("cases", []):
            test = {"id": f"{ORIGIN}:{run_key}:{case['id']}", "build_id": build_id, "origin": ORIGIN,
                    "path": "binder." + ".".join(_path_part(p) for p in str(case["id"]).split(".")),
                    "status": STATUS.get(str(case.get("outcome")), "ERROR"),
                    "comment": str(case.get("reason", "")).replace("\0", ""),
                    "duration": float(case.get("duration_s", 0.0)),
                    "environment": environment,
                    "misc": {"evidence": case.get("evidence", {}), "command": rep.get("command", "")}}
            tests.append(test)
    return {"version": VERSION, "checkouts": list(checkouts.values()), "builds": list(builds.values()),
            "tests": tests}


def write(path: Path, reports: list[dict]) -> dict:
    """Write the KCIDB document for `reports` to `path` (atomically) and return it."""
    data = document(reports)
    atomic_write_text(path, json.dumps(data, indent=1, default=str) + "\n")
    return data
