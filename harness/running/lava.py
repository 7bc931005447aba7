"""`binder-harness lava --target qemu:ARCH [CASES] --out DIR`: the cases as a LAVA job.

DIR gets, for LAVA's `qemu` device type and a dispatcher with no server:

  job.yaml          deploys our kernel and initramfs (cpio.newc, given LAVA's overlay), boots
                    them with QEMU, and runs one inline test definition: the image's
                    /opt/binder-harness/run-cases.sh
  device.yaml       a device dictionary (the qemu device type's constants, spelled out)
  dispatcher.yaml   the dispatcher config (its address; nothing else is needed locally)
  kernel, initramfs.cpio, run.sh (the lava-run command line), lava.json (what was planned)

run-cases.sh runs, per case, the probe scenarios the case asks for (found by running the case
against a planning context that records its calls), armed with the case's trace and kprobes,
settles binder's deferred release, and saves the trace and kernel log, exactly as a direct
run does. It reports each case with `lava-test-case` (pass: the evidence was collected and
every probe exited 0; the verdict is the judge's), then prints the case's evidence on the
console as a base64 tar between BH-EVIDENCE markers, so it is in the job's log wherever the
job ran. `binder-harness judge DIR` reads lava-run's log (DIR/output/lava-run.log), unpacks
the evidence into DIR/cases/<id>/ with each case's recording.json, and judges it with the
same case code into the same report.json, junit.xml and report.html.
"""
from __future__ import annotations

import base64
import datetime
import io
import json
import os
import re
import shlex
import shutil
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import yaml

from harness.arches import GUEST_ARCHES, abi_for
from harness.errors import ConfigError
from harness.evidence import debugfs as binder_debugfs
from harness.evidence import trace as tracing
from harness.evidence.probe import ProbeOutput, ensure_probe
from harness.files import atomic_write_text
from harness.judging.catalog import CaseSpec
from harness.judging.context import RECORDING_FILE, RECORDING_SCHEMA, CaseContext, begin_line, kernel_version
from harness.judging import layout
from harness.judging.accounting import snapshot_script
from harness.judging.replay import NeedsLiveTarget
from harness.judging.verdicts import Outcome
from harness.reports import model
from harness.reports.model import LavaResult, Report, ReportCase, Timings
from harness.running.rejudge import PENDING
from harness.running.runner import RunOptions
from harness.targets import TargetOptions
from harness.targets.base import Target, shell_command

LAVA_SCHEMA = 1
PROMPT = "bh-lava#"  # the console shell's prompt in a LAVA job (BH_PS1 on the kernel command line)
TRACEFS, DEBUGFS = "/sys/kernel/tracing", "/sys/kernel/debug"
WORKDIR = "/tmp/bh"
GUEST_DIR = "/opt/binder-harness"
_PID_SENTINEL = "987654321"  # collect_script's marker pid, replaced by the shell's $p
EVIDENCE_BEGIN, EVIDENCE_END = "BH-EVIDENCE-BEGIN", "BH-EVIDENCE-END"
IDENTITY = "BH-IDENTITY"


# -- planning: what each case will ask of its target -------------------------------------
@dataclass
class PlanContext(CaseContext):
    """A CaseContext that answers nothing: it records the probe runs and kernel-log reads a
    case asks for, for a job that runs them later on a device."""

    release: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.probes: list[dict] = []
        self.dmesg_reads = 0

    def run(self, argv: list[str], timeout: float = 30.0):
        raise NeedsLiveTarget(f"the case runs {' '.join(argv)[:80]!r} on its target")

    def read_file(self, path: str, timeout: float = 10.0) -> str:
        raise NeedsLiveTarget(f"the case reads {path} on its target")

    def run_probe(self, scenario: str, /, timeout: float | None = None, **args: Any) -> ProbeOutput:
        self.probes.append({"scenario": scenario, "args": {k: str(v) for k, v in args.items()},
                            "timeout": int(timeout or self.timeout)})
        return ProbeOutput()

    def dmesg(self) -> str:
        self.dmesg_reads += 1
        return ""

    def stop_trace(self) -> tracing.Trace:
        return tracing.Trace([], [], [])

    @property
    def kernel(self) -> tuple[int, int]:
        return kernel_version(self.release)


