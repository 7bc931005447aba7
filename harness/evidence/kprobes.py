"""What the harness traces in each binder driver: the Kprobe (a kprobe event placed by a spec,
its struct-field offsets from BTF, a Rust function's mangled name from kallsyms) and the probes and
trace events of the C driver (binder.c, binder_alloc.c) and of the Rust driver
(drivers/android/binder/). harness/evidence/drivers.py says which driver gets which;
harness/evidence/trace.py arms them and parses what they recorded.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

KPROBE_GROUP = "binder_harness"
# A struct field's byte offset in a kprobe spec, e.g. "+{binder_buffer.user_data}($arg2)":
# taken from the BTF of the kernel under test (harness/evidence/btf.py), never written in.
STRUCT_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class Kprobe:
    """One kprobe event: `name` under KPROBE_GROUP, placed by `spec` (after the group/name)."""

    name: str
    spec: str  # e.g. "binder_alloc_copy_user_to_buffer bytes=$arg5:u64"
    ret: bool = False
    filter: str = ""  # ftrace filter expression, e.g. "to_user == 1"
    # the probed function's later names: ((major, minor, name), ...), e.g. ((6, 15, "anon_pipe_write"),)
    renamed: tuple[tuple[int, int, str], ...] = ()
    # A Rust function, whose symbol is mangled with a per-build hash: the length-prefixed pieces
    # of its path that its v0-mangled name carries, e.g. ("11rust_binder", "10allocation",
    # "10Allocation", "9copy_into"); its spec's first word is a readable placeholder until
    # with_symbol puts in the name the target's /proc/kallsyms gives (binder_driver.rust_symbols).
    rust_path: tuple[str, ...] = ()
    # a probe the kernel may lack (a config option, e.g. HARDENED_USERCOPY's __check_object_size):
    # arm_script defines it where it can and says `kprobe-missing=NAME` where it cannot
    optional: bool = False

    @property
    def function(self) -> str:
        return self.spec.split()[0]

    def definition(self) -> str:
        return f"{'r' if self.ret else 'p'}:{KPROBE_GROUP}/{self.name} {self.spec}"

    @property
    def struct_fields(self) -> tuple[str, ...]:
        """The struct fields its fetch args read, as "struct.member" ({struct.member} in spec)."""
        return tuple(dict.fromkeys(m.group(1) for m in STRUCT_FIELD.finditer(self.spec)))

    def with_offsets(self, offsets: dict[str, int]) -> Kprobe:
        """This probe with each {struct.member} replaced by its byte offset on the kernel under test."""
        missing = [f for f in self.struct_fields if f not in offsets]
        if missing:
            raise KeyError(f"kprobe {self.name}: no offset for {', '.join(missing)}")
        return replace(self, spec=STRUCT_FIELD.sub(lambda m: str(offsets[m.group(1)]), self.spec))

    def with_symbol(self, symbol: str) -> Kprobe:
        """This probe placed on `symbol`, the mangled name the kernel under test gives its rust_path."""
        return replace(self, spec=" ".join([symbol, *self.spec.split()[1:]]), rust_path=())

    def for_kernel(self, version: tuple[int, int]) -> Kprobe:
        """This probe on a kernel of `version`: the function under the name it has there."""
        names = [name for major, minor, name in self.renamed if (major, minor) <= version]
        if not names:
            return self
        return replace(self, spec=" ".join([names[-1], *self.spec.split()[1:]]), renamed=())


# binder_alloc_copy_user_to_buffer(alloc, buffer, buffer_offset, from, bytes) copies
# sender user memory into the target buffer. binder_buffer->user_data is the receiver's
# user address of that buffer; its offset (88 on Debian's 6.1, 6.12 and 7.2 builds) comes
# from the BTF of the module under test.
COPY_USER_TO_BUFFER = Kprobe(
    "copy_user_to_buffer",
    "binder_alloc_copy_user_to_buffer offset=$arg3:u64 from=$arg4:x64 bytes=$arg5:u64 "
    "user_data=+{binder_buffer.user_data}($arg2):x64",
)
# binder_alloc_copy_to_buffer(alloc, buffer, buffer_offset, src, bytes) writes kernel memory
# into the target buffer: translated objects, scatter-gather pointer fixups, fd fixups.
COPY_TO_BUFFER = Kprobe(
    "copy_to_buffer",
    "binder_alloc_copy_to_buffer offset=$arg3:u64 bytes=$arg5:u64 user_data=+{binder_buffer.user_data}($arg2):x64",
)
# __check_object_size(ptr, n, to_user): hardened usercopy sees every variable-size
# copy_{to,from}_user, so a payload copied out to user space would show here.
USERCOPY_CHECK = Kprobe("usercopy", "__check_object_size ptr=$arg1:x64 n=$arg2:u64 to_user=$arg3:u8",
                        filter="to_user == 1")

# The Rust driver's copy of a transaction's bytes from the sender, the counterpart of
# binder_alloc_copy_user_to_buffer (same event name, so the grouping below serves both):
# drivers/android/binder/allocation.rs Allocation::copy_into(&self, reader, offset, size), called
# by thread.rs Thread::copy_transaction_data (the data between and after objects) and
# Thread::apply_sg (scatter-gather buffers). It checks offset+size against self.size and hands
# self.offset + offset to page_range.rs ShrinkablePageRange::copy_from_user_slice (inlined into
# it), which copies page by page with kernel::page::Page::copy_from_user_slice_raw.
# self.offset is the buffer's offset in the receiver's whole mapping (process.rs
# Process::buffer_alloc: Allocation::new(.., new_alloc.offset, size, mapping.address + offset)).
# Its arguments are in the C ABI's registers (rdi self, rsi reader, rdx offset, rcx size), and it
# reads self.size at +0x90 (size_check: `cmp 0x90(%rdi),%rcx` after `add %rdx,%rcx`) and
# self.offset at +0x88 (`add 0x88(%rdi),%rdx` before the page walk): read from the disassembly of
# Allocation::copy_into in the qemu-x86_64-7.3-rust build. On the running kernel,
# tests/data/rust-copy-into-args.txt dumped $arg1..$arg4 and *$arg1 at +128..+160 for the
# transactions of one_copy.sync_sizes: $arg3 was 0 and $arg4 each payload size; +0x90 the
# allocation's size (max(len, 8)); +0x98 the receiver's buffer address (Allocation.ptr, which
# the receiver got as data.ptr.buffer); +0xa0 the transaction's debug_id (binder_transaction's
# transaction=N). The layout is rustc's and in no BTF: judge_delivery checks the debug_id and
# both destinations on every run, so a build that moves a field fails with what it read.
RUST_COPY_INTO = Kprobe(
    "copy_user_to_buffer",
    "rust_binder::allocation::Allocation::copy_into offset=$arg3:u64 bytes=$arg4:u64 buffer_offset=+136($arg1):u64 "
    "buffer_size=+144($arg1):u64 ptr=+152($arg1):x64 debug_id=+160($arg1):u64",
    rust_path=("11rust_binder", "10allocation", "10Allocation", "9copy_into"),
)

# The Rust driver's writes of kernel memory into a receiver's buffer, the counterpart of
# binder_alloc_copy_to_buffer (same event name): translated objects, the offsets array, pointer
# fixups, a security context. They all end in kernel::page::Page::write_raw(&self, src, offset,
# len) (rust/kernel/page.rs), per page: its 14 call sites in the qemu-x86_64-7.3-rust build are
# all rust_binder's (allocation.rs Allocation::write<u64>/<[u8]>, AllocationView::write<T> for
# three object types, the writes inlined into thread.rs Thread::copy_transaction_data, and the
# fd fixups of transaction.rs Transaction::do_work at receipt). It knows only the page, so these
# writes are counted, not located.
RUST_PAGE_WRITE = Kprobe(
    "copy_to_buffer", "kernel::page::Page::write_raw offset=$arg3:u64 bytes=$arg4:u64",
    rust_path=("6kernel", "4page", "4Page", "9write_raw"))

# The Rust driver's pages, which it has no trace events for (C: binder_alloc_page_start and
# binder_alloc_lru_start). page_range.rs ShrinkablePageRange::use_range, for each page of a new
# buffer: a page that is there is taken off the shrinker's LRU with list_lru_del (mm/list_lru.c,
# true when it was on it: a freed page reused), and a page that is not there is allocated by
# use_page_slow(&self, i) (#[cold], so a function of its own: $arg2 is the page's index).
RUST_USE_PAGE_SLOW = Kprobe(
    "use_page_slow", "rust_binder::page_range::ShrinkablePageRange::use_page_slow page=$arg2:u64",
    rust_path=("11rust_binder", "10page_range", "19ShrinkablePageRange", "13use_page_slow"))
# list_lru_del serves every list_lru in the kernel: only a return into the Rust driver's code
# (the event names its caller, e.g. "(_RNv..11rust_binder6thread..copy_transaction_data+0xc1d/..
# <- list_lru_del)", where use_range is inlined) counts as one of its pages.
RUST_LRU_DEL = Kprobe("lru_del", "list_lru_del on_lru=$retval:u8", ret=True)
RUST_CRATE = "11rust_binder"  # the Rust driver's crate, as its mangled symbols carry it

# The Rust driver's copies to user memory all go through rust/kernel/uaccess.rs UserSliceWriter:
# write_slice/write_raw call copy_to_user (the C helper rust_helper_copy_to_user, a function), and
# write<T> calls _copy_to_user (lib/usercopy.c) itself. Both take (to, from, n) like the C ones, and
# neither passes __check_object_size (uaccess.rs says write<T> skips it; the kernel may lack it).
RUST_USERCOPY = (
    Kprobe("usercopy", "rust_helper_copy_to_user ptr=$arg1:x64 n=$arg3:u64"),
    Kprobe("usercopy_raw", "_copy_to_user ptr=$arg1:x64 n=$arg3:u64"),
)
USERCOPY_OUT = ("usercopy", "usercopy_raw")  # the event names of copies to user memory

BINDER_EVENTS = (
    "binder/binder_transaction",
    "binder/binder_transaction_received",
    "binder/binder_transaction_alloc_buf",
    "binder/binder_command",
    "binder/binder_return",
    "binder/binder_ioctl",
    "binder/binder_ioctl_done",
)
# The Rust driver's (drivers/android/binder/rust_binder_events.h): the same names, no alloc_buf.
RUST_BINDER_EVENTS = tuple(e.replace("binder/", "rust_binder/", 1) for e in BINDER_EVENTS
                           if not e.endswith("_alloc_buf"))
