"""Restore, don't boot (issue 17): cached snapshots of booted guests, each case on its own.

Real QEMU, the real Debian kernel, the real snapshot cache: no stand-ins."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cases._expect import LOG_LINE_CHECK
from harness.targets import snapshots
from tests.helpers import REPO, cli, cli_env, tagged_processes

POISON_CASES = str(REPO / "tests" / "snapshot_cases")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    tmp.mkdir(exist_ok=True)
    return cli_env(TMPDIR=str(tmp), **extra)


def _warm(tmp_path: Path, env: dict[str, str]) -> str:
    """Make sure the x86_64 guest's snapshot exists; return its key."""
    run = cli("run", "protocol.version", "--target", "qemu:x86_64", out=tmp_path / "warm", env=env)
    assert run.status == 0, run.stderr
    return run.case("protocol.version")["guest_start"]["snapshot"]


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_corrupted_snapshot_is_rebuilt_by_booting(tmp_path, damage):
    """A cached state file that changed since it was saved (bytes flipped in guest memory, which
    QEMU would load without a word; or cut short) is dropped, the guest boots and saves a new
    one, one line says so, and the run passes."""
    env = _env(tmp_path / "tmp", BINDER_HARNESS_ACCEL="tcg")
    key = _warm(tmp_path, env)
    state = snapshots.snapshots_dir() / key / "state"
    size = state.stat().st_size
    with open(state, "r+b") as fh:
        if damage == "flipped":
            fh.seek(size // 2)
            chunk = fh.read(4096)
            fh.seek(size // 2)
            fh.write(bytes(b ^ 0xFF for b in chunk))
        else:
            fh.truncate(size // 3)
    run = cli("run", "protocol.version", "protocol.ping", "--target", "qemu:x86_64", "-j", "1", out=tmp_path / "out",
              env=env)  # one guest at a time: one of them finds the snapshot damaged
    assert run.status == 0, run.stderr
    said = [l for l in run.stderr.splitlines() if "did not restore" in l]
    assert len(said) == 1, run.stderr
    assert said[0].startswith(f"qemu:x86_64: snapshot {key} did not restore (")
    assert said[0].endswith("); dropped it, booting to rebuild it")
    assert "Traceback" not in run.stderr
    first, second = run.report["cases"]
    assert first["guest_start"] == {"how": "booted", "snapshot": key, "fresh": True}
    assert second["guest_start"] == {"how": "restored", "snapshot": key, "fresh": True}
    meta = json.loads((snapshots.snapshots_dir() / key / "meta.json").read_text())
    assert meta["state_bytes"] == (snapshots.snapshots_dir() / key / "state").stat().st_size
    assert tagged_processes("qemu-system-", tag=f"TMPDIR={env['TMPDIR']}") == set()
    assert [p.name for p in Path(env["TMPDIR"]).iterdir()] == []


def _left_its_procs(poison: dict) -> None:
    """The poison case passes its own check and fails only binder's accounting (harness/judging/
    accounting.py): its held server and client are still binder procs after it."""
    failed = [c["name"] for c in poison["checks"] if not c["passed"]]
    assert poison["outcome"] == "failed" and all(n.startswith("driver accounting:") for n in failed), poison
    assert "binder procs the case left" in " ".join(failed) and "proc: active 0 -> 2" in poison["reason"], poison


def test_each_case_gets_a_pristine_driver(tmp_path):
    """poison.leave_async leaves a stopped server holding oneway buffers (async space in use);
    the next case, on its own restored guest, finds no binder proc at all. With --shared-boot
    the same next case finds the poison, so the check can tell."""
    env = _env(tmp_path / "tmp", BINDER_HARNESS_EXTRA_CASES=POISON_CASES)
    cases = ("poison.leave_async", "poison.sees_pristine")
    run = cli("run", *cases, "--target", "qemu:x86_64", out=tmp_path / "pristine", env=env)
    assert run.status == 1, run.stderr  # binder's own account fails the poison: it left its procs behind
    poison, clean = run.report["cases"]
    assert min(poison["evidence"]["free_async_space"]) < 2 * 1024 * 1024, poison
    _left_its_procs(poison)
    assert clean["outcome"] == "passed" and clean["evidence"]["procs"] == [], clean
    assert clean["guest_start"]["fresh"] and clean["guest_start"]["how"] in ("restored", "booted")
    assert run.report["timings"]["boots"] + run.report["timings"]["restores"] == 2

    shared = cli("run", *cases, "--target", "qemu:x86_64", "--shared-boot", out=tmp_path / "shared", env=env)
    assert shared.status == 1, shared.stderr
    poison, dirty = shared.report["cases"]
    _left_its_procs(poison)  # the shared boot's first case is on a fresh guest: checked the same
    assert dirty["outcome"] == "failed" and len(dirty["evidence"]["procs"]) >= 1, dirty
    assert dirty["guest_start"]["fresh"] is False
    assert shared.report["timings"]["boots"] + shared.report["timings"]["restores"] == 1


def test_next_guest_is_restored_while_a_case_runs(tmp_path):
    """Each case after the first takes a guest restored in the background during the case before
    it: every case still on its own restored guest, each guest's console in the run's console.log
    in order, none in another case's slice, and nothing left over."""
    env = _env(tmp_path / "tmp", BINDER_HARNESS_ACCEL="tcg")
    key = _warm(tmp_path, env)
    cases = ("protocol.version", "protocol.ping", "one_copy.sync_sizes")
    run = cli("run", *cases, "--target", "qemu:x86_64", "-j", "1", out=tmp_path / "out", env=env)  # the spare is -j 1's
    assert run.status == 0, run.stderr
    assert [c["guest_start"] for c in run.report["cases"]] == [{"how": "restored", "snapshot": key, "fresh": True}] * 3
    timings = run.report["timings"]
    assert (timings["boots"], timings["restores"]) == (0, 3)
    assert "spare_wait" in timings["phases"]  # two cases took a guest restored in the background
    assert (run.out / "console.log").read_text().count("restored-ok") == 3
    for case in cases:
        assert "restored-ok" not in (run.out / "cases" / case / "console.log").read_text()
    assert not (run.out / "console.next.log").exists()
    assert [p.name for p in Path(env["TMPDIR"]).iterdir()] == []
    assert tagged_processes("qemu-system-", tag=f"TMPDIR={env['TMPDIR']}") == set()


def test_rate_limited_lines_are_asserted_on_pristine_guests(tmp_path):
    """binder's pr_info_ratelimited user-error lines: checked exactly, with their kernel
    function, on each case's own guest; only recorded as evidence on a shared one."""
    env = _env(tmp_path / "tmp")
    run = cli("run", "limits.oneway_spam", "objects.bad_offsets", "--target", "qemu:arm64", out=tmp_path / "o", env=env)
    assert run.status == 0, run.stderr
    spam = next(c for c in run.case("limits.oneway_spam")["checks"] if c["name"].startswith(LOG_LINE_CHECK))
    assert spam["passed"] and spam["measured"].endswith("spamming oneway? 26 buffers allocated for a total size of 1703936")
    assert spam["ref"].startswith("debug_low_async_space_locked")
    offsets = [c for c in run.case("objects.bad_offsets")["checks"] if c["name"].startswith(LOG_LINE_CHECK)]
    assert len(offsets) == 2 and all(c["passed"] and c["ref"].startswith("binder_transaction") for c in offsets)
    shared = cli("run", "limits.oneway_spam", "--shared-boot", "--target", "qemu:arm64", out=tmp_path / "s", env=env)
    assert shared.status == 0, shared.stderr
    # the first case of a shared guest is pristine too: it is checked there as well
    assert any(c["name"].startswith(LOG_LINE_CHECK) for c in shared.case("limits.oneway_spam")["checks"])


def test_snapshot_key_covers_the_accelerator_and_every_input(tmp_path):
    """Keys differ by accelerator (a TCG snapshot is never restored under KVM), kernel,
    initramfs (the module under test is in it) and command line; not by the share directory."""
    kernel, initramfs = tmp_path / "k", tmp_path / "i"
    kernel.write_bytes(b"kernel")
    initramfs.write_bytes(b"initramfs")
    qemu = os.path.realpath(os.popen("command -v qemu-system-x86_64").read().strip())
    argv = [qemu, "-M", "pc", "-kernel", str(kernel), "-initrd", str(initramfs),
            "-virtfs", "local,path=/tmp/bh-share-1-a,mount_tag=host"]

    def key(argv=argv, share="/tmp/bh-share-1-a", accel="tcg"):
        return snapshots.key_of(snapshots.key_fields(argv, kernel, initramfs, share, accel))

    base = key()
    assert key(accel="kvm") != base
    moved = [a.replace("bh-share-1-a", "bh-share-2-b") for a in argv]
    assert key(moved, "/tmp/bh-share-2-b") == base
    assert key([*argv, "-m", "512"]) != base
    initramfs.write_bytes(b"initramfs with another binder_linux.ko")
    assert key() != base


def test_images_clean_clears_snapshots(tmp_path):
    cache = tmp_path / "cache"
    (cache / "snapshots" / "0123456789abcdef").mkdir(parents=True)
    (cache / "snapshots" / "0123456789abcdef" / "state").write_bytes(b"x" * 100)
    run = cli("images", "clean", "snapshots", env=cli_env(BINDER_HARNESS_CACHE=str(cache)))
    assert run.status == 0, run.stderr
    assert not (cache / "snapshots").exists()
