"""Parse binder's log files: {stats,state,transactions,proc/PID} in debugfs binder/ (the C
driver) or binderfs binder_logs/ (the Rust driver; harness/evidence/drivers.py says which).

The C driver's files are text that binder.c writes with seq_printf (print_binder_stats,
print_binder_proc, print_binder_proc_stats, binder_alloc_print_pages); the Rust driver's are
written by seq_print! in drivers/android/binder/ (rust_binder_main.rs rust_binder_*_show_impl,
process.rs Process::debug_print / debug_print_stats, thread.rs, node.rs, range_alloc/). Both are
parsed into one model; where the Rust driver prints no such figure, the model says so
(ProcView.not_counted, drivers.NOT_COUNTED), never a made-up zero. These are pure functions over
that text: a line they do not recognise is kept in `bad_lines`, never raised.
"""
from __future__ import annotations

import dataclasses
import re
import shlex
from dataclasses import dataclass, field

_HEADER = re.compile(r"^binder (stats|state|transactions|transaction log|proc state):$")
_PROC = re.compile(r"^proc (\d+)$")
_CONTEXT = re.compile(r"^context (\S+)$")
_COUNTER = re.compile(r"^\s*((?:BC|BR)_[A-Z_]+): (\d+)$")
_OBJECTS = re.compile(r"^\s*([a-z_]+): active (\d+) total (\d+)$")
_PAGES = re.compile(r"^\s*pages: (\d+):(\d+):(\d+)$")  # binder_alloc_print_pages: active:lru:free
_WATERMARK = re.compile(r"^\s*pages high watermark: (\d+)$")
_SECTION = re.compile(r"^(dead nodes|binder (?:stats|state)):$|^\s*(dead nodes):$")
# indented entries: "  thread 123: l 00 ...", "  node 5: u...", "  ref 2: desc 0 ...", "  buffer 9: ..."
_ENTRY = re.compile(r"^\s+(thread|node|ref|buffer|dead node|incoming transaction|outgoing transaction|"
                    r"pending transaction|bad transaction|transaction|has pending work|pending async transaction"
                    r")\s*(\d+)?:?\s*(.*)$")
# indented per-proc figures, with or without a colon: "  threads: 1", "  ready threads 1",
# "  free async space 520192", "  requested threads: 0+0/0", "  refs: 1 s 1 w 1"
_FIGURE = re.compile(r"^\s+(threads|requested threads|ready threads|free async space|free oneway space|nodes|"
                     r"refs|buffers|pending transactions|outstanding transactions):? (\d\S*(?: .*)?)$")
# The Rust driver's names of the same figures (process.rs Process::debug_print_stats: "free oneway
# space" is mapping.alloc.free_oneway_space(), the C driver's alloc->free_async_space)
_FIGURE_NAMES = {"free oneway space": "free async space"}


@dataclass(frozen=True)
class Pages:
    """binder_alloc pages of one proc: in use, on the LRU (freed, still mapped), never or no longer backed."""

    active: int
    lru: int
    free: int


@dataclass
class ProcInfo:
    pid: int
    context: str = ""
    counters: dict[str, int] = field(default_factory=dict)  # BC_*/BR_* of this proc
    figures: dict[str, str] = field(default_factory=dict)  # "threads" -> "1", "free async space" -> "520192"
    entries: list[tuple[str, str]] = field(default_factory=list)  # ("thread", "123: l 00 ...")
    pages: Pages | None = None
    pages_high_watermark: int | None = None


@dataclass
class BinderDebugfs:
    kind: str = ""  # stats | state | transactions | proc state (a proc/PID file)
    counters: dict[str, int] = field(default_factory=dict)  # global BC_*/BR_*
    objects: dict[str, tuple[int, int]] = field(default_factory=dict)  # "proc" -> (active, total)
    procs: list[ProcInfo] = field(default_factory=list)
    entries: list[tuple[str, str]] = field(default_factory=list)  # outside any proc (dead nodes)
    bad_lines: list[str] = field(default_factory=list)

    def proc(self, pid: int) -> ProcInfo | None:
        return next((p for p in self.procs if p.pid == pid), None)


