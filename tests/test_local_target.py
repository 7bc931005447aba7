"""The local transport: one clear line without /dev/binder, and the shared interface on this host."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.errors import TargetUnavailable
from harness.targets import local as local_mod
from harness.targets.local import LocalTarget
from tests.helpers import cli


@pytest.mark.skipif(Path("/dev/binder").exists() or local_mod._has_binderfs(), reason="this host has binder")
def test_local_without_binder_is_one_line(tmp_path):
    run = cli("run", "one_copy.sync_sizes", "--target", "local", out=tmp_path)
    assert run.status == 2, run.stderr
    assert "Traceback" not in run.stderr
    errors = [l for l in run.stderr.splitlines() if l.startswith("binder-harness:")]
    assert errors == ["binder-harness: local: this host has no /dev/binder and no binderfs (load binder_linux, "
                      "or use --target qemu:x86_64)"]
    with pytest.raises(TargetUnavailable):
        LocalTarget().start()


def test_local_interface(tmp_path, monkeypatch):
    """run/push/pull/info on this host; /dev/null stands in for the device node (no binder claim here)."""
    monkeypatch.setattr(local_mod, "BINDER_DEVICE", Path("/dev/null"))
    target = LocalTarget()
    target.start()
    try:
        info = target.info()
        assert info.is_root == (os.geteuid() == 0) and info.accel == "none" and info.kernel_release == os.uname().release
        res = target.run(["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
        assert (res.status, sorted(res.output.split())) == (3, ["err", "out"])
        assert target.run(["printf", "%s|", "a b", "$HOME"], 10).output == "a b|$HOME|"
        assert target.run(["sleep", "30"], 1).status in (124, 137)
        src = tmp_path / "f"
        src.write_bytes(b"x" * 1000)
        remote = f"{target.workdir}/sub/f"
        target.push(src, remote, 0o600)
        assert oct(Path(remote).stat().st_mode & 0o777) == "0o600"
        assert target.pull(remote, tmp_path / "back") and (tmp_path / "back").read_bytes() == src.read_bytes()
        assert target.pull(f"{target.workdir}/missing", tmp_path / "none") is False
        workdir = target.workdir
    finally:
        target.stop()
    assert not Path(workdir).exists()
