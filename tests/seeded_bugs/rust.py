"""Seeded bugs in the Rust binder driver: one-edit seeded *kernels*.

The Rust driver (drivers/android/binder/, CONFIG_ANDROID_BINDER_IPC_RUST) is a bool Kconfig,
built into the kernel, so a seeded bug in it cannot be a module like build.py's: it is the
recipe's kernel rebuilt with one edit (harness/building/kernel_build.py `ensure_seeded`, which
keeps one build tree for all seeds and rebuilds only what the edit touches).

Each seed names the case it must fail and the check (by the start of its name in report.json
`cases[].checks[].name`) that passes on the stock Rust kernel and fails on the seed.

Command line::

    python -m tests.seeded_bugs.rust rust_double_copy   # builds if needed, prints the bzImage
    python -m tests.seeded_bugs.rust --list
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.building.kernel_build import SourceEdit

RECIPE = "qemu-x86_64-7.3-rust"  # the stock Rust kernel the seeds are edits of
# Set to 1 to run tests/test_rust_seeded.py: it builds each seeded kernel the cache lacks (the
# first about as long as the stock kernel, then a few minutes each) and boots it.
RUST_SEEDS_ENV = "BINDER_HARNESS_RUST_SEEDS"


@dataclass(frozen=True)
class RustSeed:
    name: str
    description: str   # one line: what is broken
    edit: SourceEdit   # the one edit, in drivers/android/binder/
    caught_by: str     # the case meant to catch it
    check: str         # the name of the check that fails on the seed (and passes on stock Rust)
    expected: Any      # that check's expected value (what stock Rust measures)
    measured: Any      # what it measured on the seeded kernel
    control: str       # a case the seed must leave passing


RUST_SEEDS: dict[str, RustSeed] = {s.name: s for s in (
    RustSeed(
        name="rust_double_copy",
        description="thread.rs `Thread::copy_transaction_data()` copies the remaining raw data (the "
                    "whole data region of a call without objects) twice, the first time through a clone "
                    "of the user reader, so the payload still arrives intact.",
        edit=SourceEdit(
            path="thread.rs",
            old="        // Copy remaining raw data.\n        alloc.copy_into(\n",
            new="        // Copy remaining raw data.\n"
                "        // seeded bug rust_double_copy: the data region is copied twice\n"
                "        alloc.copy_into(&mut buffer_reader.clone_reader(), end_of_previous_object,"
                " data_size - end_of_previous_object)?;\n"
                "        alloc.copy_into(\n"),
        caught_by="one_copy.sync_sizes",
        check="size 8: kernel copies per payload byte (traced Allocation::copy_into)",
        expected=1.0,
        measured=2.0,
        control="protocol.version",
    ),
    RustSeed(
        name="rust_oneway_full_space",
        description="range_alloc/tree.rs `TreeRangeAllocator::from_array()` sets `free_oneway_space` to "
                    "the whole mapping, not half: once a process holds more than TREE_THRESHOLD (8) "
                    "buffers, oneway calls may fill the whole buffer.",
        edit=SourceEdit(
            path="range_alloc/tree.rs",
            old="            free_oneway_space: size / 2,\n",
            new="            free_oneway_space: size, // seeded bug rust_oneway_full_space\n"),
        caught_by="limits.async_half",
        check="oneway 64 KiB calls accepted by a non-freeing receiver",
        expected=32,
        measured=40,
        control="protocol.version",
    ),
    RustSeed(
        name="rust_thread_exit_einval",
        description="process.rs `Process::ioctl_write_only()` BINDER_THREAD_EXIT removes the thread, "
                    "then returns EINVAL.",
        edit=SourceEdit(
            path="process.rs",
            old="            uapi::BINDER_THREAD_EXIT => this.remove_thread(thread),\n",
            new="            uapi::BINDER_THREAD_EXIT => {\n"
                "                this.remove_thread(thread);\n"
                "                return Err(EINVAL); // seeded bug rust_thread_exit_einval\n"
                "            }\n"),
        caught_by="protocol.thread_exit",
        check="BINDER_THREAD_EXIT (first)",
        expected="0",
        measured="EINVAL",
        control="protocol.version",
    ),
)}


def build_seed(name: str, progress=print) -> Path:
    """The seeded kernel's bzImage, built (incrementally) when the cache does not hold it."""
    from harness.building.kernel_build import ensure_seeded
    from harness.building.recipes import resolve_recipe

    seed = RUST_SEEDS[name]
    return ensure_seeded(resolve_recipe(RECIPE, None), seed.name, seed.edit, progress).kernel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.seeded_bugs.rust",
                                     description="Build a Rust binder seeded kernel; prints its bzImage.")
    parser.add_argument("seed", nargs="?", help=f"one of: {', '.join(RUST_SEEDS)}")
    parser.add_argument("--list", action="store_true", help="list the seeds and exit")
    args = parser.parse_args(argv)
    if args.list:
        for s in RUST_SEEDS.values():
            print(f"{s.name}\t{s.caught_by}\t{s.description}")
        return 0
    if args.seed not in RUST_SEEDS:
        print(f"error: unknown Rust seed {args.seed!r}; one of: {', '.join(RUST_SEEDS)}", file=sys.stderr)
        return 2
    from harness.errors import ConfigError

    try:
        print(build_seed(args.seed, lambda m: print(m, file=sys.stderr)))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
