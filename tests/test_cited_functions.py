"""Every check of the catalog cites real kernel functions: each ref that cases/*.py passes to a
check names functions of the driver's source or of the kernel, or is one of the few declared
non-function refs. A misspelt function fails."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.judging.catalog import load_cases
from harness.judging.context import kernel_version
from tests.helpers import REPO
from tests.seeded_bugs import build


# -- every check cites a real kernel function --------------------------------------------------
# Refs are passed at run time, so they are gathered from the source of cases/*.py: the `ref`
# argument of every ctx.check (4th), check_that (5th) and note_dmesg (3rd) call, resolved through
# what the catalog writes there (literals, f-strings, conditionals, local names, loop variables
# over literal tables or module tables (.items()), ctx.by_kernel tables, a helper's parameter
# through its callers, a Kprobe's .function). This covers every branch and every kernel
# version's table, which one recorded run cannot (it emits only its kernel's refs and the
# branches its evidence took); an expression the resolver does not know fails the test, so a
# new way of passing a ref cannot slip through unchecked. A by_kernel row (and a Kprobe's name
# from for_kernel) keeps the versions it holds for: its names must be functions of each shipped
# kernel in that span; any other ref's names, of at least one shipped kernel.
CHECK_CALLS = {"check": 3, "check_that": 4, "note_dmesg": 2}
# The refs that name no kernel function, in one place: the probe's own measurement, what
# one_copy.vs_pipe's shared-memory leg reads (no copy at all), and the uapi header whose
# protocol version the probe was built with.
NON_FUNCTION_REFS = frozenset({"probe", "the shared pages themselves", "include/uapi/linux/android/binder.h"})


class UnresolvedRef(Exception):
    pass


Version = tuple[int, int]
ALWAYS: tuple[Version, Version | None] = ((0, 0), None)


@dataclass(frozen=True)
class Row:
    """A value that holds on kernels from `since` up to (not including) `until`: one row of a
    ctx.by_kernel table (the next row's key ends it), or a Kprobe's name on those kernels."""
    value: object
    since: Version
    until: Version | None


@dataclass(frozen=True)
class RefSite:
    path: str
    line: int
    ref: str
    since: Version = (0, 0)
    until: Version | None = None  # a span other than ALWAYS: only the shipped kernels in it must have the names

    @property
    def versioned(self) -> bool:
        return (self.since, self.until) != ALWAYS


def _module(path: Path):
    import importlib

    return importlib.import_module(f"cases.{path.stem}")


def _apply(value, f) -> object:
    """f(value), keeping a Row's version span."""
    return Row(f(value.value), value.since, value.until) if isinstance(value, Row) else f(value)


def _strings(value) -> list[tuple[str, Version, Version | None]]:
    """The ref strings a value can be, each with the kernel versions it holds on."""
    from harness.evidence.kprobes import Kprobe

    if isinstance(value, Row):
        return [(ref, value.since, value.until) for ref, _, _ in _strings(value.value)]
    if isinstance(value, str):
        return [(value, *ALWAYS)]
    if isinstance(value, Kprobe):
        return [(value.function, *ALWAYS)]
    raise UnresolvedRef(f"a ref value {value!r}")


def _renamed(probe) -> list[Row]:
    """A Kprobe's function under each name it has (Kprobe.for_kernel), with the versions it has it."""
    spans = [((0, 0), probe.function), *(((major, minor), name) for major, minor, name in sorted(probe.renamed))]
    return [Row(name, since, spans[i + 1][0] if i + 1 < len(spans) else None) for i, (since, name) in enumerate(spans)]


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
            if any(isinstance(v, Row) for part in expr.values if not isinstance(part, ast.Constant)
                   for v in self.values(part.value, where)):
                raise UnresolvedRef(f"a version table's row in an f-string: {ast.unparse(expr)}")
            out = [""]
            for part in expr.values:
                pieces = ([str(part.value)] if isinstance(part, ast.Constant) else
                          [str(v) for v in self.values(part.value, where)])
                out = [a + b for a in out for b in pieces]
            return out
        if isinstance(expr, ast.Attribute) and expr.attr == "function" and isinstance(expr.value, ast.Call) \
                and isinstance(expr.value.func, ast.Attribute) and expr.value.func.attr == "for_kernel":
            return [row for k in self.values(expr.value.func.value, where) for row in _renamed(k)]
        if isinstance(expr, ast.Name):
            return self._name(expr.id, where)
        if _by_driver(expr):  # ctx.by_driver(TABLE): every driver's entry
            return [entry for table in self.values(expr.args[0], where) for entry in table.values()]  # type: ignore[attr-defined]
        if isinstance(expr, ast.Subscript):  # TABLE[key]: that key's value; a key not written as a literal, every value
            key = expr.slice.value if isinstance(expr.slice, ast.Constant) else None
            return [v[key] if key is not None else item for v in self.values(expr.value, where)
                    for item in ([None] if key is not None else list(v.values() if isinstance(v, dict) else v))]
        if isinstance(expr, ast.Attribute):  # a field of a table row: ctx.by_kernel(T).f, or row.f
            return [_apply(row, lambda r: getattr(r, expr.attr)) for row in self._rows(expr.value, where)]
        raise UnresolvedRef(ast.unparse(expr))

    def _rows(self, expr: ast.AST, where: ast.AST) -> list:
        """Every row `expr` can be: each version's entry of ctx.by_kernel(TABLE) as a Row that
        holds from its key up to the next key (CaseContext.by_kernel picks the highest key at or
        below the kernel), directly or through a local name bound from it."""
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "by_kernel":
            table = self.values(expr.args[0], where)[0]
            keys = sorted(table)
            return [Row(table[k], k, keys[i + 1] if i + 1 < len(keys) else None) for i, k in enumerate(keys)]
        return self.values(expr, where)

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
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "by_kernel":
            return [_apply(row, lambda r: self._pick(r, path)) for row in self._rows(value, scope)]
        if not loop and (path == () or _by_driver(value) or isinstance(value, ast.Subscript)):
            return [self._pick(v, path) for v in self.values(value, scope)] if path else self.values(value, scope)
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
            tables = self.values(value.func.value, scope)  # one table, or each driver's (ctx.by_driver)
            rows = [row for table in tables for row in getattr(table, value.func.attr)()]
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


def _by_driver(expr: ast.AST) -> bool:
    """ctx.by_driver(TABLE): the entry for the driver serving the target (CaseContext.by_driver)."""
    return isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "by_driver"


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
            sites += [RefSite(where, node.lineno, ref, since, until) for v in values for ref, since, until in _strings(v)]
    return sites


def _braces(text: str) -> str:
    """copy_{from,to}_user -> copy_from_user/copy_to_user"""
    m = re.search(r"(\w*)\{([\w,]+)\}(\w*)", text)
    if not m:
        return text
    return _braces(text[:m.start()] + "/".join(m[1] + alt + m[3] for alt in m[2].split(",")) + text[m.end():])


def _cited(ref: str) -> list[str]:
    """A ref's names, commentary in parentheses (which may nest) dropped, a Rust file's path kept whole."""
    text = _braces(ref)
    while True:
        stripped = re.sub(r"\([^()]*\)", "", text)
        if stripped == text:
            break
        text = stripped
    text = re.sub(r"(\w+)/(?=[\w/]*\.rs )", "\\1\0", text)  # range_alloc/tree.rs: not a separator
    return [p.strip().replace("\0", "/") for p in re.split(r"->|/|\+|;|,", text) if p.strip()]


# A Rust driver item a ref cites: "FILE.rs Type::fn" or "FILE.rs fn"; a "Type::fn" after it in the
# same ref ("thread.rs Thread::reply_inner / Thread::transaction_inner") is in the same file.
_RUST_ITEM = re.compile(r"^(?:((?:\w+/)*\w+\.rs) )?(?:(\w+)::)?(\w+)$")
RustItem = tuple[str, "str | None", str]  # (file under drivers/android/binder/, impl type or None, fn)


def cited_items(ref: str) -> tuple[list[str], list[RustItem]]:
    """The C (or kernel) function names a ref cites, and the Rust driver items."""
    names: list[str] = []
    items: list[RustItem] = []
    file = None
    for part in _cited(ref):
        m = _RUST_ITEM.match(part)
        if m and (m[1] or (m[2] and file)):
            file = m[1] or file
            items.append((file, m[2], m[3]))
        else:
            names.append(part)
    return names, items


def cited_functions(ref: str) -> list[str]:
    """The C (or kernel) names a ref cites: a chain of function names joined by ->, /, +, ; or ',',
    each optionally followed by commentary in parentheses (which may nest)."""
    return cited_items(ref)[0]


@dataclass(frozen=True)
class ShippedKernel:
    """One shipped recipe's kernel: its Debian version and the function names it has."""
    debian_version: str  # e.g. 6.12.117-1
    functions: frozenset[str]

    @property
    def version(self) -> Version:
        return kernel_version(self.debian_version)


def _lacking(name: str, site: RefSite, kernels: list[ShippedKernel]) -> str | None:
    """Why `name` fails at `site`, or None. A by_kernel row (or a Kprobe's name) for versions
    [since, until) must be a function of every shipped kernel in that span; a row no shipped
    kernel falls in, and an unversioned ref, of at least one shipped kernel."""
    span = [k for k in kernels if site.since <= k.version and (site.until is None or k.version < site.until)]
    if site.versioned and span:
        missing = [k.debian_version for k in span if name not in k.functions]
        if not missing:
            return None
        until = f" < {'.'.join(map(str, site.until))}" if site.until else ""
        return (f"{name!r} (in {site.ref!r}, for Linux >= {'.'.join(map(str, site.since))}{until}) is no function "
                f"of the driver or of the kernel (BTF) in the shipped {', '.join(missing)}")
    if any(name in k.functions for k in kernels):
        return None
    return f"{name!r} (in {site.ref!r}) is no function of the driver or of the kernel (BTF)"


def bad_refs(sites: list[RefSite], kernels: list[ShippedKernel], rust: frozenset[RustItem] = frozenset()) -> list[str]:
    """One line per cited name that is neither a kernel function nor a declared non-function ref,
    and per cited Rust item that the Rust driver's source (`rust`: rust_functions) does not define."""
    out = []
    for site in sites:
        if site.ref in NON_FUNCTION_REFS:
            continue
        names, items = cited_items(site.ref)
        for name in names:
            why = _lacking(name, site, kernels)
            if why is not None:
                out.append(f"{site.path}: {why}")
        for file, kind, fn in items:
            if (file, kind, fn) not in rust and not (kind is None and any(i[0] == file and i[2] == fn for i in rust)):
                out.append(f"{site.path}: {file} {kind + '::' if kind else ''}{fn} (in {site.ref!r}) is no function of "
                           "the Rust driver (drivers/android/binder/)")
    return out


# `impl Type`, `impl<T> Type<T>`, `impl Trait for Type` at column 0; `fn name` inside it
_RUST_IMPL = re.compile(r"^(?:unsafe )?impl(?:<[^>]*>)? (?:[\w:<>, ]+? for )?(\w+)", re.M)
_RUST_FN = re.compile(r"^\s*(?:pub(?:\([\w:]+\))? )?(?:const )?(?:unsafe )?(?:extern \"C\" )?fn (\w+)", re.M)


def rust_functions(files: dict[str, str]) -> frozenset[RustItem]:
    """(file, impl type, fn) of every fn in the Rust driver's .rs files: a fn at column 0 has no
    type, one inside an impl block has the type of the last impl line before it."""
    items = set()
    for name, text in files.items():
        impls = [(m.start(), m[1]) for m in _RUST_IMPL.finditer(text)]
        for m in _RUST_FN.finditer(text):
            indented = not text[m.start():].startswith("fn") and not re.match(r"(pub(\([\w:]+\))? )?fn", text[m.start():])
            owner = next((t for at, t in reversed(impls) if at < m.start()), None) if indented else None
            items.add((name, owner, m[1]))
    return frozenset(items)


# a function's definition starts at column 0 (kernel style); a function-like macro is one too
_C_DEFINITION = re.compile(r"^(?:[A-Za-z_][\w\s\*]*?\b|#define\s+)([A-Za-z_]\w*)\s*\(", re.M)


def source_functions(files: dict[str, str]) -> set[str]:
    """The functions (and function-like macros) drivers/android's .c and .h files define."""
    return {m.group(1) for name, text in files.items() if name.endswith((".c", ".h"))
            for m in _C_DEFINITION.finditer(text)}


@pytest.fixture(scope="module")
def kernel_functions() -> list[ShippedKernel]:
    """For every shipped recipe's kernel (6.1.192-3 and -2, 6.12, 7.2: a version table cites each
    version's functions): the functions of its own drivers/android source, Debian's
    linux-source-X.Y at the kernel's Debian version fetched through the signed indexes of the
    recipe's mirrors (build.driver_source; inlined helpers included), and those its
    binder_linux.ko and its vmlinux describe in BTF (pipe_write, unix_stream_sendmsg, ...).
    Debian's boot/System.map is a one-line stub ("The real System.map is in the
    linux-image-<version>-dbg package"), hence BTF: every function with a body. The arm64
    recipes boot the same Debian versions, so the x86_64 ones stand for them."""
    from harness.evidence.btf import elf_section, function_names, kernel_btf
    from harness.building.build import ensure_kernel
    from harness.building.recipes import load_recipe, shipped_recipes

    recipes = [r for r in map(load_recipe, shipped_recipes()) if r.kernel_source.debian is not None]  # not built ones
    x86 = [r for r in recipes if r.arch == "x86_64"]
    assert {r.kernel.version for r in recipes} == {r.kernel.version for r in x86}
    kernels = []
    for recipe in x86:
        source = source_functions(build.driver_source(recipe.kernel.version, recipe.mirrors, recipe.deb_arch))
        assert {"binder_ioctl", "binder_transaction"} <= source, recipe.name
        kern = ensure_kernel(recipe, lambda _: None)
        vmlinux_btf = kernel_btf(kern.kernel.read_bytes())
        assert vmlinux_btf is not None and kern.moddir is not None, recipe.name
        kernel = function_names(vmlinux_btf, what=f"{recipe.name} vmlinux BTF")
        assert {"unix_stream_sendmsg", "__check_object_size"} <= kernel and len(kernel) > 30000  # pipe_write: anon_pipe_write from 6.15
        module = next(kern.moddir.rglob("binder_linux.ko")).read_bytes()

        driver = function_names(elf_section(module, ".BTF") or b"", vmlinux_btf, f"{recipe.name} binder_linux.ko BTF")
        assert "binder_ioctl" in driver, recipe.name
        kernels.append(ShippedKernel(recipe.kernel.version, frozenset(source | kernel | driver)))
    return kernels


@pytest.fixture(scope="module")
def rust_driver_functions() -> frozenset[RustItem]:
    """The fns of the Rust driver (drivers/android/binder/*.rs) of the shipped Rust recipe's source,
    Debian's linux-source-X.Y at the recipe's version, fetched through the same signed indexes."""
    from harness.building.recipes import IMAGES_DIR, load_recipe

    recipe = load_recipe(IMAGES_DIR / "qemu-x86_64-7.3-rust.yaml")
    build_section = recipe.kernel_source.build
    assert build_section is not None
    items = rust_functions(build.driver_source(build_section.source.version, recipe.mirrors, recipe.deb_arch, rust=True))
    assert {("thread.rs", "Thread", "transaction"), ("process.rs", "Process", "get_node_from_handle")} <= items
    return items


def test_every_check_cites_a_kernel_function_or_the_probe(kernel_functions, rust_driver_functions):
    """Each case's docstring exists, and every ref its checks cite names real kernel functions: of
    binder.c and the kernel, or, for a Rust driver's expectation, of drivers/android/binder/*.rs."""
    for spec in load_cases().values():
        assert spec.doc, spec.id
    sites = cited_refs(sorted((REPO / "cases").glob("*.py")))
    assert len({s.ref for s in sites}) > 150, len(sites)
    assert sum(bool(cited_items(s.ref)[1]) for s in sites) > 30  # the Rust driver's expectations are resolved too
    assert bad_refs(sites, kernel_functions, rust_driver_functions) == []


def test_a_typo_in_a_cited_rust_function_is_caught(rust_driver_functions):
    """A Rust ref names its file and fn: a misspelt fn, a wrong impl type or file is caught."""
    assert cited_items("range_alloc/tree.rs TreeRangeAllocator::reserve_new (pr_warn!) / binder_ioctl") == (
        ["binder_ioctl"], [("range_alloc/tree.rs", "TreeRangeAllocator", "reserve_new")])
    assert cited_items("thread.rs Thread::reply_inner / Thread::transaction_inner") == (
        [], [("thread.rs", "Thread", "reply_inner"), ("thread.rs", "Thread", "transaction_inner")])
    good = [RefSite("x", 1, "thread.rs Thread::copy_transaction_data -> process.rs ioctl_freeze")]
    assert bad_refs(good, [], rust_driver_functions) == []
    for typo in ("thread.rs Thread::copy_transaction_dat", "process.rs Thread::copy_transaction_data",
                 "thread.rs Process::copy_transaction_data"):
        assert bad_refs([RefSite("x", 1, typo)], [], rust_driver_functions) == [
            f"x: {typo} (in {typo!r}) is no function of the Rust driver (drivers/android/binder/)"]


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


def test_a_version_row_cites_its_own_kernels_functions(kernel_functions):
    """A by_kernel row holds from its key to the next one, and its names must be functions of
    the shipped kernels in that span: 6.1's binder_update_page_range, a real 6.1 function, is
    caught in the >= 6.8 row (where 6.12 and 7.2 have no such function)."""
    sites = cited_refs([REPO / "cases" / "one_copy.py"])
    spans = {(s.ref, s.since, s.until) for s in sites if s.versioned}
    old, new = "binder_update_page_range (binder_alloc_page_start)", "binder_install_buffer_pages (binder_alloc_page_start)"
    assert {(old, (6, 1), (6, 8)), (new, (6, 8), None)} <= spans
    assert bad_refs([s for s in sites if s.ref in (old, new)], kernel_functions) == []
    later = [k.debian_version for k in kernel_functions if k.version >= (6, 8)]
    assert later, "no shipped kernel is 6.8 or later"
    swapped = [RefSite("cases/one_copy.py", 1, old, (6, 8), None)]
    assert [line.split(": ", 1)[1] for line in bad_refs(swapped, kernel_functions)] == [
        f"'binder_update_page_range' (in {old!r}, for Linux >= 6.8) is no function of the driver or of the kernel "
        f"(BTF) in the shipped {', '.join(later)}"]
    assert bad_refs([RefSite("x", 1, old)], kernel_functions) == []  # unversioned: one shipped kernel suffices
