"""The whole catalog on the stock driver, and one seeded bug per family caught
by the case meant to catch it, with a reason naming the measured value."""
from __future__ import annotations

import pytest

from harness.judging import coverage
from harness.judging.catalog import load_cases
from tests.helpers import assert_judge_reproduces, cli
from tests.report_html import assert_full_page
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
                     "loopers.poll_epoll", "stress.valid_traffic",
                     "protocol.refs_after_thread_exit", "protocol.cm_own_handle", "objects.array_edges",
                     "objects.undelivered"):
        assert required in ids


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_whole_catalog_passes_on_stock_driver(tmp_path, arch):
    run = cli("run", "--target", f"qemu:{arch}", "--seed", "4242", out=tmp_path, timeout=900)
    report = run.report
    not_passed = [(c["id"], c["outcome"], c["reason"]) for c in report["cases"] if c["outcome"] != "passed"]
    assert not_passed == [], not_passed
    assert run.status == 0
    assert_judge_reproduces(run)  # judged offline, a copy of the run gives every check and verdict again
    assert report["summary"]["passed"] == len(load_cases())
    assert report["seed"] == 4242
    assert_full_page(run.out)
    assert run.case("stress.random_commands")["evidence"]["seed"] == 4242
    traffic = run.case("stress.valid_traffic")["evidence"]
    assert traffic["seed"] == 4242 and traffic["success_share"] >= 0.98, traffic
    assert traffic["buffers_left"] == {"client": 0, "server": 0}
    assert run.case("one_copy.vs_pipe")["evidence"]["copies_per_byte"] == {
        "binder": 1.0, "pipe": 2.0, "unix_socket": 2.0, "posix_mq": 2.0, "sysv_mq": 2.0, "shared_memory": 0.0}
    for case in report["cases"]:
        assert case["evidence"]["dmesg_bad_lines"] == [], case["id"]
        assert "unexpected_binder_messages" not in case["evidence"], (case["id"], case["evidence"])
        assert all(c["ref"] for c in case["checks"]), case["id"]
    # every BC_*, BR_* and ioctl of this kernel's binder.h exercised by a case, or excluded with its reason
    assert coverage.incomplete(report["coverage"]) == ""


@pytest.fixture(scope="module")
def seeded():
    build.ensure_build_deps(build.DEFAULT_RELEASE)
    return build.build_module


