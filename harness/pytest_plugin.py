"""pytest plugin: `pytest cases/ --target SPEC` runs the catalog as pytest items.

Each case is one item; one target (one guest boot) serves the whole session,
or one per pytest-xdist worker. The run directory gets the same report.json,
junit-ready evidence and trace as `binder-harness run`.

Exit status: a case that was skipped (not judged) is a pytest skip, and a case declared not
applicable (--not-applicable GLOB, or its target's facts) is a skip whose reason starts
"not applicable:". A session that would otherwise exit 0 (pytest.ExitCode.OK) while some binder
case was not judged, or none was judged at all, exits 3 instead (ExitStatus.NOT_JUDGED, the
status `binder-harness run` gives; pytest's own internal error is also 3 and prints a
traceback), and the terminal summary names the count first ("NOT JUDGED: N skipped; ...").
pytest's other statuses stand: 1 some test failed, 2 interrupted, 4 usage, 5 nothing collected.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from harness.judging.catalog import CASES_DIR, CaseSpec, load_cases
from harness.errors import ConfigError
from harness.reports.report import reproduce_command
from harness.options import add_to_pytest, run_options
from harness.running.runner import RunOptions, Session
from harness.judging.verdicts import ExitStatus, Outcome, exit_status, summarize, summary_line


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("binder-harness")
    add_to_pytest(group)
    group.addoption("--bh-out", default="runs/pytest", help="run directory for report.json and evidence")


def _run_options(config: pytest.Config) -> RunOptions:
    """The run's options from the command line, checked; a bad one is a usage error (exit 4)."""
    out = Path(config.getoption("--bh-out"))
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        out = out / worker
    try:
        return run_options(config.option, out, reproduce_command(["pytest", *sys.argv[1:]]))
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


_OPTIONS = pytest.StashKey[RunOptions]()
_SESSION = pytest.StashKey[Session]()
_SUMMARY = pytest.StashKey[dict]()  # the binder cases' summary, once the session has finished


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_OPTIONS] = _run_options(config)


def _session(config: pytest.Config) -> Session:
    session = config.stash.get(_SESSION, None)
    if session is None:
        session = Session(config.stash[_OPTIONS], progress=lambda line: None)
        config.stash[_SESSION] = session
    return session


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix == ".py" and file_path.parent == CASES_DIR and not file_path.name.startswith("_"):
        return CaseFile.from_parent(parent, path=file_path)
    return None


class CaseFile(pytest.File):
    def collect(self):
        for spec in load_cases().values():
            if spec.func.__module__.rsplit(".", 1)[-1] == self.path.stem:
                yield CaseItem.from_parent(self, name=spec.id, spec=spec)


class CaseFailed(Exception):
    pass


class CaseItem(pytest.Item):
    def __init__(self, *, spec: CaseSpec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    def runtest(self) -> None:
        result = _session(self.config).run_case(self.spec, more=self._more())
        # junit.xml properties: JSON values, so CI tools and people can parse them back
        self.user_properties.append(("reason", result.reason))
        for key, value in result.evidence.items():
            self.user_properties.append((key, json.dumps(value, default=str)[:2000]))
        if result.outcome in (Outcome.SKIPPED, Outcome.NOT_APPLICABLE):
            pytest.skip(result.reason)  # a not_applicable reason starts "not applicable:"
        if result.outcome in (Outcome.FAILED, Outcome.ERROR):
            failed = [c.describe() for c in result.checks if not c.passed]
            raise CaseFailed("\n".join([f"{result.outcome}: {result.reason}", *failed[1:10]]))

    def _more(self) -> bool:
        """Another case runs after this one in this process (an xdist worker runs only some of
        the items it collected, so there it is never sure)."""
        if hasattr(self.config, "workerinput"):
            return False
        items = self.session.items
        return any(isinstance(i, CaseItem) for i in items[items.index(self) + 1:])

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, self.spec.id


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    bh = session.config.stash.get(_SESSION, None)
    summary = None
    if bh is not None:
        from harness.reports import report

        bh.close()
        report.write_all(bh.state, final=True)
        summary = summarize(r.outcome for r in bh.state.results)
    if _xdist_controller(session.config):
        # pytest -n N: each worker ran its own guest into --bh-out/gwK; one report over all of them
        from harness.running.parallel import merge_run_dirs

        out = Path(session.config.getoption("--bh-out"))
        merged = merge_run_dirs(out, [d for d in out.glob("gw*") if d.is_dir()], list(load_cases()))
        summary = merged.summary if merged else None
    if summary is None or hasattr(session.config, "workerinput"):
        return  # no binder case ran here, or a worker: the controller decides
    session.config.stash[_SUMMARY] = summary
    if session.exitstatus == pytest.ExitCode.OK and exit_status(summary) == ExitStatus.NOT_JUDGED:
        session.exitstatus = ExitStatus.NOT_JUDGED


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    summary = config.stash.get(_SUMMARY, None)
    if summary is not None:
        terminalreporter.write_line(f"binder-harness: {summary_line(summary)} (exit status "
                                    f"{int(exit_status(summary))} by binder-harness's rules)")


def _xdist_controller(config: pytest.Config) -> bool:
    """True in the process that hands cases to pytest-xdist workers (not in a worker, not without -n)."""
    if hasattr(config, "workerinput"):
        return False
    try:
        return bool(config.getoption("numprocesses"))
    except ValueError:  # pytest-xdist is not installed
        return False


@pytest.fixture(scope="session")
def binder_session(request) -> Session:
    """The run's Session: its target boots on first use and is replaced after a crash."""
    return _session(request.config)


@pytest.fixture(scope="session")
def binder_target(binder_session):
    """A started target (QEMU guest, ssh host, adb device or this machine)."""
    return binder_session.ensure_target()


@pytest.fixture(scope="session")
def binder_probe(binder_session, binder_target) -> str:
    """Path of the native probe on the target, for its own ABI."""
    from harness.arches import abi_for

    return binder_session.probe_path(abi_for(binder_target.info().arch) or binder_target.info().arch)