def plan_case(spec: CaseSpec, release: str, seed: int | None, timeout: float | None) -> dict:
    """The probe runs and kernel-log reads the case asks for; the case's checks on the empty
    answers are thrown away. A case whose calls depend on what it measured shows up when judged."""
    ctx = PlanContext(spec, cast(Target, None), "", Path("/nonexistent"), "", None, None, seed=seed,
                      timeout=timeout or spec.timeout, release=release)
    problem = ""
    try:
        spec.func(ctx)
    except NeedsLiveTarget as exc:
        problem = f"needs a live target: {exc}"
    except Exception:  # noqa: BLE001 - the checks ran on empty answers; the calls before are the plan
        pass
    return {"case": spec.id, "seed": ctx.seed, "timeout": ctx.timeout, "probes": ctx.probes,
            "dmesg_reads": ctx.dmesg_reads, "trace": spec.wants_trace, "problem": problem}


# -- the script the device runs ----------------------------------------------------------
def case_script(spec: CaseSpec, plan: dict, probe: str) -> str:
    """Shell for one case: set up, arm tracing, run the planned probes, collect, report, print."""
    d = f"{WORKDIR}/cases/{spec.id}"
    q = shlex.quote
    # binder's accounting around the case (judging/accounting.py)
    lines = [f"# {spec.id}", f"mkdir -p {q(d)}; echo {q(begin_line(spec.id))} > /dev/kmsg",
             snapshot_script(f"{DEBUGFS}/binder", d, "before"), "ok=pass"]
    if spec.wants_trace:
        kprobes = tuple(k.for_kernel(kernel_version(plan["release"])).with_offsets(plan["offsets"])
                        if k.struct_fields else k.for_kernel(kernel_version(plan["release"])) for k in spec.kprobes)
        lines.append(tracing.arm_script(TRACEFS, kprobes, spec.id, extra_events=spec.events) + " > /dev/null")
    for n, run in enumerate(plan["probes"], 1):
        argv = [probe, run["scenario"], *(f"{k}={v}" for k, v in run["args"].items()), f"timeout={run['timeout']}"]
        stem = f"{d}/probe-{n}"
        lines.append(f"{shell_command(argv, run['timeout'] + 5)} > {q(stem + '.jsonl')} 2> {q(stem + '.stderr')}; "
                     f"s=$?; echo $s > {q(stem + '.status')}; [ $s -eq 0 ] || ok=fail")
    lines.append(binder_debugfs.settle_script(f"{DEBUGFS}/binder", Path(probe).name) + " > /dev/null")
    if spec.wants_trace:
        collect = tracing.collect_script(TRACEFS, f"{d}/trace.txt", int(_PID_SENTINEL))
        lines.append(collect.replace(_PID_SENTINEL, "$p"))
    lines += [f"dmesg > {q(d + '/dmesg-all.txt')}; {snapshot_script(f'{DEBUGFS}/binder', d, 'after')}",
              f"lava-test-case {q(spec.id)} --result $ok",
              f"echo {EVIDENCE_BEGIN} {spec.id}",
              f"tar -C {q(WORKDIR + '/cases')} -c {q(spec.id)} | gzip -c | base64",
              f"echo {EVIDENCE_END} {spec.id}",
              f"rm -rf {q(d)}"]
    return "\n".join(lines)


def run_script(specs: list[CaseSpec], plans: dict[str, dict], probes: dict[str, str]) -> str:
    head = ["#!/bin/sh", "# binder-harness cases for a LAVA test shell (written by binder-harness lava)",
            f"mkdir -p {WORKDIR}/cases", f'echo "{IDENTITY} $(uname -r) $(uname -m)"']
    body = [case_script(s, plans[s.id], probes[s.id]) for s in specs if not plans[s.id]["problem"]]
    return "\n".join(head + body) + "\n"


# -- the LAVA files ------------------------------------------------------------------------
def device_dictionary(arch: str, qemu_options: list[str]) -> dict:
    guest = GUEST_ARCHES[arch]
    return {
        "available_architectures": [arch],
        "constants": {
            "posix": {"lava_test_sh_cmd": "/bin/sh", "lava_test_results_dir": "/lava-%s",
                      "lava_test_shell_file": "~/.bashrc"},
            "kernel-start-message": "Linux version [0-9]",
            "default-shell-prompt": "lava-test: #",
            "spawn_maxread": 4092,
            "failure_retry": 1,
            "boot_retry": 0,
        },
        "actions": {
            "deploy": {"methods": {"image": {"parameters": {"guest": {"size": 512}}}}},
            "boot": {"connections": {"serial": None}, "methods": {
                "qemu": {"parameters": {"command": guest.qemu_binary, "options": qemu_options}}}},
        },
        "timeouts": {"actions": {}, "connections": {}},
    }


