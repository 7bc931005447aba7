"""Parse binder's debugfs files: /sys/kernel/debug/binder/{stats,state,transactions,proc/PID}.

The files are text that binder.c writes with seq_printf (print_binder_stats,
print_binder_proc, print_binder_proc_stats, binder_alloc_print_pages). This is a pure
function over that text: a line it does not recognise is kept in `bad_lines`, never raised.
"""
from __future__ import annotations

import re
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
_FIGURE = re.compile(r"^\s+(threads|requested threads|ready threads|free async space|nodes|refs|buffers|"
                     r"pending transactions|outstanding transactions):? (\d\S*(?: .*)?)$")


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
            proc.figures[m.group(1)] = m.group(2)
        else:
            doc.bad_lines.append(line)
    return doc
