"""Every command of the target's uapi: the parser on the real binder.h of Debian's 6.1, 6.12 and
7.2 (linux-libc-dev, as harness/building/uapi.py fetches it; kept in tests/data/uapi), the codes the
C compiler gives them, a case's commands read from its captured files, and the coverage verdict on
a captured run: complete only when every command is exercised or excluded, and naming what is not.
(The whole-catalog runs assert it live: tests/test_catalog.py.)"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.evidence.uapi import UapiError, parse_binder_uapi
from harness.building.recipes import load_recipe, shipped_recipes
from harness.building.uapi import command_codes, ensure_uapi_header
from harness.judging import coverage
from harness.reports import coverage as report_coverage
from harness.reports.model import Report, ReportCase, Target

DATA = Path(__file__).parent / "data"
HEADERS = {v: DATA / "uapi" / f"binder-{v}.h" for v in ("6.1.192-3", "6.12.117-1", "7.2.13-1")}
# Added after 6.1: freeze notifications and the frozen-oneway return
NEWER = ["BC_REQUEST_FREEZE_NOTIFICATION", "BC_CLEAR_FREEZE_NOTIFICATION", "BC_FREEZE_NOTIFICATION_DONE",
         "BR_TRANSACTION_PENDING_FROZEN", "BR_FROZEN_BINDER", "BR_CLEAR_FREEZE_NOTIFICATION_DONE"]
# the whole catalog's evidence.commands, per case, from `binder-harness run` on each kernel (x86_64)
RUNS = {"6.1.192-3": "commands-x86_64-6.1.0-57.json", "6.12.117-1": "commands-x86_64-6.12.117.json",
        "7.2.13-1": "commands-x86_64-7.2.13.json"}
CAPTURED = json.loads((DATA / "coverage" / RUNS["6.1.192-3"]).read_text())["commands"]


@pytest.mark.parametrize("version,counts", [("6.1.192-3", (19, 21, 14)), ("6.12.117-1", (22, 24, 14)),
                                            ("7.2.13-1", (22, 24, 14))])
def test_parser_reads_every_command_of_the_real_header(version, counts):
    cmds = parse_binder_uapi(HEADERS[version].read_text())
    assert (len(cmds.bc), len(cmds.br), len(cmds.ioctls)) == counts
    names = cmds.names()
    assert len(names) == len(set(names))
    assert names[0] == "BC_TRANSACTION" and cmds.br[0].name == "BR_ERROR" and cmds.ioctls[0].name == "BINDER_WRITE_READ"
    assert all(n in names for n in NEWER) == (version != "6.1.192-3")
    # an entry split over two lines (6.12 on), and 6.12's ioctls as enum entries, not #defines
    sec = next(c for c in cmds.br if c.name == "BR_TRANSACTION_SEC_CTX")
    assert (sec.macro, sec.type_char, sec.nr, sec.arg_type) == ("_IOR", "r", 2, "struct binder_transaction_data_secctx")
    assert {c.name for c in cmds.ioctls} >= {"BINDER_FREEZE", "BINDER_GET_EXTENDED_ERROR", "BINDER_SET_IDLE_TIMEOUT"}


def test_parser_refuses_what_is_not_binders_header():
    with pytest.raises(UapiError, match="enum binder_driver_command_protocol"):
        parse_binder_uapi("#define BINDER_WRITE_READ _IOWR('b', 1, struct binder_write_read)\n")


def test_codes_are_the_c_compilers_reading_of_the_header():
    path = HEADERS["7.2.13-1"]
    codes = command_codes(path, parse_binder_uapi(path.read_text()))
    assert codes["BINDER_WRITE_READ"] == 0xC0306201  # _IOWR('b', 1, 48 bytes)
    assert codes["BR_NOOP"] == 0x720C and codes["BC_TRANSACTION"] == 0x40406300
    assert codes["BR_TRANSACTION_SEC_CTX"] != codes["BR_TRANSACTION"]  # same nr, another size
    assert len(set(codes.values())) == len(codes)


@pytest.mark.parametrize("version", sorted(HEADERS))
def test_exclusions_and_probe_sources_name_commands_of_every_header(version):
    names = parse_binder_uapi(HEADERS[version].read_text()).names()
    assert set(coverage.EXCLUDED) <= set(names) and set(coverage.FROM_PROBE) <= set(names)


def test_a_cases_commands_from_its_stats_and_probe_record():
    """protocol.ping on 6.1.0-57: the kernel's BC/BR counts before and after, the probe's ioctls and BR_NOOPs."""
    codes = command_codes(HEADERS["6.1.192-3"], parse_binder_uapi(HEADERS["6.1.192-3"].read_text()))
    assert coverage.read_case_commands(DATA / "coverage" / "protocol.ping", codes) == {
        "BC_ENTER_LOOPER": 1, "BC_FREE_BUFFER": 2, "BC_REPLY": 1, "BC_TRANSACTION": 1,
        "BINDER_GET_EXTENDED_ERROR": 1, "BINDER_SET_CONTEXT_MGR": 1, "BINDER_WRITE_READ": 8, "BR_NOOP": 3,
        "BR_REPLY": 1, "BR_TRANSACTION": 1, "BR_TRANSACTION_COMPLETE": 2}
    # stats print only nonzero counts: a count absent before the case started at 0
    assert coverage.stats_delta("binder stats:\n", "binder stats:\nBC_REPLY: 2\n") == {"BC_REPLY": 2}


def _section(per_case: dict[str, dict[str, int]], version: str = "6.1.192-3") -> dict:
    cmds = parse_binder_uapi(HEADERS[version].read_text())
    rows = coverage.coverage([(c.name, c.family) for c in cmds.all], per_case)
    return {"header": f"binder.h {version}", "summary": coverage.summary(rows), "commands": [r.as_json() for r in rows]}


@pytest.mark.parametrize("version,exercised", [("6.1.192-3", 44), ("6.12.117-1", 50), ("7.2.13-1", 50)])
def test_captured_catalog_run_is_complete(version, exercised):
    """The whole catalog on each kernel: every command exercised, or one of 10 excluded with its reason."""
    section = _section(json.loads((DATA / "coverage" / RUNS[version]).read_text())["commands"], version)
    assert coverage.incomplete(section) == "", section["summary"]
    assert (section["summary"]["exercised"], section["summary"]["excluded"], section["summary"]["percent"]) == (
        exercised, 10, 100.0)
    by_name = {c["name"]: c for c in section["commands"]}
    assert by_name["BC_ATTEMPT_ACQUIRE"]["status"] == "excluded"
    assert by_name["BC_ATTEMPT_ACQUIRE"]["cases"] == ["stress.random_commands"]  # sent, and rejected
    assert by_name["BR_NOOP"]["evidence"] == "probe" and by_name["BR_REPLY"]["evidence"] == "stats"


def test_a_command_neither_exercised_nor_excluded_fails():
    dropped = {cid: {k: v for k, v in seen.items() if k != "BC_REPLY_SG"} for cid, seen in CAPTURED.items()}
    message = coverage.incomplete(_section(dropped))
    assert message == ("1 of 54 commands of binder.h 6.1.192-3 neither exercised by a case nor excluded in "
                       "harness/judging/coverage.py: BC_REPLY_SG")
    # a 6.1 run judged against a newer header misses what was added after 6.1
    assert set(_section(CAPTURED, "7.2.13-1")["summary"]["uncovered"]) == set(NEWER)
    assert coverage.incomplete({"error": "no header"}) == "no command coverage in the report (no header)"


def test_report_annotation_on_a_captured_case(tmp_path):
    """report.json gets evidence.commands per case and the coverage section, from uapi.json beside it."""
    path = HEADERS["6.1.192-3"]
    cmds = parse_binder_uapi(path.read_text())
    uapi = {"source": "linux-libc-dev=6.1.192-3 (amd64) /usr/include/linux/android/binder.h", "version": "6.1.192-3",
            "sha256": "x", "text": path.read_text(), "codes": command_codes(path, cmds)}
    (tmp_path / "uapi.json").write_text(json.dumps(uapi))
    shutil.copytree(DATA / "coverage" / "protocol.ping", tmp_path / "cases" / "protocol.ping")
    data = Report(Target("qemu:x86_64"), [ReportCase("protocol.ping", "passed")])
    report_coverage.annotate(data, tmp_path)
    assert data.cases[0].evidence["commands"]["BR_NOOP"] == 3
    assert data.coverage is not None
    assert data.coverage["summary"]["total"] == 54 and not data.coverage["summary"]["complete"]
    assert "BC_REPLY_SG" in data.coverage["summary"]["uncovered"]


def test_a_run_without_a_known_header_says_why(tmp_path):
    data = Report(Target("ssh://root@board", kernel_release="6.6.0-custom", kernel_source="/k/bzImage"))
    report_coverage.annotate(data, tmp_path)
    assert data.coverage == {"error": "the kernel under test (6.6.0-custom) is not a recipe's Debian kernel, "
                                         "so its binder.h is not known"}


@pytest.mark.parametrize("path", shipped_recipes(), ids=lambda p: p.stem)
def test_every_shipped_recipe_header_is_fetched_and_parsed(path):
    """The header of each shipped recipe's kernel comes from its linux-libc-dev (cached after the first fetch)."""
    recipe = load_recipe(path)
    try:
        header = ensure_uapi_header(recipe, progress=lambda _m: None)
    except ConfigError as exc:  # a failure to fetch is the failure this test exists to show
        pytest.fail(str(exc))
    assert header.version == recipe.source_version
    assert set(header.codes) == set(header.commands.names())


def test_report_html_shows_the_coverage_table():
    from harness.reports import html

    page = html._coverage_section(_section(CAPTURED))
    assert "<b>100.0%</b> of the 54 commands" in page and "BC_ATTEMPT_ACQUIRE" in page
    assert "binder_thread_write answers it" in page
    assert "not known: no header" in html._coverage_section({"error": "no header"})
    odd = {"commands": [1], "summary": 5}
    assert "command coverage could not be rendered (AttributeError" in html.guarded(
        "command coverage", lambda: html._coverage_section(odd))


def test_a_transaction_count_in_evidence_does_not_lose_the_page():
    """stress.valid_traffic's evidence `transactions` is a count (5816 measured), not the per-size list
    the copies chart reads: the whole-catalog report.html fell back to its minimal page over it."""
    from harness.reports import html

    assert html.copies_chart({"transactions": 5816}) is None
