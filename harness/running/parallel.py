"""`binder-harness run -j N`: N guests at once, one run directory.

Each guest is a runner.Session of its own (own QEMU, own 9p share, own console), fed
from one queue of cases in catalog order. Their results merge into the one run's
report.json, junit.xml and report.html in catalog order after every case (report.write_all:
report.html at most every 10 s), so an interrupted run still leaves a valid set. Layout of RUN_DIR:

    cases/<id>/            per-case evidence, as with one guest
    guests/<n>/console.log that guest's console (every boot it made)
    guests/<n>/dmesg.txt   that guest's boot kernel logs
    probe.jsonl, trace.txt, dmesg.txt   run-wide, per case, in catalog order
    console.log            every guest's console, one after another, written at the end

report.json (harness/reports/model.py) has a "jobs" count, a "guests" list (boots, boot time and
the cases each guest ran) and, in each case, the "guest" that ran it.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.errors import ConfigError
from harness.reports import model, report
from harness.reports.model import Guest, Report, Timings
from harness.judging.catalog import CaseSpec
from harness.files import atomic_write_text
from harness.running.runner import RunOptions, RunState, Session, not_run
from harness.judging.verdicts import CaseResult


# `run -j auto` (the default): as many guests as the host has cores, at most this many. Two on this
# 2-core TCG host measured 1.3x faster than one guest with its spare (bench/catalog.md); more guests
# than cores gain nothing under TCG, and more than two were not measured (nor any KVM host).
AUTO_JOBS_CAP = 2


def host_cores() -> int:
    """The cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_guests() -> int:
    """How many guests `-j auto` gives this host at most: one per core, up to AUTO_JOBS_CAP
    (`matrix -j auto` takes it as is)."""
    return max(1, min(host_cores(), AUTO_JOBS_CAP))


def auto_jobs(options: RunOptions, cases: int) -> int:
    """`run -j auto`: auto_guests(), for two or more cases on guests the harness starts, each case
    on its own (not --shared-boot: its one guest serves every case; not a device reached over ssh
    or adb: one binder context manager per device)."""
    if options.target_spec.kind != "qemu" or options.shared_boot or cases < 2:
        return 1
    return min(auto_guests(), cases)


@dataclass
class _Shared:
    """What the guests' threads share, guarded by `lock`."""

    specs: list[CaseSpec]
    merged: RunState
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_index: int = 0
    failure: BaseException | None = None  # a ConfigError or harness bug in a guest's thread
    sessions: list[Session] = field(default_factory=list)

    def take(self) -> CaseSpec | None:
        with self.lock:
            if self.failure is not None or self.next_index >= len(self.specs):
                return None
            self.next_index += 1
            return self.specs[self.next_index - 1]


def prepare(options: RunOptions, specs: list[CaseSpec], progress) -> None:
    """Build the guest image and the probes once, before any guest starts, so guests never
    race to fill the cache and a bad configuration stops the run before any boot."""
    from harness.arches import abi_for
    from harness.evidence.probe import ensure_probe
    from harness.targets import qemu_image

    arch = options.target_spec.arch
    if arch is None:  # not a guest booted here
        return
    qemu_image(options.target, arch, progress)
    for compat in sorted({s.compat for s in specs}):
        abi = abi_for(arch, compat)
        if abi is not None:  # no 32-bit ABI: those cases skip, saying so
            ensure_probe(abi)


def _prefixed(progress, index: int):
    return lambda line: progress(f"[guest {index}] {line}")


def _merge(shared: _Shared, session: Session, result: CaseResult) -> None:
    """Session.on_result, called under the shared lock: fold one result into the run's report."""
    merged = shared.merged
    result.guest = shared.sessions.index(session)
    order = {s.id: i for i, s in enumerate(shared.specs)}
    merged.results = sorted([*merged.results, result], key=lambda r: order.get(r.id, len(order)))
    _fold_guests(shared)
    report.write_all(merged)


def _fold_guests(shared: _Shared) -> None:
    merged = shared.merged
    merged.boots = sum(s.state.boots for s in shared.sessions)
    merged.boot_s = sum(s.state.boot_s for s in shared.sessions)
    merged.restores = sum(s.state.restores for s in shared.sessions)
    merged.restore_s = sum(s.state.restore_s for s in shared.sessions)
    merged.target_info = next((s.state.target_info for s in shared.sessions if s.state.target_info),
                              merged.target_info)
    merged.extra = {
        "jobs": len(shared.sessions),
        "guests": [Guest(i, [r.id for r in s.state.results], str(s.console_log.relative_to(merged.options.out_dir)),
                         s.state.boots, s.state.restores, round(s.state.boot_s, 3), round(s.state.restore_s, 3))
                   for i, s in enumerate(shared.sessions)],
    }
    # --resident-context-manager: each guest had its own; the run's field is the first that did not
    # fare well (still running, answering PING at the end), else the last guest's
    residents = [s.state.extra["resident_context_manager"] for s in shared.sessions
                 if "resident_context_manager" in s.state.extra]
    if residents:
        merged.extra["resident_context_manager"] = next(
            (r for r in residents if "ping_after_run" in r and (r.get("still_running") is not True
                                                                or r.get("ping_after_run") != "answered")),
            residents[-1])


