"""loopers: looper threads, BR_SPAWN_LOOPER and poll/epoll wakeups.

Kernel references (drivers/android/binder.c, Linux 6.1): binder_thread_write
(BC_REGISTER_LOOPER, BC_ENTER_LOOPER, BC_EXIT_LOOPER and the looper state bits
REGISTERED 0x01, ENTERED 0x02, EXITED 0x04, INVALID 0x08, POLL 0x20),
binder_thread_read (its `done:` exit asks for a looper with BR_SPAWN_LOOPER,
written over the buffer's leading BR_NOOP), binder_ioctl (BINDER_SET_MAX_THREADS
stores a u32), binder_poll, binder_has_work_ilocked,
binder_available_for_proc_work_ilocked, binder_wakeup_poll_threads_ilocked,
binder_get_thread_ilocked (a new thread starts with looper_need_return set),
print_binder_thread_ilocked (debugfs "thread TID: l XX").
"""
from __future__ import annotations

from cases._expect import errno_name, expect_proc, manager_node, manager_work, probe_completed, result, user_error
from harness.judging.catalog import case
from harness.judging.context import CaseContext
from harness.judging.verdicts import Line


def looper_dmesg(times: int) -> tuple[Line, ...]:
    """BC_REGISTER_LOOPER without a BR_SPAWN_LOOPER request, and after BC_ENTER_LOOPER, `times` each."""
    ref = "binder_thread_write (BC_REGISTER_LOOPER)"
    return (user_error("ERROR: BC_REGISTER_LOOPER called without request", times, ref),
            user_error("ERROR: BC_REGISTER_LOOPER called after BC_ENTER_LOOPER", times, ref))


def _spawns(ctx: CaseContext, max_threads: int, calls: int = 4) -> dict:
    out = ctx.run_probe("loopers", max_threads=max_threads, calls=calls)
    probe_completed(ctx, out)
    ctx.check(f"BINDER_SET_MAX_THREADS({max_threads:#x})", errno_name(result(out, "loopers.set_max_threads")), "0",
              "binder_ioctl")
    s = out.one("spawn_summary") or {}
    ctx.evidence.setdefault("spawn", {})[f"{max_threads:#x}"] = {
        k: s.get(k) for k in ("spawn_loopers", "spawned_registered", "reads_with_data", "reads_not_starting_with_noop")}
    ctx.check(f"max_threads {max_threads:#x}: BR_SPAWN_LOOPER always replaces the leading BR_NOOP",
              s.get("reads_not_starting_with_noop"), s.get("spawn_loopers"),
              "binder_thread_read (put_user(BR_SPAWN_LOOPER, buffer) over the BR_NOOP)")
    ctx.check(f"max_threads {max_threads:#x}: every spawned thread's BC_REGISTER_LOOPER is valid (looper 0x01)",
              s.get("spawned_registered"), s.get("spawn_loopers"),
              "binder_thread_write (BC_REGISTER_LOOPER: requested_threads--, requested_threads_started++)")
    return s


@case("loopers.spawn_max_threads", expected_dmesg=looper_dmesg(3))  # once per probe run
def spawn_max_threads(ctx: CaseContext) -> None:
    """BR_SPAWN_LOOPER: never with max_threads 0, exactly N times with N, and on every read that
    returns work with 0xFFFFFFFF (a u32 compared against an int count), each spawned thread
    registering before the next read."""
    none = _spawns(ctx, 0)
    ctx.check("max_threads 0: BR_SPAWN_LOOPER count", none.get("spawn_loopers"), 0,
              "binder_thread_read (requested_threads_started < max_threads fails)")
    two = _spawns(ctx, 2)
    ctx.check("max_threads 2: BR_SPAWN_LOOPER count over 4 calls", two.get("spawn_loopers"), 2,
              "binder_thread_read (stops once requested_threads_started == max_threads)")
    unlimited = _spawns(ctx, 0xFFFFFFFF)
    ctx.check_that("max_threads 0xFFFFFFFF: BR_SPAWN_LOOPER on every read that returned work",
                   (unlimited.get("reads_with_data") or 0) >= 4
                   and unlimited.get("spawn_loopers") == unlimited.get("reads_with_data"),
                   f"{unlimited.get('spawn_loopers')} of {unlimited.get('reads_with_data')} reads",
                   "one per read (>= 4 reads)",
                   "binder_thread_read (int requested_threads_started < u32 max_threads)")


