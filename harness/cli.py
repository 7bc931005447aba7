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
        **_ssh_options(args),
    )
    try:
        options.out_dir.mkdir(parents=True, exist_ok=True)
        probe = options.out_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {args.out}: not writable ({exc.strerror})") from None
    state = run_cases(specs, options, _progress)
    summary = {k: sum(r.outcome == k for r in state.results) for k in ("passed", "failed", "error", "skipped")}
    _progress(f"{summary['passed']} passed, {summary['failed']} failed, {summary['error']} error, "
              f"{summary['skipped']} skipped; report: {options.out_dir / 'report.json'}")
    return 0 if summary["failed"] == 0 and summary["error"] == 0 else 1


def _ssh_options(args) -> dict:
    """--identity, --known-hosts, --insecure-accept-host-key as RunOptions fields."""
    return {"identity": _existing_file("--identity", args.identity),
            "known_hosts": _existing_file("--known-hosts", args.known_hosts),
            "insecure_accept_host_key": args.insecure_accept_host_key}


def cmd_guest(args) -> int:
    from harness.guest import run_guest
    from harness.targets import parse_spec

    kind, arch = parse_spec(args.target)
    if kind != "qemu":
        raise ConfigError(f"guest --target {args.target}: a guest is a QEMU target; use qemu:x86_64 or qemu:arm64")
    if args.ssh_port < 0:
        raise ConfigError(f"--ssh-port {args.ssh_port}: not a TCP port")
    return run_guest(arch, args.ssh_port, _existing_file("--binder-module", args.binder_module), _progress)


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
    run.add_argument("--identity", help="ssh: private key file (default: the agent and ~/.ssh keys)")
    run.add_argument("--known-hosts", help="ssh: known_hosts file to check the host key against (default ~/.ssh/known_hosts)")
    run.add_argument("--insecure-accept-host-key", action="store_true",
                     help="ssh: accept any host key (ephemeral guests only)")
    run.set_defaults(func=cmd_run)

    guest = sub.add_parser("guest", help="boot a long-lived QEMU guest reachable over ssh")
    guest.add_argument("--target", default="qemu:x86_64", help="qemu:x86_64 | qemu:arm64")
    guest.add_argument("--ssh-port", type=int, default=0, help="host port forwarded to the guest's ssh (127.0.0.1 only; default: a free one)")
    guest.add_argument("--binder-module", help="binder_linux.ko to load instead of the stock driver")
    guest.set_defaults(func=cmd_guest)

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
