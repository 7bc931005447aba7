"""The whole catalog on the stock driver, and one seeded bug per family caught
by the case meant to catch it, with a reason naming the measured value."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.judging.cases import load_cases
from tests.helpers import REPO, assert_judge_reproduces, cli
from tests.report_html import assert_full_page
from tests.seeded_bugs import build

FAMILIES = {"one_copy", "limits", "protocol", "compat", "stress", "objects", "loopers"}


def test_catalog_has_every_family_and_design_case():
    ids = set(load_cases())
    assert {i.split(".")[0] for i in ids} == FAMILIES
    for required in ("one_copy.sync_sizes", "one_copy.reply", "one_copy.oneway", "one_copy.vs_pipe",
                     "one_copy.lazy_pages", "limits.mmap_clamp_4m", "limits.mmap_readonly", "limits.mmap_twice",
                     "limits.async_half", "limits.free_reuse", "limits.oneway_spam", "limits.munmap_dead",
                     "limits.shrinker", "protocol.version", "protocol.null_args", "protocol.freeze",
                     "protocol.death_notification", "compat.version", "compat.one_copy", "compat.limits",
                     "stress.random_commands", "objects.binder_to_handle", "objects.fd", "objects.fd_array",
                     "objects.scatter_gather", "objects.bad_offsets", "objects.update_txn_fds",
                     "limits.async_exact", "loopers.spawn_max_threads", "loopers.register_enter",
                     "loopers.poll_epoll", "stress.valid_traffic",
                     "protocol.refs_after_thread_exit"):
        assert required in ids


# -- every check cites a real kernel function --------------------------------------------------
# Refs are passed at run time, so they are gathered from the source of cases/*.py: the `ref`
# argument of every ctx.check (4th), check_that (5th) and note_dmesg (3rd) call, resolved through
# what the catalog writes there (literals, f-strings, conditionals, local names, loop variables
# over literal tables or module tables (.items()), ctx.by_kernel tables, a helper's parameter
# through its callers, a Kprobe's .function). This covers every branch and every kernel
# version's table, which one recorded run cannot (it emits only its kernel's refs and the
# branches its evidence took); an expression the resolver does not know fails the test, so a
# new way of passing a ref cannot slip through unchecked.
CHECK_CALLS = {"check": 3, "check_that": 4, "note_dmesg": 2}
# The refs that name no kernel function, in one place: the probe's own measurement, what
# one_copy.vs_pipe's shared-memory leg reads (no copy at all), and the uapi header whose
# protocol version the probe was built with.
NON_FUNCTION_REFS = frozenset({"probe", "the shared pages themselves", "include/uapi/linux/android/binder.h"})


class UnresolvedRef(Exception):
    pass


@dataclass(frozen=True)
class RefSite:
    path: str
    line: int
    ref: str


def _module(path: Path):
    import importlib

    return importlib.import_module(f"cases.{path.stem}")


def _strings(value) -> list[str]:
    from harness.evidence.trace import Kprobe

    if isinstance(value, str):
        return [value]
    if isinstance(value, Kprobe):
        return [value.function]
    raise UnresolvedRef(f"a ref value {value!r}")


class _Resolver:
    """The values a ref expression can take, from the AST of cases/*.py (and module tables by import)."""

    def __init__(self, trees: dict[Path, ast.Module]):
        self.trees = trees
        self.parents: dict[ast.AST, ast.AST] = {}
        for tree in trees.values():
            for node in ast.walk(tree):
                for child in ast.iter_child_nodes(node):
                    self.parents[child] = node

    def _scope(self, node: ast.AST) -> ast.AST:
        while node in self.parents and not isinstance(node, (ast.FunctionDef, ast.Module)):
            node = self.parents[node]
        return node

    def _path(self, node: ast.AST) -> Path:
        while node in self.parents:
            node = self.parents[node]
        return next(p for p, t in self.trees.items() if t is node)

    def values(self, expr: ast.AST, where: ast.AST) -> list:
        if isinstance(expr, ast.Constant):
            return [expr.value]
        if isinstance(expr, ast.IfExp):
            return self.values(expr.body, where) + self.values(expr.orelse, where)
        if isinstance(expr, ast.JoinedStr):
            out = [""]
            for part in expr.values:
                pieces = ([str(part.value)] if isinstance(part, ast.Constant) else
                          [str(v) for v in self.values(part.value, where)])
                out = [a + b for a in out for b in pieces]
            return out
        if isinstance(expr, ast.Attribute) and expr.attr == "function" and isinstance(expr.value, ast.Call) \
                and isinstance(expr.value.func, ast.Attribute) and expr.value.func.attr == "for_kernel":
            return [v for k in self.values(expr.value.func.value, where) for v in _strings(k)]
        if isinstance(expr, ast.Name):
            return self._name(expr.id, where)
        raise UnresolvedRef(ast.unparse(expr))

    def _name(self, name: str, where: ast.AST) -> list:
        scope = self._scope(where)
        if isinstance(scope, ast.FunctionDef):
            for node in ast.walk(scope):
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    found = self._from_target(node.targets[0], name, node.value, scope)
                    if found is not None:
                        return found
                if isinstance(node, ast.For):
                    found = self._from_target(node.target, name, node.iter, scope, loop=True)
                    if found is not None:
                        return found
            params = [a.arg for a in scope.args.posonlyargs + scope.args.args]
            if name in params:
                return self._from_callers(scope.name, params.index(name), name)
        module = _module(self._path(where))
        if hasattr(module, name):
            return [getattr(module, name)]
        raise UnresolvedRef(name)

    def _from_target(self, target: ast.AST, name: str, value: ast.AST, scope: ast.AST, loop: bool = False):
        """The values `name` takes when `target` is bound from `value` (each element when loop)."""
        path = self._index_path(target, name)
        if path is None:
            return None
        if not loop and path == ():
            return self.values(value, scope)
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "by_kernel":
            rows = list(self.values(value.args[0], scope)[0].values())
            return [self._pick(row, path) for row in rows]
        if loop and isinstance(value, (ast.Tuple, ast.List)):
            out = []
            for element in value.elts:
                node = element
                for i in path:
                    node = node.elts[i]  # type: ignore[attr-defined]
                out += self.values(node, scope)
            return out
        if loop and isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) \
                and value.func.attr in ("items", "values", "keys"):
            table = self.values(value.func.value, scope)[0]
            rows = list(getattr(table, value.func.attr)())
            return [self._pick(row, path) for row in rows]
        if loop:
            rows = self.values(value, scope)[0]
            if isinstance(rows, (tuple, list, dict)):
                return [self._pick(row, path) for row in rows]
        raise UnresolvedRef(f"{name} bound from {ast.unparse(value)}")

    @staticmethod
    def _pick(row, path: tuple[int, ...]):
        for i in path:
            row = row[i]
        return row

    def _index_path(self, target: ast.AST, name: str) -> tuple[int, ...] | None:
        if isinstance(target, ast.Name):
            return () if target.id == name else None
        if isinstance(target, (ast.Tuple, ast.List)):
            for i, elt in enumerate(target.elts):
                sub = self._index_path(elt, name)
                if sub is not None:
                    return (i, *sub)
        return None

    def _from_callers(self, function: str, index: int, name: str) -> list:
        out: list = []
        for tree in self.trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and _callee(node) == function:
                    kw = {k.arg: k.value for k in node.keywords}
                    arg = kw.get(name, node.args[index] if index < len(node.args) else None)
                    if arg is None:
                        raise UnresolvedRef(f"{function}() called without {name}")
                    out += self.values(arg, node)
        if not out:
            raise UnresolvedRef(f"{function}() is never called: its parameter {name}")
        return out


def _callee(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")


def cited_refs(paths: list[Path]) -> list[RefSite]:
    """Every ref the catalog's checks can cite, with where it is written."""
    trees = {p: ast.parse(p.read_text(), str(p)) for p in paths}
    resolver = _Resolver(trees)
    sites = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _callee(node) in CHECK_CALLS):
                continue
            if isinstance(node.func, ast.Name) and _callee(node) != "note_dmesg":
                continue
            kw = {k.arg: k.value for k in node.keywords}
            index = CHECK_CALLS[_callee(node)]
            arg = kw.get("ref", node.args[index] if index < len(node.args) else None)
            where = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{node.lineno}"
            if arg is None:
                raise UnresolvedRef(f"{where}: {_callee(node)}() without a ref")
            try:
                values = resolver.values(arg, node)
            except UnresolvedRef as exc:
                raise UnresolvedRef(f"{where}: cannot resolve the ref {ast.unparse(arg)} ({exc})") from None
            sites += [RefSite(where, node.lineno, ref) for v in values for ref in _strings(v)]
    return sites


def _braces(text: str) -> str:
    """copy_{from,to}_user -> copy_from_user/copy_to_user"""
    m = re.search(r"(\w*)\{([\w,]+)\}(\w*)", text)
    if not m:
        return text
    return _braces(text[:m.start()] + "/".join(m[1] + alt + m[3] for alt in m[2].split(",")) + text[m.end():])


def cited_functions(ref: str) -> list[str]:
    """The names a ref cites: a chain of function names joined by ->, /, +, ; or ',', each
    optionally followed by commentary in parentheses (which may nest)."""
    text = _braces(ref)
    while True:
        stripped = re.sub(r"\([^()]*\)", "", text)
        if stripped == text:
            break
        text = stripped
    return [p.strip() for p in re.split(r"->|/|\+|;|,", text) if p.strip()]


def bad_refs(sites: list[RefSite], functions: set[str]) -> list[str]:
    """One line per cited name that is neither a kernel function nor a declared non-function ref."""
    out = []
    for site in sites:
        if site.ref in NON_FUNCTION_REFS:
            continue
        for name in cited_functions(site.ref):
            if name not in functions:
                out.append(f"{site.path}: {name!r} (in {site.ref!r}) is no function of the driver or of the kernel (BTF)")
    return out


# a function's definition starts at column 0 (kernel style); a function-like macro is one too
_C_DEFINITION = re.compile(r"^(?:[A-Za-z_][\w\s\*]*?\b|#define\s+)([A-Za-z_]\w*)\s*\(", re.M)
BTF_FUNC = 12  # BTF_KIND_FUNC


def btf_functions(data: bytes) -> set[str]:
    """The names of the BTF_KIND_FUNC entries of raw vmlinux BTF: every kernel function with a body."""
    import struct

    from harness.evidence import btf

    own = btf._sections(data, "vmlinux BTF")
    names, pos = set(), 0
    while pos + 12 <= len(own.types):
        name_off, info, _ = struct.unpack_from("<III", own.types, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        pos += 12 + btf._KIND_EXTRA[kind](vlen)
        if kind == BTF_FUNC:
            names.add(btf._string(own.strings, name_off, "vmlinux BTF"))
    return names


@pytest.fixture(scope="module")
def kernel_functions() -> set[str]:
    """Function names of Debian 6.1's drivers/android (the source tests/seeded_bugs patches) and of
    its kernel (pipe_write, unix_stream_sendmsg, ...). Debian's boot/System.map is a one-line stub
    ("The real System.map is in the linux-image-<version>-dbg package"), so the kernel's names come
    from the BTF the default recipe's vmlinux carries (every function with a body, BTF_KIND_FUNC)."""
    from harness.evidence.btf import kernel_btf
    from harness.images.build import ensure_kernel
    from harness.images.recipes import recipe_for_arch

    build.ensure_build_deps(build.DEFAULT_RELEASE)
    with build._locked(build.DEFAULT_CACHE_DIR):
        _, files = build._load(None, build.DEFAULT_RELEASE, build.DEFAULT_CACHE_DIR)
    names = {m.group(1) for name, text in files.items() if name.endswith((".c", ".h"))
             for m in _C_DEFINITION.finditer(text)}
    vmlinux_btf = kernel_btf(ensure_kernel(recipe_for_arch("x86_64"), lambda _: None).kernel.read_bytes())
    assert vmlinux_btf is not None
    kernel = btf_functions(vmlinux_btf)
    assert {"pipe_write", "unix_stream_sendmsg", "__check_object_size"} <= kernel and len(kernel) > 30000
    return names | kernel


def test_every_check_cites_a_kernel_function_or_the_probe(kernel_functions):
    """Each case's docstring exists, and every ref its checks cite names real kernel functions."""
    for spec in load_cases().values():
        assert spec.doc, spec.id
    sites = cited_refs(sorted((REPO / "cases").glob("*.py")))
    assert len({s.ref for s in sites}) > 150, len(sites)
    assert bad_refs(sites, kernel_functions) == []


def test_a_typo_in_a_cited_function_is_caught(kernel_functions, tmp_path):
    """The same check on a copy of a case module whose ref misspells binder_alloc_new_buf_locked."""
    text = (REPO / "cases" / "_one_copy_checks.py").read_text()
    assert text.count('"binder_alloc_new_buf_locked")') == 2
    typo = tmp_path / "cases" / "_one_copy_checks.py"
    typo.parent.mkdir()
    typo.write_text(text.replace('"binder_alloc_new_buf_locked")', '"binder_alloc_new_buf_lockd")', 1))
    assert [line.split(": ", 1)[1] for line in bad_refs(cited_refs([typo]), kernel_functions)] == [
        "'binder_alloc_new_buf_lockd' (in 'binder_alloc_new_buf_lockd') is no function of the driver or of the kernel (BTF)"]
    assert cited_functions("binder_free_buf -> binder_free_buf_locked (debugfs stats buffers: x)") == [
        "binder_free_buf", "binder_free_buf_locked"]
    assert cited_functions("load_msg/store_msg -> copy_{from,to}_user -> __check_object_size") == [
        "load_msg", "store_msg", "copy_from_user", "copy_to_user", "__check_object_size"]


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_whole_catalog_passes_on_stock_driver(tmp_path, arch):
    run = cli("run", "--target", f"qemu:{arch}", "--seed", "4242", out=tmp_path, timeout=900)
    report = run.report
    not_passed = [(c["id"], c["outcome"], c["reason"]) for c in report["cases"] if c["outcome"] != "passed"]
    assert not_passed == [], not_passed
    assert run.status == 0
    assert_judge_reproduces(run)  # judged offline, a copy of the run gives every check and verdict again
    assert report["summary"]["passed"] == len(load_cases())
    assert report["seed"] == 4242
    assert_full_page(run.out)
    assert run.case("stress.random_commands")["evidence"]["seed"] == 4242
    traffic = run.case("stress.valid_traffic")["evidence"]
    assert traffic["seed"] == 4242 and traffic["success_share"] >= 0.98, traffic
    assert traffic["buffers_left"] == {"client": 0, "server": 0}
    assert run.case("one_copy.vs_pipe")["evidence"]["copies_per_byte"] == {
        "binder": 1.0, "pipe": 2.0, "unix_socket": 2.0, "posix_mq": 2.0, "sysv_mq": 2.0, "shared_memory": 0.0}
    for case in report["cases"]:
        assert case["evidence"]["dmesg_bad_lines"] == [], case["id"]
        assert "unexpected_binder_messages" not in case["evidence"], (case["id"], case["evidence"])
        assert all(c["ref"] for c in case["checks"]), case["id"]


@pytest.fixture(scope="module")
def seeded():
    build.ensure_build_deps(build.DEFAULT_RELEASE)
    return build.build_module


# Each seeded bug and every case it fails, with a part of the reason naming the measured value.
# One harness run per module (one guest boot) runs all of that module's cases.
COPIES = "kernel copies per payload byte (traced binder_alloc_copy_user_to_buffer): expected 1.0, measured 2.0"
CAUGHT: dict[str, list[tuple[str, str]]] = {
    "failed_txn_buffer_kept": [("stress.random_commands",
                                "after the stream, a valid call on the pair's own fd: BRs: expected "
                                "['BR_TRANSACTION_COMPLETE', 'BR_REPLY'], measured ['BR_FAILED_REPLY']")],
    "no_mmap_clamp": [("limits.mmap_clamp_4m", "4 MiB + 8 transaction: expected BR_FAILED_REPLY -28, measured ok")],
    "async_full_space": [
        ("limits.async_half", "oneway 64 KiB calls accepted by a non-freeing receiver: expected 32, measured 40"),
        ("compat.limits", "oneway 64 KiB calls accepted: expected 32, measured 40")],
    "wrong_version": [("protocol.version", "protocol_version: expected 8, measured 7"),
                      ("compat.version", "protocol_version: expected 8, measured 7")],
    "double_copy": [("one_copy.sync_sizes", f"size 8: {COPIES}"), ("one_copy.reply", f"size 8: {COPIES}"),
                    ("one_copy.oneway", f"size 8: {COPIES}"), ("compat.one_copy", f"size 8: {COPIES}"),
                    ("one_copy.vs_pipe", "binder: kernel copies per payload byte: expected 1.0, measured 2.0")],
    "cookie_leak": [("objects.binder_to_handle", "measured [('BINDER_TYPE_HANDLE', 1, 1, 201326753)")],
    "fd_no_cloexec": [("objects.fd", "receiver's fd is close-on-exec: expected True, measured False")],
    "fda_fd_leak": [("objects.fd_array", "fds in the parent buffer are closed by BC_FREE_BUFFER: "
                                         "expected [False, False], measured [True, True]")],
    "no_parent_fixup": [("objects.scatter_gather", "parent fixup: word at offset 16 of buffer A holds buffer B's")],
    "unaligned_offsets": [("objects.bad_offsets", "unaligned: expected BR_FAILED_REPLY -22, measured")],
    "async_space_leak": [("limits.async_exact", "free async space after every buffer is freed: expected 8192, measured 0")],
    "spawn_one_more": [("loopers.spawn_max_threads", "max_threads 0: BR_SPAWN_LOOPER count: expected 0, measured 1")],
    "poll_no_proc_work": [("loopers.poll_epoll", "proc_work_not_looper: POLLIN: expected True, measured False")],
    "outdated_fd_leak": [("objects.update_txn_fds",
                          "write into that pipe after the sender closes its fd: expected EPIPE, measured 1")],
    "dead_binder_cookie": [("protocol.death_notification", "cookie of the death notice: expected 8738, measured 8739")],
    "max_threads_null_efault": [("protocol.null_args", "BINDER_SET_MAX_THREADS(NULL): expected EINVAL, measured EFAULT")],
    "max_threads_signed": [("protocol.set_max_threads",
                            "BINDER_SET_MAX_THREADS(4294967295): expected 0, measured EINVAL")],
    "ctx_mgr_eexist": [("protocol.context_mgr_busy",
                        "BINDER_SET_CONTEXT_MGR from another process: expected EBUSY, measured EEXIST")],
    "thread_exit_einval": [("protocol.thread_exit", "BINDER_THREAD_EXIT (first): expected 0, measured EINVAL")],
    "nonblock_enodata": [("protocol.read_empty_nonblock",
                          "read_empty_nonblock: errno: expected EAGAIN, measured ENODATA")],
    "invalid_handle_dead_reply": [
        ("protocol.invalid_handle", "sync call to handle 12345: expected BR_FAILED_REPLY -22, measured BR_DEAD_REPLY -22"),
        ("protocol.refcounts", "call on the handle after its last reference is dropped: "
                               "expected BR_FAILED_REPLY -22, measured BR_DEAD_REPLY -22")],
    "code_truncated": [("protocol.ping", "code seen by the manager: expected 1599098439, measured 5262919")],
    "self_call_eperm": [("protocol.self_call_rejected",
                         "call to handle 0 from its owner: expected BR_FAILED_REPLY -22, measured BR_FAILED_REPLY -1")],
    "bad_data_ptr_einval": [("protocol.bad_buffer_ptr",
                             "data_unmapped: expected BR_FAILED_REPLY -14, measured BR_FAILED_REPLY -22")],
    "frozen_sync_recv_lost": [("protocol.freeze", "sync_recv bit 0 (sync call received while frozen): "
                                                  "expected 1, measured 0")],
    "register_not_invalid": [("loopers.register_enter", "register_without_request: looper bits: expected 9, measured 1")],
    "pages_never_on_lru": [
        ("one_copy.lazy_pages", "second buffer: pages reused from the LRU: expected 3, measured 0"),
        ("limits.shrinker", "pages on the LRU after 16 freed 64 KiB buffers: expected 16, measured 0")],
    "maywrite_kept": [("limits.mmap_readonly", "mprotect(PROT_READ|PROT_WRITE): expected EACCES, measured 0")],
    "remap_eexist": [("limits.mmap_twice", "second mmap on the same fd: expected EBUSY, measured EEXIST"),
                     ("compat.limits", "second mmap on the same fd: expected EBUSY, measured EEXIST")],
    "spam_late": [("limits.oneway_spam", "call that got BR_ONEWAY_SPAM_SUSPECT (1-based): expected 26, measured 29")],
    "no_vma_enospc": [("limits.munmap_dead", "calls after munmap (call, oneway, call): expected ['BR_DEAD_REPLY -3', "
                                             "'BR_DEAD_REPLY -3', 'BR_DEAD_REPLY -3'], measured ['BR_FAILED_REPLY -28'")],
    "free_buffer_ignored": [
        ("limits.free_reuse", "1000 calls of 64 KiB with BC_FREE_BUFFER: expected 1000, measured 16"),
        ("stress.valid_traffic", "share of successful transactions: expected >= 0.98, measured 0.0"),
        ("one_copy.perf", "probe ran to completion: expected done ok, measured binder call of 1040384 bytes: "
                          "failed_reply")],
    "node_work_kept": [("protocol.refs_after_thread_exit", "after BINDER_THREAD_EXIT: BRs the owner read: expected [], "
                                                           "measured ['BR_INCREFS', 'BR_ACQUIRE', 'BR_RELEASE', 'BR_DECREFS']")],
    "warn_on_transaction": [(case_id, "kernel health: dmesg delta free of WARNING/BUG/Oops/KASAN/Call Trace: "
                                      "expected none, measured [") for case_id in
                            ("one_copy.sync_sizes", "stress.random_commands", "stress.valid_traffic")],
}


def test_every_case_has_a_seeded_bug_or_says_why_not():
    caught = {c for cases in CAUGHT.values() for c, _ in cases}
    for spec in load_cases().values():
        assert spec.id in caught or "no seeded bug" in spec.doc.lower(), spec.id
    assert set(CAUGHT) <= set(build.BUGS)


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_seeded_bug_is_caught(tmp_path, seeded, bug):
    expected = CAUGHT[bug]
    assert build.BUGS[bug].caught_by in [case_id for case_id, _ in expected]
    module = seeded(bug)
    run = cli("run", *[case_id for case_id, _ in expected], "--binder-module", str(module), "--seed", "4242",
              out=tmp_path, timeout=600)
    assert run.status == 1, run.stderr
    assert_judge_reproduces(run)  # the failed checks stay failed when judged offline
    for case_id, reason_part in expected:
        case = run.case(case_id)
        assert case["outcome"] == "failed", (case_id, case["reason"])
        assert reason_part in case["reason"], (case_id, case["reason"])
    assert_full_page(run.out)
    if bug == "free_buffer_ignored":
        left = run.case("stress.valid_traffic")["evidence"]["buffers_left"]
        assert left["client"] > 0 and left["server"] > 0, left


def test_stock_rebuild_passes_the_seeded_cases(tmp_path, seeded):
    """The control for every seeded-bug kill: the unmodified driver, rebuilt exactly as the seeded
    bugs are (out of tree against Debian's headers, so with DWARF and no BTF of its own), passes
    every case of the catalog, none skipped, its kprobe offsets from the BTF the harness made.
    (x86_64 only: the seeded builder does not cross-build arm64 modules.)"""
    module = seeded(None)
    run = cli("run", "--binder-module", str(module), "--seed", "4242", out=tmp_path, timeout=900)
    report = run.report
    not_passed = [(c["id"], c["outcome"], c["reason"]) for c in report["cases"] if c["outcome"] != "passed"]
    assert not_passed == [], not_passed
    assert run.status == 0, run.stderr
    assert sorted(c["id"] for c in report["cases"]) == sorted(load_cases())
    assert report["summary"]["passed"] == len(load_cases()) and report["summary"]["skipped"] == 0
    assert report["target"]["binder_module"] == str(module)
    placed = [c for c in report["cases"] if "struct_offsets" in c["evidence"]]
    assert {c["id"] for c in placed} >= {"one_copy.sync_sizes", "one_copy.reply", "one_copy.oneway",
                                          "one_copy.vs_pipe", "one_copy.lazy_pages", "compat.one_copy"}
    for case in placed:
        assert case["evidence"]["struct_offsets"]["binder_buffer.user_data"]["from"] == (
            "BTF /sys/kernel/btf/binder_linux (module BTF made on the host from its DWARF by pahole)"), case["id"]
    for case in report["cases"]:
        assert case["evidence"]["dmesg_bad_lines"] == [], case["id"]