# Each seeded bug and every case it fails, with a part of the reason naming the measured value.
# One harness run per module (one guest boot) runs all of that module's cases.
COPIES = "kernel copies per payload byte (traced binder_alloc_copy_user_to_buffer): expected 1.0, measured 2.0"
CAUGHT: dict[str, list[tuple[str, str]]] = {
    "failed_txn_buffer_kept": [("stress.random_commands",
                                "after the stream, a valid call on the pair's own fd: BRs: expected "
                                "['BR_TRANSACTION_COMPLETE', 'BR_REPLY'], measured ['BR_FAILED_REPLY']")],
    "no_mmap_clamp": [("limits.mmap_clamp_4m", "4 MiB + 8 transaction: expected BR_FAILED_REPLY -28, measured ok")],
    "async_full_space": [
        ("limits.async_half", "oneway 64 KiB calls accepted by a non-freeing receiver: expected 32, measured 40"),
        ("compat.limits", "oneway 64 KiB calls accepted: expected 32, measured 40")],
    "wrong_version": [("protocol.version", "protocol_version: expected 8, measured 7"),
                      ("compat.version", "protocol_version: expected 8, measured 7")],
    "double_copy": [("one_copy.sync_sizes", f"size 8: {COPIES}"), ("one_copy.reply", f"size 8: {COPIES}"),
                    ("one_copy.oneway", f"size 8: {COPIES}"), ("compat.one_copy", f"size 8: {COPIES}"),
                    ("one_copy.vs_pipe", "binder: kernel copies per payload byte: expected 1.0, measured 2.0")],
    "cookie_leak": [("objects.binder_to_handle", "measured [('BINDER_TYPE_HANDLE', 1, 1, 201326753)")],
    "fd_no_cloexec": [("objects.fd", "receiver's fd is close-on-exec: expected True, measured False")],
    "fda_fd_leak": [("objects.fd_array", "fds in the parent buffer are closed by BC_FREE_BUFFER: "
                                         "expected [False, False], measured [True, True]")],
    "no_parent_fixup": [("objects.scatter_gather", "parent fixup: word at offset 16 of buffer A holds buffer B's")],
    "unaligned_offsets": [("objects.bad_offsets", "unaligned: expected BR_FAILED_REPLY -22, measured")],
    "async_space_leak": [("limits.async_exact", "free async space after every buffer is freed: expected 8192, measured 0")],
    "spawn_one_more": [("loopers.spawn_max_threads", "max_threads 0: BR_SPAWN_LOOPER count: expected 0, measured 1")],
    "poll_no_proc_work": [("loopers.poll_epoll", "proc_work_not_looper: POLLIN: expected True, measured False")],
    "outdated_fd_leak": [("objects.update_txn_fds",
                          "write into that pipe after the sender closes its fd: expected EPIPE, measured 1")],
    "dead_binder_cookie": [("protocol.death_notification", "cookie of the death notice: expected 8738, measured 8739")],
    "max_threads_null_efault": [("protocol.null_args", "BINDER_SET_MAX_THREADS(NULL): expected EINVAL, measured EFAULT")],
    "max_threads_signed": [("protocol.set_max_threads",
                            "BINDER_SET_MAX_THREADS(4294967295): expected 0, measured EINVAL")],
    "ctx_mgr_eexist": [("protocol.context_mgr_busy",
                        "BINDER_SET_CONTEXT_MGR from another process: expected EBUSY, measured EEXIST")],
    "thread_exit_einval": [("protocol.thread_exit", "BINDER_THREAD_EXIT (first): expected 0, measured EINVAL")],
    "nonblock_enodata": [("protocol.read_empty_nonblock",
                          "read_empty_nonblock: errno: expected EAGAIN, measured ENODATA")],
    "invalid_handle_dead_reply": [
        ("protocol.invalid_handle", "sync call to handle 12345: expected BR_FAILED_REPLY -22, measured BR_DEAD_REPLY -22"),
        ("protocol.refcounts", "call on the handle after its last reference is dropped: "
                               "expected BR_FAILED_REPLY -22, measured BR_DEAD_REPLY -22")],
    "code_truncated": [("protocol.ping", "code seen by the manager: expected 1599098439, measured 5262919")],
    "self_call_eperm": [("protocol.self_call_rejected",
                         "call to handle 0 from its owner: expected BR_FAILED_REPLY -22, measured BR_FAILED_REPLY -1")],
    "bad_data_ptr_einval": [("protocol.bad_buffer_ptr",
                             "data_unmapped: expected BR_FAILED_REPLY -14, measured BR_FAILED_REPLY -22")],
    "frozen_sync_recv_lost": [("protocol.freeze", "sync_recv bit 0 (sync call received while frozen): "
                                                  "expected 1, measured 0")],
    "register_not_invalid": [("loopers.register_enter", "register_without_request: looper bits: expected 9, measured 1")],
    "pages_never_on_lru": [
        ("one_copy.lazy_pages", "second buffer: pages reused from the LRU: expected 3, measured 0"),
        ("limits.shrinker", "pages on the LRU after 16 freed 64 KiB buffers: expected 16, measured 0")],
    "maywrite_kept": [("limits.mmap_readonly", "mprotect(PROT_READ|PROT_WRITE): expected EACCES, measured 0")],
    "remap_eexist": [("limits.mmap_twice", "second mmap on the same fd: expected EBUSY, measured EEXIST"),
                     ("compat.limits", "second mmap on the same fd: expected EBUSY, measured EEXIST")],
    "spam_late": [("limits.oneway_spam", "call that got BR_ONEWAY_SPAM_SUSPECT (1-based): expected 26, measured 29")],
    "no_vma_enospc": [("limits.munmap_dead", "calls after munmap (call, oneway, call): expected ['BR_DEAD_REPLY -3', "
                                             "'BR_DEAD_REPLY -3', 'BR_DEAD_REPLY -3'], measured ['BR_FAILED_REPLY -28'")],
    "free_buffer_ignored": [
        ("limits.free_reuse", "1000 calls of 64 KiB with BC_FREE_BUFFER: expected 1000, measured 16"),
        ("stress.valid_traffic", "share of successful transactions: expected >= 0.98, measured 0.0"),
        ("one_copy.perf", "probe ran to completion: expected done ok, measured binder call of 1040384 bytes: "
                          "failed_reply")],
    "node_work_kept": [("protocol.refs_after_thread_exit", "after BINDER_THREAD_EXIT: BRs the owner read: expected [], "
                                                           "measured ['BR_INCREFS', 'BR_ACQUIRE', 'BR_RELEASE', 'BR_DECREFS']")],
    # measured: "... measured binder_linux: invalid inc weak node for 7 (+2 more ...)" (the node's debug id)
    "inc_weak_refused": [("protocol.refs_after_thread_exit", "kernel log: binder lines the case does not declare: "
                                                             "expected none, measured binder_linux: invalid inc weak "
                                                             "node for ")],
    # protocol.ping's two calls (plain, and after seteuid) and their replies: four transactions kept
    "transaction_leak": [("protocol.ping", "driver accounting: binder stats active counts back to their values "
                                           "before the case: expected none changed, measured transaction: active 0 -> 4")],
    # the failed-transaction log against the probe's failures (harness/judging/accounting.py)
    "failed_log_unrecorded": [("protocol.invalid_handle", "driver accounting: failed_transaction_log entries of the "
                                                          "case, by return: expected BR_FAILED_REPLY 2, measured none"),
                              ("limits.munmap_dead", "failed_transaction_log entries of the case, by return: expected "
                                                     "BR_DEAD_REPLY 3, measured none")],
    "failed_log_param_flipped": [("protocol.invalid_handle", "extended errors the probe read, as the failed log holds "
                                                             "them: expected all 2 match, measured extended error {id 1, "
                                                             "BR_FAILED_REPLY, -22}: the log says BR_FAILED_REPLY 22")],
    "failed_log_line_shifted": [("protocol.invalid_handle", "failed_transaction_log entries as the kernel log's "
                                                            "failure lines give them (debug id, return, errno, line): "
                                                            "expected all 2 match, measured entry 1 says BR_FAILED_REPLY "
                                                            "-22 l=3064, the kernel log BR_FAILED_REPLY -22 line 3063")],
    # binder's proc/PID view against the probe's (cases/_expect.py expect_proc)
    "ref_weak_doubled": [("protocol.refcounts", "binder's view of the client at handle0_held: refs (desc, s, w, death, "
                                                "dead): expected [(0, 1, 1, False, False)], measured [(0, 1, 2, False, "
                                                "False)]")],
    "increfs_done_kept": [("protocol.refcounts", "binder's view of the server at object_pinged: nodes (ptr, cookie, hs, "
                                                 "hw, ls, lw, refs): expected [(0, 0, 1, 1, 1, 1, 0), (2983244240, "
                                                 "3222019584, 1, 1, 0, 0, 1)], measured [(0, 0, 1, 1, 1, 1, 0), "
                                                 "(2983244240, 3222019584, 1, 1, 0, 1, 1)]")],
    "dead_binder_done_kept": [("protocol.death_notification", "binder's view of the client at dead_done: queued work "
                                                              "by type: expected {}, measured {'DELIVERED_DEATH': 1}")],
    "buffer_state_inverted": [("objects.binder_to_handle", "binder's view of the server at holding: allocated buffers: "
                                                           "expected ['48:16:0 active'], measured ['48:16:0 delivered']"),
                              ("loopers.poll_epoll", "binder's view of the receiver at oneway_queued: allocated "
                                                     "buffers: expected ['8:0:0 active'], measured ['8:0:0 delivered']")],
    "cm_desc0_allowed": [("protocol.cm_own_handle", "increfs 0 from the manager (errno, write_consumed, BRs read after): "
                                                    "expected ('EINVAL', 0, []), measured ('0', 8, [])")],
    "exact_fit_refused": [("objects.array_edges", "area_exact: expected ok, measured BR_FAILED_REPLY -28")],
    "outdated_objects_kept": [("objects.undelivered", "update: receiver's refs while the third waits (desc, dead, s, w): "
                                                      "the second's are given back: expected [(1, False, 1, 0), "
                                                      "(2, False, 0, 1)], measured [(1, False, 2, 0), (2, False, 0, 2)]")],
    # the third oneway never arrives; the case's first failure says so, and the check this bug is
    # for (the receiver freed both delivered buffers) fails behind it: SECOND_CHECKS
    "async_next_stuck": [("objects.undelivered", "update: delivered after unfreezing (head, object types): expected "
                                                 "[(1, []), (3, ['BINDER_TYPE_HANDLE'")],
    "poll_always_ready": [("loopers.poll_epoll", "idle: POLLIN: expected False, measured True")],
    "transaction_jiffy": [("stress.valid_traffic", "operations run (the whole stream, within the 30 s cap): "
                                                   "expected 8500, measured ")],
    "failed_txn_objects_kept": [("objects.undelivered", "fail: node BRs the sender read during and after the call: "
                                                        "expected [], measured ['BR_INCREFS', 'BR_ACQUIRE', 'BR_INCREFS']")],
    "dead_txn_files_kept": [("objects.undelivered", "exit: write into P and Q after the sender closes its fds: "
                                                    "expected ['EPIPE', 'EPIPE'], measured ['0', '0']")],
    "ptr_exact_fit_refused": [("objects.array_edges", "fda_zero: expected ok, measured BR_FAILED_REPLY -22")],
    "epoll_self_work_unsignalled": [("loopers.epoll_looper", "own_oneway: epoll_wait (events, EPOLLIN, data): "
                                                             "expected (1, True, 7), measured (0, False, -1)")],
    "warn_on_transaction": [(case_id, "kernel health: dmesg delta free of WARNING/BUG/Oops/KASAN/Call Trace: "
                                      "expected none, measured [") for case_id in
                            ("one_copy.sync_sizes", "stress.random_commands", "stress.valid_traffic")],
}

