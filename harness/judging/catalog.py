"""The case catalog: every case registered with @case("family.name"), loaded from cases/ (and
BINDER_HARNESS_EXTRA_CASES), selected by id or glob, and the exceptions by which a case says
it cannot run or does not apply. A case is a function in cases/*.py that runs the probe through
its CaseContext (harness/judging/context.py) and records checks; it never knows which
transport the target uses.
"""
from __future__ import annotations

import fnmatch
import hashlib
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import ConfigError
from harness.evidence import kprobes
from harness.evidence import trace as tracing
from harness.files import REPO_ROOT
from harness.judging.accounting import FailedTransactions
from harness.judging.verdicts import ByKernel, Declared, Line

# A case: a function of its CaseContext (harness/judging/context.py, which imports this module,
# so the registry names the context's type only in words).
CaseFunc = Callable[..., None]


CASES_DIR = REPO_ROOT / "cases"
# Directories of your own case modules (os.pathsep-separated), loaded after the catalog.
EXTRA_CASES_ENV = "BINDER_HARNESS_EXTRA_CASES"


class CaseSkipped(Exception):
    """Raised by a case (or its context) when the target cannot run it; the message says why."""


class CaseNotApplicable(CaseSkipped):
    """Raised when a fact of the kernel under test rules the case out (compat cases on a kernel
    without CONFIG_COMPAT): outcome not_applicable, which does not stop exit status 0. Raise it
    only on a fact read from the target, never on a failure the case exists to catch; where
    unsure, raise CaseSkipped (code that knows only CaseSkipped treats it as one)."""


# fs/ioctl.c builds compat_ptr_ioctl (binder_fops.compat_ioctl, the compat cases' way in) only
# with CONFIG_COMPAT; grep exits 0 found, 1 not found, 2 unreadable (no CONFIG_KALLSYMS, no root).
# About 0.5 s under TCG, so asked once per kernel build in a run (harness/running/runner.py).
COMPAT_SCRIPT = "grep -qw compat_ptr_ioctl /proc/kallsyms; echo kallsyms_compat=$?"


def compat_missing(output: str) -> bool:
    """True only when COMPAT_SCRIPT's output shows a readable /proc/kallsyms without
    compat_ptr_ioctl: the kernel has no 32-bit compat layer. Anything else (unreadable, no
    output) is not a fact, and the case runs."""
    found = re.search(r"kallsyms_compat=(\d+)", output)
    return found is not None and found.group(1) == "1"


@dataclass(frozen=True)
class CaseSpec:
    id: str
    func: CaseFunc
    doc: str
    kprobes: tuple[kprobes.Kprobe, ...] = ()
    trace: bool = False  # arm ftrace even without kprobes
    expected_dmesg: tuple[Line | ByKernel, ...] = ()  # the binder lines this case provokes (verdicts.Line)
    compat: bool = False  # run the 32-bit probe
    timeout: float = 60.0
    events: tuple[str, ...] = ()  # extra tracefs events, e.g. "binder/binder_alloc_page_start"
    failed_transactions: FailedTransactions | None = None  # where the failed log differs from the probe's view

    @property
    def wants_trace(self) -> bool:
        return self.trace or bool(self.kprobes) or bool(self.events)


REGISTRY: dict[str, CaseSpec] = {}


def case(case_id: str, *, kprobes: tuple[kprobes.Kprobe, ...] = (), trace: bool = False,
         expected_dmesg: tuple[Declared, ...] = (), compat: bool = False, timeout: float = 60.0,
         events: tuple[str, ...] = (), failed_transactions: FailedTransactions | None = None):
    """Register a case function under a stable `family.name` id. `expected_dmesg` declares the
    binder kernel-log lines the case provokes, as verdicts.Line (exact, with counts where the
    rate limits allow; verdicts.ByKernel where the driver changed them); on a pristine guest any
    other binder line fails it (check_health). `failed_transactions` declares where binder's
    failed-transaction log legitimately differs from the failures the probe reads
    (accounting.FailedTransactions; check_failed_log)."""
    if not tracing.CASE_ID.match(case_id):
        raise ValueError(f"case id {case_id!r} must be lower-case family.name")

    def register(func: CaseFunc):
        REGISTRY[case_id] = CaseSpec(case_id, func, (func.__doc__ or "").strip(), kprobes, trace,
                                     _declared(expected_dmesg), compat, timeout, events, failed_transactions)
        return func

    return register


def _declared(expected_dmesg: tuple[Declared, ...]) -> tuple[Line | ByKernel, ...]:
    """A case's expected_dmesg with each plain string made a loose Line (verdicts.expected_lines)."""
    return tuple(d if isinstance(d, (Line, ByKernel)) else Line(d, loose=True) for d in expected_dmesg)


def load_cases(directory: Path = CASES_DIR) -> dict[str, CaseSpec]:
    """Import every module of the cases package once, then any $BINDER_HARNESS_EXTRA_CASES
    directories; return the registry."""
    root = str(directory.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    for path in sorted(directory.glob("*.py")):
        if not path.name.startswith("_"):
            importlib.import_module(f"{directory.name}.{path.stem}")
    for extra in extra_case_dirs():
        for path in sorted(extra.glob("*.py")):
            if not path.name.startswith("_"):
                _import_case_file(path)
    return REGISTRY


def extra_case_dirs() -> list[Path]:
    """The directories named by $BINDER_HARNESS_EXTRA_CASES; a missing one is a ConfigError."""
    dirs = [Path(d) for d in os.environ.get(EXTRA_CASES_ENV, "").split(os.pathsep) if d.strip()]
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"{EXTRA_CASES_ENV}: {d} is not a directory of case modules")
    return dirs


def _import_case_file(path: Path) -> None:
    """Import one case module by file path (once), naming it after its absolute path."""
    name = "bh_cases_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12] + "_" + path.stem
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot load as a case module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise ConfigError(f"{path}:{exc.lineno}: case module does not parse: {exc.msg}") from None


def select_cases(patterns: list[str]) -> list[CaseSpec]:
    """Resolve ids and globs (e.g. 'one_copy.*') to cases, in catalog order."""
    registry = load_cases()
    if not patterns:
        return list(registry.values())
    chosen: list[CaseSpec] = []
    for pattern in patterns:
        hits = [c for cid, c in registry.items() if fnmatch.fnmatchcase(cid, pattern)]
        if not hits:
            raise ConfigError(f"unknown case {pattern!r}; 'binder-harness list' shows the ids")
        chosen.extend(c for c in hits if c not in chosen)
    return chosen