@case("loopers.register_enter", expected_dmesg=looper_dmesg(1))
def register_enter(ctx: CaseContext) -> None:
    """Looper state bits as debugfs shows them: ENTER 0x02; REGISTER without a BR_SPAWN_LOOPER
    request 0x09 (INVALID); ENTER then REGISTER 0x0b; ENTER then EXIT 0x06."""
    out = ctx.run_probe("loopers", max_threads=0, calls=1)
    probe_completed(ctx, out)
    ref = "binder_thread_write (looper state) / print_binder_thread_ilocked"
    states = {r["name"]: r.get("looper") for r in out.events("result") if r.get("name", "").startswith("loopers.")
              and r.get("name") != "loopers.set_max_threads"}
    ctx.evidence["looper_states"] = {k: (f"{v:#04x}" if isinstance(v, int) and v >= 0 else v) for k, v in states.items()}
    for name, want, why in (
            ("loopers.main", 0x02, "BC_ENTER_LOOPER: ENTERED"),
            ("loopers.register_without_request", 0x09, "BC_REGISTER_LOOPER with requested_threads 0: REGISTERED|INVALID"),
            ("loopers.enter_then_register", 0x0B, "BC_REGISTER_LOOPER after ENTERED: ENTERED|REGISTERED|INVALID"),
            ("loopers.enter", 0x02, "ENTERED"),
            ("loopers.enter_exit", 0x06, "BC_EXIT_LOOPER: ENTERED|EXITED")):
        ctx.check(f"{name.split('.', 1)[1]}: looper bits", states.get(name), want, f"{ref} ({why})")
    errs = {r["name"]: errno_name(r) for r in out.events("result") if r.get("name", "").startswith("loopers.")}
    ctx.check("the looper commands are all consumed (no ioctl error)",
              sorted(k for k, v in errs.items() if v != "0"), [], "binder_thread_write")


# The looper bit a thread gets from polling, as each driver's proc/PID prints it ("thread TID: l
# XX"): binder.c's BINDER_LOOPER_STATE_POLL is 0x20; the Rust driver's LooperFlag::Poll is bit 6
# (0x40; its 0x20 is WaitingProc). The same state, encoded differently.
POLL_BIT = {"c": (0x20, "binder_poll (BINDER_LOOPER_STATE_POLL 0x20)", "binder_thread_write (BC_ENTER_LOOPER 0x02)"),
            "rust": (0x40, "thread.rs InnerThread::poll (LooperFlag::Poll = bit_u32(6))",
                     "thread.rs Thread::write (BC_ENTER_LOOPER: LooperFlag::Entered 0x02)")}
# Whether a poll says POLLIN for work queued to the process, by the polling thread: binder.c (6.1
# on) has no looper check (binder_available_for_proc_work_ilocked) and a new thread starts with
# looper_need_return set; the Rust driver offers process work only to a looper
# (InnerThread::should_use_process_work_queue) and starts a thread without it. The uapi says
# nothing of poll; libbinder's polling threads are loopers, which both drivers serve the same.
POLL_PROC_WORK = {
    "c": {"poll.proc_work_not_looper": (True, "binder_poll -> binder_has_work_ilocked "
                                              "(binder_available_for_proc_work_ilocked has no looper check on 6.1)"),
          "poll.fresh_thread": (True, "binder_get_thread_ilocked (looper_need_return = true) -> binder_has_work_ilocked")},
    "rust": {"poll.proc_work_not_looper": (False, "process.rs Process::poll -> thread.rs "
                                                  "InnerThread::should_use_process_work_queue (is_looper)"),
             "poll.fresh_thread": (False, "thread.rs InnerThread::new (looper_need_return: false) -> "
                                          "InnerThread::poll")},
}


def _poll(out, name: str) -> dict:
    return result(out, name)