# A check a seeded bug fails that is not its case's first failure: (case, check name part, measured).
SECOND_CHECKS: dict[str, list[tuple[str, str, object]]] = {
    "async_next_stuck": [("objects.undelivered", "the receiver freed both delivered buffers", ["ETIMEDOUT", 1])],
    # poll never sleeps, so the receiver was asleep in its pipe read, not in poll, when the late oneway went
    "poll_always_ready": [("loopers.poll_epoll", "the late oneway sent (errno) while the receiver slept in poll",
                           ["0", False])],
}


def test_every_case_has_a_seeded_bug_or_says_why_not():
    caught = {c for cases in CAUGHT.values() for c, _ in cases}
    for spec in load_cases().values():
        assert spec.id in caught or "no seeded bug" in spec.doc.lower(), spec.id
    assert set(CAUGHT) <= set(build.BUGS) and set(SECOND_CHECKS) <= set(CAUGHT)


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_seeded_bug_is_caught(tmp_path, seeded, bug):
    expected = CAUGHT[bug]
    assert build.BUGS[bug].caught_by in [case_id for case_id, _ in expected]
    module = seeded(bug)
    run = cli("run", *[case_id for case_id, _ in expected], "--binder-module", str(module), "--seed", "4242",
              out=tmp_path, timeout=600)
    assert run.status == 1, run.stderr
    assert_judge_reproduces(run)  # the failed checks stay failed when judged offline
    for case_id, reason_part in expected:
        case = run.case(case_id)
        assert case["outcome"] == "failed", (case_id, case["reason"])
        assert reason_part in case["reason"], (case_id, case["reason"])
    for case_id, name_part, measured in SECOND_CHECKS.get(bug, []):
        failed = [c for c in run.case(case_id)["checks"] if name_part in c["name"] and not c["passed"]]
        assert [c["measured"] for c in failed] == [measured], (case_id, name_part, failed)
    assert_full_page(run.out)
    if bug == "free_buffer_ignored":
        left = run.case("stress.valid_traffic")["evidence"]["buffers_left"]
        assert left["client"] > 0 and left["server"] > 0, left


