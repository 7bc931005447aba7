"""Kernel tracing: arm ftrace and kprobes on a target, and parse what it recorded.

The trace is plain ftrace text (what `cat trace` prints, with record-tgid), which
Perfetto and trace-cmd/KernelShark open as is. Parsing is a pure function over
that text, tested on captured real output.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from harness.evidence.kprobes import (BINDER_EVENTS, COPY_TO_BUFFER, COPY_USER_TO_BUFFER, KPROBE_GROUP, Kprobe, RUST_CRATE, RUST_LRU_DEL, RUST_USE_PAGE_SLOW, USERCOPY_OUT)

SCHED_EVENTS = ("sched/sched_switch", "sched/sched_waking")


CASE_ID = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


# Per-CPU ring buffer of a traced case; QEMU guests are given it at boot (images/guest-init.sh),
# so their cases' arm scripts find it set.
BUFFER_KB = 8192


def arm_script(tracefs: str, kprobes: tuple[Kprobe, ...], case_id: str, buffer_kb: int = BUFFER_KB,
               extra_events: tuple[str, ...] = (), binder_events: tuple[str, ...] = BINDER_EVENTS) -> str:
    """Shell that clears the trace, defines our kprobes, enables events and writes the B marker.

    A kprobe of ours that is already defined exactly as wanted (an earlier case on
    the same boot) is reused rather than deleted and defined again: each removal
    waits for an RCU grace period, about 0.08 s under TCG. Ours that this case does
    not want stay defined but disabled, so they record nothing.
    """
    if not CASE_ID.match(case_id):
        raise ValueError(f"case id {case_id!r} is not family.name in lower case")
    unplaced = [k.name for k in kprobes if k.struct_fields]
    if unplaced:
        raise ValueError(f"kprobes {', '.join(unplaced)} read struct fields with no offset yet: use Kprobe.with_offsets")
    unresolved = [k.name for k in kprobes if k.rust_path]
    if unresolved:
        raise ValueError(f"kprobes {', '.join(unresolved)} are on Rust functions not looked up yet: use Kprobe.with_symbol")
    t = shlex.quote(tracefs)
    g = KPROBE_GROUP
    lines = [
        f"echo 0 > {t}/tracing_on",
        f"echo > {t}/trace",
        f"echo 1 > {t}/options/record-tgid",
        f"read -r kb _ < {t}/buffer_size_kb; [ \"$kb\" = {int(buffer_kb)} ] || echo {int(buffer_kb)} > {t}/buffer_size_kb",
        f"if [ -d {t}/events/{g} ]; then echo 0 > {t}/events/{g}/enable; fi",
    ]
    if kprobes:
        # which wanted kprobes are defined already, exactly; the kernel lists "r:" as "rN:"
        lines.append("keep=' '")
        lines.append("while read -r l; do case \"$l\" in")
        for probe in kprobes:
            kind = "r" if probe.ret else "p"
            body = shlex.quote(f"{g}/{probe.name} {probe.spec}")
            lines.append(f"  {kind}:{body}|{kind}[0-9]*:{body}) keep=\"${{keep}}{probe.name} \";;")
        lines.append(f"esac; done < {t}/kprobe_events")
        wanted = " ".join(p.name for p in kprobes)
        # a wanted name defined differently (or by an older harness) is replaced
        lines.append(f"for e in $(grep -o '{g}/[a-z_]*' {t}/kprobe_events); do n=${{e#{g}/}}; "
                     f"case \" {wanted} \" in *\" $n \"*) case \"$keep\" in *\" $n \"*) ;; "
                     f"*) echo \"-:$e\" >> {t}/kprobe_events;; esac;; esac; done")
    for probe in kprobes:
        if probe.optional:  # a kernel without the function: say so and go on
            lines.append(f"case \"$keep\" in *' {probe.name} '*) ;; "
                         f"*) echo {shlex.quote(probe.definition())} >> {t}/kprobe_events 2>/dev/null || "
                         f"echo kprobe-missing={probe.name};; esac")
            lines.append(f"if [ -d {t}/events/{g}/{probe.name} ]; then "
                         f"echo {shlex.quote(probe.filter or '0')} > {t}/events/{g}/{probe.name}/filter || exit 3; "
                         f"echo 1 > {t}/events/{g}/{probe.name}/enable || exit 3; fi")
            continue
        lines.append(f"case \"$keep\" in *' {probe.name} '*) ;; "
                     f"*) echo {shlex.quote(probe.definition())} >> {t}/kprobe_events || exit 3;; esac")
        lines.append(f"echo {shlex.quote(probe.filter or '0')} > {t}/events/{g}/{probe.name}/filter || exit 3")
        lines.append(f"echo 1 > {t}/events/{g}/{probe.name}/enable || exit 3")
    for event in tuple(binder_events) + SCHED_EVENTS + tuple(extra_events):
        lines.append(f"echo 1 > {t}/events/{event}/enable || exit 4")
    lines.append(f"echo 1 > {t}/tracing_on")
    lines.extend(_marker_holder_lines(t, case_id))
    return "\n".join(lines)


def _marker_holder_lines(t: str, case_id: str) -> list[str]:
    """Start a small process that writes `B|pid|case` now and `E|pid` when sent SIGTERM.

    Perfetto's systrace importer closes an `E` on the thread that wrote it, so the
    B and E markers must come from one process; the shell that arms the trace and
    the one that collects it are different processes on most targets. The holder
    prints its pid once its B line is written (a trace_marker write is in the
    buffer when it returns) and then lets go of its output, which is what the
    arming shell's $(...) waits for; it prints the pid for collect_script.
    """
    body = (f'echo "B|$$|{case_id}" > {t}/trace_marker; echo $$; exec > /dev/null; '
            f'trap \'echo "E|$$" > {t}/trace_marker; exit 0\' TERM; '
            'while :; do sleep 1 & wait $!; done')
    return [
        f"p=$(sh -c {shlex.quote(body)} </dev/null 2>/dev/null &)",
        'echo "marker-pid=$p"',
    ]


def missing_kprobes(arm_output: str) -> list[str]:
    """The optional kprobes arm_script could not define on this kernel (`kprobe-missing=NAME`)."""
    return re.findall(r"kprobe-missing=([a-z_]+)", arm_output)


def marker_pid(arm_output: str) -> int:
    m = re.search(r"marker-pid=(\d+)", arm_output)
    return int(m.group(1)) if m else 0


def collect_script(tracefs: str, dest: str, pid: int, dat: str = "") -> str:
    """Shell that has the marker holder `pid` write its E marker, stops tracing and saves the buffer to dest.

    With `dat`, `trace-cmd extract` then also saves the buffer there in trace-cmd's binary
    format (it reads trace_pipe_raw, which consumes the buffer, so it runs after the text
    copy); the script prints `trace-dat=STATUS`, or `trace-dat=missing` when the target
    has no trace-cmd, and trace-cmd's own messages go to DAT.log.
    """
    t = shlex.quote(tracefs)
    pid = int(pid)
    lines = [
        # the holder from arm_script writes E|pid itself; wait (bounded) until it has
        f"if [ {pid} -gt 0 ] && kill -TERM {pid} 2>/dev/null; then",
        # it exits right after writing E; read its state with a builtin (no fork per poll)
        f"  i=0; while [ $i -lt 300 ] && read -r s 2>/dev/null < /proc/{pid}/stat; do",
        '    case "$s" in *") Z "*) break;; esac; sleep 0.01; i=$((i+1))',
        "  done",
        "fi",
        f"echo 0 > {t}/tracing_on",
        f"cat {t}/trace > {shlex.quote(dest)}",
    ]
    if dat:
        d = shlex.quote(dat)
        lines += [
            "if command -v trace-cmd > /dev/null 2>&1; then",
            f"  trace-cmd extract -o {d} > {shlex.quote(dat + '.log')} 2>&1; echo \"trace-dat=$?\"",
            "else echo trace-dat=missing; fi",
        ]
    return "\n".join(lines)


def trace_dat_status(collect_output: str) -> str | None:
    """What collect_script's trace-cmd step printed: an exit status, 'missing', or None (not run)."""
    m = re.search(r"(?:^|\s)trace-dat=(\S+)", collect_output)
    return m.group(1) if m else None


