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
from harness.reports.model import Report

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


def document(reports: list[Report]) -> dict:
    """The KCIDB document for one or more run reports."""
    checkouts: dict[str, dict] = {}
    builds: dict[str, dict] = {}
    tests: list[dict] = []
    for rep in reports:
        target = rep.target
        source = target.kernel_source or target.kernel_release or target.spec or "unknown"
        checkout_id = f"{ORIGIN}:{_key(source)}"
        checkouts.setdefault(checkout_id, {"id": checkout_id, "origin": ORIGIN, "valid": True,
                                           "comment": f"kernel from {source}", "misc": {"kernel_source": source}})
        module = target.binder_module or "stock"
        build_id = f"{ORIGIN}:{_key(source, target.kernel_release, module, target.binder_module_sha256)}"
        misc = {"kernel_release": target.kernel_release, "binder_module": target.binder_module,
                "binder_module_sha256": target.binder_module_sha256, "image": target.image, "driver": target.driver}
        build = {"id": build_id, "checkout_id": checkout_id, "origin": ORIGIN,
                 "comment": f"{target.kernel_release or 'unknown release'}, binder_linux.ko: {module}",
                 "misc": {k: v for k, v in misc.items() if v is not None}}
        if target.arch:
            build["architecture"] = _arch(target.arch)
        if target.image:
            build["config_name"] = target.image
        if target.boot_error is None:
            build["status"] = "PASS"  # the kernel booted and ran cases
        builds.setdefault(build_id, build)
        run_key = _key(target.to_json(), rep.command, rep.timings.to_json(), rep.seed)
        env_misc = {"spec": target.spec, "accel": target.accel, "accel_reason": target.accel_reason}
        environment = {"comment": f"{target.spec or '?'} ({target.accel or 'no accelerator'})",
                       "misc": {k: v for k, v in env_misc.items() if v is not None}}
        for case in rep.cases:
            test = {"id": f"{ORIGIN}:{run_key}:{case.id}", "build_id": build_id, "origin": ORIGIN,
                    "path": "binder." + ".".join(_path_part(p) for p in case.id.split(".")),
                    "status": STATUS.get(case.outcome, "ERROR"),
                    "comment": case.reason.replace("\0", ""),
                    "duration": case.duration_s,
                    "environment": environment,
                    "misc": {"evidence": case.evidence, "command": rep.command}}
            tests.append(test)
    return {"version": VERSION, "checkouts": list(checkouts.values()), "builds": list(builds.values()),
            "tests": tests}


def write(path: Path, reports: list[Report]) -> dict:
    """Write the KCIDB document for `reports` to `path` (atomically) and return it."""
    data = document(reports)
    atomic_write_text(path, json.dumps(data, indent=1, default=str) + "\n")
    return data