@case("loopers.poll_epoll")
def poll_epoll(ctx: CaseContext) -> None:
    """poll and epoll report process work (to any thread of the process, looper or not) and a
    thread's own work: POLLIN after a oneway write with read_size 0 (BR_TRANSACTION_COMPLETE),
    none after a sync write (its TRANSACTION_COMPLETE is deferred) until the reply comes; a
    blocking poll is woken by the work; a fresh thread's first poll says POLLIN."""
    out = ctx.run_probe("poll_work")
    probe_completed(ctx, out)
    pin = {r["name"]: r.get("pollin") for r in out.events("result") if "pollin" in r}
    ctx.evidence["pollin"] = pin
    ctx.evidence["brs"] = {r["name"]: r.get("br") for r in out.events("result") if "br" in r}
    has = "binder_poll -> binder_has_work_ilocked"
    not_looper, not_looper_ref = ctx.by_driver(POLL_PROC_WORK)["poll.proc_work_not_looper"]
    fresh, fresh_ref = ctx.by_driver(POLL_PROC_WORK)["poll.fresh_thread"]
    for name, want, ref in (
            ("poll.idle", False, has),
            ("poll.sender_after_oneway_write", True,
             f"{has} (oneway: binder_enqueue_thread_work sets process_todo)"),
            ("poll.sender_after_read", False, has),
            ("poll.proc_work_not_looper", not_looper, not_looper_ref),
            ("poll.proc_work_looper", True, has),
            ("poll.after_read", False, has),
            ("poll.fresh_thread", fresh, fresh_ref),
            ("poll.wakeup", True, "binder_proc_transaction -> binder_wakeup_poll_threads_ilocked"),
            ("poll.sender_after_sync_write", False,
             f"{has} (sync: binder_enqueue_deferred_thread_work_ilocked leaves process_todo false)"),
            ("poll.sender_reply", True, f"{has} (BR_REPLY queued on the thread)")):
        ctx.check(f"{name.split('.', 1)[1]}: POLLIN", pin.get(name, "missing"), want, ref)
    poll_bit, poll_ref, enter_ref = ctx.by_driver(POLL_BIT)
    ctx.check("looper bits of a non-looper thread that polled", _poll(out, "poll.proc_work_not_looper").get("looper"),
              poll_bit, poll_ref)
    ctx.check("looper bits after BC_ENTER_LOOPER", _poll(out, "poll.proc_work_looper").get("looper"), poll_bit | 0x02,
              f"{enter_ref} + {poll_ref}")
    wake = _poll(out, "poll.wakeup")
    ctx.evidence["wakeup_ms"] = wake.get("elapsed_ms")
    late = result(out, "poll.late_oneway")
    ctx.check("the late oneway sent (errno) while the receiver slept in poll (before the write, its "
              "/proc/PID/task/TID/stat state S and its wchan a poll function)",
              (errno_name(late), late.get("saw_receiver_asleep")) if late else "missing", ("0", True), "probe")
    ctx.check_that("blocking poll woken when the oneway arrives (limit 3000 ms)",
                   wake.get("elapsed_ms") is not None and wake["elapsed_ms"] < 3000, wake.get("elapsed_ms"),
                   "< 3000 ms", "binder_wakeup_poll_threads_ilocked")
    for name, want in (("poll.epoll_proc_work", 1), ("poll.epoll_after_read", 0), ("poll.epoll_wakeup", 1)):
        ctx.check(f"{name.split('.', 1)[1]}: ready events", result(out, name).get("events"), want,
                  "binder_poll (via ep_item_poll)")
    brs = {r["name"]: r.get("br") for r in out.events("result") if "br" in r}
    for name, want in (("poll.sender_read_after_oneway", ["BR_TRANSACTION_COMPLETE"]),
                       ("poll.read_proc_work", ["BR_TRANSACTION"]),
                       ("poll.read_wakeup", ["BR_TRANSACTION"]),
                       ("poll.sender_read_after_late_oneway", ["BR_TRANSACTION_COMPLETE"]),
                       ("poll.read_sync", ["BR_TRANSACTION"]),
                       ("poll.read_after_reply", ["BR_TRANSACTION_COMPLETE"]),
                       ("poll.sender_read_reply", ["BR_TRANSACTION_COMPLETE", "BR_REPLY"])):
        ctx.check(f"{name.split('.', 1)[1]}: returns", brs.get(name), want, "binder_thread_read")
    expect_proc(ctx, out, "oneway_queued", "receiver", "binder_proc_transaction (no thread waiting: the "
                "oneway on proc->todo, its buffer active; binder_get_node_refs_for_txn: a strong local ref)",
                nodes=[manager_node(extra_strong=1)], work=manager_work(ctx, {"TRANSACTION": 1}), buffers=["8:0:0 active"])
    expect_proc(ctx, out, "oneway_queued", "sender", "binder_thread_read (the sender read its "
                "BR_TRANSACTION_COMPLETE)", refs=[], nodes=[], work={}, buffers=[])
    expect_proc(ctx, out, "sync_queued", "receiver", "binder_proc_transaction (the call on proc->todo)",
                nodes=[manager_node(extra_strong=1)], work=manager_work(ctx, {"TRANSACTION": 1}), buffers=["8:0:0 active"])
    expect_proc(ctx, out, "sync_queued", "sender", "binder_enqueue_deferred_thread_work_ilocked (a sync "
                "call's TRANSACTION_COMPLETE waits on the sender's thread, unread)", refs=[], nodes=[],
                work={"TRANSACTION_COMPLETE": 1}, buffers=[])
    expect_proc(ctx, out, "sync_held", "receiver", "binder_thread_read (the call read: off the todo list, its "
                "buffer still active until the reply)", nodes=[manager_node(extra_strong=1)], work=manager_work(ctx, {}),
                buffers=["8:0:0 active"])
    expect_proc(ctx, out, "sync_held", "sender", "binder_thread_read (nothing read by the sender yet)",
                refs=[], nodes=[], work={"TRANSACTION_COMPLETE": 1}, buffers=[])


