"""The binder-harness command line (DESIGN §2).

Exit status (harness/judging/verdicts.py ExitStatus, the same for run, matrix and judge):
  0    every selected case passed (cases declared not applicable aside: --not-applicable GLOB,
       or a case whose target facts rule it out, e.g. compat on a kernel without CONFIG_COMPAT)
  1    some case failed or errored (a matrix cell that could not run counts as errored)
  2    bad usage or configuration, always with one line naming the problem, never a traceback
  3    no case failed, but some case was skipped (not judged: no tracefs, no root, no struct
       offsets, ...), or no case was judged at all; the summary line starts "NOT JUDGED: N skipped"
  130  interrupted (Ctrl-C, SIGTERM); the run directory holds what was collected
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ConfigError, TargetError
from harness.judging.verdicts import ExitStatus, exit_status, summarize, summary_line
from harness.options import add_to_argparse

if TYPE_CHECKING:
    from harness.reports.model import Report

KCIDB_HELP = "also write KernelCI KCIDB JSON (the kernel as a build, each case a test) to FILE"


def _jobs(value: str) -> int:
    """-j/--jobs N, for run and matrix: the number of guests run at once."""
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from None
    if jobs < 1:
        raise ConfigError(f"-j/--jobs {jobs}: must be at least 1 (the number of guests run at once)")
    return jobs


def _run_jobs(value: str) -> int | None:
    """run's and matrix's -j/--jobs: N, or auto (None: parallel.auto_jobs decides once a run's cases are
    known; a matrix takes parallel.auto_guests)."""
    return None if value == "auto" else _jobs(value)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise ConfigError(f"{self.prog}: {message}")


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _report_line(out_dir: Path) -> str:
    return f"report: {out_dir / 'report.html'} (report.json, junit.xml, trace.txt beside it)"


def _kcidb_path(args) -> Path | None:
    """--kcidb FILE, checked before anything runs: its directory must exist."""
    if not getattr(args, "kcidb", None):
        return None
    path = Path(args.kcidb)
    if not path.parent.is_dir():
        raise ConfigError(f"--kcidb {path}: directory {path.parent} does not exist; create it or give another file")
    if path.is_dir():
        raise ConfigError(f"--kcidb {path}: is a directory; give a file name, e.g. {path / 'kcidb.json'}")
    return path


def _write_kcidb(path: Path | None, reports: list[Report]) -> None:
    if path is None:
        return
    from harness.reports import kcidb

    try:
        data = kcidb.write(path, reports)
    except OSError as exc:
        raise ConfigError(f"--kcidb {path}: cannot write ({exc.strerror})") from None
    _progress(f"kcidb: {path} ({len(data['builds'])} builds, {len(data['tests'])} tests)")


def cmd_list(args) -> int:
    from harness.judging.catalog import load_cases

    for case_id in load_cases():
        print(case_id)
    return 0


def cmd_run(args) -> int:
    from harness.reports import report
    from harness.judging.catalog import select_cases
    from harness.options import run_options
    from harness.running.runner import run_cases

    options = run_options(args, Path(args.out), report.reproduce_command(["binder-harness", *sys.argv[1:]]))
    specs = select_cases(args.cases)
    kcidb_path = _kcidb_path(args)
    if args.jobs is None:
        from harness.running.parallel import auto_jobs

        args.jobs = auto_jobs(options, len(specs))
    if args.jobs > 1 and options.target_spec.kind != "qemu":
        raise ConfigError(f"-j/--jobs {args.jobs}: parallel guests need a qemu target; {options.target_spec} is one "
                          "device, and binder has one context manager per device")
    report.prepare_out_dir(options.out_dir)
    from harness.running.progress import Progress

    from harness import timing

    progress = Progress(sys.stderr)
    timing.add("startup", timing.process_age())
    try:
        if args.jobs > 1 and len(specs) > 1:
            from harness.running.parallel import run_parallel

            state = run_parallel(specs, options, args.jobs, progress)
        else:
            state = run_cases(specs, options, progress)
    finally:
        progress.done()
    summary = summarize(r.outcome for r in state.results)
    if kcidb_path is not None:
        from harness.reports import model

        _write_kcidb(kcidb_path, [model.load_run(options.out_dir)])
    _progress(f"{summary_line(summary)}; {_report_line(options.out_dir)}")
    return exit_status(summary)


def cmd_matrix(args) -> int:
    """targets x kernels x cases from a YAML file; one combined matrix.json and junit.xml."""
    from harness.reports import report
    from harness.running.matrix import cell_report, load_matrix, run_matrix
    from harness.running.progress import Progress

    matrix = load_matrix(Path(args.file))
    kcidb_path = _kcidb_path(args)
    if args.jobs is None:
        from harness.running.parallel import auto_guests

        args.jobs = auto_guests()
    out = Path(args.out)
    report.prepare_out_dir(out)
    report.release_reserve(out)  # each cell sets its own aside
    command_line = report.reproduce_command(["binder-harness", *sys.argv[1:]])
    progress = Progress(sys.stderr)
    try:
        outcomes = run_matrix(matrix, out, args.jobs, command_line, progress)
    finally:
        progress.done()
    reports = [cell_report(matrix, o, command_line) for o in outcomes]
    _write_kcidb(kcidb_path, reports)
    s = summarize(c.outcome for r in reports for c in r.cases)  # as matrix.json's summary
    _progress(f"{len(outcomes)} cells: {summary_line(s)}; matrix: {out / 'matrix.json'} and {out / 'junit.xml'}; "
              f"each cell's run under {out / 'cells'}")
    if not all(o.status == "done" for o in outcomes):
        return ExitStatus.FAILED  # a cell that could not run: its cases are errors in matrix.json
    return exit_status(s)


def cmd_report(args) -> int:
    """Re-render report.html from a run directory; --bundle also packs it as DIR.tar.gz."""
    from harness.reports import model, report

    run_dir = Path(args.dir)
    data = model.load_run(run_dir)
    comparison = _comparison(run_dir, Path(args.compare)) if args.compare else None
    try:
        path = report.write_html(data, run_dir, comparison)
        print(path)
        if args.bundle:
            print(report.bundle(run_dir))
    except OSError as exc:
        raise ConfigError(f"{exc.filename or run_dir}: cannot write ({exc.strerror})") from None
    return 0


def _comparison(run_dir: Path, other_dir: Path):
    """The C-against-Rust table of two run directories (either order); one line when they are not
    one C and one Rust run of the same kernel version and arch."""
    from harness.reports import driver_compare, model

    a, b = model.load_run(run_dir), model.load_run(other_dir)
    return driver_compare.compare(a, b, str(run_dir / model.REPORT_FILE), str(other_dir / model.REPORT_FILE))


def _output_file(flag: str, value: str | None) -> Path | None:
    """--out FILE / --md FILE, checked before anything is read: its directory must exist."""
    if not value:
        return None
    path = Path(value)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a directory; give a file name, e.g. {path / 'rust-vs-c.html'}")
    if not path.parent.is_dir():
        raise ConfigError(f"{flag} {path}: directory {path.parent} does not exist; create it or give another file")
    return path


def cmd_compare(args) -> int:
    """The C driver against the Rust driver on the same kernel, case by case: an HTML page (--out),
    Markdown (--md, or stdout when neither is given); the count of cases that agree on stderr."""
    from harness.files import atomic_write_text
    from harness.reports import driver_compare
    from harness.reports import comparison_html

    out, md = _output_file("--out", args.out), _output_file("--md", args.md)
    cmp = _comparison(Path(args.run_a), Path(args.run_b))
    try:
        if out:
            atomic_write_text(out, comparison_html.page(cmp))
        if md:
            atomic_write_text(md, driver_compare.markdown(cmp))
    except OSError as exc:
        raise ConfigError(f"{exc.filename or out or md}: cannot write ({exc.strerror})") from None
    if not out and not md:
        print(driver_compare.markdown(cmp), end="")
    _progress(f"compare: {cmp.summary_line()}" + "".join(f"; {p}" for p in (out, md) if p))
    return 0


def cmd_judge(args) -> int:
    """Re-judge a run directory's recorded evidence with this harness's cases; no target."""
    from harness.running.rejudge import judge_run

    run_dir = Path(args.dir)
    kcidb_path = _kcidb_path(args)
    if (run_dir / "lava.json").is_file():  # a LAVA job's directory: its log holds the evidence
        from harness.running.lava import collect

        collect(run_dir)
    data = judge_run(run_dir)
    _write_kcidb(kcidb_path, [data])
    summary = data.summary
    kept = data.judged.kept_as_recorded if data.judged else {}
    _progress(f"judged {len(data.cases)} cases ({len(kept)} kept as recorded): {summary_line(summary)}; "
              f"{_report_line(run_dir)}")
    return exit_status(summary)


def cmd_lava(args) -> int:
    """Render a LAVA job (job, device dictionary, dispatcher config, kernel, initramfs) into --out."""
    from harness.judging.catalog import select_cases
    from harness.options import run_options
    from harness.reports import report
    from harness.running.lava import render

    options = run_options(args, Path(args.out), report.reproduce_command(["binder-harness", *sys.argv[1:]]), "lava")
    specs = select_cases(args.cases)
    out = options.out_dir
    report.prepare_out_dir(out)
    report.release_reserve(out)
    manifest = render(options, specs, _progress)
    planned = [c for c, p in manifest["plans"].items() if not p["problem"]]
    print(out / "run.sh")
    _progress(f"LAVA job for {len(planned)} of {len(specs)} cases in {out}: job.yaml, device.yaml, dispatcher.yaml; "
              f"run it with {out / 'run.sh'} (lava-run, no server), then: binder-harness judge {out}")
    return 0


def cmd_images_list(args) -> int:
    from harness.building import cache as imagecache
    from harness.files import cache_root
    from harness.building.recipes import load_recipe, shipped_recipes

    print("recipes:")
    for path in shipped_recipes():
        recipe = load_recipe(path)
        print(f"  {recipe.name:<24} {recipe.arch:<7} {recipe.kernel_source.describe():<44} {imagecache.recipe_status(recipe)}")
    entries = imagecache.list_cache()
    print(f"cache {cache_root()}:")
    for part in imagecache.PARTS:
        mine = [e for e in entries if e.part == part]
        if mine:
            print(f"  {part}/ ({sum(e.size for e in mine) / 1e6:.1f} MB): {imagecache.PARTS[part]}")
            for e in mine:
                print(f"    {e.name:<64} {e.size / 1e6:9.1f} MB  {e.note}".rstrip())
    print(f"total {sum(e.size for e in entries) / 1e6:.1f} MB")
    return 0


def cmd_images_fetch(args) -> int:
    import time

    from harness.building import cache as imagecache

    recipes = imagecache.recipes_named(args.recipes)
    for recipe in recipes:
        t0 = time.monotonic()
        imagecache.prefetch(recipe, _progress)
        _progress(f"{recipe.name}: ready ({time.monotonic() - t0:.1f} s)")
    return 0


def cmd_images_build(args) -> int:
    from harness.building import kernel_build
    from harness.building.recipes import find_recipe, load_recipe

    for name in args.recipes:
        recipe = load_recipe(find_recipe(name))
        if recipe.kernel_source.build is None:
            raise ConfigError(f"images build {name}: recipe {recipe.name} downloads its kernel (no 'kernel.build'); "
                              f"use images fetch {name}")
        cached = kernel_build.cached_build(recipe)
        built = cached or kernel_build.ensure_built(recipe, _progress)
        _progress(f"{recipe.name}: {'cached' if cached else 'built'}: {built.kernel} (config, System.map and "
                  f"lib/modules beside it); build log {built.log}")
        print(built.dir)
    return 0


def cmd_images_update(args) -> int:
    from harness.building import update
    from harness.building.recipes import find_recipe

    status = 0
    for name in args.recipes:
        status = max(status, update.update(find_recipe(name), args.dry_run, args.latest, _progress))
    return status


def cmd_images_clean(args) -> int:
    from harness.building import cache as imagecache

    freed = imagecache.clean(args.what, _progress)
    _progress(f"freed {freed / 1e6:.1f} MB")
    return 0
def cmd_guest(args) -> int:
    from harness.guest import run_adb_guest, run_guest
    from harness.options import target_options

    spec, options = target_options(args, "guest")
    if args.ssh_port < 0:
        raise ConfigError(f"--ssh-port {args.ssh_port}: not a TCP port")
    if args.adb_port is not None and args.ssh_port:
        raise ConfigError("guest: give --ssh-port or --adb-port, not both")
    if args.adb_port is not None:
        if args.adb_port < 0:
            raise ConfigError(f"--adb-port {args.adb_port}: not a TCP port")
        return run_adb_guest(spec, args.adb_port, options, _progress)
    if options.resident_cm:
        raise ConfigError("guest --resident-context-manager: goes with --adb-port (the run's own "
                          "--resident-context-manager covers QEMU console targets)")
    return run_guest(spec, args.ssh_port, options, _progress)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="binder-harness", description="Prove on a real kernel how the binder driver behaves.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run cases on a target and write a report")
    run.add_argument("cases", nargs="*", help="case ids or globs (default: every case)")
    run.add_argument("--out", required=True, help="run directory for report.json and evidence")
    add_to_argparse(run, "run")
    run.add_argument("--kcidb", metavar="FILE", help=KCIDB_HELP)
    run.add_argument("-j", "--jobs", type=_run_jobs, default=None,
                     help="guests run at once, each on its own QEMU (default auto: one per core, at most 2, "
                          "for QEMU guests restored per case, else 1); results merge in catalog order")
    run.set_defaults(func=cmd_run)

    mat = sub.add_parser("matrix", help="run targets x kernels x cases from a YAML matrix file")
    mat.add_argument("file", help="matrix YAML: targets, kernels (image recipes or 'default'), cases, timeout, seed")
    mat.add_argument("--out", required=True, help="directory for matrix.json, junit.xml and cells/<recipe>/ runs")
    mat.add_argument("-j", "--jobs", type=_run_jobs, default=None,
                     help="guests run at once: with several cells, up to N cells at once, each on N // cells "
                          "guests; with one cell, its N guests (default auto: one per core, at most 2)")
    mat.add_argument("--kcidb", metavar="FILE", help=KCIDB_HELP)
    mat.set_defaults(func=cmd_matrix)

    rep = sub.add_parser("report", help="re-render report.html from a run directory")
    rep.add_argument("dir", help="run directory holding report.json")
    rep.add_argument("--bundle", action="store_true", help="also write DIR.tar.gz of the run directory and print its path")
    rep.add_argument("--compare", metavar="OTHER_RUN",
                     help="also show the C-against-Rust table of this run and OTHER_RUN (the same kernel, the "
                          "other driver) after the verdicts")
    rep.set_defaults(func=cmd_report)
    cmp = sub.add_parser("compare", help="the C driver against the Rust driver on the same kernel, case by case, "
                                         "from two run directories")
    cmp.add_argument("run_a", metavar="C_RUN_DIR", help="a run directory on the C driver (the two in either order)")
    cmp.add_argument("run_b", metavar="RUST_RUN_DIR", help="a run directory on the Rust driver, same kernel version")
    cmp.add_argument("--out", metavar="FILE.html", help="write the table as a self-contained HTML page")
    cmp.add_argument("--md", metavar="FILE.md", help="write the table as Markdown (for bench/); "
                                                     "with neither --out nor --md, it goes to stdout")
    cmp.set_defaults(func=cmd_compare)
    jud = sub.add_parser("judge", help="re-judge a run directory's recorded evidence offline, rewriting its reports")
    jud.add_argument("dir", help="run directory made by 'binder-harness run --out DIR'")
    jud.add_argument("--kcidb", metavar="FILE", help=KCIDB_HELP)
    jud.set_defaults(func=cmd_judge)
    lava = sub.add_parser("lava", help="render the cases as a LAVA job for the qemu device type (run it with lava-run)")
    lava.add_argument("cases", nargs="*", help="case ids or globs (default: every case)")
    lava.add_argument("--out", required=True, help="directory for job.yaml, device.yaml, dispatcher.yaml and the images")
    add_to_argparse(lava, "lava")
    lava.set_defaults(func=cmd_lava)
    guest = sub.add_parser("guest", help="boot a long-lived QEMU guest reachable over ssh")
    add_to_argparse(guest, "guest")
    guest.add_argument("--ssh-port", type=int, default=0, help="host port forwarded to the guest's ssh (127.0.0.1 only; default: a free one)")
    guest.add_argument("--adb-port", type=int, default=None,
                       help="boot with Debian's adbd instead, forwarded from 127.0.0.1:PORT only (it asks no auth); "
                            "0 picks a free port")
    guest.set_defaults(func=cmd_guest)

    lst = sub.add_parser("list", help="print every case id")
    lst.set_defaults(func=cmd_list)

    img = sub.add_parser("images", help="the guest image cache: list, prefetch for offline use, build, update pins, clean")
    img_sub = img.add_subparsers(dest="images_command", required=True, parser_class=_Parser)
    il = img_sub.add_parser("list", help="show shipped recipes and what the cache holds, with sizes")
    il.set_defaults(func=cmd_images_list)
    ifetch = img_sub.add_parser("fetch", help="download and extract recipes' packages (default: every shipped recipe)")
    ifetch.add_argument("recipes", nargs="*", help="recipe names under images/ or YAML paths")
    ifetch.set_defaults(func=cmd_images_fetch)
    ibuild = img_sub.add_parser("build", help="build the kernel of recipes with 'kernel.build' (Debian's source, in a "
                                               "debootstrap toolchain root; cached by every input, log kept)")
    ibuild.add_argument("recipes", nargs="+", help="recipe names under images/ or YAML paths")
    ibuild.set_defaults(func=cmd_images_build)
    iupd = img_sub.add_parser("update", help="move recipes' pinned Debian versions to what their suites have now, "
                                             "showing each change, and rewrite the recipe files in place")
    iupd.add_argument("recipes", nargs="+", help="recipe names under images/ or YAML paths")
    iupd.add_argument("--dry-run", action="store_true",
                      help="show the changes, write nothing; exit 1 when a pin would move (for CI)")
    iupd.add_argument("--latest", action="store_true",
                      help="move every pin to the newest its suites list, not only pins that have left them")
    iupd.set_defaults(func=cmd_images_update)
    iclean = img_sub.add_parser("clean", help="remove the cache, or named parts or recipes' files")
    iclean.add_argument("what", nargs="*", help="cache parts (debs, kernels, busybox, custom-kernels, initramfs, "
                                                "indexes, probe, seeded) or recipe names; default: all")
    iclean.set_defaults(func=cmd_images_clean)
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C (SIGINT) stops a run or a guest even where the shell started us ignoring it (a
    # background job of a script without job control inherits SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except ConfigError as exc:
        print(f"binder-harness: {exc}" if not str(exc).startswith("binder-harness") else str(exc), file=sys.stderr)
        return ExitStatus.USAGE
    except TargetError as exc:
        print(f"binder-harness: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    except BrokenPipeError:  # e.g. `binder-harness images list | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("binder-harness: interrupted; the run directory holds what was collected", file=sys.stderr)
        return ExitStatus.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
