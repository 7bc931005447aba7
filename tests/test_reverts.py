"""Real bugs: each revert of an upstream binder fix (tests/seeded_bugs/build.py REVERTS), built into
binder_linux.ko for a Debian kernel it applies to, fails the cases listed here, each with the
measured value in its reason. Seeded bugs show a check can fail; these show the catalog finds what
actually broke upstream. A revert that no case catches yet stays here, in GAPS, as a strict xfail
run over the whole catalog: it turns into a failure the day a case catches it, so the entry moves
to CAUGHT."""
from __future__ import annotations

import pytest

from tests.helpers import assert_judge_reproduces, cli
from tests.seeded_bugs import build

IMAGES = {build.DEFAULT_RELEASE: "qemu-x86_64", build.RELEASE_6_12: "qemu-x86_64-6.12"}

# (revert, release) -> every case it fails there, with a part of the reason naming the measured value.
V61, V612 = build.DEFAULT_RELEASE, build.RELEASE_6_12
SPAM_LINE = {V61: "spamming oneway\\? 32 buffers allocated for a total size of 2097152/: expected 1, measured 0",
             V612: "spamming oneway\\? 31 buffers allocated for a total size of 2031616/: expected 1, measured 0"}
ZERO_FDA = ("FDA of 0 fds: the parent's words as received (its two u32 words, marker): "
            "expected [11936128517019425370, 5566821097645672970], measured [0, 5566821097645672970]")
UNDECLARED = "kernel log: binder lines the case does not declare: expected none, measured binder_linux: "