def _ewait(ctx: CaseContext, out, name: str, woke: bool, ref: str) -> None:
    """epoll_wait `name` reported the binder fd (registered once, data 7) with EPOLLIN, or nothing."""
    r = result(out, name)
    got = (r.get("events"), r.get("epollin"), r.get("data")) if r else "missing"
    ctx.check(f"{name.split('.', 1)[1]}: epoll_wait (events, EPOLLIN, data)", got,
              (1, True, 7) if woke else (0, False, -1), ref)


@case("loopers.epoll_looper")
def epoll_looper(ctx: CaseContext) -> None:
    """Android's Looper pattern: a BC_ENTER_LOOPER thread (the context manager) registers the binder
    fd with epoll once, then blocks in epoll_wait (each 3 s bounded) while work arrives from another
    process (a oneway carrying its node), from another thread of its process (a non-looper's
    BC_CLEAR_DEATH_NOTIFICATION, done queued to the process), and from its own write-only calls: a
    oneway's BR_TRANSACTION_COMPLETE wakes it at once; a sync call's is deferred and wakes nothing
    until the reply. The senders wait until the looper sleeps (its /proc stat 'S') before sending."""
    out = ctx.run_probe("epoll_looper")
    probe_completed(ctx, out)
    reg = result(out, "epoll_looper.register")
    ctx.check("BC_ENTER_LOOPER + EPOLL_CTL_ADD", errno_name(reg) if reg else "missing", "0", "binder_thread_write")
    poll_bit, poll_ref, enter_ref = ctx.by_driver(POLL_BIT)
    ctx.check("looper bits after EPOLL_CTL_ADD", reg.get("looper") if reg else None, poll_bit | 0x02,
              f"{enter_ref} + {poll_ref}")
    has = "binder_poll -> binder_has_work_ilocked"
    wake_proc = "binder_proc_transaction -> binder_wakeup_thread_ilocked -> binder_wakeup_poll_threads_ilocked"
    for name, woke, ref in (
            ("epoll_looper.idle", False, has),
            ("epoll_looper.from_process", True, wake_proc),
            ("epoll_looper.after_read_process", False, has),
            ("epoll_looper.from_thread", True,
             "binder_thread_write (BC_CLEAR_DEATH_NOTIFICATION, not a looper: proc->todo) -> "
             "binder_wakeup_proc_ilocked -> binder_wakeup_poll_threads_ilocked"),
            ("epoll_looper.after_read_thread", False, has),
            ("epoll_looper.own_oneway", True,
             "binder_transaction (oneway: binder_enqueue_thread_work) -> binder_enqueue_thread_work_ilocked "
             "(POLL thread, own work: wake_up_interruptible_sync, upstream 'binder: signal epoll threads of "
             "self-work')"),
            ("epoll_looper.after_read_own", False, has),
            ("epoll_looper.own_sync", False,
             "binder_transaction (sync: binder_enqueue_deferred_thread_work_ilocked: no wakeup, "
             "process_todo stays false)"),
            ("epoll_looper.reply", True,
             "binder_transaction (reply: binder_enqueue_thread_work_ilocked on the target thread + "
             "wake_up_interruptible_sync(&target_thread->wait))"),
            ("epoll_looper.after_read_reply", False, has)):
        _ewait(ctx, out, name, woke, ref)
    waits = {n: result(out, n).get("elapsed_ms") for n in (
        "epoll_looper.from_process", "epoll_looper.from_thread", "epoll_looper.own_oneway", "epoll_looper.reply")}
    ctx.evidence["wake_ms"] = waits
    for name in ("epoll_looper.peer_oneway", "epoll_looper.thread_clear_death", "epoll_looper.peer_reply"):
        r = result(out, name)
        ctx.check(f"{name.split('.', 1)[1]}: sent (errno) while the looper slept in epoll_wait "
                  "(before the write, its /proc/PID/task/TID/stat state S and its wchan a poll function)",
                  (errno_name(r), r.get("saw_looper_asleep")) if r else "missing", ("0", True), "probe")
    brs = {r["name"]: r.get("br") for r in out.events("result") if "br" in r}
    ctx.evidence["brs"] = brs
    for name, want, ref in (
            ("epoll_looper.read_from_process", ["BR_TRANSACTION"], "binder_thread_read (proc->todo)"),
            ("epoll_looper.read_from_thread", ["BR_CLEAR_DEATH_NOTIFICATION_DONE"],
             "binder_thread_read (BINDER_WORK_CLEAR_DEATH_NOTIFICATION)"),
            ("epoll_looper.read_own_oneway", ["BR_TRANSACTION_COMPLETE"], "binder_thread_read (thread->todo)"),
            ("epoll_looper.read_reply", ["BR_TRANSACTION_COMPLETE", "BR_REPLY"],
             "binder_thread_read (the deferred TRANSACTION_COMPLETE, then BR_REPLY)")):
        ctx.check(f"{name.split('.', 1)[1]}: returns", brs.get(name), want, ref)
