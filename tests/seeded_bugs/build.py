"""Build deliberately broken ``binder_linux.ko`` modules ("seeded bugs").

The harness's own tests use these to prove that its verdicts can fail: each
seeded bug changes one behaviour that a case in DESIGN §4 asserts, and the
case meant to catch it is named in ``SeededBug.caught_by``.

A module is built out of tree from Debian's ``linux-source-X.Y`` at the same
Debian version as the installed ``linux-headers-RELEASE`` package, with the
source tree's own ``drivers/android/Makefile`` and the headers' config (so the
object list, the module name and CONFIG_ANDROID_BINDER_DEVICES are Debian's).
The result loads on the stock kernel with an out-of-tree taint notice.
``FEATURES`` builds the unbroken driver with a feature Debian leaves out:
``binderfs`` compiles binderfs in, as GKI kernels do.

Command line::

    python -m tests.seeded_bugs.build double_copy     # prints the .ko path
    python -m tests.seeded_bugs.build control         # unmodified rebuild
    python -m tests.seeded_bugs.build binderfs        # binderfs compiled in
    python -m tests.seeded_bugs.build revert_ctx_mgr_ref0   # an upstream fix undone (REVERTS)
    python -m tests.seeded_bugs.build --list
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from harness.building import debian
from harness.errors import ConfigError

DEFAULT_RELEASE = "6.1.0-57-amd64"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "binder-harness" / "seeded"

# Files of drivers/android that the build needs; the extraction fails loudly
# if any of them is missing from the source tarball.
_REQUIRED_SOURCES = ("Makefile", "binder.c", "binder_alloc.c", "binder_alloc.h",
                     "binder_internal.h", "binder_trace.h")
# Bump when the build recipe changes in a way that should invalidate modules.
_RECIPE_VERSION = "3"  # 3: no BTF added here; the harness makes it from DWARF (harness/building/module_btf.py)


class SeededBuildError(Exception):
    """A seeded module cannot be built; the message is one line."""


class AnchorNotFound(SeededBuildError):
    """A patch's anchor text is missing or ambiguous in the source."""


@dataclass(frozen=True)
class SeededBug:
    name: str
    family: str          # "one_copy" | "limits" | "protocol" | "health" | "objects" | "loopers"
    description: str     # one line: what is broken
    caught_by: str       # case id meant to catch it
    # {name relative to drivers/android: text} -> modified copy. Raises
    # AnchorNotFound when its anchor is not found exactly once.
    patch: Callable[[dict[str, str]], dict[str, str]]


def _replace(files: dict[str, str], path: str, anchor: str, new: str,
             bug: str) -> dict[str, str]:
    """Return a copy of files with the single occurrence of anchor replaced."""
    text = files.get(path)
    if text is None:
        raise AnchorNotFound(f"seeded bug {bug}: {path} is not in the source")
    count = text.count(anchor)
    if count != 1:
        first = anchor.strip().splitlines()[0].strip()
        raise AnchorNotFound(
            f"seeded bug {bug}: anchor {first!r} found {count} times in {path}, "
            "expected exactly once")
    out = dict(files)
    out[path] = text.replace(anchor, new)
    return out


# --- one_copy -------------------------------------------------------------

# binder_transaction(): right after the offsets array has been copied in and
# before the per-object loop, copy the whole data region a second time. The
# object loop and the final copy then write the same bytes again, so the
# payload (and any translated objects) still arrive intact, but the
# binder_alloc_copy_user_to_buffer kprobe sees 2 * data_size + offsets_size.
_DOUBLE_COPY_ANCHOR = """\
	if (!IS_ALIGNED(tr->offsets_size, sizeof(binder_size_t))) {
"""
_DOUBLE_COPY_NEW = """\
	/* seeded bug double_copy: the data region is copied twice */
	(void)binder_alloc_copy_user_to_buffer(&target_proc->alloc, t->buffer,
					       0, user_buffer, tr->data_size);
	if (!IS_ALIGNED(tr->offsets_size, sizeof(binder_size_t))) {
"""


def _patch_double_copy(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder.c", _DOUBLE_COPY_ANCHOR, _DOUBLE_COPY_NEW,
                    "double_copy")


# --- limits ---------------------------------------------------------------

# binder_alloc_mmap_handler(): the area is the whole vma instead of at most 4 MiB.
_MMAP_CLAMP_ANCHOR = """\
	alloc->buffer_size = min_t(unsigned long, vma->vm_end - vma->vm_start,
				   SZ_4M);
"""
_MMAP_CLAMP_NEW = """\
	/* seeded bug no_mmap_clamp: no 4 MiB clamp */
	alloc->buffer_size = vma->vm_end - vma->vm_start;
"""


def _patch_no_mmap_clamp(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder_alloc.c", _MMAP_CLAMP_ANCHOR,
                    _MMAP_CLAMP_NEW, "no_mmap_clamp")


# binder_alloc_mmap_handler(): oneway (async) space is the whole area, not half.
_ASYNC_HALF_ANCHOR = """\
	alloc->free_async_space = alloc->buffer_size / 2;
"""
_ASYNC_HALF_NEW = """\
	/* seeded bug async_full_space: oneway space is the whole area */
	alloc->free_async_space = alloc->buffer_size;
"""


def _patch_async_full_space(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder_alloc.c", _ASYNC_HALF_ANCHOR,
                    _ASYNC_HALF_NEW, "async_full_space")


# --- protocol -------------------------------------------------------------

# binder_ioctl() BINDER_VERSION: reports 7 instead of 8.
_VERSION_ANCHOR = """\
		if (put_user(BINDER_CURRENT_PROTOCOL_VERSION,
			     &ver->protocol_version)) {
"""
_VERSION_NEW = """\
		/* seeded bug wrong_version: reports protocol 7 */
		if (put_user(7, &ver->protocol_version)) {
"""


def _patch_wrong_version(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder.c", _VERSION_ANCHOR, _VERSION_NEW,
                    "wrong_version")


# binder_thread_read(): BR_DEAD_BINDER carries a cookie one higher than the
# one BC_REQUEST_DEATH_NOTIFICATION registered (BR_CLEAR_DEATH_NOTIFICATION_DONE
# keeps the right one).
_DEATH_COOKIE_ANCHOR = """\
			cookie = death->cookie;
"""
_DEATH_COOKIE_NEW = """\
			/* seeded bug dead_binder_cookie: off by one on BR_DEAD_BINDER */
			cookie = death->cookie + (cmd == BR_DEAD_BINDER);
"""


