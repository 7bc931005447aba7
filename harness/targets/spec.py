"""A target spec (DESIGN §2), parsed once into a value: the only parser of `--target` text.

    qemu:ARCH                 a guest booted here (ARCH one of harness/arches.py GUEST_ARCHES)
    ssh://USER@HOST[:PORT]    a Linux host over ssh (port 22 by default)
    adb | adb:SERIAL          an Android device (without a serial: the one attached)
    local                     this host's own kernel

`text` keeps the spec as given: it is what the reports and progress lines show (report.json's
`target.spec`), so `str(spec)` is the text.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from harness.arches import GUEST_ARCHES
from harness.errors import ConfigError

TargetKind = Literal["qemu", "ssh", "adb", "local"]
FORMS = (*(f"qemu:{a}" for a in GUEST_ARCHES), "ssh://USER@HOST[:PORT]", "adb[:SERIAL]", "local")
QEMU_SPECS = " or ".join(f for f in FORMS if f.startswith("qemu:"))
_KNOWN = f"use {', '.join(FORMS[:-1])} or {FORMS[-1]}"
_SSH_HINT = "use ssh://USER@HOST[:PORT]"


@dataclass(frozen=True)
class TargetSpec:
    kind: TargetKind
    text: str  # as given on the command line, a matrix file or a test
    arch: str | None = None  # qemu: the guest's arch
    user: str = ""  # ssh
    host: str = ""  # ssh
    port: int = 0  # ssh
    serial: str | None = None  # adb: None takes the one device attached

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> TargetSpec:
        """The spec `text` names; anything unknown or malformed is one ConfigError line."""
        if text.startswith("qemu:"):
            arch = text.split(":", 1)[1]
            if arch not in GUEST_ARCHES:
                raise ConfigError(f"--target {text}: unknown QEMU arch {arch!r}; use {QEMU_SPECS}")
            return cls("qemu", text, arch=arch)
        if text.startswith("ssh://"):
            return _ssh(text)
        if text == "adb":
            return cls("adb", text)
        if text.startswith("adb:"):
            serial = text[4:]
            if not serial or any(c.isspace() for c in serial):
                raise ConfigError(f"--target {text}: empty or malformed serial; use adb or adb:SERIAL")
            return cls("adb", text, serial=serial)
        if text == "local":
            return cls("local", text)
        raise ConfigError(f"--target {text}: unknown target; {_KNOWN}")


def _ssh(text: str) -> TargetSpec:
    try:
        parts = urlsplit(text)
        port = parts.port or 22
    except ValueError as exc:
        raise ConfigError(f"--target {text}: {exc}; {_SSH_HINT}") from None
    if parts.scheme != "ssh" or not parts.hostname:
        raise ConfigError(f"--target {text}: no host; {_SSH_HINT}")
    if not parts.username:
        raise ConfigError(f"--target {text}: no user; {_SSH_HINT}")
    if parts.password is not None:
        raise ConfigError(f"--target {text}: passwords in the spec are not accepted; use --identity FILE or an agent")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"--target {text}: unexpected path or query; {_SSH_HINT}")
    return TargetSpec("ssh", text, user=parts.username, host=parts.hostname, port=port)
