"""The run directory as it takes a run's evidence: once a write fails because it is full or
read-only (OUTPUT_ERRNOS), the case being written errors, `error` says why in one line, and no
later case runs. Any other OSError is a bug and propagates."""
from __future__ import annotations

import errno
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from harness.judging.verdicts import CaseResult, Outcome

# errnos that mean the run directory cannot take more evidence
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def is_output_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in OUTPUT_ERRNOS


class EvidenceOutput:
    """`out_dir` taking evidence; `on_failed` runs once a write failed (the session ends its guest)."""

    def __init__(self, out_dir: Path, on_failed: Callable[[], None]):
        self.out_dir = out_dir
        self.on_failed = on_failed
        self.error = ""  # set when the run directory stops taking evidence

    def failed(self, result: CaseResult, exc: OSError) -> None:
        """The run directory stopped taking evidence (full, read-only): this case errors, later ones do not run."""
        self.error = (f"cannot write evidence to {self.out_dir} ({exc.strerror}); "
                      "free space or give another --out")
        if result.outcome != Outcome.ERROR:
            result.outcome, result.reason = Outcome.ERROR, self.error
        self.on_failed()

    @contextmanager
    def keeping(self, result: CaseResult) -> Iterator[None]:
        """Writes into the run directory: when it is full or read-only, this case errors and
        later ones do not run; any other OSError is a bug and propagates."""
        try:
            yield
        except OSError as exc:
            if not is_output_error(exc):
                raise
            self.failed(result, exc)
