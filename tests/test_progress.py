"""Progress output: a status line on a terminal, plain lines elsewhere (CI logs)."""
from __future__ import annotations

import io

from harness.running.progress import CLEAR, Progress

LINES = ["download linux-image=6.1 (amd64)", "boot qemu:x86_64 ...", "booted qemu:x86_64 in 1.8 s",
         "one_copy.sync_sizes ...", "one_copy.sync_sizes passed 0.4 s"]


def test_not_a_terminal_gets_plain_lines():
    out = io.StringIO()
    progress = Progress(out, tty=False)
    for line in LINES:
        progress(line)
    progress.done()
    assert out.getvalue() == "".join(f"{l}\n" for l in LINES)


def test_terminal_overwrites_started_lines_with_what_follows():
    out = io.StringIO()
    progress = Progress(out, tty=True)
    for line in LINES:
        progress(line)
    text = out.getvalue()
    assert "\x1b" in text
    kept = [l.split("] ", 1)[1] for l in text.replace(CLEAR, "\n").splitlines() if "] " in l]
    assert kept == LINES
    final_lines = [l for l in text.split("\n") if l]
    assert [l.rsplit(CLEAR, 1)[-1].split("] ", 1)[1] for l in final_lines] == [LINES[0], LINES[2], LINES[4]]
    progress("two ...")
    progress.done()
    assert out.getvalue().endswith(CLEAR)
