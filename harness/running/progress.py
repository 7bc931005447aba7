"""Progress lines for a person at a terminal, or plain lines for CI logs.

The runner and the image builder report through a callback taking one line.
Lines ending in " ..." say something has started; on a terminal they show as a
status line that the next line overwrites, elsewhere they are printed like any
other line, so a CI log stays plain and line-based.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

CLEAR = "\r\x1b[K"


def is_transient(line: str) -> bool:
    return line.endswith(" ...")


class Progress:
    def __init__(self, stream: TextIO | None = None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.started = time.monotonic()
        self._status = False

    def __call__(self, line: str) -> None:
        if not self.tty:
            print(line, file=self.stream, flush=True)
            return
        stamp = f"[{time.monotonic() - self.started:6.1f} s] "
        if is_transient(line):
            self.stream.write(f"{CLEAR}{stamp}{line}")
            self._status = True
        else:
            self.stream.write(f"{CLEAR if self._status else ''}{stamp}{line}\n")
            self._status = False
        self.stream.flush()

    def done(self) -> None:
        """End a dangling status line so the shell prompt starts clean."""
        if self.tty and self._status:
            self.stream.write(CLEAR)
            self.stream.flush()
            self._status = False