def job_definition(arch: str, kernel: Path, initramfs: Path, cmdline: str, n_cases: int, name: str) -> dict:
    minutes = 5 + n_cases
    return {
        "device_type": "qemu",
        "job_name": name,
        "priority": "medium",
        "visibility": "public",
        "timeouts": {"job": {"minutes": minutes + 5}, "action": {"minutes": minutes},
                     "connection": {"minutes": 2}},
        "context": {"arch": arch, "extra_kernel_args": ""},
        "actions": [
            {"deploy": {"to": "tmpfs", "timeout": {"minutes": 2}, "images": {
                "kernel": {"image_arg": "-kernel {kernel} -append '%s'" % cmdline,
                           "url": kernel.resolve().as_uri()},
                "initrd": {"image_arg": "-initrd {initrd}", "url": initramfs.resolve().as_uri(),
                           "format": "cpio.newc", "overlays": {"lava": True}},
            }}},
            {"boot": {"method": "qemu", "media": "tmpfs", "timeout": {"minutes": 2},
                      "parameters": {"kernel-start-message": ""}, "prompts": [PROMPT]}},
            {"test": {"timeout": {"minutes": minutes}, "definitions": [{
                "from": "inline", "name": "binder-harness", "path": "inline/binder-harness.yaml",
                "repository": {
                    "metadata": {"format": "Lava-Test Test Definition 1.0", "name": "binder-harness",
                                 "description": "binder driver cases; verdicts by binder-harness judge"},
                    "run": {"steps": [f"sh {GUEST_DIR}/run-cases.sh"]}}}]}},
        ],
    }


def _struct_offsets(specs: list[CaseSpec], recipe, target: TargetOptions, kernel: Path) -> dict[str, int]:
    """The struct offsets the cases' kprobes read, from the BTF of the module and kernel the job
    boots (read from their files: the job is written before anything runs)."""
    from harness.building.build import select_kernel

    fields = tuple(dict.fromkeys(f for s in specs for k in s.kprobes for f in k.struct_fields))
    if not fields:
        return {}
    module = target.binder_module
    if module is None:
        moddir = select_kernel(recipe, target.kernel, target.modules, lambda _: None).moddir
        module = next(moddir.rglob("binder_linux.ko"), None) if moddir is not None else None
    found = layout.offsets_from_files(fields, module, kernel)
    missing = [f"{f}: {o.source}" for f, o in found.items() if o.offset is None]
    if missing:
        raise ConfigError(f"the job's kprobes need struct offsets its kernel does not describe: {'; '.join(missing)}")
    return {f: o.offset for f, o in found.items() if o.offset is not None}