def _patch_dead_binder_cookie(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder.c", _DEATH_COOKIE_ANCHOR, _DEATH_COOKIE_NEW, "dead_binder_cookie")


# --- health ---------------------------------------------------------------

# binder_transaction(): a WARN once per sending process (a flag in struct
# binder_proc), so every case - each runs fresh probe processes - gets its own
# "WARNING:" and Call Trace even when one guest boot serves many cases, while
# a case with thousands of transactions does not flood dmesg. The transaction
# itself goes on untouched.
_WARN_FIELD_ANCHOR = """\
	bool is_frozen;
"""
_WARN_FIELD_NEW = """\
	bool is_frozen;
	bool seeded_bug_warned;	/* seeded bug warn_on_transaction */
"""
_WARN_ANCHOR = """\
	trace_binder_transaction_alloc_buf(t->buffer);
"""
_WARN_NEW = """\
	trace_binder_transaction_alloc_buf(t->buffer);
	/* seeded bug warn_on_transaction: a kernel warning per sending process */
	if (!proc->seeded_bug_warned) {
		proc->seeded_bug_warned = true;
		WARN_ON(1);
	}
"""


def _patch_warn_on_transaction(files: dict[str, str]) -> dict[str, str]:
    files = _replace(files, "binder_internal.h", _WARN_FIELD_ANCHOR,
                     _WARN_FIELD_NEW, "warn_on_transaction")
    return _replace(files, "binder.c", _WARN_ANCHOR, _WARN_NEW,
                    "warn_on_transaction")


# --- objects -----------------------------------------------------------------

# binder_translate_binder(): the sender's cookie is left in the object the
# receiver gets (the anchor includes the line before: the handle branch of
# binder_translate_handle also zeroes its cookie).
_COOKIE_ANCHOR = """\
	fp->handle = rdata.desc;
	fp->cookie = 0;
"""
_COOKIE_NEW = """\
	fp->handle = rdata.desc;
	/* seeded bug cookie_leak: the sender's cookie reaches the receiver */
"""


def _patch_cookie_leak(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder.c", _COOKIE_ANCHOR, _COOKIE_NEW, "cookie_leak")


# binder_apply_fd_fixups(): received fds are not close-on-exec.
_CLOEXEC_ANCHOR = """\
		int fd = get_unused_fd_flags(O_CLOEXEC);
"""
_CLOEXEC_NEW = """\
		int fd = get_unused_fd_flags(0); /* seeded bug fd_no_cloexec */
"""


def _patch_fd_no_cloexec(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder.c", _CLOEXEC_ANCHOR, _CLOEXEC_NEW, "fd_no_cloexec")


# binder_transaction_buffer_release(): BC_FREE_BUFFER does not close the fds of
# an FDA, so they leak in the receiver.
_FDA_CLOSE_ANCHOR = """\
					binder_deferred_fd_close(fd);
"""
_FDA_CLOSE_NEW = """\
					/* seeded bug fda_fd_leak: binder_deferred_fd_close(fd) */;
"""


def _patch_fda_fd_leak(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder.c", _FDA_CLOSE_ANCHOR, _FDA_CLOSE_NEW, "fda_fd_leak")


# binder_fixup_parent(): the parent pointer is never fixed up, so the receiver
# sees the sender's address of the child buffer.
_FIXUP_ANCHOR = """\
	return binder_add_fixup(pf_head, buffer_offset, bp->buffer, 0);
"""
_FIXUP_NEW = """\
	return 0; /* seeded bug no_parent_fixup */
"""


def _patch_no_parent_fixup(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder.c", _FIXUP_ANCHOR, _FIXUP_NEW, "no_parent_fixup")


# binder_get_object(): offsets need not be 4-byte aligned.
_ALIGN_ANCHOR = """\
	if (offset > buffer->data_size || read_size < sizeof(*hdr) ||
	    !IS_ALIGNED(offset, sizeof(u32)))
"""
_ALIGN_NEW = """\
	/* seeded bug unaligned_offsets: no IS_ALIGNED(offset, sizeof(u32)) */
	if (offset > buffer->data_size || read_size < sizeof(*hdr))
"""


def _patch_unaligned_offsets(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder.c", _ALIGN_ANCHOR, _ALIGN_NEW, "unaligned_offsets")


# binder_free_buf_locked(): freeing a oneway buffer does not return its async space.
_ASYNC_LEAK_ANCHOR = """\
		alloc->free_async_space += buffer_size;
"""
_ASYNC_LEAK_NEW = """\
		/* seeded bug async_space_leak: free_async_space += buffer_size */;
"""


def _patch_async_space_leak(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder_alloc.c", _ASYNC_LEAK_ANCHOR, _ASYNC_LEAK_NEW, "async_space_leak")


# binder_proc_transaction(): a oneway superseded by TF_UPDATE_TXN keeps the file
# references of its fds (the fix that added this line is in 6.1 stable).
_OUTDATED_FIXUPS_ANCHOR = """\
		binder_free_txn_fixups(t_outdated);
"""
_OUTDATED_FIXUPS_NEW = """\
		/* seeded bug outdated_fd_leak: binder_free_txn_fixups(t_outdated) */;
"""


def _patch_outdated_fd_leak(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder.c", _OUTDATED_FIXUPS_ANCHOR, _OUTDATED_FIXUPS_NEW, "outdated_fd_leak")


# --- loopers -----------------------------------------------------------------

# binder_thread_read(): one looper more than max_threads is requested.
_SPAWN_ANCHOR = """\
	    proc->requested_threads_started < proc->max_threads &&
"""
_SPAWN_NEW = """\
	    proc->requested_threads_started <= proc->max_threads && /* seeded bug spawn_one_more */
"""


def _patch_spawn_one_more(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder.c", _SPAWN_ANCHOR, _SPAWN_NEW, "spawn_one_more")


# binder_poll(): only the thread's own work counts, not the process's.
_POLL_ANCHOR = """\
	if (binder_has_work(thread, wait_for_proc_work))
		return EPOLLIN;
"""
_POLL_NEW = """\
	if (binder_has_work(thread, false)) /* seeded bug poll_no_proc_work */
		return EPOLLIN;
"""


def _patch_poll_no_proc_work(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder.c", _POLL_ANCHOR, _POLL_NEW, "poll_no_proc_work")


# --- layout (not a bug: the harness must still be right) ---------------------

# struct binder_buffer gets a field before user_data, so user_data moves from 88 to 96 and
# a kprobe reading +88($arg2) would read extra_buffers_size's neighbour, not the address.
# (user_data is `void __user *` in 6.1 and `unsigned long` in 6.12: the anchor is the line before)
_SHIFT_ANCHOR = """\
	size_t extra_buffers_size;
"""
_SHIFT_NEW = """\
	size_t extra_buffers_size;
	unsigned long seeded_layout_pad; /* seeded bug shifted_user_data: a layout change only, user_data moves by 8 */
"""


def _patch_shifted_user_data(files: dict[str, str]) -> dict[str, str]:
    return _replace(files, "binder_alloc.h", _SHIFT_ANCHOR, _SHIFT_NEW, "shifted_user_data")


# Rebuilt modules that change no behaviour, only a struct layout: every case must still pass,
# with kprobe offsets taken from the module's own BTF.
LAYOUTS: dict[str, SeededBug] = {b.name: b for b in (
    SeededBug(
        name="shifted_user_data", family="layout",
        description="struct binder_buffer has an extra field before user_data (offset 88 -> 96 "
                    "on 64-bit); behaviour unchanged",
        caught_by="", patch=_patch_shifted_user_data),
)}

# --- issue 13b: one seeded bug for every case that had none ------------------
# Each is one small edit; _simple() builds its patch function from the anchor.

def _simple(path: str, anchor: str, new: str, bug: str) -> Callable[[dict[str, str]], dict[str, str]]:
    def patch(files: dict[str, str]) -> dict[str, str]:
        return _replace(files, path, anchor, new, bug)
    return patch


# binder_ioctl() BINDER_SET_MAX_THREADS: a failed copy_from_user gives -EFAULT
# instead of the -EINVAL 6.1 returns (protocol.null_args).
_NULL_MAX_THREADS_ANCHOR = """\
		if (copy_from_user(&max_threads, ubuf,
				   sizeof(max_threads))) {
			ret = -EINVAL;
"""
_NULL_MAX_THREADS_NEW = """\
		if (copy_from_user(&max_threads, ubuf,
				   sizeof(max_threads))) {
			ret = -EFAULT; /* seeded bug max_threads_null_efault */
"""

# binder_ioctl() BINDER_SET_MAX_THREADS: values above INT_MAX are refused
# (protocol.set_max_threads).
_MAX_THREADS_RANGE_ANCHOR = """\
		binder_inner_proc_lock(proc);
		proc->max_threads = max_threads;
"""
_MAX_THREADS_RANGE_NEW = """\
		if ((int)max_threads < 0) { /* seeded bug max_threads_signed */
			ret = -EINVAL;
			goto err;
		}
		binder_inner_proc_lock(proc);
		proc->max_threads = max_threads;
"""

# binder_ioctl_set_ctx_mgr(): a second context manager gets -EEXIST, not -EBUSY
# (protocol.context_mgr_busy).
_CTX_MGR_ANCHOR = """\
		pr_err("BINDER_SET_CONTEXT_MGR already set\\n");
		ret = -EBUSY;
"""
_CTX_MGR_NEW = """\
		pr_err("BINDER_SET_CONTEXT_MGR already set\\n");
		ret = -EEXIST; /* seeded bug ctx_mgr_eexist */
"""

# binder_ioctl() BINDER_THREAD_EXIT: the thread is released but the ioctl
# returns -EINVAL (protocol.thread_exit).
_THREAD_EXIT_ANCHOR = """\
		binder_thread_release(proc, thread);
		thread = NULL;
		break;
"""
_THREAD_EXIT_NEW = """\
		binder_thread_release(proc, thread);
		thread = NULL;
		ret = -EINVAL; /* seeded bug thread_exit_einval */
		goto err;
"""

# binder_thread_read(): a non-blocking read with no work fails with -ENODATA,
# not -EAGAIN (protocol.read_empty_nonblock).
_NONBLOCK_ANCHOR = """\
		if (!binder_has_work(thread, wait_for_proc_work))
			ret = -EAGAIN;
"""
_NONBLOCK_NEW = """\
		if (!binder_has_work(thread, wait_for_proc_work))
			ret = -ENODATA; /* seeded bug nonblock_enodata */
"""

# binder_transaction(): a call to a handle the sender has no ref for gets
# BR_DEAD_REPLY instead of BR_FAILED_REPLY (protocol.invalid_handle, and the
# call after the last ref is dropped in protocol.refcounts).
_INVALID_HANDLE_ANCHOR = """\
				binder_user_error("%d:%d got transaction to invalid handle, %u\\n",
						  proc->pid, thread->pid, tr->target.handle);
				return_error = BR_FAILED_REPLY;
"""
_INVALID_HANDLE_NEW = """\
				binder_user_error("%d:%d got transaction to invalid handle, %u\\n",
						  proc->pid, thread->pid, tr->target.handle);
				return_error = BR_DEAD_REPLY; /* seeded bug invalid_handle_dead_reply */
"""

# binder_thread_read(): the transaction code reaches the receiver cut to its
# low 24 bits; codes from FIRST_CALL_TRANSACTION up are small and unchanged,
# PING_TRANSACTION ('_PNG', 0x5f504e47) is not (protocol.ping).
_CODE_ANCHOR = """\
		trd->code = t->code;
"""
_CODE_NEW = """\
		trd->code = t->code & 0xffffff; /* seeded bug code_truncated */
"""

# binder_transaction(): the context manager's own process calling handle 0
# gets -EPERM in the extended error, not -EINVAL (protocol.self_call_rejected).
_SELF_CALL_ANCHOR = """\
				binder_user_error("%d:%d got transaction to context manager from process owning it\\n",
						  proc->pid, thread->pid);
				return_error = BR_FAILED_REPLY;
				return_error_param = -EINVAL;
"""
_SELF_CALL_NEW = """\
				binder_user_error("%d:%d got transaction to context manager from process owning it\\n",
						  proc->pid, thread->pid);
				return_error = BR_FAILED_REPLY;
				return_error_param = -EPERM; /* seeded bug self_call_eperm */
"""

# binder_transaction(): an unreadable data pointer gives -EINVAL, not -EFAULT
# (the final data copy; protocol.bad_buffer_ptr).
_BAD_DATA_PTR_ANCHOR = """\
				tr->data_size - user_offset)) {
		binder_user_error("%d:%d got transaction with invalid data ptr\\n",
				proc->pid, thread->pid);
		return_error = BR_FAILED_REPLY;
		return_error_param = -EFAULT;
"""
_BAD_DATA_PTR_NEW = """\
				tr->data_size - user_offset)) {
		binder_user_error("%d:%d got transaction with invalid data ptr\\n",
				proc->pid, thread->pid);
		return_error = BR_FAILED_REPLY;
		return_error_param = -EINVAL; /* seeded bug bad_data_ptr_einval */
"""

# binder_proc_transaction(): a sync call to a frozen process is refused but not
# recorded in proc->sync_recv (protocol.freeze: BINDER_GET_FROZEN_INFO).
_SYNC_RECV_ANCHOR = """\
		proc->sync_recv |= !oneway;
"""
_SYNC_RECV_NEW = """\
		/* seeded bug frozen_sync_recv_lost: proc->sync_recv |= !oneway */;
"""

# binder_thread_write() BC_REGISTER_LOOPER without a BR_SPAWN_LOOPER request is
# not marked INVALID (loopers.register_enter).
_REGISTER_ANCHOR = """\
			} else if (proc->requested_threads == 0) {
				thread->looper |= BINDER_LOOPER_STATE_INVALID;
"""
_REGISTER_NEW = """\
			} else if (proc->requested_threads == 0) {
				/* seeded bug register_not_invalid: no BINDER_LOOPER_STATE_INVALID */
"""

# binder_update_page_range(): freed pages never go on binder_alloc_lru, and a
# page still present is reused without taking it off the LRU. The pages stay
# pinned in the process: no LRU reuse to trace (one_copy.lazy_pages), nothing
# for the shrinker (limits.shrinker).
_NO_LRU_REUSE_ANCHOR = """\
		if (page->page_ptr) {
			trace_binder_alloc_lru_start(alloc, index);

			on_lru = list_lru_del(&binder_alloc_lru, &page->lru);
			WARN_ON(!on_lru);

			trace_binder_alloc_lru_end(alloc, index);
			continue;
		}
"""
_NO_LRU_REUSE_NEW = """\
		if (page->page_ptr) {
			on_lru = false; /* seeded bug pages_never_on_lru: no list_lru_del */
			continue;
		}
"""
_NO_LRU_ADD_ANCHOR = """\
		trace_binder_free_lru_start(alloc, index);

		ret = list_lru_add(&binder_alloc_lru, &page->lru);
		WARN_ON(!ret);

		trace_binder_free_lru_end(alloc, index);
"""
_NO_LRU_ADD_NEW = """\
		ret = false; /* seeded bug pages_never_on_lru: no list_lru_add */
"""


def _patch_pages_never_on_lru(files: dict[str, str]) -> dict[str, str]:
    files = _replace(files, "binder_alloc.c", _NO_LRU_REUSE_ANCHOR, _NO_LRU_REUSE_NEW, "pages_never_on_lru")
    return _replace(files, "binder_alloc.c", _NO_LRU_ADD_ANCHOR, _NO_LRU_ADD_NEW, "pages_never_on_lru")


# binder_mmap(): VM_MAYWRITE is left set, so mprotect(PROT_WRITE) succeeds on
# the read-only mapping (limits.mmap_readonly).
_MAYWRITE_ANCHOR = """\
	vma->vm_flags &= ~VM_MAYWRITE;
"""
_MAYWRITE_NEW = """\
	/* seeded bug maywrite_kept: vma->vm_flags &= ~VM_MAYWRITE */
"""

# binder_alloc_mmap_handler(): a second mmap on the same fd gets -EEXIST, not
# -EBUSY (limits.mmap_twice, compat.limits).
_ALREADY_MAPPED_ANCHOR = """\
		ret = -EBUSY;
		failure_string = "already mapped";
"""
_ALREADY_MAPPED_NEW = """\
		ret = -EEXIST; /* seeded bug remap_eexist */
		failure_string = "already mapped";
"""

# binder_alloc_new_buf_locked(): oneway spam detection starts below 1/20 of
# the area free in async space instead of 1/10 (limits.oneway_spam).
_SPAM_ANCHOR = """\
		if (alloc->free_async_space < alloc->buffer_size / 10) {
"""
_SPAM_NEW = """\
		if (alloc->free_async_space < alloc->buffer_size / 20) { /* seeded bug spam_late */
"""

# binder_thread_write() BC_FREE_BUFFER: the buffer is looked up and marked as
# freed by user space, but binder_free_buf() is never called: its space is
# lost until the process exits (limits.free_reuse).
_FREE_BUFFER_ANCHOR = """\
			binder_free_buf(proc, thread, buffer, false);
"""
_FREE_BUFFER_NEW = """\
			/* seeded bug free_buffer_ignored: binder_free_buf(proc, thread, buffer, false) */;
"""

# binder_alloc_new_buf_locked(): with no vma left it returns -ENOSPC, not
# -ESRCH, so binder_transaction answers BR_FAILED_REPLY, not BR_DEAD_REPLY
# (limits.munmap_dead).
_NO_VMA_ANCHOR = """\
		return ERR_PTR(-ESRCH);
"""
_NO_VMA_NEW = """\
		return ERR_PTR(-ENOSPC); /* seeded bug no_vma_enospc */
"""


# binder_release_work(): BINDER_THREAD_EXIT moves the exiting thread's node work
# to the process instead of dropping it, so the owner does get BR_INCREFS and
# BR_ACQUIRE for a node whose first refs were queued on that thread
# (protocol.refs_after_thread_exit). Process release drains proc->todo itself
# (the list test keeps that from looping).
_NODE_WORK_ANCHOR = """\
		case BINDER_WORK_NODE:
			break;
"""
_NODE_WORK_NEW = """\
		case BINDER_WORK_NODE: /* seeded bug node_work_kept: moved to the process */
			if (list != &proc->todo) {
				binder_inner_proc_lock(proc);
				binder_enqueue_work_ilocked(w, &proc->todo);
				binder_wakeup_proc_ilocked(proc);
				binder_inner_proc_unlock(proc);
			}
			break;
"""

# binder_transaction()'s error path after the target buffer was allocated (a bad offset,
# object or pointer): the buffer is not given back (stress.random_commands).
_FAILED_TXN_FREE_ANCHOR = """\
	t->buffer->transaction = NULL;
	binder_alloc_free_buf(&target_proc->alloc, t->buffer);
err_binder_alloc_buf_failed:
"""
_FAILED_TXN_FREE_NEW = """\
	t->buffer->transaction = NULL;
	/* seeded bug failed_txn_buffer_kept: binder_alloc_free_buf() skipped */
err_binder_alloc_buf_failed:
"""

# binder_inc_node_nilocked(): a weak increment with no target list on a node that has no weak
# ref and no pending work is refused with a pr_err, as binder did before upstream dropped that
# check. In protocol.refs_after_thread_exit the owner's BINDER_THREAD_EXIT dropped the node's
# queued work, so the manager's BC_INCREFS fails (binder_update_ref_for_handle: "IncRefs 0
# refcount change on invalid ref", a binder_user_error) while every ioctl still returns 0 and
# every BR the probe reads is unchanged: only the kernel log shows it (the undeclared-line rule).
_INC_WEAK_ANCHOR = """\
		if (!node->has_weak_ref && target_list && list_empty(&node->work.entry))
			binder_enqueue_work_ilocked(&node->work, target_list);
"""
_INC_WEAK_NEW = """\
		if (!node->has_weak_ref && list_empty(&node->work.entry)) {
			if (target_list == NULL) { /* seeded bug inc_weak_refused */
				pr_err("invalid inc weak node for %d\\n", node->debug_id);
				return -EINVAL;
			}
			binder_enqueue_work_ilocked(&node->work, target_list);
		}
"""

# binder_free_transaction(): the transaction is never freed (no kfree, so no
# binder_stats_deleted): every transaction that completes stays allocated. Nothing user space
# sees changes; binder's own `stats` keep "transaction: active N" after the case (the
# driver-accounting check).
_TXN_LEAK_ANCHOR = """\
	binder_free_txn_fixups(t);
	kfree(t);
	binder_stats_deleted(BINDER_STAT_TRANSACTION);
}
"""
_TXN_LEAK_NEW = """\
	binder_free_txn_fixups(t); /* seeded bug transaction_leak: t is never freed */
}
"""

# --- patterns (cases protocol.cm_own_handle, objects.array_edges, objects.undelivered) ---------

# binder_thread_write() BC_INCREFS/BC_ACQUIRE: the context manager's own process may take a
# reference on handle 0, i.e. on its own node (protocol.cm_own_handle).
_CM_DESC0_ANCHOR = """\
					if (ctx_mgr_node->proc == proc) {
"""
_CM_DESC0_NEW = """\
					/* seeded bug cm_desc0_allowed: the manager may acquire desc 0 */
					if (ctx_mgr_node->proc == proc && 0) {
"""


# binder_alloc_new_buf_locked(): a free buffer of exactly the size asked for is passed over
# (size >= buffer_size walks right), so an exact fit of the only free buffer gets -ENOSPC
# (objects.array_edges).
_EXACT_FIT_ANCHOR = """\
		} else if (size > buffer_size)
"""
_EXACT_FIT_NEW = """\
		} else if (size >= buffer_size) /* seeded bug exact_fit_refused */
"""


# binder_proc_transaction(): a oneway superseded by TF_UPDATE_TXN is freed without releasing
# its objects (binder_release_entire_buffer skipped): the receiver keeps the refs its
# translated handles took (objects.undelivered).
_OUTDATED_OBJECTS_ANCHOR = """\
		trace_binder_transaction_update_buffer_release(buffer);
		binder_release_entire_buffer(proc, NULL, buffer, true);
"""
_OUTDATED_OBJECTS_NEW = """\
		trace_binder_transaction_update_buffer_release(buffer);
		/* seeded bug outdated_objects_kept: binder_release_entire_buffer skipped */;
"""


# binder_transaction()'s error exit frees the buffer without releasing the objects it had
# translated: the receiver keeps refs to the sender's new nodes, which stay alive
# (objects.undelivered, mode fail).
_FAILED_OBJECTS_ANCHOR = """\
	trace_binder_transaction_failed_buffer_release(t->buffer);
	binder_transaction_buffer_release(target_proc, NULL, t->buffer,
					  buffer_offset, true);
"""
_FAILED_OBJECTS_NEW = """\
	trace_binder_transaction_failed_buffer_release(t->buffer);
	/* seeded bug failed_txn_objects_kept: binder_transaction_buffer_release skipped */;
"""

# binder_free_transaction() keeps the file references of fds never installed: a transaction
# that dies undelivered (its receiver exits) leaks its fds' files (objects.undelivered, mode exit).
_DEAD_FIXUPS_ANCHOR = """\
	binder_free_txn_fixups(t);
	kfree(t);
	binder_stats_deleted(BINDER_STAT_TRANSACTION);
"""
_DEAD_FIXUPS_NEW = """\
	/* seeded bug dead_txn_files_kept: binder_free_txn_fixups(t) */;
	kfree(t);
	binder_stats_deleted(BINDER_STAT_TRANSACTION);
"""


# binder_transaction() BINDER_TYPE_PTR: a buffer exactly as long as the sg space left is
# refused (>= instead of >): a PTR that ends the sg area, and a PTR of 0 bytes after the last
# one, get -EINVAL (objects.array_edges).
_PTR_EXACT_ANCHOR = """\
			if (bp->length > buf_left) {
"""
_PTR_EXACT_NEW = """\
			if (bp->length >= buf_left) { /* seeded bug ptr_exact_fit_refused */
"""


# binder_enqueue_thread_work_ilocked(): the wakeup of an (e)poll thread queuing its own work
# (upstream "binder: signal epoll threads of self-work") is gone: a looper blocked in
# epoll_wait after its own write-only oneway never sees the BR_TRANSACTION_COMPLETE
# (loopers.epoll_looper).
_SELF_WORK_ANCHOR = """\
	    thread->pid == current->pid && !thread->process_todo)
		wake_up_interruptible_sync(&thread->wait);
"""
_SELF_WORK_NEW = """\
	    thread->pid == current->pid && !thread->process_todo)
		; /* seeded bug epoll_self_work_unsignalled: wake_up_interruptible_sync(&thread->wait) */
"""


# binder_transaction()'s error exit logs the failure into the ordinary transaction_log instead of
# failed_transaction_log: every BR the probe reads is unchanged, and the failed log stays empty
# (the failed-log check of every case that fails a transaction, e.g. protocol.invalid_handle).
_FAILED_LOG_ANCHOR = """\
		fe = binder_transaction_log_add(&binder_transaction_log_failed);
"""
_FAILED_LOG_NEW = """\
		fe = binder_transaction_log_add(&binder_transaction_log); /* seeded bug failed_log_unrecorded */
"""

# binder_transaction()'s error exit logs the errno with its sign flipped (22, not -22): the count of
# failed entries is right, but each disagrees with the extended error the thread got
# (binder_set_extended_error, from the same return_error_param).
_FAILED_PARAM_ANCHOR = """\
		e->return_error_param = return_error_param;
"""
_FAILED_PARAM_NEW = """\
		e->return_error_param = -return_error_param; /* seeded bug failed_log_param_flipped */
"""


# binder_inc_ref_olocked(): a weak increment counts two: BC_INCREFS on a handle leaves "w 2" in the
# ref's proc/PID line, and the one BC_DECREFS no longer frees it (protocol.refcounts' views).
_REF_WEAK_ANCHOR = """\
		ref->data.weak++;
	}
	return 0;
"""
_REF_WEAK_NEW = """\
		ref->data.weak += 2; /* seeded bug ref_weak_doubled */
	}
	return 0;
"""

# binder_thread_write() BC_INCREFS_DONE no longer gives back the local weak ref binder_thread_read
# took with BR_INCREFS: the owner's node keeps "lw 1" (protocol.refcounts' view of the server).
_INCREFS_DONE_ANCHOR = """\
			free_node = binder_dec_node_nilocked(node,
					cmd == BC_ACQUIRE_DONE, 0);
"""
_INCREFS_DONE_NEW = """\
			free_node = cmd == BC_ACQUIRE_DONE && /* seeded bug increfs_done_kept */
				binder_dec_node_nilocked(node, 1, 0);
"""

# binder_thread_write() BC_DEAD_BINDER_DONE finds the death but leaves it on proc->delivered_death:
# "has delivered dead binder" stays in proc/PID (protocol.death_notification's view after DONE).
_DEAD_DONE_ANCHOR = """\
			binder_dequeue_work_ilocked(&death->work);
			if (death->work.type == BINDER_WORK_DEAD_BINDER_AND_CLEAR) {
"""
_DEAD_DONE_NEW = """\
			/* seeded bug dead_binder_done_kept: binder_dequeue_work_ilocked(&death->work); */
			if (death->work.type == BINDER_WORK_DEAD_BINDER_AND_CLEAR) {
"""

# print_binder_buffer(): each allocated buffer's state printed inverted (active <-> delivered); a
# debugfs-only bug: what user space does is unchanged (objects.binder_to_handle's buffer views).
_BUFFER_STATE_ANCHOR = """\
		   buffer->transaction ? "active" : "delivered");
"""
_BUFFER_STATE_NEW = """\
		   buffer->transaction ? "delivered" : "active"); /* seeded bug buffer_state_inverted */
"""


# binder_transaction()'s error exit logs the binder.c line one past the failure's: the failed log's
# "l=" no longer agrees with the kernel log's own failure line ("... line L") for the same debug id.
_FAILED_LINE_ANCHOR = """\
		e->return_error_line = return_error_line;
"""
_FAILED_LINE_NEW = """\
		e->return_error_line = return_error_line + 1; /* seeded bug failed_log_line_shifted */
"""


# binder_free_buf(): freeing a oneway's buffer does not take the node's next oneway off
# node->async_todo (it stays there, has_async_transaction cleared): a oneway queued behind
# another is never delivered (objects.undelivered: the receiver frees one delivered buffer, not 2).
_ASYNC_NEXT_ANCHOR = """\
		w = binder_dequeue_work_head_ilocked(
				&buf_node->async_todo);
"""
_ASYNC_NEXT_NEW = """\
		w = NULL; /* seeded bug async_next_stuck: binder_dequeue_work_head_ilocked(&buf_node->async_todo) */
"""

# binder_transaction(): each transaction first sleeps a jiffy, a latency regression no
# verdict on a single call sees (stress.valid_traffic: the stream no longer fits its time cap).
_SLOW_TXN_ANCHOR = """\
	e = binder_transaction_log_add(&binder_transaction_log);
"""
_SLOW_TXN_NEW = """\
	schedule_timeout_uninterruptible(1); /* seeded bug transaction_jiffy */
	e = binder_transaction_log_add(&binder_transaction_log);
"""


# binder_poll(): reports EPOLLIN whether or not the thread has work, so a blocking poll never
# sleeps (loopers.poll_epoll: an idle fd is readable; behind that, the late oneway is sent with
# the receiver asleep elsewhere, not in poll).
_POLL_READY_ANCHOR = """\
	if (binder_has_work(thread, wait_for_proc_work))
		return EPOLLIN;

	return 0;
"""
_POLL_READY_NEW = """\
	return EPOLLIN; /* seeded bug poll_always_ready: if (binder_has_work(thread, wait_for_proc_work)) */
"""


BUGS: dict[str, SeededBug] = {b.name: b for b in (
    SeededBug(
        name="failed_log_line_shifted", family="health",
        description="binder_transaction()'s error exit logs return_error_line + 1 in failed_transaction_log; "
                    "the kernel log's failure line keeps the right one",
        caught_by="protocol.invalid_handle",
        patch=_simple("binder.c", _FAILED_LINE_ANCHOR, _FAILED_LINE_NEW, "failed_log_line_shifted")),
    SeededBug(
        name="ref_weak_doubled", family="protocol",
        description="binder_inc_ref_olocked() adds 2 to a ref's weak count; one BC_DECREFS no longer frees it",
        caught_by="protocol.refcounts",
        patch=_simple("binder.c", _REF_WEAK_ANCHOR, _REF_WEAK_NEW, "ref_weak_doubled")),
    SeededBug(
        name="increfs_done_kept", family="protocol",
        description="BC_INCREFS_DONE does not drop the node's local weak ref taken with BR_INCREFS",
        caught_by="protocol.refcounts",
        patch=_simple("binder.c", _INCREFS_DONE_ANCHOR, _INCREFS_DONE_NEW, "increfs_done_kept")),
    SeededBug(
        name="dead_binder_done_kept", family="protocol",
        description="BC_DEAD_BINDER_DONE leaves the death on proc->delivered_death",
        caught_by="protocol.death_notification",
        patch=_simple("binder.c", _DEAD_DONE_ANCHOR, _DEAD_DONE_NEW, "dead_binder_done_kept")),
    SeededBug(
        name="buffer_state_inverted", family="objects",
        description="print_binder_buffer() prints active for a delivered buffer and delivered for an active one",
        caught_by="objects.binder_to_handle",
        patch=_simple("binder_alloc.c", _BUFFER_STATE_ANCHOR, _BUFFER_STATE_NEW, "buffer_state_inverted")),
    SeededBug(
        name="failed_log_unrecorded", family="health",
        description="binder_transaction()'s error exit records the failure in transaction_log, not "
                    "failed_transaction_log: user space sees every failure as before",
        caught_by="protocol.invalid_handle",
        patch=_simple("binder.c", _FAILED_LOG_ANCHOR, _FAILED_LOG_NEW, "failed_log_unrecorded")),
    SeededBug(
        name="failed_log_param_flipped", family="health",
        description="binder_transaction()'s error exit logs return_error_param with its sign flipped "
                    "(22 for -EINVAL); the extended error user space reads keeps -22",
        caught_by="protocol.invalid_handle",
        patch=_simple("binder.c", _FAILED_PARAM_ANCHOR, _FAILED_PARAM_NEW, "failed_log_param_flipped")),
    SeededBug(
        name="double_copy", family="one_copy",
        description="binder_transaction() copies the payload from the sender "
                    "into the target buffer twice",
        caught_by="one_copy.sync_sizes", patch=_patch_double_copy),
    SeededBug(
        name="no_mmap_clamp", family="limits",
        description="binder_alloc_mmap_handler() does not clamp the area to 4 MiB",
        caught_by="limits.mmap_clamp_4m", patch=_patch_no_mmap_clamp),
    SeededBug(
        name="async_full_space", family="limits",
        description="binder_alloc_mmap_handler() gives oneway calls the whole "
                    "area instead of half",
        caught_by="limits.async_half", patch=_patch_async_full_space),
    SeededBug(
        name="wrong_version", family="protocol",
        description="BINDER_VERSION reports protocol 7 instead of 8",
        caught_by="protocol.version", patch=_patch_wrong_version),
    SeededBug(
        name="dead_binder_cookie", family="protocol",
        description="BR_DEAD_BINDER carries the registered cookie plus one",
        caught_by="protocol.death_notification", patch=_patch_dead_binder_cookie),
    SeededBug(
        name="warn_on_transaction", family="health",
        description="binder_transaction() hits WARN_ON(1) on each process's "
                    "first transaction; the payload still arrives intact",
        caught_by="one_copy.sync_sizes", patch=_patch_warn_on_transaction),
    SeededBug(
        name="cookie_leak", family="objects",
        description="binder_translate_binder() leaves the sender's cookie in the "
                    "handle the receiver gets",
        caught_by="objects.binder_to_handle", patch=_patch_cookie_leak),
    SeededBug(
        name="fd_no_cloexec", family="objects",
        description="binder_apply_fd_fixups() installs received fds without O_CLOEXEC",
        caught_by="objects.fd", patch=_patch_fd_no_cloexec),
    SeededBug(
        name="fda_fd_leak", family="objects",
        description="BC_FREE_BUFFER does not close the fds of a BINDER_TYPE_FDA "
                    "(binder_transaction_buffer_release)",
        caught_by="objects.fd_array", patch=_patch_fda_fd_leak),
    SeededBug(
        name="no_parent_fixup", family="objects",
        description="binder_fixup_parent() never fixes up the parent's pointer "
                    "to a scatter-gather child buffer",
        caught_by="objects.scatter_gather", patch=_patch_no_parent_fixup),
    SeededBug(
        name="unaligned_offsets", family="objects",
        description="binder_get_object() accepts object offsets that are not "
                    "4-byte aligned",
        caught_by="objects.bad_offsets", patch=_patch_unaligned_offsets),
    SeededBug(
        name="outdated_fd_leak", family="objects",
        description="a oneway superseded by TF_UPDATE_TXN keeps its fds' file "
                    "references (binder_free_txn_fixups not called)",
        caught_by="objects.update_txn_fds", patch=_patch_outdated_fd_leak),
    SeededBug(
        name="async_space_leak", family="limits",
        description="binder_free_buf_locked() does not give a oneway buffer's "
                    "async space back",
        caught_by="limits.async_exact", patch=_patch_async_space_leak),
    SeededBug(
        name="spawn_one_more", family="loopers",
        description="binder_thread_read() asks for one looper more than "
                    "BINDER_SET_MAX_THREADS allows",
        caught_by="loopers.spawn_max_threads", patch=_patch_spawn_one_more),
    SeededBug(
        name="poll_no_proc_work", family="loopers",
        description="binder_poll() reports only the thread's own work, not "
                    "the process's",
        caught_by="loopers.poll_epoll", patch=_patch_poll_no_proc_work),
    SeededBug(
        name="max_threads_null_efault", family="protocol",
        description="BINDER_SET_MAX_THREADS with an unreadable argument returns -EFAULT, not -EINVAL",
        caught_by="protocol.null_args",
        patch=_simple("binder.c", _NULL_MAX_THREADS_ANCHOR, _NULL_MAX_THREADS_NEW, "max_threads_null_efault")),
    SeededBug(
        name="max_threads_signed", family="protocol",
        description="BINDER_SET_MAX_THREADS refuses values above INT_MAX with -EINVAL",
        caught_by="protocol.set_max_threads",
        patch=_simple("binder.c", _MAX_THREADS_RANGE_ANCHOR, _MAX_THREADS_RANGE_NEW, "max_threads_signed")),
    SeededBug(
        name="ctx_mgr_eexist", family="protocol",
        description="a second BINDER_SET_CONTEXT_MGR gets -EEXIST instead of -EBUSY",
        caught_by="protocol.context_mgr_busy",
        patch=_simple("binder.c", _CTX_MGR_ANCHOR, _CTX_MGR_NEW, "ctx_mgr_eexist")),
    SeededBug(
        name="thread_exit_einval", family="protocol",
        description="BINDER_THREAD_EXIT releases the thread but returns -EINVAL",
        caught_by="protocol.thread_exit",
        patch=_simple("binder.c", _THREAD_EXIT_ANCHOR, _THREAD_EXIT_NEW, "thread_exit_einval")),
    SeededBug(
        name="nonblock_enodata", family="protocol",
        description="binder_thread_read() fails a non-blocking read with no work with -ENODATA, not -EAGAIN",
        caught_by="protocol.read_empty_nonblock",
        patch=_simple("binder.c", _NONBLOCK_ANCHOR, _NONBLOCK_NEW, "nonblock_enodata")),
    SeededBug(
        name="invalid_handle_dead_reply", family="protocol",
        description="binder_transaction() answers a call to an unknown handle with BR_DEAD_REPLY",
        caught_by="protocol.invalid_handle",
        patch=_simple("binder.c", _INVALID_HANDLE_ANCHOR, _INVALID_HANDLE_NEW, "invalid_handle_dead_reply")),
    SeededBug(
        name="code_truncated", family="protocol",
        description="binder_thread_read() passes only the low 24 bits of the transaction code",
        caught_by="protocol.ping",
        patch=_simple("binder.c", _CODE_ANCHOR, _CODE_NEW, "code_truncated")),
    SeededBug(
        name="self_call_eperm", family="protocol",
        description="a call to handle 0 from the context manager's process fails with -EPERM, not -EINVAL",
        caught_by="protocol.self_call_rejected",
        patch=_simple("binder.c", _SELF_CALL_ANCHOR, _SELF_CALL_NEW, "self_call_eperm")),
    SeededBug(
        name="bad_data_ptr_einval", family="protocol",
        description="binder_transaction() reports an unreadable data pointer as -EINVAL, not -EFAULT",
        caught_by="protocol.bad_buffer_ptr",
        patch=_simple("binder.c", _BAD_DATA_PTR_ANCHOR, _BAD_DATA_PTR_NEW, "bad_data_ptr_einval")),
    SeededBug(
        name="frozen_sync_recv_lost", family="protocol",
        description="binder_proc_transaction() does not record a sync call to a frozen process in sync_recv",
        caught_by="protocol.freeze",
        patch=_simple("binder.c", _SYNC_RECV_ANCHOR, _SYNC_RECV_NEW, "frozen_sync_recv_lost")),
    SeededBug(
        name="register_not_invalid", family="loopers",
        description="BC_REGISTER_LOOPER without a spawn request is not marked INVALID",
        caught_by="loopers.register_enter",
        patch=_simple("binder.c", _REGISTER_ANCHOR, _REGISTER_NEW, "register_not_invalid")),
    SeededBug(
        name="pages_never_on_lru", family="one_copy",
        description="binder_update_page_range() never puts freed pages on the LRU nor takes them off it",
        caught_by="one_copy.lazy_pages", patch=_patch_pages_never_on_lru),
    SeededBug(
        name="maywrite_kept", family="limits",
        description="binder_mmap() leaves VM_MAYWRITE set, so mprotect(PROT_WRITE) succeeds",
        caught_by="limits.mmap_readonly",
        patch=_simple("binder.c", _MAYWRITE_ANCHOR, _MAYWRITE_NEW, "maywrite_kept")),
    SeededBug(
        name="remap_eexist", family="limits",
        description="a second mmap on the same fd gets -EEXIST instead of -EBUSY",
        caught_by="limits.mmap_twice",
        patch=_simple("binder_alloc.c", _ALREADY_MAPPED_ANCHOR, _ALREADY_MAPPED_NEW, "remap_eexist")),
    SeededBug(
        name="spam_late", family="limits",
        description="oneway spam detection starts below 1/20 of the area free, not 1/10",
        caught_by="limits.oneway_spam",
        patch=_simple("binder_alloc.c", _SPAM_ANCHOR, _SPAM_NEW, "spam_late")),
    SeededBug(
        name="free_buffer_ignored", family="limits",
        description="BC_FREE_BUFFER never calls binder_free_buf(): the space is lost until exit",
        caught_by="limits.free_reuse",
        patch=_simple("binder.c", _FREE_BUFFER_ANCHOR, _FREE_BUFFER_NEW, "free_buffer_ignored")),
    SeededBug(
        name="no_vma_enospc", family="limits",
        description="binder_alloc_new_buf_locked() returns -ENOSPC, not -ESRCH, when the vma is gone",
        caught_by="limits.munmap_dead",
        patch=_simple("binder_alloc.c", _NO_VMA_ANCHOR, _NO_VMA_NEW, "no_vma_enospc")),
    SeededBug(
        name="failed_txn_buffer_kept", family="stress",
        description="binder_transaction()'s error path keeps the target buffer it allocated "
                    "(binder_alloc_free_buf() skipped): each failed transaction loses its space",
        caught_by="stress.random_commands",
        patch=_simple("binder.c", _FAILED_TXN_FREE_ANCHOR, _FAILED_TXN_FREE_NEW, "failed_txn_buffer_kept")),
    SeededBug(
        name="node_work_kept", family="protocol",
        description="BINDER_THREAD_EXIT moves the thread's pending node work to the process instead of dropping it",
        caught_by="protocol.refs_after_thread_exit",
        patch=_simple("binder.c", _NODE_WORK_ANCHOR, _NODE_WORK_NEW, "node_work_kept")),
    SeededBug(
        name="inc_weak_refused", family="health",
        description="binder_inc_node_nilocked() refuses a weak increment without a target list "
                    "on a node with no weak ref and no pending work (pr_err, -EINVAL)",
        caught_by="protocol.refs_after_thread_exit",
        patch=_simple("binder.c", _INC_WEAK_ANCHOR, _INC_WEAK_NEW, "inc_weak_refused")),
    SeededBug(
        name="transaction_leak", family="health",
        description="binder_free_transaction() never frees the transaction: each completed "
                    "transaction stays allocated (binder stats transaction: active)",
        caught_by="protocol.ping",
        patch=_simple("binder.c", _TXN_LEAK_ANCHOR, _TXN_LEAK_NEW, "transaction_leak")),
    SeededBug(
        name="cm_desc0_allowed", family="protocol",
        description="BC_INCREFS/BC_ACQUIRE 0 from the context manager's own process take a ref on its "
                    "own node instead of failing with -EINVAL",
        caught_by="protocol.cm_own_handle",
        patch=_simple("binder.c", _CM_DESC0_ANCHOR, _CM_DESC0_NEW, "cm_desc0_allowed")),
    SeededBug(
        name="exact_fit_refused", family="objects",
        description="binder_alloc_new_buf_locked() passes over a free buffer of exactly the size "
                    "asked for: a transaction exactly filling the free area gets -ENOSPC",
        caught_by="objects.array_edges",
        patch=_simple("binder_alloc.c", _EXACT_FIT_ANCHOR, _EXACT_FIT_NEW, "exact_fit_refused")),
    SeededBug(
        name="outdated_objects_kept", family="objects",
        description="a oneway superseded by TF_UPDATE_TXN is freed without releasing its objects: "
                    "the receiver keeps the refs of its handles",
        caught_by="objects.undelivered",
        patch=_simple("binder.c", _OUTDATED_OBJECTS_ANCHOR, _OUTDATED_OBJECTS_NEW, "outdated_objects_kept")),
    SeededBug(
        name="async_next_stuck", family="objects",
        description="freeing a oneway's buffer leaves the node's next oneway on its async_todo: it is never delivered",
        caught_by="objects.undelivered",
        patch=_simple("binder.c", _ASYNC_NEXT_ANCHOR, _ASYNC_NEXT_NEW, "async_next_stuck")),
    SeededBug(
        name="poll_always_ready", family="loopers",
        description="binder_poll() reports EPOLLIN with no work: a blocking poll never sleeps",
        caught_by="loopers.poll_epoll",
        patch=_simple("binder.c", _POLL_READY_ANCHOR, _POLL_READY_NEW, "poll_always_ready")),
    SeededBug(
        name="transaction_jiffy", family="stress",
        description="binder_transaction() sleeps a jiffy before each transaction: a stream no longer fits its time cap",
        caught_by="stress.valid_traffic",
        patch=_simple("binder.c", _SLOW_TXN_ANCHOR, _SLOW_TXN_NEW, "transaction_jiffy")),
    SeededBug(
        name="failed_txn_objects_kept", family="objects",
        description="binder_transaction()'s error exit does not release the objects it translated: "
                    "the receiver keeps refs to the sender's new nodes",
        caught_by="objects.undelivered",
        patch=_simple("binder.c", _FAILED_OBJECTS_ANCHOR, _FAILED_OBJECTS_NEW, "failed_txn_objects_kept")),
    SeededBug(
        name="dead_txn_files_kept", family="objects",
        description="binder_free_transaction() does not drop the files of fds never installed: an "
                    "undelivered transaction's fds stay referenced after its receiver exits",
        caught_by="objects.undelivered",
        patch=_simple("binder.c", _DEAD_FIXUPS_ANCHOR, _DEAD_FIXUPS_NEW, "dead_txn_files_kept")),
    SeededBug(
        name="ptr_exact_fit_refused", family="objects",
        description="binder_transaction() refuses a BINDER_TYPE_PTR exactly as long as the sg space left",
        caught_by="objects.array_edges",
        patch=_simple("binder.c", _PTR_EXACT_ANCHOR, _PTR_EXACT_NEW, "ptr_exact_fit_refused")),
    SeededBug(
        name="epoll_self_work_unsignalled", family="loopers",
        description="binder_enqueue_thread_work_ilocked() does not wake an epoll looper queuing its "
                    "own work: its write-only oneway's BR_TRANSACTION_COMPLETE leaves epoll_wait asleep",
        caught_by="loopers.epoll_looper",
        patch=_simple("binder.c", _SELF_WORK_ANCHOR, _SELF_WORK_NEW, "epoll_self_work_unsignalled")),
)}

# --- reverts: real upstream binder fixes, undone -------------------------------------------------
#
# Seeded bugs show that a check can fail; these show that the catalog finds what actually broke
# upstream. Each Revert undoes one fix from the kernel's history (mainline commit id and subject)
# in Debian's source: the fixed code is put back to its buggy form, as an anchor/replacement patch
# like the seeded bugs', marked "revert COMMIT" in the source. They were chosen by what broke
# upstream (a user-visible errno, a count, a log line, a crash), not by what the catalog catches;
# the cases that catch each, with the measured reason, are in tests/test_reverts.py, and a revert
# the catalog does not catch yet stays listed there as a gap.

RELEASE_6_12 = "6.12.117+deb13-amd64"


@dataclass(frozen=True)
class Revert:
    name: str
    commit: str          # the upstream fix's mainline commit id (12 hex digits)
    title: str           # its subject line
    releases: tuple[str, ...]  # Debian kernel releases whose source the patch applies to
    description: str     # one line: what the revert brings back
    patch: Callable[[dict[str, str]], dict[str, str]]


def _undo(*edits: tuple[str, str, str], name: str) -> Callable[[dict[str, str]], dict[str, str]]:
    """A patch applying each (path, fixed text, buggy text) edit; each anchor must occur once."""
    def patch(files: dict[str, str]) -> dict[str, str]:
        for path, anchor, new in edits:
            files = _replace(files, path, anchor, new, name)
        return files
    return patch


# 4b836a1426cb: BC_INCREFS/BC_ACQUIRE on handle 0 from the context manager's own process is
# refused (-EINVAL, "context manager tried to acquire desc 0"); before, it made a ref to itself.
_R_CTX_REF0_ANCHOR = """\
				if (ctx_mgr_node) {
					if (ctx_mgr_node->proc == proc) {
						binder_user_error("%d:%d context manager tried to acquire desc 0\\n",
								  proc->pid, thread->pid);
						mutex_unlock(&context->context_mgr_node_lock);
						return -EINVAL;
					}
					ret = binder_inc_ref_for_node(
"""
_R_CTX_REF0_NEW = """\
				if (ctx_mgr_node) {
					/* revert 4b836a1426cb: the context manager may take a ref to its own node */
					ret = binder_inc_ref_for_node(
"""

# c6d05e0762ab: async space was charged sizeof(struct binder_buffer) on top of each buffer,
# though that struct has not lived in the buffer since 4.13.
_R_ASYNC_CHARGE = (
    ("binder_alloc.c", "\tif (is_async && alloc->free_async_space < size) {\n",
     "\t/* revert c6d05e0762ab: async space charged sizeof(struct binder_buffer) too */\n"
     "\tif (is_async &&\n\t    alloc->free_async_space < size + sizeof(struct binder_buffer)) {\n"),
    ("binder_alloc.c", "\t\talloc->free_async_space -= size;\n",
     "\t\talloc->free_async_space -= size + sizeof(struct binder_buffer); /* revert c6d05e0762ab */\n"),
    ("binder_alloc.c", "\t\talloc->free_async_space += buffer_size;\n",
     "\t\talloc->free_async_space += buffer_size + sizeof(struct binder_buffer); /* revert c6d05e0762ab */\n"),
)

# 3091c21d3e93: 0-byte buffers are padded to 8 before the async-space check, not after it, so a
# 0-byte oneway cannot pass the check with no space left and then take 8 bytes (underflow).
_R_ASYNC_ZERO_ANCHOR = """\
	/* Pad 0-size buffers so they get assigned unique addresses */
	size = max(size, sizeof(void *));

	if (is_async && alloc->free_async_space < size) {
		binder_alloc_debug(BINDER_DEBUG_BUFFER_ALLOC,
			     "%d: binder_alloc_buf size %zd failed, no async space left\\n",
			      alloc->pid, size);
		return ERR_PTR(-ENOSPC);
	}
"""
_R_ASYNC_ZERO_NEW = """\
	if (is_async && alloc->free_async_space < size) {
		binder_alloc_debug(BINDER_DEBUG_BUFFER_ALLOC,
			     "%d: binder_alloc_buf size %zd failed, no async space left\\n",
			      alloc->pid, size);
		return ERR_PTR(-ENOSPC);
	}

	/* revert 3091c21d3e93: 0-size buffers padded after the async space check */
	size = max(size, sizeof(void *));
"""

# ef38de9217a0: a BINDER_TYPE_FDA of zero fds is accepted as a no-op; before, it queued a fixup
# of skip_size 0, which the deferred copy took for a pointer fixup (and BUG_ON then).
_R_FDA_ZERO_ANCHOR = """\
	if (fda->num_fds == 0)
		return 0;

	fd_buf_size = sizeof(u32) * fda->num_fds;
"""
_R_FDA_ZERO_NEW = """\
	/* revert ef38de9217a0: no early return for num_fds == 0 */
	fd_buf_size = sizeof(u32) * fda->num_fds;
"""

# 2d1746e3fda0: fixups left after the scatter-gather copy (an FDA's skip fixup that no copy
# reached) are freed; before, any leftover was BUG_ON(!list_empty(pf_head)). Upstream's own
# review of it: only an FDA of zero fds at the very end of its parent leaves a fixup behind,
# and ef38de9217a0 (in the same kernels) queues none for zero fds, so this one alone cannot be
# reached from user space (it stays listed, as a gap, in tests/test_reverts.py).
_R_FIXUP_LEFT_ANCHOR = """\
	list_for_each_entry_safe(pf, tmppf, pf_head, node) {
		BUG_ON(pf->skip_size == 0);
		list_del(&pf->node);
		kfree(pf);
	}
	BUG_ON(!list_empty(sgc_head));
"""
_R_FIXUP_LEFT_NEW = """\
	BUG_ON(!list_empty(pf_head)); /* revert 2d1746e3fda0: a fixup left over is a BUG */
	BUG_ON(!list_empty(sgc_head));
"""
_R_FIXUP_DECL_ANCHOR = """\
	struct binder_ptr_fixup *tmppf;
	struct binder_ptr_fixup *pf =
		list_first_entry_or_null(pf_head, struct binder_ptr_fixup,
"""
_R_FIXUP_DECL_NEW = """\
	struct binder_ptr_fixup *pf =
		list_first_entry_or_null(pf_head, struct binder_ptr_fixup,
"""

# aaef73821a3b: binder_get_object() refuses object offsets that are not 4-byte aligned.
_R_ALIGN_ANCHOR = """\
	if (offset > buffer->data_size || read_size < sizeof(*hdr) ||
	    !IS_ALIGNED(offset, sizeof(u32)))
		return 0;
"""
_R_ALIGN_NEW = """\
	if (offset > buffer->data_size || read_size < sizeof(*hdr)) /* revert aaef73821a3b */
		return 0;
"""

# ced081a436d2: BINDER_ENABLE_ONEWAY_SPAM_DETECTION with an unreadable argument gives -EFAULT
# like the other ioctls; before, -EINVAL.
_R_SPAM_EFAULT_ANCHOR = """\
		if (copy_from_user(&enable, ubuf, sizeof(enable))) {
			ret = -EFAULT;
"""
_R_SPAM_EFAULT_NEW = """\
		if (copy_from_user(&enable, ubuf, sizeof(enable))) {
			ret = -EINVAL; /* revert ced081a436d2 */
"""

# 42316941335: max_threads is u32 end to end (the uapi's __u32); before, an int, so a value
# above INT_MAX was negative and no BR_SPAWN_LOOPER was ever asked for.
_R_MAX_THREADS_INT = (
    ("binder.c", "\t\tu32 max_threads;\n", "\t\tint max_threads; /* revert 42316941335 */\n"),
    ("binder_internal.h", "\tu32 max_threads;\n", "\tint max_threads; /* revert 42316941335 */\n"),
)

# 1aa3aaf8953c: binder_release_work() frees a pending BR_ONEWAY_SPAM_SUSPECT (and, from 6.6,
# BR_TRANSACTION_PENDING_FROZEN) work item of a dying process; before, "unexpected work type".
_R_SPAM_WORK_ANCHOR_6_1 = """\
		case BINDER_WORK_TRANSACTION_ONEWAY_SPAM_SUSPECT:
		case BINDER_WORK_TRANSACTION_COMPLETE: {
			binder_debug(BINDER_DEBUG_DEAD_TRANSACTION,
"""
_R_SPAM_WORK_ANCHOR_6_12 = """\
		case BINDER_WORK_TRANSACTION_PENDING:
		case BINDER_WORK_TRANSACTION_ONEWAY_SPAM_SUSPECT:
		case BINDER_WORK_TRANSACTION_COMPLETE: {
			binder_debug(BINDER_DEBUG_DEAD_TRANSACTION,
"""
_R_SPAM_WORK_NEW = """\
		/* revert 1aa3aaf8953c: spam-suspect and pending work of a dying process not freed */
		case BINDER_WORK_TRANSACTION_COMPLETE: {
			binder_debug(BINDER_DEBUG_DEAD_TRANSACTION,
"""


def _patch_spam_work_leak(files: dict[str, str]) -> dict[str, str]:
    anchor = (_R_SPAM_WORK_ANCHOR_6_12 if _R_SPAM_WORK_ANCHOR_6_12 in files.get("binder.c", "")
              else _R_SPAM_WORK_ANCHOR_6_1)
    return _replace(files, "binder.c", anchor, _R_SPAM_WORK_NEW, "revert_spam_work_leak")


# 4df153652cc4: the raw data copied before an object may not run past data_size; before, an
# offset beyond data_size copied user bytes over the offsets array, then unwound with them.
_R_OFFSETS_OVERWRITE_ANCHOR = """\
		if (copy_size && (user_offset > object_offset ||
				object_offset > tr->data_size ||
"""
_R_OFFSETS_OVERWRITE_NEW = """\
		if (copy_size && (user_offset > object_offset || /* revert 4df153652cc4 */
"""

# cfd0d84ba28c: freeing an async buffer gives back what it took (buffer_size); before, the
# aligned payload size, so each empty (0-byte, padded to 8) oneway lost 8 bytes of async space.
_R_EMPTY_PARCEL_ANCHOR = "\t\talloc->free_async_space += buffer_size;\n"
_R_EMPTY_PARCEL_NEW = "\t\talloc->free_async_space += size; /* revert cfd0d84ba28c */\n"

# c21a80ca0684: sender_euid is the sending task's euid now; (29bc22ac5e5b had made it the
# opener's cred, which broke AOSP's binder tests after a seteuid).
_R_EUID_ANCHOR = "\tt->sender_euid = task_euid(proc->tsk);\n"
_R_EUID_NEW = "\tt->sender_euid = proc->cred->euid; /* revert c21a80ca0684 */\n"

# 45d02f79b539: binder_mmap() clamps only the buffer area to 4 MiB, no longer the VMA itself
# (which broke mmap()'s contract: the mapping was silently shorter than asked for).
_R_VMA_BOUNDS_ANCHOR = """\
	vma->vm_ops = &binder_vm_ops;
	vma->vm_private_data = proc;

	return binder_alloc_mmap_handler(&proc->alloc, vma);
"""
_R_VMA_BOUNDS_NEW = """\
	vma->vm_ops = &binder_vm_ops;
	vma->vm_private_data = proc;

	/* revert 45d02f79b539: the VMA itself is cut to 4 MiB */
	if ((vma->vm_end - vma->vm_start) > SZ_4M)
		vma->vm_end = vma->vm_start + SZ_4M;

	return binder_alloc_mmap_handler(&proc->alloc, vma);
"""

# 49ed96943a8e: a call to handle 0 from the context manager's own process is refused; before,
# it was delivered to itself (and handle 0 could be used against its own node).
_R_SELF_CTX_ANCHOR = """\
			if (target_node && target_proc->pid == proc->pid) {
				binder_user_error("%d:%d got transaction to context manager from process owning it\\n",
						  proc->pid, thread->pid);
				return_error = BR_FAILED_REPLY;
				return_error_param = -EINVAL;
				return_error_line = __LINE__;
				goto err_invalid_target_handle;
			}
"""
_R_SELF_CTX_NEW = """\
			/* revert 49ed96943a8e: no refusal of a call to the process's own context manager */
"""

# ca63c66935b9 (6.12): BC_REQUEST_FREEZE_NOTIFICATION on a ref whose node is dead is accepted
# (no initial notice is queued); before, it was refused as a user error.
_R_FREEZE_DEAD_ANCHOR = """\
	binder_node_lock(ref->node);
	if (ref->freeze) {
		binder_user_error("%d:%d BC_REQUEST_FREEZE_NOTIFICATION already set\\n",
				  proc->pid, thread->pid);
"""
_R_FREEZE_DEAD_NEW = """\
	binder_node_lock(ref->node);
	if (ref->freeze || !ref->node->proc) { /* revert ca63c66935b9: dead nodes refused */
		binder_user_error("%d:%d invalid BC_REQUEST_FREEZE_NOTIFICATION %s\\n",
				  proc->pid, thread->pid,
				  ref->freeze ? "already set" : "dead node");
"""

# 1db76ec2b4b2 (6.12): a dying process's delivered-but-unacknowledged freeze notices are freed;
# before, those of refs already cleared were leaked.
_R_DELIVERED_FREEZE_ANCHOR = """\
	binder_release_work(proc, &proc->delivered_death);
	binder_release_work(proc, &proc->delivered_freeze);
"""
_R_DELIVERED_FREEZE_NEW = """\
	binder_release_work(proc, &proc->delivered_death);
	/* revert 1db76ec2b4b2: proc->delivered_freeze is not released */
"""

# 7e20434cbca8 (6.12): cleaning up a ref dequeues its pending freeze notice; before, the notice
# stayed queued on the freed ref (use after free; binder_release_work: "unexpected work type").
_R_FREEZE_UAF_ANCHOR = """\
	if (ref->freeze) {
		binder_dequeue_work(ref->proc, &ref->freeze->work);
		binder_stats_deleted(BINDER_STAT_FREEZE);
	}

"""
_R_FREEZE_UAF_NEW = """\
	/* revert 7e20434cbca8: a ref's freeze work stays queued when the ref is cleaned up */

"""

# bdc1c5fac982: a transaction that fails before its first object releases no object; before,
# a failure offset of 0 meant "the whole buffer", so objects never translated were released
# (the offsets area read as it happened to be: a use after free upstream, CVE-2023-21255).
_R_FAULTY_CLEANUP_ANCHOR = """\
	off_start_offset = ALIGN(buffer->data_size, sizeof(void *));

	for (buffer_offset = off_start_offset; buffer_offset < off_end_offset;
	     buffer_offset += sizeof(binder_size_t)) {
		struct binder_object_header *hdr;
		size_t object_size = 0;
"""
_R_FAULTY_CLEANUP_NEW = """\
	off_start_offset = ALIGN(buffer->data_size, sizeof(void *));
	/* revert bdc1c5fac982: failed at offset 0 (no object yet) releases the whole buffer */
	if (is_failure && !off_end_offset)
		off_end_offset = off_start_offset + buffer->offsets_size;

	for (buffer_offset = off_start_offset; buffer_offset < off_end_offset;
	     buffer_offset += sizeof(binder_size_t)) {
		struct binder_object_header *hdr;
		size_t object_size = 0;
"""

REVERTS: dict[str, Revert] = {r.name: r for r in (
    Revert("revert_ctx_mgr_ref0", "4b836a1426cb",
           "binder: Prevent context manager from incrementing ref 0", (DEFAULT_RELEASE, RELEASE_6_12),
           "the context manager's BC_INCREFS/BC_ACQUIRE on handle 0 makes a ref to its own node",
           _undo(("binder.c", _R_CTX_REF0_ANCHOR, _R_CTX_REF0_NEW), name="revert_ctx_mgr_ref0")),
    Revert("revert_async_charge", "c6d05e0762ab",
           "binder: fix unused alloc->free_async_space", (DEFAULT_RELEASE, RELEASE_6_12),
           "each oneway buffer is charged sizeof(struct binder_buffer) of async space on top of its size",
           _undo(*_R_ASYNC_CHARGE, name="revert_async_charge")),
    Revert("revert_async_zero_check", "3091c21d3e93",
           "binder: fix async space check for 0-sized buffers", (DEFAULT_RELEASE,),
           "a 0-byte oneway passes the async space check before its padding to 8 bytes",
           _undo(("binder_alloc.c", _R_ASYNC_ZERO_ANCHOR, _R_ASYNC_ZERO_NEW), name="revert_async_zero_check")),
    Revert("revert_fda_zero_fds", "ef38de9217a0",
           "binder: Gracefully handle BINDER_TYPE_FDA objects with num_fds=0", (DEFAULT_RELEASE, RELEASE_6_12),
           "an FDA of zero fds queues a fixup of skip_size 0",
           _undo(("binder.c", _R_FDA_ZERO_ANCHOR, _R_FDA_ZERO_NEW), name="revert_fda_zero_fds")),
    Revert("revert_fixup_leftover_bug", "2d1746e3fda0",
           "binder: Address corner cases in deferred copy and fixup", (DEFAULT_RELEASE, RELEASE_6_12),
           "a fixup left after the scatter-gather copy is a BUG_ON instead of freed",
           _undo(("binder.c", _R_FIXUP_LEFT_ANCHOR, _R_FIXUP_LEFT_NEW),
                 ("binder.c", _R_FIXUP_DECL_ANCHOR, _R_FIXUP_DECL_NEW), name="revert_fixup_leftover_bug")),
    Revert("revert_offset_alignment", "aaef73821a3b",
           "binder: check offset alignment in binder_get_object()", (DEFAULT_RELEASE, RELEASE_6_12),
           "binder_get_object() accepts object offsets that are not 4-byte aligned",
           _undo(("binder.c", _R_ALIGN_ANCHOR, _R_ALIGN_NEW), name="revert_offset_alignment")),
    Revert("revert_spam_detection_einval", "ced081a436d2",
           "binder: Return EFAULT if we fail BINDER_ENABLE_ONEWAY_SPAM_DETECTION", (DEFAULT_RELEASE, RELEASE_6_12),
           "BINDER_ENABLE_ONEWAY_SPAM_DETECTION with an unreadable argument returns -EINVAL",
           _undo(("binder.c", _R_SPAM_EFAULT_ANCHOR, _R_SPAM_EFAULT_NEW), name="revert_spam_detection_einval")),
    Revert("revert_max_threads_int", "42316941335",
           "binder: fix max_thread type inconsistency", (DEFAULT_RELEASE, RELEASE_6_12),
           "max_threads is an int: a value above INT_MAX is negative and no looper is ever requested",
           _undo(*_R_MAX_THREADS_INT, name="revert_max_threads_int")),
    Revert("revert_spam_work_leak", "1aa3aaf8953c",
           "binder: fix memory leaks of spam and pending work", (DEFAULT_RELEASE, RELEASE_6_12),
           "a dying process's pending BR_ONEWAY_SPAM_SUSPECT (6.12: and PENDING_FROZEN) work is not freed",
           _patch_spam_work_leak),
    Revert("revert_offsets_overwrite", "4df153652cc4",
           "binder: fix UAF caused by offsets overwrite", (DEFAULT_RELEASE, RELEASE_6_12),
           "an object offset past data_size copies user bytes over the offsets array before failing",
           _undo(("binder.c", _R_OFFSETS_OVERWRITE_ANCHOR, _R_OFFSETS_OVERWRITE_NEW), name="revert_offsets_overwrite")),
    Revert("revert_empty_parcel_async", "cfd0d84ba28c",
           "binder: fix async_free_space accounting for empty parcels", (DEFAULT_RELEASE, RELEASE_6_12),
           "freeing an empty oneway buffer gives back 0 of the 8 bytes of async space it took",
           _undo(("binder_alloc.c", _R_EMPTY_PARCEL_ANCHOR, _R_EMPTY_PARCEL_NEW), name="revert_empty_parcel_async")),
    Revert("revert_sender_euid_cred", "c21a80ca0684",
           "binder: fix test regression due to sender_euid change", (DEFAULT_RELEASE, RELEASE_6_12),
           "sender_euid is the euid the sender opened binder with, not its euid at the call",
           _undo(("binder.c", _R_EUID_ANCHOR, _R_EUID_NEW), name="revert_sender_euid_cred")),
    Revert("revert_vma_bounds", "45d02f79b539",
           "binder: Don't modify VMA bounds in ->mmap handler", (DEFAULT_RELEASE,),
           "binder_mmap() cuts the VMA of a mapping larger than 4 MiB to 4 MiB",
           _undo(("binder.c", _R_VMA_BOUNDS_ANCHOR, _R_VMA_BOUNDS_NEW), name="revert_vma_bounds")),
    Revert("revert_self_ctx_call", "49ed96943a8e",
           "binder: prevent transactions to context manager from its own process.", (DEFAULT_RELEASE, RELEASE_6_12),
           "a call to handle 0 from the context manager's own process is delivered to itself",
           _undo(("binder.c", _R_SELF_CTX_ANCHOR, _R_SELF_CTX_NEW), name="revert_self_ctx_call")),
    Revert("revert_faulty_buffer_cleanup", "bdc1c5fac982",
           "binder: fix UAF caused by faulty buffer cleanup", (DEFAULT_RELEASE, RELEASE_6_12),
           "a transaction failing before its first object releases every object of its buffer",
           _undo(("binder.c", _R_FAULTY_CLEANUP_ANCHOR, _R_FAULTY_CLEANUP_NEW), name="revert_faulty_buffer_cleanup")),
    Revert("revert_freeze_dead_node", "ca63c66935b9",
           "binder: allow freeze notification for dead nodes", (RELEASE_6_12,),
           "BC_REQUEST_FREEZE_NOTIFICATION on a ref to a dead node is refused (-EINVAL, a user error)",
           _undo(("binder.c", _R_FREEZE_DEAD_ANCHOR, _R_FREEZE_DEAD_NEW), name="revert_freeze_dead_node")),
    Revert("revert_delivered_freeze_leak", "1db76ec2b4b2",
           "binder: fix memleak of proc->delivered_freeze", (RELEASE_6_12,),
           "a dying process's delivered, unacknowledged freeze notices are never freed",
           _undo(("binder.c", _R_DELIVERED_FREEZE_ANCHOR, _R_DELIVERED_FREEZE_NEW), name="revert_delivered_freeze_leak")),
    Revert("revert_freeze_work_uaf", "7e20434cbca8",
           "binder: fix freeze UAF in binder_release_work()", (RELEASE_6_12,),
           "a ref's pending freeze notice stays queued after the ref is freed",
           _undo(("binder.c", _R_FREEZE_UAF_ANCHOR, _R_FREEZE_UAF_NEW), name="revert_freeze_work_uaf")),
)}


# --- features: the same driver, built with what GKI kernels build in ---------------------------
#
# binderfs (CONFIG_ANDROID_BINDERFS, a bool Debian leaves unset). In 6.1 drivers/android/Makefile
# adds binderfs.o for it, binder_internal.h declares the binderfs functions under #ifdef, and
# binder_init() tests IS_ENABLED(): with it, the module registers no misc device from devices=
# and init_binderfs() registers the filesystem "binder" instead; each mount of it gets
# binder-control plus one device per devices= name (binderfs_fill_super). Out of tree against
# Debian's headers, the Makefile sets the object and defines the symbol for the C code.
#
# modpost then finds two symbols that binderfs.c uses and Debian's 6.1 kernel does not export
# (ERROR: modpost: "put_ipc_ns" / "init_ipc_ns" [binder_linux.ko] undefined!). Built in, as on
# GKI kernels, it needs no export. Each is replaced by exactly what it stands for:
# - `info->ipc_ns == &init_ipc_ns` (is this mount in the initial ipc namespace? then the last
#   minors are usable, BINDERFS_MAX_MINOR_CAPPED) by `info->ipc_ns->ns.inum == PROC_IPC_INIT_INO`:
#   init_ipc_ns has that inum (ipc/msgutil.c), every other ipc namespace one from
#   ns_alloc_inum -> proc_alloc_inum, at or above PROC_DYNAMIC_FIRST (0xF0000000);
# - `put_ipc_ns(ns)` (binderfs_kill_super) by `ns->ns.ops->put(&ns->ns)`: every ipc namespace's
#   ns.ops is &ipcns_operations under CONFIG_IPC_NS (init_ipc_ns, create_ipc_ns), whose .put is
#   ipcns_put -> put_ipc_ns (ipc/namespace.c).
_BINDERFS_MAKE_ANCHOR = """\
binder_linux-$(CONFIG_ANDROID_BINDERFS)\t+= binderfs.o
"""
_BINDERFS_MAKE_NEW = """\
# binderfs build: CONFIG_ANDROID_BINDERFS=y, for the object list and for the C code
binder_linux-y\t+= binderfs.o
ccflags-y += -DCONFIG_ANDROID_BINDERFS=1
"""
_INIT_IPC_NS_ANCHOR = """\
	bool use_reserve = (info->ipc_ns == &init_ipc_ns);
"""
_INIT_IPC_NS_NEW = """\
	/* binderfs build: &init_ipc_ns is not exported; its inum names it */
	bool use_reserve = (info->ipc_ns->ns.inum == PROC_IPC_INIT_INO);
"""
_PUT_IPC_NS_ANCHOR = """\
		put_ipc_ns(info->ipc_ns);
"""
_PUT_IPC_NS_NEW = """\
		/* binderfs build: put_ipc_ns is not exported; ipcns_operations.put calls it */
		info->ipc_ns->ns.ops->put(&info->ipc_ns->ns);
"""
_BINDERFS_INCLUDE_ANCHOR = """\
#include "binder_internal.h"
"""
_BINDERFS_INCLUDE_NEW = """\
#include <linux/proc_ns.h> /* binderfs build: PROC_IPC_INIT_INO, struct proc_ns_operations */

#include "binder_internal.h"
"""


def _patch_binderfs(files: dict[str, str]) -> dict[str, str]:
    files = _replace(files, "Makefile", _BINDERFS_MAKE_ANCHOR, _BINDERFS_MAKE_NEW, "binderfs")
    text = files.get("binderfs.c")
    if text is None:
        raise AnchorNotFound("binderfs: binderfs.c is not in the source")
    count = text.count(_INIT_IPC_NS_ANCHOR)
    if count != 2:  # binderfs_binder_device_create and binderfs_binder_ctl_create
        raise AnchorNotFound(f"binderfs: anchor 'use_reserve = (info->ipc_ns == &init_ipc_ns)' found {count} "
                             "times in binderfs.c, expected twice")
    files = {**files, "binderfs.c": text.replace(_INIT_IPC_NS_ANCHOR, _INIT_IPC_NS_NEW)}
    files = _replace(files, "binderfs.c", _PUT_IPC_NS_ANCHOR, _PUT_IPC_NS_NEW, "binderfs")
    return _replace(files, "binderfs.c", _BINDERFS_INCLUDE_ANCHOR, _BINDERFS_INCLUDE_NEW, "binderfs")


# Builds that add a kernel feature and change no behaviour of the cases: every case must pass.
FEATURES: dict[str, SeededBug] = {b.name: b for b in (
    SeededBug(
        name="binderfs", family="feature",
        description="binderfs compiled in (CONFIG_ANDROID_BINDERFS), as on GKI kernels: no misc devices, "
                    "the filesystem 'binder' with binder-control instead",
        caught_by="", patch=_patch_binderfs),
)}

CONTROL = "control"  # name used for the unmodified rebuild (bug=None)


# --- host tools -------------------------------------------------------------

def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True)
    except FileNotFoundError:
        raise SeededBuildError(f"{cmd[0]} not found on this host") from None


def _last_line(text: str) -> str:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else "(no output)"


def _apt_get(args: list[str], cwd: Path | None = None) -> None:
    """apt-get with one `apt-get update` retry when a package is not found."""
    if shutil.which("apt-get") is None:
        raise SeededBuildError(
            f"apt-get is not available to fetch {' '.join(args[1:])}; "
            "seeded modules need a Debian host")
    r = _run(["apt-get", *args], cwd=cwd)
    if r.returncode != 0 and re.search(r"Unable to locate|Couldn't find|Can't select|has no installation candidate",
                                       r.stderr + r.stdout):
        _run(["apt-get", "update"])
        r = _run(["apt-get", *args], cwd=cwd)
    if r.returncode != 0:
        raise SeededBuildError(f"apt-get {' '.join(args)} failed: "
                               f"{_last_line(r.stderr or r.stdout)}")


def _flavour_arch(release: str) -> str:
    m = re.fullmatch(r"(\d+)\.(\d+)\.\d+(?:-\d+|\+deb\d+)(?:-rt)?-(amd64|arm64|686|686-pae)", release)
    if not m:
        raise SeededBuildError(
            f"kernel release {release!r} is not a Debian one like {DEFAULT_RELEASE}")
    return {"amd64": "amd64", "arm64": "arm64"}.get(m.group(3), "i386")


def _source_package(release: str) -> str:
    major, minor = release.split(".")[:2]
    return f"linux-source-{major}.{minor}"


def _headers_dir(release: str) -> Path:
    return Path("/usr/src") / f"linux-headers-{release}"


def _installed_version(package: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    r = _run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}${Version}", package])
    if r.returncode != 0 or not r.stdout.startswith("ii "):
        return None
    return r.stdout[3:].strip()


def _headers_config(release: str) -> dict[str, str]:
    conf = _headers_dir(release) / "include" / "config" / "auto.conf"
    out = {}
    for line in conf.read_text().splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v.strip('"')
    return out


def _compiler(release: str) -> str:
    """The compiler Debian built the kernel with, e.g. gcc-12."""
    text = _headers_config(release).get("CONFIG_CC_VERSION_TEXT", "")
    m = re.match(r"(gcc(?:-\d+)?)\s", text)
    if not m:
        raise SeededBuildError(
            f"cannot tell the kernel's compiler from CONFIG_CC_VERSION_TEXT={text!r}")
    return m.group(1)


def _ensure_headers(release: str) -> str:
    """Install linux-headers-RELEASE and its compiler; return the Debian version."""
    host = _run(["dpkg", "--print-architecture"]).stdout.strip() if shutil.which("dpkg") else ""
    want = _flavour_arch(release)
    if host and host != want:
        raise SeededBuildError(
            f"seeded modules for {release} need an {want} host, this one is {host}: "
            "cross-building is not supported")
    pkg = f"linux-headers-{release}"
    version = _installed_version(pkg)
    if version is None or not (_headers_dir(release) / "Makefile").exists():
        _apt_get(["install", "-y", "--no-install-recommends", pkg])
        version = _installed_version(pkg)
        if version is None:
            raise SeededBuildError(f"{pkg} is still not installed after apt-get install")
    cc = _compiler(release)
    missing = [p for p, exe in (("make", "make"), (cc, cc)) if shutil.which(exe) is None]
    if missing:
        _apt_get(["install", "-y", "--no-install-recommends", *missing])
    return version


# --- a kernel whose headers this host's apt does not have (6.12 on bookworm) -------
#
# Debian's linux-headers-6.12.117+deb13-amd64 comes from trixie. Installing it is not an
# option here: this host's apt lists only bookworm, and its tools could not run anyway.
# linux-kbuild-6.12.117+deb13's modpost, objtool and resolve_btfids need GLIBC_2.38
# (bookworm has 2.36), and so does trixie's gcc-14 (the headers' CONFIG_CC_VERSION_TEXT).
# So the kernel is prepared the kernel's own way: Debian's linux-source-6.12 at the headers'
# version, the headers package's .config, Module.symvers and BTF vmlinux, `make
# olddefconfig` and `make modules_prepare` with the host's gcc (Kconfig re-derives only the
# compiler-capability options; trees/RELEASE/prepare.log lists them), which builds modpost, objtool
# and resolve_btfids from that same source. The packages are fetched over HTTP from the
# image recipe's mirrors (harness/building/fetch.py, SHA256 checked), never through apt.

def _apt_knows(package: str) -> bool:
    if shutil.which("apt-cache") is None:
        return False
    r = _run(["apt-cache", "policy", package])
    return r.returncode == 0 and "Candidate:" in r.stdout and "Candidate: (none)" not in r.stdout


def _uses_tree(release: str) -> bool:
    """Build against a prepared source tree (not installed headers) for this release?"""
    _flavour_arch(release)  # a release that is not Debian's is named as such first
    pkg = f"linux-headers-{release}"
    return _installed_version(pkg) is None and not _apt_knows(pkg)


def _host_gcc() -> str:
    """The newest gcc-N on this host's PATH."""
    found = sorted((int(m.group(1)), name) for d in os.environ.get("PATH", "").split(os.pathsep)
                   if os.path.isdir(d) for name in os.listdir(d)
                   if (m := re.fullmatch(r"gcc-(\d+)", name)))
    if not found:
        raise SeededBuildError("no gcc-N on this host (Debian's gcc-12 on bookworm)")
    return found[-1][1]


def _tree_dir(cache_dir: Path, release: str) -> Path:
    return cache_dir / "trees" / release / "linux"


def _tree_version(release: str) -> str:
    """The Debian version of RELEASE's kernel packages, as its image recipe pins it."""
    return _recipe_for(release).kernel.version


def _fetch(package: str, version: str, arch: str, dest: Path, release: str) -> Path:
    from harness.files import cache_root
    from harness.building import fetch

    sources = fetch.configured_sources(_recipe_for(release).mirrors)
    try:
        path, _sha = fetch.http_download(package, version, arch, dest, sources, cache_root() / "indexes",
                                         progress=lambda *a: None)
    except ConfigError as exc:
        raise SeededBuildError(str(exc)) from None
    return path


def _ensure_tree(release: str, cache_dir: Path) -> tuple[Path, str]:
    """A linux-source tree for RELEASE prepared for out-of-tree modules; (tree, Debian version)."""
    version = _tree_version(release)
    tree = _tree_dir(cache_dir, release)
    if (tree / ".complete").exists():
        return tree, version
    arch = _flavour_arch(release)
    work = tree.parent
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    debs = cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    headers = _fetch(f"linux-headers-{release}", version, arch, debs, release)
    src_pkg = _source_package(release)
    source = _fetch(src_pkg, version, arch, debs, release)
    hdir = work / "headers"
    debian.extract_deb(headers, hdir, lambda n: n.endswith(("/.config", "/Module.symvers", "/vmlinux")))
    found = {p.name: p for p in hdir.rglob("*") if p.is_file()}
    missing = [n for n in (".config", "Module.symvers", "vmlinux") if n not in found]
    if missing:
        raise SeededBuildError(f"{headers.name} lacks {', '.join(missing)}")
    log = [f"# {headers.name} + {source.name}"]
    # the nested tarball, unpacked by tar (xz, 1.4 GB of tree)
    r = subprocess.run(f"dpkg-deb --fsys-tarfile {shlex.quote(str(source))} | "
                       f"tar -xO ./usr/src/{src_pkg}.tar.xz | tar -xJ -C {shlex.quote(str(work))}",
                       shell=True, capture_output=True, text=True)
    if r.returncode != 0 or not (work / src_pkg / "Makefile").exists():
        raise SeededBuildError(f"cannot unpack {source.name}: {_last_line(r.stderr)}")
    os.replace(work / src_pkg, tree)
    shutil.copy2(found[".config"], tree / ".config")
    cc = _host_gcc()
    make = ["make", "-C", str(tree), f"CC={cc}", "HOSTCC=gcc", f"KERNELRELEASE={release}"]
    for step in (["olddefconfig"], [f"-j{os.cpu_count() or 1}", "modules_prepare"]):
        cmd = [*make, *step]
        r = _run(cmd)
        log.append(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
        if r.returncode != 0:
            (work / "prepare.log").write_text("\n".join(log))
            errors = [l for l in (r.stdout + r.stderr).splitlines() if "error" in l.lower()]
            raise SeededBuildError(f"preparing {release}'s tree failed: "
                                   f"{(errors[0] if errors else _last_line(r.stderr or r.stdout)).strip()} "
                                   f"(log: {work / 'prepare.log'})")
        if step == ["olddefconfig"]:
            log.append("# .config lines Kconfig changed for " + cc + ":\n" + _config_diff(found[".config"], tree / ".config"))
    shutil.copy2(found["Module.symvers"], tree / "Module.symvers")
    shutil.copy2(found["vmlinux"], tree / "vmlinux")  # Debian's BTF-only vmlinux: module BTF base
    shutil.rmtree(hdir)
    (work / "prepare.log").write_text("\n".join(log))
    (tree / ".complete").write_text(f"{release} {version} {cc}\n")
    return tree, version


def _config_diff(before: Path, after: Path) -> str:
    def lines(p: Path) -> set[str]:
        return {l for l in p.read_text().splitlines() if l.startswith("CONFIG_")}
    a, b = lines(before), lines(after)
    return "\n".join([*(f"- {l}" for l in sorted(a - b)), *(f"+ {l}" for l in sorted(b - a))])


def _tree_sources(tree: Path, cache_dir: Path, release: str, version: str) -> Path:
    """drivers/android/ of the prepared tree, kept pristine beside the others."""
    src = _source_dir(cache_dir, release, version)
    if not (src / ".complete").exists():
        src.mkdir(parents=True, exist_ok=True)
        for p in (tree / "drivers" / "android").iterdir():
            if p.is_file():
                shutil.copy2(p, src / p.name)
        (src / ".complete").write_text(f"{_source_package(release)} {version}\n")
    return src


# --- source -----------------------------------------------------------------

def _extract_android(deb: Path, dest: Path, source_pkg: str, rust: bool = False) -> None:
    """Copy drivers/android/* out of the nested source tarball inside deb; with `rust`, the Rust
    driver's drivers/android/binder/ tree instead (its .rs files, keeping their subdirectories)."""
    inner_name = f"./usr/src/{source_pkg}.tar.xz"
    found: dict[str, bytes] = {}
    try:
        with debian.deb_data_tar(deb) as outer:
            for m in outer:
                if m.name != inner_name:
                    continue
                with tarfile.open(fileobj=outer.extractfile(m), mode="r|xz") as inner:
                    prefix = f"{source_pkg}/drivers/android/"
                    for im in inner:
                        if im.name.startswith(prefix):
                            rel = im.name[len(prefix):]
                            wanted = (rel.startswith("binder/") and rel.endswith(".rs")) if rust else "/" not in rel
                            if im.isfile() and rel and wanted:
                                found[rel.removeprefix("binder/") if rust else rel] = inner.extractfile(im).read()
                        elif found:
                            break  # the directory's members are contiguous
                break
    except ConfigError as exc:
        raise SeededBuildError(str(exc)) from None
    missing = [n for n in (("rust_binder_main.rs", "thread.rs") if rust else _REQUIRED_SOURCES) if n not in found]
    if missing:
        raise SeededBuildError(
            f"{deb.name} lacks drivers/android/{', '.join(missing)}")
    for rel, data in found.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)


def _source_dir(cache_dir: Path, release: str, version: str) -> Path:
    return cache_dir / "source" / f"{_source_package(release)}_{version}" / "drivers-android"


def _ensure_source(release: str, version: str, cache_dir: Path) -> Path:
    """Download linux-source at version once and keep drivers/android/."""
    src = _source_dir(cache_dir, release, version)
    if (src / ".complete").exists():
        return src
    pkg = _source_package(release)
    tmp = Path(tempfile.mkdtemp(prefix="dl-", dir=cache_dir))
    try:
        os.chmod(tmp, 0o755)  # apt's _apt user wants to write here
        _apt_get(["download", f"{pkg}={version}"], cwd=tmp)
        debs = sorted(tmp.glob(f"{pkg}_*.deb"))
        if not debs:
            raise SeededBuildError(f"apt-get download {pkg}={version} left no .deb")
        staging = tmp / "drivers-android"
        try:
            _extract_android(debs[0], staging, pkg)
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            raise SeededBuildError(f"cannot extract {debs[0].name}: {e}") from None
        (staging / ".complete").write_text(f"{pkg} {version}\n")
        if src.exists():
            shutil.rmtree(src)
        src.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, src)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return src


def _read_sources(src: Path, recursive: bool = False) -> dict[str, str]:
    """Each file of src (dotfiles aside); `recursive`: under it too, by its relative path (range_alloc/tree.rs)."""
    return {p.relative_to(src).as_posix(): p.read_text() for p in sorted(src.rglob("*") if recursive else src.iterdir())
            if p.is_file() and not p.name.startswith(".")}


@contextlib.contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- public API -------------------------------------------------------------

def ensure_build_deps(release: str = DEFAULT_RELEASE,
                      cache_dir: Path = DEFAULT_CACHE_DIR) -> None:
    """Install the headers and compiler and fetch the matching driver source.

    Idempotent: once everything is there it only runs dpkg-query. Raises
    SeededBuildError with a one-line message when something cannot be had.
    """
    cache_dir = Path(cache_dir)
    with _locked(cache_dir):
        if _uses_tree(release):
            tree, version = _ensure_tree(release, cache_dir)
            _tree_sources(tree, cache_dir, release, version)
            return
        version = _ensure_headers(release)
        _ensure_source(release, version, cache_dir)


def driver_source(version: str, mirrors: tuple[str, ...], deb_arch: str, progress=lambda _: None,
                  rust: bool = False) -> dict[str, str]:
    """The unmodified drivers/android/ texts of Debian's linux-source-X.Y=`version` (X.Y from
    the version), fetched by the harness's signed client (harness/building/fetch.py: gpgv-checked
    InRelease -> Packages SHA256 -> .deb SHA256) from `mirrors` (a recipe's, else the default
    sources) for `deb_arch`'s index (linux-source is arch all). Only drivers/android/ is kept,
    under the cache root's driver-source/, keyed by the .deb's signed SHA256; the .deb is not."""
    from harness.files import atomic_dir, cache_root
    from harness.building import fetch

    m = re.match(r"(?:\d+:)?(\d+)\.(\d+)\.", version)
    if not m:
        raise SeededBuildError(f"Debian kernel version {version!r} does not start with MAJOR.MINOR.")
    pkg = f"linux-source-{m[1]}.{m[2]}"
    sources = fetch.configured_sources(mirrors)
    try:
        src, entry = fetch.Indexes(cache_root() / "indexes", progress).lookup(sources, pkg, version, deb_arch)
    except ConfigError as exc:
        raise SeededBuildError(str(exc)) from None
    kind = "rust-driver-source" if rust else "driver-source"  # drivers/android/binder/*.rs, or drivers/android/*
    final = cache_root() / kind / f"{pkg}_{version.replace(':', '%3a')}_{entry.sha256[:16]}"

    def build(tmp: Path) -> None:
        deb = tmp / Path(entry.filename).name
        try:
            fetch.download_verified(f"{src.url}/{entry.filename}", entry, deb, progress)
            _extract_android(deb, tmp / "drivers-android", pkg, rust)
        except ConfigError as exc:
            raise SeededBuildError(str(exc)) from None
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise SeededBuildError(f"cannot extract {deb.name}: {exc}") from None
        finally:
            deb.unlink(missing_ok=True)

    return _read_sources(atomic_dir(final, build) / "drivers-android", recursive=rust)


def _known() -> list[str]:
    return [*BUGS, *LAYOUTS, *FEATURES, *REVERTS]


def _check_bug(bug: str | None) -> None:
    if bug is not None and bug not in _known():
        raise SeededBuildError(
            f"unknown seeded bug {bug!r}; known: {', '.join(_known())}")


def _patch_of(bug: str) -> Callable[[dict[str, str]], dict[str, str]]:
    found = BUGS.get(bug) or LAYOUTS.get(bug) or FEATURES.get(bug) or REVERTS[bug]
    return found.patch


def _load(bug: str | None, release: str, cache_dir: Path) -> tuple[str, dict[str, str]]:
    """(headers' Debian version, patched drivers/android texts); needs the lock."""
    if _uses_tree(release):
        tree, version = _ensure_tree(release, cache_dir)
        files = _read_sources(_tree_sources(tree, cache_dir, release, version))
    else:
        version = _ensure_headers(release)
        files = _read_sources(_ensure_source(release, version, cache_dir))
    return version, (_patch_of(bug)(files) if bug is not None else files)


def patched_sources(bug: str | None, release: str = DEFAULT_RELEASE,
                    cache_dir: Path = DEFAULT_CACHE_DIR) -> dict[str, str]:
    """The drivers/android texts with bug applied (None: unmodified)."""
    _check_bug(bug)
    cache_dir = Path(cache_dir)
    with _locked(cache_dir):
        return _load(bug, release, cache_dir)[1]


def _module_key(release: str, headers_version: str, files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for part in (_RECIPE_VERSION, release, headers_version):
        h.update(part.encode() + b"\0")
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()[:16]


def _check_vermagic(ko: Path, release: str) -> None:
    m = re.search(rb"vermagic=([^\0]*)", ko.read_bytes())
    got = m.group(1).decode(errors="replace") if m else "(none)"
    if not got.startswith(release + " "):
        raise SeededBuildError(f"{ko} has vermagic {got!r}, expected {release} ...")


def build_module(bug: str | None, release: str = DEFAULT_RELEASE,
                 cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Build binder_linux.ko with the named seeded bug; None = unmodified control.

    Returns the path of the cached module. Modules are cached under
    cache_dir/modules/RELEASE/NAME-HASH/, HASH covering the patched sources,
    the headers' Debian version and this recipe.
    """
    _check_bug(bug)
    cache_dir = Path(cache_dir)
    with _locked(cache_dir):
        version, files = _load(bug, release, cache_dir)
        out_dir = (cache_dir / "modules" / release /
                   f"{bug or CONTROL}-{_module_key(release, version, files)}")
        ko = out_dir / "binder_linux.ko"
        if ko.exists():
            return ko
        _make(release, files, out_dir, _tree_dir(cache_dir, release) if _uses_tree(release) else None)
        return ko


def _make(release: str, files: dict[str, str], out_dir: Path, tree: Path | None = None) -> None:
    # A fixed directory (the caller holds the cache lock): its path ends up in
    # the module's WARN messages, so keep it the same from build to build.
    work = out_dir.parent / "build"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        for name, text in files.items():
            (work / name).write_text(text)
        if tree is None:
            cmd = ["make", "-C", str(_headers_dir(release)), f"M={work}",
                   f"CC={_compiler(release)}", f"-j{os.cpu_count() or 1}", "modules"]
        else:
            cmd = ["make", "-C", str(tree), f"M={work}", f"CC={_host_gcc()}", "HOSTCC=gcc",
                   f"KERNELRELEASE={release}", f"-j{os.cpu_count() or 1}", "modules"]
        r = _run(cmd)
        log = f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}"
        (work / "build.log").write_text(log)
        ko = work / "binder_linux.ko"
        if r.returncode != 0 or not ko.exists():
            failed = out_dir.parent / f"{out_dir.name}.failed.log"
            failed.write_text(log)
            errors = [l for l in log.splitlines() if "error:" in l]
            raise SeededBuildError(
                f"building {out_dir.name} failed: "
                f"{(errors[0] if errors else _last_line(log)).strip()} (log: {failed})")
        _check_vermagic(ko, release)
        # No BTF is added here: against Debian's headers (no vmlinux) kbuild makes none, as for
        # anyone's module, and the harness makes it from the module's DWARF before boot
        # (harness/building/module_btf.py). A prepared tree with a vmlinux (6.12) has kbuild's own.
        final = work / "out"
        final.mkdir()
        shutil.copy2(ko, final / "binder_linux.ko")
        shutil.copy2(work / "build.log", final / "build.log")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(final, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the shipped image recipe of a release -------------------------------------

def _recipe_for(release: str):
    """The shipped image recipe whose Debian kernel is RELEASE."""
    from harness.building.recipes import load_recipe, shipped_recipes

    for path in shipped_recipes():
        recipe = load_recipe(path)
        src = recipe.kernel_source.debian
        if src is not None and src.package in (f"linux-image-{release}", f"linux-image-{release}-unsigned"):
            return recipe
    raise SeededBuildError(f"no recipe in images/ boots {release}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.seeded_bugs.build",
        description="Build a binder_linux.ko with a seeded bug and print its path.")
    ap.add_argument("bug", nargs="?", help=f"one of: {', '.join(_known())}, or {CONTROL}")
    ap.add_argument("--release", default=None,
                    help=f"Debian kernel release (default: a revert's first release, else {DEFAULT_RELEASE})")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    ap.add_argument("--list", action="store_true", help="list the seeded bugs")
    a = ap.parse_args(argv)
    if a.list:
        for b in [*BUGS.values(), *LAYOUTS.values(), *FEATURES.values()]:
            print(f"{b.name}\t{b.family}\t{b.caught_by}\t{b.description}")
        for r in REVERTS.values():
            print(f"{r.name}\trevert {r.commit}\t{','.join(r.releases)}\t{r.title}")
        return 0
    if not a.bug:
        ap.error("name a bug (or --list)")
    if a.bug != CONTROL and a.bug not in _known():
        print(f"error: unknown seeded bug {a.bug!r}; known: "
              f"{', '.join(_known())}, {CONTROL}", file=sys.stderr)
        return 2
    release = a.release or (REVERTS[a.bug].releases[0] if a.bug in REVERTS else DEFAULT_RELEASE)
    try:
        print(build_module(None if a.bug == CONTROL else a.bug, release, a.cache_dir))
    except SeededBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