_LINE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*(?P<tgid>[\d-]+)\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\[\]]{4,6})\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>[\w:.-]+):\s?(?P<body>.*)$"
)
_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class TraceEvent:
    comm: str
    pid: int
    tgid: int | None
    cpu: int
    ts: float
    name: str
    body: str
    fields: dict = field(default_factory=dict, compare=False, hash=False)

    def int(self, key: str) -> int:
        """A numeric field, decimal or 0x-hex."""
        return int(self.fields[key], 0)


@dataclass
class Trace:
    events: list[TraceEvent]
    bad_lines: list[str]
    header: list[str]

    def named(self, name: str) -> list[TraceEvent]:
        return [e for e in self.events if e.name == name]


def parse_ftrace(text: str) -> Trace:
    """Parse ftrace text output. Lines that match no event are kept in bad_lines."""
    events: list[TraceEvent] = []
    bad: list[str] = []
    header: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            header.append(line)
            continue
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            bad.append(line)
            continue
        tgid = m.group("tgid")
        body = m.group("body")
        events.append(TraceEvent(
            comm=m.group("comm"), pid=int(m.group("pid")),
            tgid=int(tgid) if tgid and tgid.strip("-") else None,
            cpu=int(m.group("cpu")), ts=float(m.group("ts")), name=m.group("event"), body=body,
            fields=dict(_FIELD.findall(body)),
        ))
    return Trace(events, bad, header)


