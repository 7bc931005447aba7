"""Session-wide: the Rust kernel built in the background while the other tests run, and the
session-end check that the harness's own tests leave no QEMU and no harness process behind."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, cli_env, host_tool, tagged_processes

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


# The Rust binder kernel (tests/test_rust_kernel.py) is built by the harness, 15-20 min of make on
# 2 cores the first time on a machine. Started when the session begins, at low priority, the
# build takes the CPU the guest tests leave idle (and debootstrap's and the source's downloads
# overlap them); the tests' own `images build` then waits on the build lock and finds it cached.
RUST_RECIPE = "qemu-x86_64-7.3-rust"
_prebuild: list[subprocess.Popen] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    wants = any(item.nodeid.startswith("tests/test_rust_kernel.py") and "built" in getattr(item, "fixturenames", ())
                for item in session.items)
    if not wants or os.geteuid() != 0:
        return
    from harness.building.kernel_build import cached_build
    from harness.building.recipes import resolve_recipe

    if cached_build(resolve_recipe(RUST_RECIPE, None)) is None:
        _prebuild.append(subprocess.Popen(
            ["nice", "-n", "15", sys.executable, "-m", "harness.cli", "images", "build", RUST_RECIPE], cwd=REPO,
            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    for build in _prebuild:  # done by now when its test ran; else (deselected, interrupted) stopped
        if build.poll() is None:
            build.terminate()
            build.wait(60)
    left = leftovers()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"processes started by this test session are still running: {left}"
        if reporter is not None:
            reporter.write_line(f"LEFTOVER PROCESSES: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