def parse_binder_debugfs(text: str) -> BinderDebugfs:
    """Parse any of binder's debugfs files; unrecognised lines go to bad_lines."""
    doc = BinderDebugfs()
    proc: ProcInfo | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if m := _HEADER.match(line):
            doc.kind = doc.kind or m.group(1)
        elif m := _PROC.match(line):
            proc = ProcInfo(int(m.group(1)))
            doc.procs.append(proc)
        elif (m := _CONTEXT.match(line)) and proc is not None:
            proc.context = m.group(1)
        elif m := _COUNTER.match(line):
            (proc.counters if proc is not None else doc.counters)[m.group(1)] = int(m.group(2))
        elif (m := _OBJECTS.match(line)) and proc is None:
            doc.objects[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        elif (m := _PAGES.match(line)) and proc is not None:
            proc.pages = Pages(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        elif (m := _WATERMARK.match(line)) and proc is not None:
            proc.pages_high_watermark = int(m.group(1))
        elif _SECTION.match(line):
            proc = None if "dead nodes" in line else proc
        elif m := _ENTRY.match(line):
            rest = f"{m.group(2)}: {m.group(3)}" if m.group(2) else m.group(3)
            (proc.entries if proc is not None else doc.entries).append((m.group(1), rest))
        elif (m := _FIGURE.match(line)) and proc is not None:
            proc.figures[_FIGURE_NAMES.get(m.group(1), m.group(1))] = m.group(2)
        else:
            doc.bad_lines.append(line)
    return doc


SETTLE_POLLS = 300  # 10 ms apart: binder's deferred release gets about 3-5 s before the window closes


def settle_script(logs: str | None, probe_name: str, counts_procs: bool = True) -> str:
    """Shell that closes a case's kernel-log window only after its work is really over.

    First the case's probe processes must be gone (waited for 2 s, then killed). Then binder
    releases each closed binder_proc in deferred work (binder_deferred_release, from
    binder_release), printing "undelivered transaction" and the like as it goes, and frees the
    proc last (binder_free_proc, counted in `stats` "proc: active"). So the script waits until
    `state` lists no proc whose process has ended and every proc `stats` counts as active is
    listed: nothing is left in binder's deferred work. Prints `settle=POLLS_PROCS,POLLS_BINDER`.

    `logs` is the directory of binder's files (drivers.DriverFacts.logs_path: debugfs binder/,
    or binderfs binder_logs/). A driver whose `stats` counts no procs (`counts_procs` False: the
    Rust driver, whose Process::release defers to deferred_release, which deregisters the proc
    from its context first) is waited for only until `state` lists no ended process.
    """
    name = shlex.quote(probe_name)
    lines = [
        # one pidof per poll (each scans /proc: 0.04 s on an arm64 guest under TCG)
        f"i=0; while left=$(pidof {name} 2> /dev/null) && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done",
        "if [ -n \"$left\" ]; then kill -9 $left; echo \"settle-killed=$left\"; fi",
        "j=0",
    ]
    if logs:
        b = shlex.quote(logs)
        active = f"  a=$(sed -n 's/^proc: active \\([0-9]*\\) .*/\\1/p' {b}/stats); n=0; d=0" if counts_procs \
            else "  n=0; d=0"
        lines += [
            f"while [ -r {b}/stats ] && [ $j -lt {SETTLE_POLLS} ]; do",
            active,
            f"  for p in $(sed -n 's/^proc \\([0-9]*\\)$/\\1/p' {b}/state); do",
            "    if [ -d /proc/$p ]; then n=$((n+1)); else d=$((d+1)); fi",
            "  done",
            '  [ "$d" -eq 0 ] && [ "${a:-0}" -eq "$n" ] && break' if counts_procs else '  [ "$d" -eq 0 ] && break',
            "  sleep 0.01; j=$((j+1))",
            "done",
        ]
    lines.append('echo "settle=$i,$j"')
    return "\n".join(lines)


def settle_outcome(output: str) -> str | None:
    """What settle_script's run says went wrong, or None when the case's work ended in time."""
    problems = []
    killed = re.search(r"settle-killed=([\d ]+)", output)
    if killed:
        problems.append(f"probe processes {killed.group(1).strip()} were still running 2 s after the probe and were killed")
    polls = re.search(r"settle=(\d+),(\d+)", output)
    if polls and int(polls.group(2)) >= SETTLE_POLLS:
        problems.append("binder's deferred release was still pending when the kernel log was read")
    return "; ".join(problems) or None


# -- transaction_log / failed_transaction_log ------------------------------------------------------
# print_binder_transaction_log_entry (binder.c, the same format on 6.1, 6.12 and 7.2):
# "%d: %s from %d:%d to %d:%d context %s node %d handle %d size %d:%d ret %d/%d l=%d",
# then " (incomplete)" when debug_id_done did not match while the entry was printed.
_LOG_ENTRY = re.compile(r"^(-?\d+): (reply|async|call) +from (-?\d+):(-?\d+) to (-?\d+):(-?\d+) context (\S*) "
                        r"node (-?\d+) handle (-?\d+) size (-?\d+):(-?\d+) ret (-?\d+)/(-?\d+) l=(-?\d+)"
                        r"( \(incomplete\))?$")
TRANSACTION_LOG_SLOTS = 32  # struct binder_transaction_log: entry[32], a ring (binder_transaction_log_add)


@dataclass(frozen=True)
class LogEntry:
    """One binder_transaction_log_entry as print_binder_transaction_log_entry prints it."""

    debug_id: int  # the transaction's t_debug_id (binder_last_id)
    call_type: str  # call | async | reply
    from_proc: int
    from_thread: int
    to_proc: int
    to_thread: int
    context: str
    to_node: int
    handle: int
    data_size: int
    offsets_size: int
    return_error: int  # the BR_* code binder_transaction failed with (0 in transaction_log's successes)
    return_error_param: int  # its errno, negative (-22), or 0
    return_error_line: int  # the binder.c line of the failure (__LINE__ in binder_transaction)
    incomplete: bool = False

    def describe(self) -> str:
        return (f"{self.debug_id}: {self.call_type} from {self.from_proc}:{self.from_thread} "
                f"handle {self.handle} size {self.data_size}:{self.offsets_size} "
                f"ret {self.return_error}/{self.return_error_param} l={self.return_error_line}")


@dataclass
class TransactionLog:
    entries: list[LogEntry] = field(default_factory=list)  # in the ring's order, oldest first
    bad_lines: list[str] = field(default_factory=list)

    @property
    def full(self) -> bool:
        """Every slot of the ring is used: an older entry may have been overwritten."""
        return len(self.entries) >= TRANSACTION_LOG_SLOTS


def parse_transaction_log(text: str) -> TransactionLog:
    """debugfs `transaction_log` or `failed_transaction_log` (transaction_log_show): one entry a
    line; unrecognised lines go to bad_lines."""
    log = TransactionLog()
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LOG_ENTRY.match(line.rstrip())
        if m is None:
            log.bad_lines.append(line)
            continue
        g = m.groups()
        n = [int(x) for x in g[7:14]]
        log.entries.append(LogEntry(int(g[0]), g[1], int(g[2]), int(g[3]), int(g[4]), int(g[5]), g[6],
                                    to_node=n[0], handle=n[1], data_size=n[2], offsets_size=n[3],
                                    return_error=n[4], return_error_param=n[5], return_error_line=n[6],
                                    incomplete=bool(g[14])))
    return log


# -- one process as binder sees it: debugfs proc/PID (print_binder_proc, print_all = 1) ------------
# the C driver's "need_return %d tr %d"; the Rust driver's (thread.rs Thread::debug_print) "need_return
# true|false" and no tr
_P_THREAD = re.compile(r"^  thread (\d+): l ([0-9a-f]+) need_return (\d+|true|false)(?: tr (-?\d+))?")
_P_NODE = re.compile(r"^  node (\d+): u([0-9a-f]+) c([0-9a-f]+) hs (\d+) hw (\d+) ls (\d+) lw (\d+) is (\d+) "
                     r"iw (\d+) tr (\d+)(?: proc((?: \d+)+))?")
# node.rs Node::full_debug_print: "node ID: uPTR cCOOKIE hs BOOL hw BOOL cs N cw N[ proc PID...]", where
# cs/cw are the node's strong/weak counts (inner.strong.count), not C's local refs (ls/lw, is, tr)
_P_RUST_NODE = re.compile(r"^  node (\d+): u([0-9a-f]+) c([0-9a-f]+) hs (true|false) hw (true|false) cs (\d+) "
                          r"cw (\d+)(?: proc((?: \d+)+))?$")
# the C driver ends a ref with "d DEATH"; the Rust one (process.rs Process::debug_print) prints no death
_P_REF = re.compile(r"^  ref (\d+): desc (\d+) (dead )?node (\d+) s (\d+) w (\d+)(?: d (\S+))?$")
# The Rust driver's ref line has no "\n" (process.rs Process::debug_print: seq_print!(m, "  ref {}: desc
# {} {}node {debug_id} s {strong} w {weak}")), so whatever it prints next runs on in the same line:
# "  ref 3: desc 1 node 2 s 1 w 0  ref 5: desc 2 node 4 s 0 w 1  buffer 0: 0 size 64 ...". Cut there.
_P_GLUED = re.compile(r"(?<=\d)(?=  (?:ref \d|buffer[ :]|pending transaction |has delivered |"
                      r"transaction complete|transaction error|node work ))")
# range_alloc/array.rs and tree.rs debug_print: "buffer 0: OFFSET size SIZE pid PID oneway BOOL
# reserved|allocated" (array) or "buffer: OFFSET size SIZE pid PID[ oneway] reserved|allocated" (tree)
_P_RUST_BUFFER = re.compile(r"^  buffer(?: \d+)?: (\d+) size (\d+) pid (\d+)(?: oneway (?:true|false)| oneway)? "
                            r"(reserved|allocated)$")
# what the Rust driver's proc/PID file does not print, by the model's field
RUST_NOT_COUNTED = {
    "node local refs": "node.rs Node::full_debug_print prints hs hw cs cw: no local_strong/local_weak (ls lw)",
    "ref death": "process.rs Process::debug_print prints no ref death",
    "buffer sizes": "range_alloc debug_print prints one size per buffer, not data:offsets:extra",
    "buffer state": "range_alloc debug_print says reserved|allocated, not active|delivered",
}
# ref->death as %pK prints it: zeros (or "(null)") for NULL; hex or "(____ptrval____)" (no hashing key yet) otherwise
_NO_POINTER = re.compile(r"0+|\(null\)")
_P_BUFFER = re.compile(r"^  buffer (\d+): \S+ size (\d+):(\d+):(\d+) (\w+)")
_P_TXN = re.compile(r"^\s+(outgoing|incoming|bad|pending|pending async) transaction (\d+): ")
# print_binder_work_ilocked's other lines, and print_binder_proc's delivered lists, by work type
_P_WORK = (("transaction complete", "TRANSACTION_COMPLETE"), ("transaction error: ", "RETURN_ERROR"),
           ("node work ", "NODE"), ("has dead binder", "DEAD_BINDER"),
           ("has cleared dead binder", "DEAD_BINDER_AND_CLEAR"),
           ("has cleared death notification", "CLEAR_DEATH_NOTIFICATION"),
           ("has frozen binder", "FROZEN_BINDER"), ("has cleared freeze notification", "CLEAR_FREEZE_NOTIFICATION"),
           ("has delivered dead binder", "DELIVERED_DEATH"), ("has delivered freeze binder", "DELIVERED_FREEZE"),
           ("unknown work: ", "UNKNOWN"))


@dataclass(frozen=True)
class RefView:
    """print_binder_ref_olocked: "ref ID: desc D [dead ]node N s S w W d DEATH"."""

    debug_id: int
    desc: int
    node: int  # the node's debug id
    dead: bool  # the node's process is gone
    strong: int
    weak: int
    death: bool | None  # a death notification is registered (ref->death is not NULL); None: not printed


@dataclass(frozen=True)
class NodeView:
    """print_binder_node_nilocked: "node ID: uPTR cCOOKIE hs hw ls lw is iw tr [proc PID...]"."""

    debug_id: int
    ptr: int
    cookie: int
    has_strong: int
    has_weak: int
    local_strong: int | None  # None: the driver does not print it (the Rust driver)
    local_weak: int | None
    internal_strong: int | None
    refs: int  # "iw": the number of refs on the node (the Rust driver: one "proc" pid per ref)
    tmp_refs: int | None
    ref_procs: tuple[int, ...]  # the pid of each ref's process
    async_pending: int = 0  # "pending async transaction" lines under it (node->async_todo)
    counts: tuple[int, int] | None = None  # the Rust driver's "cs cw": the node's strong and weak counts


@dataclass(frozen=True)
class BufferView:
    """print_binder_buffer: "buffer ID: ADDR size DATA:OFFSETS:EXTRA active|delivered"."""

    debug_id: int
    data_size: int  # the Rust driver: the whole allocation's size
    offsets_size: int | None  # None: not printed (the Rust driver)
    extra_size: int | None
    state: str  # active (its transaction not yet freed) | delivered; the Rust driver: reserved | allocated

    @property
    def size(self) -> str:
        if self.offsets_size is None or self.extra_size is None:
            return str(self.data_size)
        return f"{self.data_size}:{self.offsets_size}:{self.extra_size}"


@dataclass(frozen=True)
class WorkItem:
    """One queued binder_work (print_binder_work_ilocked) or a stack entry (print_binder_transaction_ilocked)."""

    type: str  # BINDER_WORK_* without the prefix: TRANSACTION, TRANSACTION_COMPLETE, NODE, DEAD_BINDER, ...
    where: str  # "proc" (proc->todo), "thread TID" (thread->todo), "node ID" (node->async_todo)
    text: str  # the line as printed, stripped


@dataclass
class ProcView:
    pid: int = 0
    context: str = ""
    threads: dict[int, int] = field(default_factory=dict)  # tid -> looper state bits ("l XX")
    nodes: list[NodeView] = field(default_factory=list)
    refs: list[RefView] = field(default_factory=list)
    buffers: list[BufferView] = field(default_factory=list)
    work: list[WorkItem] = field(default_factory=list)  # queued work, in every list
    stack: list[WorkItem] = field(default_factory=list)  # outgoing/incoming/bad transactions on thread stacks
    bad_lines: list[str] = field(default_factory=list)
    not_counted: dict[str, str] = field(default_factory=dict)  # model field -> why this driver does not print it

    def work_by_type(self, where: str | None = None) -> dict[str, int]:
        """{BINDER_WORK type: count} of the queued work, in every list or only `where`'s."""
        out: dict[str, int] = {}
        for w in self.work:
            if where is None or w.where == where:
                out[w.type] = out.get(w.type, 0) + 1
        return dict(sorted(out.items()))


def parse_proc_view(text: str) -> ProcView:
    """binder's proc/PID file (print_binder_proc with print_all), as refs, nodes, buffers and the
    work queued on the proc, its threads and its nodes. Pure; a line it does not know goes to
    bad_lines."""
    view = ProcView()
    where = "proc"
    for line in (part for whole in text.splitlines() for part in _P_GLUED.split(whole)):
        if not line.strip() or _HEADER.match(line):
            continue
        if m := _PROC.match(line):
            view.pid = int(m.group(1))
        elif m := _CONTEXT.match(line):
            view.context = m.group(1)
        elif m := _P_THREAD.match(line):
            view.threads[int(m.group(1))] = int(m.group(2), 16)
            where = f"thread {m.group(1)}"
        elif m := _P_NODE.match(line):
            g = m.groups()
            n = [int(x) for x in g[3:10]]
            view.nodes.append(NodeView(int(g[0]), int(g[1], 16), int(g[2], 16), has_strong=n[0], has_weak=n[1],
                                       local_strong=n[2], local_weak=n[3], internal_strong=n[4], refs=n[5],
                                       tmp_refs=n[6], ref_procs=tuple(int(p) for p in (g[10] or "").split())))
            where = f"node {g[0]}"
        elif m := _P_RUST_NODE.match(line):
            g = m.groups()
            procs = tuple(int(p) for p in (g[7] or "").split())
            view.nodes.append(NodeView(int(g[0]), int(g[1], 16), int(g[2], 16), has_strong=int(g[3] == "true"),
                                       has_weak=int(g[4] == "true"), local_strong=None, local_weak=None,
                                       internal_strong=None, refs=len(procs), tmp_refs=None, ref_procs=procs,
                                       counts=(int(g[5]), int(g[6]))))
            view.not_counted["node local refs"] = RUST_NOT_COUNTED["node local refs"]
            where = f"node {g[0]}"
        elif m := _P_REF.match(line):
            g = m.groups()
            if g[6] is None:
                view.not_counted["ref death"] = RUST_NOT_COUNTED["ref death"]
            view.refs.append(RefView(int(g[0]), int(g[1]), int(g[3]), bool(g[2]), int(g[4]), int(g[5]),
                                     death=None if g[6] is None else not _NO_POINTER.fullmatch(g[6])))
            where = "proc"
        elif m := _P_RUST_BUFFER.match(line):
            view.buffers.append(BufferView(0, int(m.group(2)), None, None, m.group(4)))
            view.not_counted["buffer sizes"] = RUST_NOT_COUNTED["buffer sizes"]
            view.not_counted["buffer state"] = RUST_NOT_COUNTED["buffer state"]
            where = "proc"
        elif m := _P_BUFFER.match(line):
            view.buffers.append(BufferView(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)),
                                           m.group(5)))
            where = "proc"
        elif m := _P_TXN.match(line):
            level = "proc" if not line.startswith("    ") else where
            item = WorkItem("TRANSACTION", level, line.strip())
            if m.group(1) in ("outgoing", "incoming", "bad"):
                view.stack.append(item)
            elif m.group(1) == "pending async":
                view.work.append(item)
                if view.nodes and level == f"node {view.nodes[-1].debug_id}":
                    last = view.nodes[-1]
                    view.nodes[-1] = dataclasses.replace(last, async_pending=last.async_pending + 1)
            else:
                view.work.append(item)
        elif kind := next((k for prefix, k in _P_WORK if line.strip().startswith(prefix)), None):
            view.work.append(WorkItem(kind, where if line.startswith("    ") else "proc", line.strip()))
        else:
            view.bad_lines.append(line)
    return view
