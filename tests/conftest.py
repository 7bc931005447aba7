"""Session-end check: the harness's own tests leave no QEMU and no harness process behind."""
from __future__ import annotations

import time

import pytest

from tests.helpers import host_tool, tagged_processes

LEFTOVER_NAMES = ("qemu-system-", "harness.cli")


@pytest.fixture(scope="session")
def host_adb() -> str:
    """The platform adb tool (Debian's adb package): a test that drives it fails without it (session
    scope: checked before any module's guest boots)."""
    return host_tool("adb", "adb")


def leftovers(wait_s: float = 5.0) -> dict[str, set[int]]:
    """Processes this session started that still run, after giving them `wait_s` to exit."""
    deadline = time.monotonic() + wait_s
    while True:
        found = {name: tagged_processes(name) for name in LEFTOVER_NAMES}
        found = {k: v for k, v in found.items() if v}
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    left = leftovers()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"processes started by this test session are still running: {left}"
        if reporter is not None:
            reporter.write_line(f"LEFTOVER PROCESSES: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