def _work(shared: _Shared, session: Session) -> None:
    try:
        while not session.cancelled:
            spec = shared.take()
            if spec is None:
                break
            session.run_case(spec)
    except KeyboardInterrupt:
        pass  # abort() from the main thread: the case is recorded as interrupted
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
        with shared.lock:
            shared.failure = shared.failure or exc
    finally:
        session.close()


def run_parallel(specs: list[CaseSpec], options: RunOptions, jobs: int, progress=print) -> RunState:
    """Run `specs` on `jobs` guests at once; one merged RunState in catalog order."""
    prepare(options, specs, progress)
    merged = RunState(options)
    shared = _Shared(specs, merged)
    jobs = max(1, min(jobs, len(specs)))
    for i in range(jobs):
        guest_dir = options.out_dir / "guests" / str(i)
        shared.sessions.append(Session(options, _prefixed(progress, i), guest_dir=guest_dir,
                                       on_result=lambda s, r: _merge(shared, s, r), lock=shared.lock,
                                       prefetch=False))
    threads = [threading.Thread(target=_work, args=(shared, s), name=f"guest-{i}", daemon=True)
               for i, s in enumerate(shared.sessions)]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.2)
        if shared.failure is not None:
            raise shared.failure
    except BaseException:
        for s in shared.sessions:
            s.abort()
        for t in threads:
            t.join(30)
        with shared.lock:
            merged.results += not_run(specs, {r.id for r in merged.results}, "the run was interrupted")
        raise
    finally:
        with shared.lock:
            _fold_guests(shared)
            rebuild_run_files(options.out_dir, [s.id for s in specs])
            join_consoles(options.out_dir, [s.console_log for s in shared.sessions])
            report.write_final(merged)
    return merged


def rebuild_run_files(out: Path, case_ids: list[str]) -> None:
    """Rewrite the run-wide probe.jsonl, trace.txt and dmesg.txt from cases/<id>/ in catalog order
    (guests append them as their cases finish, which is in no particular order)."""
    from harness.running.runner import append_case_files

    for name in ("probe.jsonl", "trace.txt", "dmesg.txt"):
        (out / name).unlink(missing_ok=True)
    for case_id in case_ids:
        case_dir = out / "cases" / case_id
        if case_dir.is_dir():
            try:
                append_case_files(out, case_id, case_dir)
            except OSError:
                return  # a full disk: each case keeps its own files


def join_consoles(out: Path, consoles: list[Path]) -> None:
    """RUN_DIR/console.log, as with one guest: each guest's console in turn, under a header
    naming its guests/<n>/console.log (which stays)."""
    try:
        with open(out / "console.log", "w", errors="replace") as fh:
            for path in consoles:
                if path.exists():
                    fh.write(f"=== {path.relative_to(out)} ===\n")
                    fh.write(path.read_text(errors="replace"))
    except OSError:
        return  # a full disk: each guest keeps its own console


def merge_run_dirs(out: Path, run_dirs: list[Path], order: list[str]) -> Report | None:
    """One report for runs made side by side into out/<sub>/ (pytest -n N: out/gw0, out/gw1, ...):
    out/report.json (cases in catalog `order`, each with the "dir" of its evidence),
    junit.xml and report.html. None when no run left a report."""
    runs: list[tuple[Path, Report]] = []
    for d in sorted(run_dirs, key=lambda p: (len(p.name), p.name)):
        try:
            runs.append((d, model.read(d / model.REPORT_FILE)))
        except ConfigError:
            continue
    if not runs:
        return None
    rank = {case_id: i for i, case_id in enumerate(order)}
    cases = [replace(case, guest=i, dir=f"{d.name}/{case.dir}")
             for i, (d, data) in enumerate(runs) for case in data.cases]
    cases.sort(key=lambda c: rank.get(c.id, len(rank)))
    first = runs[0][1]
    timings = [data.timings for _, data in runs]
    merged = Report(first.target, cases,
                    Timings(boot_s=round(sum(t.boot_s for t in timings), 3), total_s=max(t.total_s for t in timings),
                            boots=sum(t.boots or 0 for t in timings),
                            restore_s=round(sum(t.restore_s or 0 for t in timings), 3),
                            restores=sum(t.restores or 0 for t in timings)),
                    first.command, first.seed, jobs=len(runs),
                    guests=[Guest(i, [c.id for c in data.cases], f"{d.name}/console.log", data.timings.boots or 0,
                                  data.timings.restores or 0, dir=d.name) for i, (d, data) in enumerate(runs)])
    model.write(merged, out)
    atomic_write_text(out / "junit.xml", report.junit_xml(merged))
    report.write_html(merged, out)
    return merged