@dataclass
class TracedTransaction:
    """One binder transaction as the kernel trace saw it, with its user->buffer copies."""

    debug_id: int
    pid: int  # sender thread
    reply: bool
    flags: int
    data_size: int | None = None
    offsets_size: int | None = None
    copies: list[TraceEvent] = field(default_factory=list)
    kernel_copies: list[TraceEvent] = field(default_factory=list)  # binder_alloc_copy_to_buffer
    pages_allocated: int = 0  # binder_alloc_page_start: a fresh page for this buffer
    pages_from_lru: int = 0  # binder_alloc_lru_start: a page taken back from the LRU

    @property
    def copied_bytes(self) -> int:
        return sum(c.int("bytes") for c in self.copies)

    @property
    def kernel_copied_bytes(self) -> int:
        return sum(c.int("bytes") for c in self.kernel_copies)

    @property
    def copy_targets(self) -> set[int]:
        """Where in the receiver the copies' buffer is (COPY_LANDS_AT: its user address,
        binder_buffer->user_data, on the C driver; its offset in the receiver's mapping,
        Allocation.offset, on the Rust one)."""
        return {copy_lands_at(c) for c in self.copies}


# The fetch arg of a copy that says where its buffer is in the receiver, by driver
# (harness/evidence/drivers.py DriverFacts.copy_lands_at names the one its probe reads).
COPY_LANDS_AT = ("user_data", "buffer_offset")


def copy_lands_at(copy: TraceEvent) -> int:
    """A copy event's buffer in the receiver: `user_data` (C) or `buffer_offset` (Rust)."""
    return copy.int(next((f for f in COPY_LANDS_AT if f in copy.fields), COPY_LANDS_AT[0]))


def binder_transactions(trace: Trace, copies_first: bool = False) -> list[TracedTransaction]:
    """Group user->buffer copies with the transaction they carry.

    C driver: binder_transaction() runs in the sender's thread: trace_binder_transaction,
    then the buffer allocation (binder_transaction_alloc_buf), then the copies.
    So on each pid, copies belong to the last transaction that pid started.

    Rust driver (`copies_first`): the copies come first, in the sender's thread
    (thread.rs Thread::copy_transaction_data, from Transaction::new / new_reply), and
    its binder_transaction event only when the transaction is handed over
    (transaction.rs Transaction::submit, thread.rs Thread::deliver_single_reply for a
    reply). So on each pid, copies (and page events) inside a binder ioctl belong to the
    next transaction that pid sends in it; those of a transaction that failed before it
    was sent are dropped at that ioctl's binder_ioctl_done.
    """
    by_pid: dict[int, TracedTransaction] = {}
    pending: dict[int, TracedTransaction] = {}
    out: list[TracedTransaction] = []
    for ev in trace.events:
        try:
            _group_event(ev, by_pid, out, pending if copies_first else None)
        except (KeyError, ValueError):  # a field missing or not a number: report the line, keep going
            trace.bad_lines.append(f"{ev.comm}-{ev.pid} [{ev.cpu:03d}] {ev.ts:.6f}: {ev.name}: {ev.body}")
    return out