def render(options: RunOptions, specs: list[CaseSpec], progress=print) -> dict:
    """Build the image (probe and script inside; its kernel, modules and driver as for `run`: --image,
    --kernel, --modules, --binder-module), write the LAVA files into options.out_dir, return lava.json."""
    from harness.building.recipes import resolve_recipe
    from harness.targets import build_qemu_image

    arch, out, seed, timeout, target = options.target_spec.arch, options.out_dir, options.seed, options.timeout, \
        options.target
    assert arch is not None, options.target_spec  # harness/options.py takes only qemu:ARCH for `lava`
    binder_module = target.binder_module
    recipe = resolve_recipe(target.image, arch)
    plain = build_qemu_image(target, recipe, progress)
    release = plain.identity.release
    offsets = _struct_offsets(specs, recipe, target, plain.kernel)
    plans = {}
    for s in specs:
        plan = plan_case(s, release, seed, timeout)
        plan["release"] = release
        plan["offsets"] = offsets
        plans[s.id] = plan
    probes: dict[str, str] = {}
    files: list[tuple[str, bytes, int]] = []
    for s in specs:
        abi = abi_for(arch, s.compat)
        if abi is None:
            plans[s.id]["problem"] = f"no {'32-bit ' if s.compat else ''}probe ABI for {arch}"
            continue
        probes[s.id] = f"{GUEST_DIR}/binder-probe-{abi}"
        if all(f[0] != probes[s.id] for f in files):
            files.append((probes[s.id], ensure_probe(abi).read_bytes(), 0o755))
    files.append((f"{GUEST_DIR}/run-cases.sh", run_script(specs, plans, probes).encode(), 0o755))
    image = build_qemu_image(target, recipe, progress, extra_files=tuple(files))
    out.mkdir(parents=True, exist_ok=True)
    kernel, initramfs = out / "kernel", out / "initramfs.cpio"
    for src, dest in ((image.kernel, kernel), (image.initramfs, initramfs)):
        _place(src, dest)
    q = recipe.qemu
    qemu_args = ["-M", q.machine, "-accel", "tcg", "-cpu", q.cpu, "-m", str(q.memory_mb), "-smp", str(q.smp),
               "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio"]
    cmdline = f"{recipe.cmdline} BH_PS1={PROMPT}"
    name = f"binder-harness {arch}: {len(specs)} cases"
    files_out = {"job.yaml": job_definition(arch, kernel, initramfs, cmdline, len(specs), name),
                 "device.yaml": device_dictionary(arch, qemu_args),
                 "dispatcher.yaml": {"dispatcher_ip": "127.0.0.1"}}
    for fname, data in files_out.items():
        atomic_write_text(out / fname, yaml.safe_dump(data, sort_keys=False, width=1000))
    run_sh = (f"#!/bin/sh\n# Run the job with LAVA's own dispatcher, locally, no server; then: binder-harness judge "
              f"{shlex.quote(str(out))}\ncd \"$(dirname \"$0\")\" && mkdir -p output && lava-run --job-id 1 "
              "--output-dir output --device device.yaml --dispatcher dispatcher.yaml job.yaml "
              "> output/lava-run.log 2>&1\n")
    atomic_write_text(out / "run.sh", run_sh)
    (out / "run.sh").chmod(0o755)
    described = {"spec": options.target_spec.text, "arch": arch, "kernel_release": release, "accel": "tcg",
              "accel_reason": "LAVA job: the device dictionary asks for TCG", "binder_module":
              str(binder_module) if binder_module else "stock", "image": recipe.name,
              "kernel_source": image.kernel_source, "lava": True}
    if image.binder_module_sha256:
        described["binder_module_sha256"] = image.binder_module_sha256
    manifest = {"lava_schema": LAVA_SCHEMA, "command": options.command_line, "target": described, "seed": seed,
                "cases": [s.id for s in specs], "plans": plans}
    atomic_write_text(out / "lava.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def _place(src: Path, dest: Path) -> None:
    """dest as a hard link to the cached file (the x86_64 vmlinux is about 65 MB), else a copy."""
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


# -- reading the job's output back -----------------------------------------------------------
LOG_NAME = "output/lava-run.log"


def _log_records(log: Path):
    """lava-run's stdout: one record per line, {"dt", "lvl", "msg"}, in YAML flow syntax: mostly
    plain JSON, but results lines carry YAML tags, and older dispatchers write '- {...}' items."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith(("{", "- {")):
            continue
        item: Any = None
        try:
            item = json.loads(line)
        except ValueError:  # results lines carry YAML tags (`"endtc": ! "216"`): not JSON
            try:
                item = yaml.load(line, Loader=loader)
            except yaml.YAMLError:
                continue
        if isinstance(item, list):
            item = item[0] if item else None
        if isinstance(item, dict):
            yield item


def collect(out: Path) -> Report:
    """Turn a rendered-and-run LAVA directory into a run directory (cases/<id>/ with recordings,
    and a report.json of the collected cases for judge_run); return that report."""
    manifest_path = out / "lava.json"
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("lava_schema") != LAVA_SCHEMA:
        raise ConfigError(f"{manifest_path}: field 'lava_schema' is {manifest.get('lava_schema')!r}, expected "
                          f"{LAVA_SCHEMA}; render it again with binder-harness lava")
    log = out / LOG_NAME
    if not log.is_file():
        raise ConfigError(f"{log}: missing; run the job first ({out / 'run.sh'}), which writes lava-run's log there")
    lines: list[str] = []
    results: dict[str, str] = {}
    durations: dict[str, float] = {}
    last_mark: datetime.datetime | None = None  # when the previous case (or the script) ended
    job_result = ""
    for rec in _log_records(log):
        lvl, msg = rec.get("lvl"), rec.get("msg")
        if lvl == "target" and isinstance(msg, str):
            lines.append(msg)
            if msg.startswith(IDENTITY) or msg.startswith(EVIDENCE_END):
                last_mark = _when(rec)
        elif lvl == "results" and isinstance(msg, dict):
            if msg.get("definition") == "lava":
                if msg.get("case") == "job":
                    job_result = str(msg.get("result"))
            else:
                results[str(msg.get("case"))] = str(msg.get("result"))
                now = _when(rec)
                if now and last_mark:
                    durations[str(msg.get("case"))] = max(0.0, (now - last_mark).total_seconds())
    evidence = _evidence_blocks(lines)
    release = manifest["target"]["kernel_release"]
    for line in lines:
        m = re.search(rf"{IDENTITY} (\S+) (\S+)", line)
        if m:
            release = m.group(1)
    target = replace(model.target_of(manifest["target"]), kernel_release=release)
    cases: list[ReportCase] = []
    # the job runs its cases in turn on one boot: only the first has a pristine guest
    first = next((c for c in manifest["cases"] if not manifest["plans"][c]["problem"]), None)
    for case_id in manifest["cases"]:
        plan = manifest["plans"][case_id]
        case_dir = out / "cases" / case_id
        if plan["problem"]:
            cases.append(ReportCase(case_id, Outcome.SKIPPED if "ABI" in plan["problem"] else Outcome.ERROR,
                                    plan["problem"]))
            continue
        if case_id not in evidence:
            why = (f"lava-test-case said {results[case_id]}, but" if case_id in results else "the LAVA job")
            cases.append(ReportCase(case_id, Outcome.ERROR, f"{why} no evidence came back in {log} "
                                    f"(job result: {job_result or 'unknown'})"))
            continue
        _unpack(evidence[case_id], out / "cases", case_id)
        _write_recording(case_dir, case_id, plan, release, target.arch or "", manifest.get("seed"), case_id == first)
        # not a pass until judged: skipped (not judged) and marked for `judge` to replay
        cases.append(ReportCase(case_id, Outcome.SKIPPED,
                                f"collected by the LAVA job; not judged yet: binder-harness judge {out}",
                                durations.get(case_id, 0.0), {"lava_test_case": results.get(case_id, "missing")},
                                judged=PENDING))
    data = Report(target, cases, Timings(), manifest.get("command", ""), manifest.get("seed"),
                  lava=LavaResult(job_result, str(LOG_NAME), results))
    model.write(data, out)
    return data


def _when(rec: dict) -> datetime.datetime | None:
    """A log record's time (its `dt`), or None."""
    try:
        return datetime.datetime.fromisoformat(str(rec.get("dt")))
    except ValueError:
        return None


def _evidence_blocks(lines: list[str]) -> dict[str, bytes]:
    blocks: dict[str, bytes] = {}
    current: str | None = None
    chunk: list[str] = []
    for line in lines:
        text = line.strip()
        if text.startswith(EVIDENCE_BEGIN + " "):
            current, chunk = text.split()[1], []
        elif text.startswith(EVIDENCE_END + " ") and current is not None:
            try:
                blocks[current] = base64.b64decode("".join(chunk))
            except ValueError:
                pass
            current = None
        elif current is not None:
            chunk.append(text)
    return blocks


def _unpack(blob: bytes, dest: Path, case_id: str) -> None:
    shutil.rmtree(dest / case_id, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if not member.isfile() or not parts or parts[0] != case_id or ".." in parts:
                continue
            fh = tar.extractfile(member)
            if fh is not None:
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(fh.read())


def _write_recording(case_dir: Path, case_id: str, plan: dict, kernel_release: str, arch: str, seed: int | None,
                     pristine: bool) -> None:
    """recording.json for a case run by the job, as a direct run writes it."""
    steps: list[dict] = []
    for n, run in enumerate(plan["probes"], 1):
        status_file = case_dir / f"probe-{n}.status"
        status = int(status_file.read_text().strip() or 0) if status_file.exists() else -1
        steps.append({"step": "probe", "run": n, "scenario": run["scenario"], "args": run["args"],
                      "timeout": run["timeout"], "status": status, "timed_out": status in (124, 137),
                      "files": [f"probe-{n}.jsonl", f"probe-{n}.stderr"]})
    if plan["trace"]:
        steps.append({"step": "trace", "files": ["trace.txt"] if (case_dir / "trace.txt").exists() else []})
    full = (case_dir / "dmesg-all.txt").read_text(errors="replace") if (case_dir / "dmesg-all.txt").exists() else ""
    marker = begin_line(case_id)
    window = None
    if marker in full:
        delta = full[full.rfind(marker):].split("\n", 1)[-1]
    else:
        delta, window = "", (f"unknown: the case's begin line '{marker}' is not in the kernel log "
                             "(ring buffer wrapped or cleared)")
    (case_dir / "dmesg.txt").write_text(delta)
    for _ in range(plan["dmesg_reads"]):
        steps.append({"step": "dmesg", "delta": delta, "dmesg_window": window})
    recording = {"recording_schema": RECORDING_SCHEMA, "case": case_id, "kernel_release": kernel_release,
                 "arch": arch, "seed": plan.get("seed", seed), "timeout": plan["timeout"], "pristine": pristine,
                 "steps": steps}
    atomic_write_text(case_dir / RECORDING_FILE, json.dumps(recording, indent=1) + "\n")
