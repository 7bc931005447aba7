"""The binder-harness command line (DESIGN §2).

Exit status: 0 all cases passed, 1 some case failed or errored, 2 bad usage or
configuration, always with one line naming the problem, never a traceback.
"""
from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path

from harness.errors import ConfigError, TargetError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise ConfigError(f"{self.prog}: {message}")


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _report_line(out_dir: Path) -> str:
    return f"report: {out_dir / 'report.html'} (report.json, junit.xml, trace.txt beside it)"


def _existing_file(flag: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"{flag} {value}: no such file")
    return path


def cmd_list(args) -> int:
    from harness.cases import load_cases

    for case_id in load_cases():
        print(case_id)
    return 0


def cmd_run(args) -> int:
    from harness.cases import select_cases
    from harness.runner import RunOptions, run_cases
    from harness.targets import parse_spec

    parse_spec(args.target)
    specs = select_cases(args.cases)
    if args.timeout is not None and args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout}: must be a positive number of seconds")
    options = RunOptions(
        target_spec=args.target, out_dir=Path(args.out),
        binder_module=_existing_file("--binder-module", args.binder_module),
        timeout=args.timeout, seed=args.seed,
        command_line=shlex.join(["binder-harness", *sys.argv[1:]]),
    )
    try:
        options.out_dir.mkdir(parents=True, exist_ok=True)
        probe = options.out_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {args.out}: not writable ({exc.strerror})") from None
    from harness.progress import Progress

    progress = Progress(sys.stderr)
    try:
        state = run_cases(specs, options, progress)
    finally:
        progress.done()
    summary = {k: sum(r.outcome == k for r in state.results) for k in ("passed", "failed", "error", "skipped")}
    _progress(f"{summary['passed']} passed, {summary['failed']} failed, {summary['error']} error, "
              f"{summary['skipped']} skipped; {_report_line(options.out_dir)}")
    return 0 if summary["failed"] == 0 and summary["error"] == 0 else 1


def cmd_report(args) -> int:
    """Re-render report.html from a run directory; --bundle also packs it as DIR.tar.gz."""
    from harness import html_report, report

    run_dir = Path(args.dir)
    data = html_report.load_report(run_dir)
    try:
        path = report.write_html(data, run_dir)
        print(path)
        if args.bundle:
            print(report.bundle(run_dir))
    except OSError as exc:
        raise ConfigError(f"{exc.filename or run_dir}: cannot write ({exc.strerror})") from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="binder-harness", description="Prove on a real kernel how the binder driver behaves.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run cases on a target and write a report")
    run.add_argument("cases", nargs="*", help="case ids or globs (default: every case)")
    run.add_argument("--target", default="qemu:x86_64", help="qemu:x86_64 | qemu:arm64 | ssh://USER@HOST[:PORT] | adb[:SERIAL] | local")
    run.add_argument("--out", required=True, help="run directory for report.json and evidence")
    run.add_argument("--binder-module", help="binder_linux.ko to test instead of the stock driver")
    run.add_argument("--timeout", type=float, help="per-case time limit in seconds")
    run.add_argument("--seed", type=int, help="seed for stress cases (replays a run)")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="re-render report.html from a run directory")
    rep.add_argument("dir", help="run directory holding report.json")
    rep.add_argument("--bundle", action="store_true", help="also write DIR.tar.gz of the run directory and print its path")
    rep.set_defaults(func=cmd_report)

    lst = sub.add_parser("list", help="print every case id")
    lst.set_defaults(func=cmd_list)
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except ConfigError as exc:
        print(f"binder-harness: {exc}" if not str(exc).startswith("binder-harness") else str(exc), file=sys.stderr)
        return 2
    except TargetError as exc:
        print(f"binder-harness: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("binder-harness: interrupted; the run directory holds what was collected", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
