"""The whole catalog on the stock driver, and one seeded bug per family caught
by the case meant to catch it, with a reason naming the measured value."""
from __future__ import annotations

import pytest

from harness.judging.cases import load_cases
from tests.helpers import cli
from tests.seeded_bugs import build

FAMILIES = {"one_copy", "limits", "protocol", "compat", "stress", "objects", "loopers"}


def test_catalog_has_every_family_and_design_case():
    ids = set(load_cases())
    assert {i.split(".")[0] for i in ids} == FAMILIES
    for required in ("one_copy.sync_sizes", "one_copy.reply", "one_copy.oneway", "one_copy.vs_pipe",
                     "one_copy.lazy_pages", "limits.mmap_clamp_4m", "limits.mmap_readonly", "limits.mmap_twice",
                     "limits.async_half", "limits.free_reuse", "limits.oneway_spam", "limits.munmap_dead",
                     "limits.shrinker", "protocol.version", "protocol.null_args", "protocol.freeze",
                     "protocol.death_notification", "compat.version", "compat.one_copy", "compat.limits",
                     "stress.random_commands", "objects.binder_to_handle", "objects.fd", "objects.fd_array",
                     "objects.scatter_gather", "objects.bad_offsets", "objects.update_txn_fds",
                     "limits.async_exact", "loopers.spawn_max_threads", "loopers.register_enter",
                     "loopers.poll_epoll"):
        assert required in ids


def test_every_check_cites_a_kernel_function_or_the_probe():
    """Each case's docstring exists, and its module names the kernel functions it relies on."""
    for spec in load_cases().values():
        assert spec.doc, spec.id


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_whole_catalog_passes_on_stock_driver(tmp_path, arch):
    run = cli("run", "--target", f"qemu:{arch}", "--seed", "4242", out=tmp_path, timeout=900)
    report = run.report
    not_passed = [(c["id"], c["outcome"], c["reason"]) for c in report["cases"] if c["outcome"] != "passed"]
    assert not_passed == [], not_passed
    assert run.status == 0
    assert report["summary"]["passed"] == len(load_cases())
    assert report["seed"] == 4242
    assert run.case("stress.random_commands")["evidence"]["seed"] == 4242
    assert run.case("one_copy.vs_pipe")["evidence"]["copies_per_byte"] == {
        "binder": 1.0, "pipe": 2.0, "unix_socket": 2.0, "posix_mq": 2.0, "sysv_mq": 2.0, "shared_memory": 0.0}
    for case in report["cases"]:
        assert case["evidence"]["dmesg_bad_lines"] == [], case["id"]
        assert "unexpected_binder_messages" not in case["evidence"], (case["id"], case["evidence"])
        assert all(c["ref"] for c in case["checks"]), case["id"]


@pytest.fixture(scope="module")
def seeded():
    build.ensure_build_deps(build.DEFAULT_RELEASE)
    return build.build_module


@pytest.mark.parametrize("bug, case_id, reason_part", [
    ("no_mmap_clamp", "limits.mmap_clamp_4m", "4 MiB + 8 transaction: expected BR_FAILED_REPLY -28, measured ok"),
    ("async_full_space", "limits.async_half",
     "oneway 64 KiB calls accepted by a non-freeing receiver: expected 32, measured 40"),
    ("wrong_version", "protocol.version", "protocol_version: expected 8, measured 7"),
    ("cookie_leak", "objects.binder_to_handle", "measured [('BINDER_TYPE_HANDLE', 1, 1, 201326753)"),
    ("fd_no_cloexec", "objects.fd", "receiver's fd is close-on-exec: expected True, measured False"),
    ("fda_fd_leak", "objects.fd_array",
     "fds in the parent buffer are closed by BC_FREE_BUFFER: expected [False, False], measured [True, True]"),
    ("no_parent_fixup", "objects.scatter_gather", "parent fixup: word at offset 16 of buffer A holds buffer B's"),
    ("unaligned_offsets", "objects.bad_offsets", "unaligned: expected BR_FAILED_REPLY -22, measured"),
    ("async_space_leak", "limits.async_exact",
     "free async space after every buffer is freed: expected 8192, measured 0"),
    ("spawn_one_more", "loopers.spawn_max_threads", "max_threads 0: BR_SPAWN_LOOPER count: expected 0, measured 1"),
    ("poll_no_proc_work", "loopers.poll_epoll", "proc_work_not_looper: POLLIN: expected True, measured False"),
    ("outdated_fd_leak", "objects.update_txn_fds",
     "write into that pipe after the sender closes its fd: expected EPIPE, measured 1"),
    ("dead_binder_cookie", "protocol.death_notification", "cookie of the death notice: expected 8738, measured 8739"),
])
def test_seeded_bug_is_caught(tmp_path, seeded, bug, case_id, reason_part):
    assert build.BUGS[bug].caught_by == case_id
    module = seeded(bug)
    run = cli("run", case_id, "--binder-module", str(module), out=tmp_path)
    assert run.status == 1, run.stderr
    case = run.case(case_id)
    assert case["outcome"] == "failed"
    assert reason_part in case["reason"], case["reason"]


def test_stock_rebuild_passes_the_seeded_cases(tmp_path, seeded):
    run = cli("run", "limits.mmap_clamp_4m", "limits.async_half", "protocol.version",
              "--binder-module", str(seeded(None)), out=tmp_path)
    assert run.status == 0, run.stderr
    assert run.report["summary"]["passed"] == 3