def test_stock_rebuild_passes_the_seeded_cases(tmp_path, seeded):
    """The control for every seeded-bug kill: the unmodified driver, rebuilt exactly as the seeded
    bugs are (out of tree against Debian's headers, so with DWARF and no BTF of its own), passes
    every case of the catalog, none skipped, its kprobe offsets from the BTF the harness made.
    (x86_64 only: the seeded builder does not cross-build arm64 modules.)"""
    module = seeded(None)
    run = cli("run", "--binder-module", str(module), "--seed", "4242", out=tmp_path, timeout=900)
    report = run.report
    not_passed = [(c["id"], c["outcome"], c["reason"]) for c in report["cases"] if c["outcome"] != "passed"]
    assert not_passed == [], not_passed
    assert run.status == 0, run.stderr
    assert sorted(c["id"] for c in report["cases"]) == sorted(load_cases())
    assert report["summary"]["passed"] == len(load_cases()) and report["summary"]["skipped"] == 0
    assert report["target"]["binder_module"] == str(module)
    placed = [c for c in report["cases"] if "struct_offsets" in c["evidence"]]
    assert {c["id"] for c in placed} >= {"one_copy.sync_sizes", "one_copy.reply", "one_copy.oneway",
                                          "one_copy.vs_pipe", "one_copy.lazy_pages", "compat.one_copy"}
    for case in placed:
        assert case["evidence"]["struct_offsets"]["binder_buffer.user_data"]["from"] == (
            "BTF /sys/kernel/btf/binder_linux (module BTF made on the host from its DWARF by pahole)"), case["id"]
    for case in report["cases"]:
        assert case["evidence"]["dmesg_bad_lines"] == [], case["id"]
