"""binder's proc/PID file parsed (harness/evidence/debugfs.py parse_proc_view), on files captured at
the catalog's checkpoints on a real guest (Debian 6.1.0-57, x86_64, tests/data/proc_view/): refs with
their counts and death notifications, nodes with their flags and counts, queued work by binder_work
type and where it waits, and allocated buffers. No guest; the seeded modules ref_weak_doubled,
node_has_weak_lost, delivered_death_kept and buffer_freed_late show the checks failing on one
(tests/seeded_bugs/README.md)."""
from __future__ import annotations

from pathlib import Path

from harness.evidence.debugfs import BufferView, NodeView, RefView, WorkItem, parse_proc_view

DATA = Path(__file__).parent / "data" / "proc_view"


def view(name: str):
    v = parse_proc_view((DATA / f"{name}-x86_64.txt").read_text())
    assert v.bad_lines == [], v.bad_lines
    return v


def test_refcounts_client_holding_the_reply() -> None:
    v = view("refcounts-object_held-client")
    assert (v.pid, v.context, v.threads) == (123, "binder", {123: 0x20})
    assert v.refs == [RefView(10, 1, 9, False, 2, 1, False)]
    assert v.buffers == [BufferView(8, 24, 8, 0, "delivered")] and v.buffers[0].size == "24:8:0"
    assert v.nodes == [] and v.work == []


def test_refcounts_owner_nodes() -> None:
    v = view("refcounts-object_pinged-server")
    assert v.nodes == [NodeView(1, 0, 0, 1, 1, 1, 1, 0, 0, 1, ()),
                       NodeView(9, 0xb1d0b1d0, 0xc00c1e00, 1, 1, 0, 0, 1, 1, 1, (123,))]
    assert v.refs == [] and v.buffers == []


def test_a_death_delivered_and_its_dead_node() -> None:
    v = view("death_notification-dead_delivered-client")
    # ref->death printed as (____ptrval____) by %pK: registered
    assert v.refs == [RefView(2, 0, 1, True, 1, 1, True)]
    assert v.work_by_type() == {"DELIVERED_DEATH": 1}
    assert v.work == [WorkItem("DELIVERED_DEATH", "proc", "has delivered dead binder")]


def test_an_incoming_call_is_on_the_stack_not_in_the_work() -> None:
    v = view("binder_to_handle-holding-server")
    assert [(r.desc, r.strong, r.weak, r.death) for r in v.refs] == [(1, 1, 0, False), (2, 0, 1, False)]
    assert [w.text.split(":")[0] for w in v.stack] == ["incoming transaction 2"]
    assert v.work == [] and [b.size + " " + b.state for b in v.buffers] == ["48:16:0 active"]
    assert [(n.ptr, n.local_strong, n.local_weak) for n in v.nodes] == [(0, 2, 1)]


def test_node_work_on_the_proc_list() -> None:
    v = view("binder_to_handle-replied-client")
    assert v.work_by_type() == {"NODE": 1} and v.work[0].where == "proc"
    assert [(n.ptr, n.has_strong, n.has_weak, n.local_strong, n.local_weak, n.refs) for n in v.nodes] == [
        (0x5a0000a1, 1, 1, 1, 0, 0), (0x5a0000b2, 0, 1, 0, 1, 0)]


def test_pending_and_deferred_work_by_list() -> None:
    receiver = view("poll_epoll-oneway_queued-receiver")
    assert receiver.work_by_type() == {"TRANSACTION": 1} and receiver.work[0].where == "proc"
    sender = view("poll_epoll-sync_queued-sender")
    assert sender.work_by_type() == {"TRANSACTION_COMPLETE": 1}
    assert sender.work_by_type("thread 126") == {"TRANSACTION_COMPLETE": 1} and sender.work_by_type("proc") == {}
    assert len(sender.stack) == 1 and sender.stack[0].text.startswith("outgoing transaction")


def test_unknown_lines_are_kept() -> None:
    v = parse_proc_view("proc 5\ncontext binder\n  something new 3\n  ref 1: desc 0 node 1 s 1 w 0 d 0000000000000000\n")
    assert v.bad_lines == ["  something new 3"] and v.refs == [RefView(1, 0, 1, False, 1, 0, False)]
