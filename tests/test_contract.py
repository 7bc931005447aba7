"""The probe <-> harness contract (native_probe/contract.h): C and Python use the same names and numbers.

tests/data/probe-catalog-x86_64.jsonl is a real run's probe.jsonl (`binder-harness run
--seed 4242` on qemu:x86_64, Debian 6.1.0-57, the probe built with contract.h), keeping the
first line of each event (and of each result name) per case. Its "commands" lines, one per case,
come from the same command on the same kernel after the probe began printing them (native_probe/seen.c).
"""
from __future__ import annotations

import ast
import json
import re

import pytest

from harness.evidence import contract
from harness.evidence.contract import EVENTS, read_contract
from harness.evidence.probe import PROBE_SRC, parse_probe_output
from tests.helpers import DATA, REPO

C_SOURCES = sorted(PROBE_SRC.glob("*.c"))
CAPTURED = [DATA / "probe-catalog-x86_64.jsonl", DATA / "probe-sync-x86_64.jsonl", DATA / "probe-sync-arm64.jsonl",
            DATA / "run-sync_sizes-x86_64" / "probe.jsonl"]
# declared events a healthy run does not print: failures, and the shrinker's hand-off to Python
NOT_ON_A_HEALTHY_RUN = {"error", "srv_error", "ready", "released"}


def test_header_declares_events_and_numbers():
    c = read_contract()
    assert c.events == EVENTS and {"done", "result", "rx", "tx", "summary"} <= EVENTS
    assert all(name == "EV_" + value.upper() for name, value in c.event_macros.items())
    assert contract.DEATH_COOKIE == c.numbers["DEATH_COOKIE"] != contract.DEATH_COOKIE_CLEARED
    assert contract.PING_TRANSACTION == int.from_bytes(b"_PNG", "big")


def test_a_line_in_another_form_is_an_error_naming_it(tmp_path):
    header = tmp_path / "contract.h"
    header.write_text('#ifndef X_H\n#define X_H\n#define EV_DONE "done"\n#define COOKIE (1 << 3)\n#endif\n')
    with pytest.raises(ValueError, match=r"contract.h:4: not of the form"):
        read_contract(header)
    header.write_text('#define NAME "done"\n')
    with pytest.raises(ValueError, match=r"contract.h:1: NAME: string macros are event names"):
        read_contract(header)


def test_c_prints_only_declared_events():
    macros = read_contract().event_macros
    used = set()
    for path in C_SOURCES:
        text = path.read_text()
        # every line starts through jbegin with an EV_ macro, never a string literal
        assert not re.search(r'jbegin\([^,]*,\s*"', text), path.name
        used |= set(re.findall(r"jbegin\([^,]*,\s*(\w+)\)", text)) - {"ev"}
        # raw lines (the timeout handler) splice the macro into the format
        for raw in re.findall(r'\\"ev\\":\\"(.*?)\\"', text):
            assert raw == '" EV_ERROR "' or raw == '" EV_DONE "', (path.name, raw)
    assert used <= set(macros), used - set(macros)
    assert used | {"EV_ERROR", "EV_DONE"} == set(macros), "declared events the probe never prints"


def test_contract_numbers_are_spelled_only_in_the_header():
    numbers = read_contract().numbers
    for path in C_SOURCES + [PROBE_SRC / "probe.h"]:
        text = path.read_text().lower()
        for name, value in numbers.items():
            assert not re.search(rf"#define\s+{name.lower()}\b", text), (path.name, name)
            assert not re.search(rf"\b({value:#x}|{value})u?\b", text), (path.name, name, value)


def _asked_events() -> set[tuple[str, str]]:
    """(file, event) for every out.events("x"), out.one("x") and event("x") with a literal name
    in the Python sources."""
    asked = set()
    for path in [*REPO.joinpath("cases").glob("*.py"), *REPO.joinpath("harness").rglob("*.py"),
                 *REPO.joinpath("bench").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if (called in ("events", "one", "event") and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                asked.add((path.name, node.args[0].value))
    return asked


def test_python_asks_only_for_declared_events():
    asked = _asked_events()
    assert {"rx", "tx", "result", "summary", "done"} <= {ev for _, ev in asked}
    assert {(f, ev) for f, ev in asked if ev not in EVENTS} == set()


def test_asking_for_an_undeclared_event_is_an_error():
    out = parse_probe_output('{"ev":"done","ok":true,"pid":1}\n')
    assert out.done == {"ev": "done", "ok": True, "pid": 1}
    with pytest.raises(ValueError, match=r"probe event 'dne' is not declared in native_probe/contract.h"):
        out.events("dne")


def test_captured_probe_output_uses_declared_events_only():
    printed = set()
    for path in CAPTURED:
        for line in path.read_text().splitlines():
            printed.add(json.loads(line)["ev"])
    assert printed <= EVENTS, printed - EVENTS
    assert EVENTS - printed == NOT_ON_A_HEALTHY_RUN


def test_captured_death_notice_carries_the_declared_cookie():
    lines = [json.loads(l) for l in (DATA / "probe-catalog-x86_64.jsonl").read_text().splitlines()]
    dead = [r for r in lines if r.get("name") == "death.dead_binder"]
    assert [r["cookie"] for r in dead] == [contract.DEATH_COOKIE]
