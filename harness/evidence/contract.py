"""The probe's output contract, read from native_probe/contract.h.

The C probe and the Python side share one declaration: contract.h names every "ev" value
the probe prints (EV_* macros) and the numbers the harness expects back (the death
notice's cookie, the ping code). This module parses that header, so a case can only ask
for an event the probe declares, and compares against the declared numbers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.files import REPO_ROOT

HEADER = REPO_ROOT / "native_probe" / "contract.h"

# `#define NAME "string"` or `#define NAME 0x1f | 31` with an optional u suffix and trailing comment
_DEFINE = re.compile(r'#define\s+(?P<name>[A-Z][A-Z0-9_]*)\s+'
                     r'(?:"(?P<text>[^"\\]*)"|(?P<number>0[xX][0-9a-fA-F]+|\d+)[uU]?)'
                     r'\s*(?:/\*.*\*/)?\s*$')
_GUARD = re.compile(r"#(?:ifndef|endif|define\s+\w+_H\s*$)")


@dataclass(frozen=True)
class Contract:
    event_macros: dict[str, str]  # EV_NAME -> the "ev" value the probe prints
    numbers: dict[str, int]  # the numeric #defines, by macro name

    @property
    def events(self) -> frozenset[str]:
        return frozenset(self.event_macros.values())


def read_contract(path: Path = HEADER) -> Contract:
    """Parse contract.h; a line in another form is an error naming file and line, so the
    header cannot declare something Python would silently miss."""
    events: dict[str, str] = {}
    numbers: dict[str, int] = {}
    text = path.read_text()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.startswith("#") or _GUARD.match(line):
            continue
        m = _DEFINE.match(line)
        if m is None:
            raise ValueError(f"{path}:{lineno}: not of the form '#define NAME \"string\"' or "
                             f"'#define NAME number': {line.strip()}")
        name = m.group("name")
        if m.group("text") is not None:
            if not name.startswith("EV_"):
                raise ValueError(f"{path}:{lineno}: {name}: string macros are event names and start with EV_")
            events[name] = m.group("text")
        else:
            numbers[name] = int(m.group("number"), 0)
    return Contract(events, numbers)


CONTRACT = read_contract()
EVENTS = CONTRACT.events
DEATH_COOKIE = CONTRACT.numbers["DEATH_COOKIE"]
DEATH_COOKIE_CLEARED = CONTRACT.numbers["DEATH_COOKIE_CLEARED"]
PING_TRANSACTION = CONTRACT.numbers["PING_TRANSACTION_CODE"]
OBJ_PTR_STRONG = CONTRACT.numbers["OBJ_PTR_STRONG"]
OBJ_COOKIE_STRONG = CONTRACT.numbers["OBJ_COOKIE_STRONG"]
OBJ_PTR_WEAK = CONTRACT.numbers["OBJ_PTR_WEAK"]
OBJ_COOKIE_WEAK = CONTRACT.numbers["OBJ_COOKIE_WEAK"]
OBJ_UPDATE_CODE = CONTRACT.numbers["OBJ_UPDATE_CODE"]


def event(name: str) -> str:
    """`name` when the probe declares it as an event; ValueError otherwise (a typo in a case)."""
    if name not in EVENTS:
        raise ValueError(f"probe event {name!r} is not declared in {HEADER.relative_to(REPO_ROOT)}; "
                         f"declared: {', '.join(sorted(EVENTS))}")
    return name
