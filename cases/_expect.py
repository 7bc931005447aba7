"""Small helpers the case modules share for reading probe results."""
from __future__ import annotations

from harness.cases import CaseContext
from harness.probe import ProbeOutput


# binder user-error lines that many failing calls print (binder_transaction's error exit).
TXN_FAILED = r"transaction (call|async|reply) to \S+ failed \d+/\d+/-?\d+"


def probe_completed(ctx: CaseContext, out: ProbeOutput) -> bool:
    """The probe ran the scenario to its end (setup failures are not driver verdicts)."""
    done = out.done or {}
    if done.get("ok"):
        measured = f"done ok (exit {out.status})"
    else:
        measured = done.get("error") or f"no done line (exit {out.status}): {out.stderr.strip()[:120]}"
    return ctx.check_that("probe ran to completion", bool(done.get("ok")), measured, "done ok", "probe")


def call_outcome(record: dict | None) -> str:
    """'ok', or the error BR code with the extended error param, e.g. 'BR_FAILED_REPLY -28'."""
    if record is None:
        return "missing"
    if record.get("status") == "ok":
        return "ok"
    brs = [b for b in record.get("br", []) if b != "BR_TRANSACTION_COMPLETE"]
    param = (record.get("ext_err") or {}).get("param")
    return f"{brs[-1] if brs else record.get('status')} {param}"


def result(out: ProbeOutput, name: str, **match) -> dict:
    """The first `result` line with this name (and fields), or an empty dict."""
    return out.one("result", name=name, **match) or {}


def errno_name(record: dict) -> str:
    return record.get("errno_name") or ("0" if record.get("errno") == 0 else str(record.get("errno", "missing")))


def note_dmesg(ctx: CaseContext, text: str) -> None:
    """Record whether the driver's log line appeared, as evidence rather than a check.

    binder's user-error lines go through pr_info_ratelimited (10 per 5 s per call
    site), so a line is legitimately missing when an earlier case used up the burst.
    """
    ctx.evidence.setdefault("dmesg_mentions", {})[text] = text in ctx.dmesg()
