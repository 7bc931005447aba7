"""Run reports: report.json (schema 1, DESIGN §2), junit.xml, and run-wide files."""
from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from harness import html_report, timing

SCHEMA = 1


def append_text(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


def append_trace(path: Path, text: str) -> None:
    """Add one case's ftrace text to the run's trace.txt, keeping a single header."""
    if path.exists() and path.stat().st_size:
        text = "\n".join(l for l in text.splitlines() if not l.startswith("#"))
    append_text(path, text)


def report_dict(state) -> dict:
    summary = {k: 0 for k in ("passed", "failed", "error", "skipped")}
    for r in state.results:
        summary[r.outcome] += 1
    target = dict(state.target_info) or {"spec": state.options.target_spec}
    return {
        "schema": SCHEMA,
        "target": target,
        "cases": [r.to_json() for r in state.results],
        "summary": summary,
        "timings": {"boot_s": round(state.boot_s, 3), "total_s": round(time.monotonic() - state.started, 3),
                    "boots": state.boots, "phases": timing.snapshot()},
        "command": state.options.command_line,
        "seed": state.options.seed,
    }


def _atomic_write(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(data, encoding="utf-8")
    tmp.replace(path)


def _check_lines(checks: list[dict]) -> str:
    """Failing checks first: each with expected, measured and the kernel function."""
    ordered = sorted(checks, key=lambda c: bool(c.get("passed")))
    return "\n".join(f"{'PASS' if c['passed'] else 'FAIL'} {c['name']}: expected {c['expected']}, "
                     f"measured {c['measured']} ({c['ref']})" for c in ordered)


def junit_xml(report: dict) -> str:
    """JUnit XML (the <testsuites> form pytest writes): one testcase per case; the reason is the
    failure message, the checks its text, and the evidence the testcase's properties."""
    cases = report["cases"]
    s = report["summary"]
    root = ET.Element("testsuites", name="binder-harness", tests=str(len(cases)), failures=str(s["failed"]),
                      errors=str(s["error"]), skipped=str(s["skipped"]),
                      time=f"{report['timings']['total_s']:.3f}")
    suite = ET.SubElement(root, "testsuite", name="binder-harness", tests=str(len(cases)), failures=str(s["failed"]),
                          errors=str(s["error"]), skipped=str(s["skipped"]),
                          time=f"{report['timings']['total_s']:.3f}",
                          timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"))
    props = ET.SubElement(suite, "properties")
    for key, value in report["target"].items():
        ET.SubElement(props, "property", name=f"target.{key}", value=str(value))
    if report.get("command"):
        ET.SubElement(props, "property", name="command", value=str(report["command"]))
    for case in cases:
        family, _, name = case["id"].partition(".")
        tc = ET.SubElement(suite, "testcase", classname=f"{family}.{report['target'].get('spec', '')}",
                           name=case["id"], time=f"{case['duration_s']:.3f}")
        cprops = ET.SubElement(tc, "properties")
        ET.SubElement(cprops, "property", name="outcome", value=case["outcome"])
        ET.SubElement(cprops, "property", name="reason", value=case["reason"])
        for key, value in case["evidence"].items():
            ET.SubElement(cprops, "property", name=key, value=json.dumps(value)[:2000])
        body = _check_lines(case.get("checks", []))
        if case["outcome"] == "failed":
            ET.SubElement(tc, "failure", message=case["reason"], type="binder-harness.failed").text = body
        elif case["outcome"] == "error":
            ET.SubElement(tc, "error", message=case["reason"], type="binder-harness.error").text = body
        elif case["outcome"] == "skipped":
            ET.SubElement(tc, "skipped", message=case["reason"])
        ET.SubElement(tc, "system-out").text = body
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def write_all(state) -> dict:
    """Write report.json, junit.xml and report.html atomically; called after every case,
    so an interrupted run still leaves a complete, valid set."""
    out: Path = state.options.out_dir
    with timing.phase("report"):
        data = report_dict(state)
        _atomic_write(out / "report.json", json.dumps(data, indent=1, default=str) + "\n")
        _atomic_write(out / "junit.xml", junit_xml(data))
        write_html(data, out)
    return data


def write_html(data: dict, out: Path) -> Path:
    """report.html from the report dict and the run directory; a renderer bug never loses the page."""
    try:
        return html_report.write(data, out)
    except Exception as exc:  # noqa: BLE001 - the verdicts must still reach the ticket
        _atomic_write(out / "report.html", html_report.fallback(data, exc))
        return out / "report.html"


def bundle(run_dir: Path) -> Path:
    """RUN_DIR.tar.gz beside the run directory: the whole run, for a ticket attachment."""
    import tarfile

    run_dir = run_dir.resolve()
    dest = run_dir.with_name(run_dir.name + ".tar.gz")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(run_dir, arcname=run_dir.name,
                filter=lambda info: None if Path(info.name).name.startswith(".") else info)
    tmp.replace(dest)
    return dest