def _both(revert: str, caught: list[tuple[str, str]]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    return {(revert, V61): caught, (revert, V612): caught}


CAUGHT: dict[tuple[str, str], list[tuple[str, str]]] = {
    **_both("revert_ctx_mgr_ref0", [
        ("protocol.self_call_rejected", "BC_INCREFS on handle 0 from its owner: expected EINVAL, measured 0")]),
    **{("revert_async_charge", v): [
        ("limits.async_exact", "0-byte oneways pending before ENOSPC: expected 1024, measured 73"),
        ("limits.async_half", "oneway 64 KiB calls accepted by a non-freeing receiver: expected 32, measured 31"),
        ("limits.oneway_spam", SPAM_LINE[v])] for v in (V61, V612)},
    ("revert_async_zero_check", V61): [
        ("limits.async_exact", "0-byte oneways pending before ENOSPC: expected 1024, measured 2048")],
    **_both("revert_fda_zero_fds", [("objects.fd_array", ZERO_FDA)]),
    **_both("revert_offset_alignment", [
        ("objects.bad_offsets", "unaligned: expected BR_FAILED_REPLY -22, measured BR_FAILED_REPLY 0")]),
    **_both("revert_spam_detection_einval", [
        ("protocol.null_args", "BINDER_ENABLE_ONEWAY_SPAM_DETECTION(NULL): expected EFAULT, measured EINVAL")]),
    **_both("revert_max_threads_int", [
        ("loopers.spawn_max_threads", "max_threads 0xFFFFFFFF: BR_SPAWN_LOOPER on every read that returned work: "
                                      "expected one per read (>= 4 reads), measured 0 of 8 reads")]),
    **_both("revert_offsets_overwrite", [
        ("objects.bad_offsets", "past_data_size: expected BR_FAILED_REPLY -14, measured BR_FAILED_REPLY -22")]),
    **_both("revert_empty_parcel_async", [
        ("limits.async_exact", "0-byte oneway: free async space after every buffer is freed: expected 8192, measured 0")]),
    **_both("revert_sender_euid_cred", [
        ("protocol.ping", "then seteuid(65534): expected 65534, measured 0")]),
    ("revert_vma_bounds", V61): [
        ("limits.mmap_clamp_4m", "read beyond the 4 MiB area (4 MiB + 4 KiB): expected SIGBUS, measured SIGSEGV")],
    **_both("revert_self_ctx_call", [
        ("protocol.self_call_rejected", "kernel health: dmesg delta free of WARNING/BUG/Oops/KASAN/Call Trace: "
                                        "expected none, measured [")]),
    **_both("revert_faulty_buffer_cleanup", [
        ("protocol.bad_buffer_ptr", UNDECLARED + "transaction release ")]),
    ("revert_freeze_dead_node", V612): [
        ("protocol.death_notification", "BC_REQUEST_FREEZE_NOTIFICATION on the dead node's ref: expected 0, "
                                        "measured EINVAL")],
    ("revert_delivered_freeze_leak", V612): [
        ("protocol.freeze", "undelivered freeze notification, 0000000000003334/: expected 1, measured 0")],
    ("revert_freeze_work_uaf", V612): [
        ("protocol.freeze", "kernel health: dmesg delta free of WARNING/BUG/Oops/KASAN/Call Trace: expected none, "
                            "measured [")],
}

# (revert, release) -> why no case of the catalog catches it yet (measured over the whole catalog).
GAPS: dict[tuple[str, str], str] = {
    **{("revert_fixup_leftover_bug", v): (
        "unreachable alone: only an FDA of zero fds at the very end of its parent leaves a fixup behind, and "
        "ef38de9217a0 queues none for zero fds (upstream's own review); the whole catalog passes") for v in (V61, V612)},
    # measured: stress.random_commands (seed 4242) caught it once with the undeclared "unexpected work type, 3,
    # not freed" and transaction_complete active 0 -> 1, and passed on the next run (its stream is timed by
    # two processes): caught by chance, so a gap whose xfail is not strict
    ("revert_spam_work_leak", V612): (
        "needs a process to exit with a BR_TRANSACTION_PENDING_FROZEN or BR_ONEWAY_SPAM_SUSPECT unread; only "
        "stress.random_commands gets there, and only on some runs"),
    ("revert_spam_work_leak", V61): (
        "needs a process to exit with its BR_ONEWAY_SPAM_SUSPECT unread (6.1 has no PENDING_FROZEN work, the half "
        "stress.random_commands catches on 6.12); limits.oneway_spam reads every reply; the whole catalog passes"),
}

# gaps that a case catches on some runs only (a random stream's timing): their xfail is not strict
BY_CHANCE = {("revert_spam_work_leak", V612)}

BUILDS = [(r.name, release) for r in build.REVERTS.values() for release in r.releases]


def test_every_revert_is_caught_or_a_listed_gap():
    assert set(CAUGHT) | set(GAPS) == set(BUILDS)
    assert not set(CAUGHT) & set(GAPS)
    assert len(build.REVERTS) >= 15
    newer = {name for name, release in BUILDS if release != build.DEFAULT_RELEASE}
    assert len(newer) >= 5, newer
    for revert in build.REVERTS.values():
        assert len(revert.commit) >= 11 and int(revert.commit, 16) >= 0, revert.name
        assert revert.title.startswith("binder"), revert.name
        assert set(revert.releases) <= set(IMAGES), revert.name


def _params() -> list:
    return [pytest.param(name, release, id=f"{name}-{release}",
                         marks=[pytest.mark.xfail(strict=(name, release) not in BY_CHANCE,
                                                  reason=GAPS[(name, release)])]
                         if (name, release) in GAPS else [])
            for name, release in BUILDS]


@pytest.mark.parametrize(("revert", "release"), _params())
def test_revert_is_caught(tmp_path, revert, release):
    build.ensure_build_deps(release)
    module = build.build_module(revert, release)
    expected = CAUGHT.get((revert, release), [])
    cases = [case_id for case_id, _ in expected]  # a gap runs the whole catalog
    run = cli("run", *cases, "--image", IMAGES[release], "--binder-module", str(module), "--seed", "4242",
              out=tmp_path, timeout=900)
    assert run.report["target"]["kernel_release"] == release
    failed = {c["id"]: c["reason"] for c in run.report["cases"] if c["outcome"] == "failed"}
    assert failed, f"{revert} on {release} passes every case it ran"
    assert run.status == 1, run.stderr
    assert_judge_reproduces(run)  # the failed checks stay failed when judged offline
    for case_id, reason_part in expected:
        assert case_id in failed, (case_id, run.case(case_id)["outcome"], run.case(case_id)["reason"])
        assert reason_part in failed[case_id], (case_id, failed[case_id])