def _group_event(ev: TraceEvent, by_pid: dict[int, TracedTransaction], out: list[TracedTransaction],
                 pending: dict[int, TracedTransaction] | None) -> None:
    """Fold one event into the transactions; KeyError/ValueError when a field it needs is bad.
    `pending` (Rust): per pid, the copies made before their binder_transaction event."""
    if ev.name == "binder_transaction":
        new = TracedTransaction(ev.int("transaction"), ev.pid, ev.fields.get("reply") == "1",
                                int(ev.fields.get("flags", "0"), 16))
        if pending is not None:
            before = pending.pop(ev.pid, None)
            if before is not None:
                new.copies, new.kernel_copies = before.copies, before.kernel_copies
                new.pages_allocated, new.pages_from_lru = before.pages_allocated, before.pages_from_lru
        else:
            by_pid[ev.pid] = new
        out.append(new)
    elif ev.name == "binder_transaction_alloc_buf":
        txn = by_pid.get(ev.pid)
        if txn is not None and txn.debug_id == ev.int("transaction"):
            txn.data_size = ev.int("data_size")
            txn.offsets_size = ev.int("offsets_size")
    elif ev.name in (COPY_USER_TO_BUFFER.name, COPY_TO_BUFFER.name, "binder_alloc_page_start",
                     "binder_alloc_lru_start", RUST_USE_PAGE_SLOW.name, RUST_LRU_DEL.name):
        txn = by_pid.get(ev.pid) if pending is None else pending.get(ev.pid)
        if txn is None:
            return
        if ev.name in (COPY_USER_TO_BUFFER.name, COPY_TO_BUFFER.name):
            ev.int("bytes")  # checked here, summed later
            if ev.name == COPY_USER_TO_BUFFER.name or any(f in ev.fields for f in COPY_LANDS_AT):
                copy_lands_at(ev)
            (txn.copies if ev.name == COPY_USER_TO_BUFFER.name else txn.kernel_copies).append(ev)
        elif ev.name in ("binder_alloc_page_start", RUST_USE_PAGE_SLOW.name):
            txn.pages_allocated += 1
        elif ev.name == "binder_alloc_lru_start" or (ev.int("on_lru") == 1 and RUST_CRATE in ev.body):
            txn.pages_from_lru += 1
    elif ev.name == "binder_ioctl" and pending is not None:  # what this ioctl copies, until it sends
        pending[ev.pid] = TracedTransaction(0, ev.pid, False, 0)
    elif ev.name == "binder_ioctl_done":
        by_pid.pop(ev.pid, None)
        if pending is not None:
            pending.pop(ev.pid, None)


def usercopies_in_binder_ioctl(trace: Trace, pid: int) -> list[int]:
    """Sizes of variable-size kernel->user copies made to `pid` inside binder ioctls."""
    inside = False
    sizes: list[int] = []
    for ev in trace.events:
        if ev.pid != pid:
            continue
        if ev.name == "binder_ioctl":
            inside = True
        elif ev.name == "binder_ioctl_done":
            inside = False
        elif inside and ev.name in USERCOPY_OUT and ev.fields.get("to_user", "1") == "1":
            try:
                sizes.append(ev.int("n"))
            except (KeyError, ValueError):
                trace.bad_lines.append(f"{ev.comm}-{ev.pid} [{ev.cpu:03d}] {ev.ts:.6f}: {ev.name}: {ev.body}")
    return sizes


# -- the text format Perfetto's systrace importer reads ----------------------------------
# Facts from Perfetto (src/trace_processor/importers/systrace): a text trace is recognised
# by "# tracer" near its start; '#' lines are skipped; each event line is
# "TASK-PID (TGID) [CPU] FLAGS TIMESTAMP: EVENT: ARGS", where TGID may be dashes and FLAGS
# has up to 5 characters (6.1 adds migrate-disable); tracing_mark_write bodies "B|pid|name"
# open a slice on the writing thread and "E|pid" closes the innermost one on that thread.
SYSTRACE_LINE = re.compile(
    r"-(?P<pid>\d+)\s+(?:\(\s*(?:\d+|-+)\)\s*)?\[(?P<cpu>\d+)\]\s*[a-zA-Z0-9.]{0,5}\s+"
    r"(?P<ts>\d+\.\d+):\s+(?P<event>\S+):(?P<body>.*)$")


def systrace_problems(text: str) -> list[str]:
    """What would stop Perfetto from reading this ftrace text as intended; empty when none."""
    problems: list[str] = []
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# tracer:"):
        problems.append("line 1: does not start with '# tracer:' (Perfetto detects ftrace text by it)")
    open_slices: dict[int, list[str]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = SYSTRACE_LINE.search(line)
        if not m:
            problems.append(f"line {n}: not an ftrace event line: {line[:80]!r}")
            continue
        if m.group("event") != "tracing_mark_write":
            continue
        writer, body = int(m.group("pid")), m.group("body").strip()
        if body.startswith("B|"):
            open_slices.setdefault(writer, []).append(body.split("|")[-1])
        elif body.startswith("E|"):
            if not open_slices.get(writer):
                problems.append(f"line {n}: {body!r} written by pid {writer}, which has no open B slice")
            else:
                open_slices[writer].pop()
    for writer, names in open_slices.items():
        for name in names:
            problems.append(f"B slice {name!r} of pid {writer} is never closed by an E from the same pid")
    return problems
