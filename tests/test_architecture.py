"""Import contracts of ``src/`` (issue 16), read from the source with ``ast``: nothing is imported.

1. No import cycles among our modules; imports under ``if TYPE_CHECKING:`` and inside
   functions count too.
2. Layers: the core imports no backend, test utility, integration or benchmark; the
   backends import no framework; the two integrations never import each other; runtime
   code never imports the test utilities or the benchmark.
3. No module imports or reads another module's private name (``from x import _y``,
   ``x._y`` on an imported module); a private *module* (``pkg/_y.py``) belongs to ``pkg``
   and may be used by the modules of ``pkg``. And (3b) no module reads or overrides a
   private member (method, attribute) that another module of ours defines, except the
   members of a class in a private module, which are shared by that module's package (the
   integrations' framework subclasses keep their hooks out of the public class API).
4. No source file of src/ has more than ``MAX_LINES`` lines, and each opens with a docstring.

A check that fails because of offenders being fixed is marked ``xfail(strict=True,
raises=AssertionError)`` with the offending files: once they are fixed the test passes,
strict xfail fails the run and the marker must go. An offender that is not listed fails
the run at once (``pytest.fail``, which an ``xfail(raises=AssertionError)`` does not hide).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
MAX_LINES = 500

# The layers, as module prefixes (update them when modules move; a prefix that names no
# module fails test_layers_name_existing_modules).
TESTING = ("vd_integrations.testing",)
BENCH = ("vd_bench",)
CORE = ("vd_integrations.core",)
EMBEDDINGS = ("vd_integrations.embeddings",)
BACKENDS = ("vd_integrations.milvus", "vd_integrations.vd")
INTEGRATIONS = ("langchain_vd", "llama_index_vd")
RUNTIME_PACKAGES = ("vd_integrations", "langchain_vd", "llama_index_vd")  # minus TESTING


def _within(module: str, prefixes: Collection[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _is_framework(module: str) -> bool:
    """LangChain and LlamaIndex, and our integrations over them."""
    return module.split(".")[0].startswith(("langchain", "llama_index"))


def _core(module: str) -> bool:
    return _within(module, CORE)


def _runtime(module: str) -> bool:
    return _within(module, RUNTIME_PACKAGES) and not _within(module, TESTING)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# --- reading the tree ---------------------------------------------------------------------


@cache
def _modules() -> dict[str, Path]:
    """Every module of ours: dotted name -> file."""
    out: dict[str, Path] = {}
    for package in sorted(p.parent for p in SRC.glob("*/__init__.py")):
        for path in sorted(package.rglob("*.py")):
            parts = list(path.relative_to(SRC).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _path(module: str) -> str:
    return _modules()[module].relative_to(SRC.parent).as_posix()


def _is_ours(module: str) -> bool:
    return module.split(".")[0] in {m.split(".")[0] for m in _modules()}


@cache
def _tree(module: str) -> ast.Module:
    path = _modules()[module]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _most_specific(dotted: str) -> str:
    """Ours: the longest prefix of ``dotted`` that is one of our modules; else ``dotted``."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in _modules():
            return ".".join(parts[:end])
    return dotted


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (ours: the most specific module of ours it names)
    name: str | None  # ``from target import name`` when ``name`` is no module
    line: int
    type_only: bool
    binds: tuple[str, str] | None = None  # (name, module) when it binds a name to a module

    def where(self) -> str:
        return f"{_path(self.module)}:{self.line}" + (" (type-only)" if self.type_only else "")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_imports(
    node: ast.AST, type_only: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement below ``node``, at any depth, and whether it is type-only."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, type_only
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk_imports(ast.Module(body=[stmt], type_ignores=[]), True)
            for stmt in child.orelse:
                yield from _walk_imports(ast.Module(body=[stmt], type_ignores=[]), type_only)
        else:
            yield from _walk_imports(child, type_only)


@cache
def _imports(module: str) -> tuple[Import, ...]:
    out: list[Import] = []
    is_package = _modules()[module].name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    for node, type_only in _walk_imports(_tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _most_specific(alias.name)
                top = alias.name.split(".")[0]
                binds = (alias.asname, target) if alias.asname else (top, _most_specific(top))
                out.append(Import(module, target, None, node.lineno, type_only, binds))
            continue
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        for alias in node.names:
            full = f"{base}.{alias.name}"
            if full in _modules():
                binds = (alias.asname or alias.name, full)
                out.append(Import(module, full, None, node.lineno, type_only, binds))
            else:
                name = None if alias.name == "*" else alias.name
                out.append(Import(module, _most_specific(base), name, node.lineno, type_only))
    return tuple(dict.fromkeys(out))


def _module_names(module: str) -> dict[str, str]:
    """Names this module's imports bind to modules of ours: name -> module."""
    return {
        imp.binds[0]: imp.binds[1]
        for imp in _imports(module)
        if imp.binds and imp.binds[1] in _modules()
    }


# --- failing with the offenders -----------------------------------------------------------


def _by_line(detail: str) -> tuple[str, int, str]:
    """Sort key: the ``path:line`` a detail ends with, then the detail."""
    where = detail.rsplit(": ", 1)[-1].split(" ")[0]
    path, _, line = where.rpartition(":")
    return (path, int(line), detail) if line.isdigit() else ("", 0, detail)


def _report(
    offenders: dict[str, list[str]], new: Collection[str], what: str, *, sort: bool = True
) -> None:
    """Fail when there are offenders; when some are ``new`` (not listed as known), fail with
    ``pytest.fail``, which is no ``AssertionError``: an ``xfail(raises=AssertionError)``
    does not hide it."""
    __tracebackhide__ = True
    if not offenders:
        return
    listing = "\n".join(
        f"  {key}"
        + "".join(
            f"\n      {detail}" for detail in (sorted(details, key=_by_line) if sort else details)
        )
        for key, details in sorted(offenders.items())
    )
    if new:
        pytest.fail(f"{what} (not known: {', '.join(sorted(new))}):\n{listing}", pytrace=False)
    raise AssertionError(f"{what}:\n{listing}")


def _new(offenders: Collection[str], known: Collection[str]) -> list[str]:
    return sorted(set(offenders) - set(known))


def _known_failure(known: Collection[str], what: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(
        strict=True,
        raises=AssertionError,
        reason=f"{what} in {', '.join(sorted(known))} (issue 16; remove the marker once fixed)",
    )


# --- 1. no import cycles ------------------------------------------------------------------


def _graph() -> dict[str, dict[str, list[Import]]]:
    """Module -> imported module of ours -> the import statements."""
    graph: dict[str, dict[str, list[Import]]] = {m: defaultdict(list) for m in _modules()}
    for module in _modules():
        for imp in _imports(module):
            if imp.target in _modules() and imp.target != module:
                graph[module][imp.target].append(imp)
    return graph


def _cycles(graph: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


#: the files of the cycles being broken up: a cycle among these files only is known
KNOWN_CYCLES: set[str] = set()


def test_no_import_cycles() -> None:
    graph = _graph()
    offenders: dict[str, list[str]] = {}
    new = []
    for members in _cycles(graph):
        key = " <-> ".join(_path(m) for m in members)
        offenders[key] = [
            f"{a} -> {b}: " + ", ".join(dict.fromkeys(imp.where() for imp in graph[a][b]))
            for a in members
            for b in sorted(graph[a])
            if b in members
        ]
        if not {_path(m) for m in members} <= KNOWN_CYCLES:
            new.append(key)
    _report(
        offenders,
        new,
        "import cycles among the modules of src/ (type-only imports count)",
        sort=False,
    )


# --- 2. layers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    name: str
    applies_to: Callable[[str], bool]  # the importing modules it binds
    forbidden: Callable[[str], bool]  # the imported modules it forbids them
    known: frozenset[str] = frozenset()  # offending files being fixed (an xfail)


CONTRACTS = [
    Contract(
        "core: nothing of ours outside the core (no backend, embeddings, test utility,"
        " integration or benchmark)",
        _core,
        lambda t: _within(t, ("vd_integrations", *INTEGRATIONS, *BENCH)) and not _core(t),
    ),
    Contract(
        "embeddings: the core only (no backend, integration, benchmark or test utility)",
        lambda m: _within(m, EMBEDDINGS),
        lambda t: _within(t, (*BACKENDS, *TESTING, *INTEGRATIONS, *BENCH)) or _is_framework(t),
    ),
    Contract(
        "backends: no framework, benchmark or test utility",
        lambda m: _within(m, BACKENDS),
        lambda t: _is_framework(t) or _within(t, BENCH + TESTING),
    ),
    Contract(
        "langchain_vd: no llama_index_vd, benchmark or test utility",
        lambda m: _within(m, ("langchain_vd",)),
        lambda t: _within(t, ("llama_index_vd", *BENCH, *TESTING)),
    ),
    Contract(
        "llama_index_vd: no langchain_vd, benchmark or test utility",
        lambda m: _within(m, ("llama_index_vd",)),
        lambda t: _within(t, ("langchain_vd", *BENCH, *TESTING)),
    ),
    Contract(
        "runtime: no test utility or benchmark",
        _runtime,
        lambda t: _within(t, TESTING + BENCH),
    ),
]


def test_layers_name_existing_modules() -> None:
    """A layer whose modules all moved away would make its contracts pass vacuously."""
    missing = [
        p
        for p in (*CORE, *EMBEDDINGS, *TESTING, *BENCH, *BACKENDS, *INTEGRATIONS, *RUNTIME_PACKAGES)
        if not any(_within(m, (p,)) for m in _modules())
    ]
    assert not missing, f"layers naming no module of src/ (update them above): {missing}"


@pytest.mark.parametrize(
    "contract",
    [
        pytest.param(
            c,
            id=c.name.split(":")[0],
            marks=[_known_failure(c.known, "layer violations")] if c.known else [],
        )
        for c in CONTRACTS
    ],
)
def test_layer_contract(contract: Contract) -> None:
    offenders: dict[str, list[str]] = defaultdict(list)
    for module in _modules():
        if contract.applies_to(module):
            for imp in _imports(module):
                if contract.forbidden(imp.target):
                    offenders[_path(module)].append(f"imports {imp.target}: {imp.where()}")
    _report(offenders, _new(offenders, contract.known), f"layer broken: {contract.name}")


# --- 3. private names of modules ----------------------------------------------------------


def _forbidden_private(user: str, owner: str, name: str) -> bool:
    """Whether ``user`` may not use ``owner.name``: a private submodule is shared by the
    modules of its package; any other private name belongs to its module alone."""
    if not _is_private(name):
        return False
    if f"{owner}.{name}" in _modules():
        return not _within(user, (owner,))
    return user != owner


def _forbidden_path(user: str, dotted: str) -> str | None:
    """The first private component of the module path ``dotted`` that ``user`` may not use."""
    parts = dotted.split(".")
    for i in range(1, len(parts)):
        if _forbidden_private(user, ".".join(parts[:i]), parts[i]):
            return ".".join(parts[: i + 1])
    return None


def _resolve_module(expr: ast.expr, names: dict[str, str]) -> str | None:
    """The module of ours an expression such as ``engine`` or ``milvus.engine`` names."""
    if isinstance(expr, ast.Name):
        return names.get(expr.id)
    if isinstance(expr, ast.Attribute):
        owner = _resolve_module(expr.value, names)
        if owner is not None and f"{owner}.{expr.attr}" in _modules():
            return f"{owner}.{expr.attr}"
    return None


KNOWN_PRIVATE_NAMES: set[str] = set()


def test_no_private_names_across_modules() -> None:
    offenders: dict[str, list[str]] = defaultdict(list)
    for module in _modules():
        for imp in _imports(module):
            if not _is_ours(imp.target):
                continue
            bad = _forbidden_path(module, imp.target)
            if bad is None and imp.name and _forbidden_private(module, imp.target, imp.name):
                bad = f"{imp.target}.{imp.name}"
            if bad:
                offenders[_path(module)].append(f"imports {bad}: {imp.where()}")
        names = _module_names(module)
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                owner = _resolve_module(node.value, names)
                if owner is not None and _forbidden_private(module, owner, node.attr):
                    offenders[_path(module)].append(
                        f"reads {owner}.{node.attr}: {_path(module)}:{node.lineno}"
                    )
    _report(
        offenders,
        _new(offenders, KNOWN_PRIVATE_NAMES),
        "modules importing or reading another module's private names",
    )


# --- 3b. private members of classes -------------------------------------------------------
# By name, without type inference: ``x._y`` counts when ``_y`` is a private name that other
# modules of ours define and this one does not (a third-party object's private attribute
# that happens to share such a name would be reported too).


@cache
def _private_definitions(module: str) -> frozenset[str]:
    """The private names a module defines: functions, classes, methods, assigned names and
    assigned attributes (``self._x = ...``)."""
    names: set[str] = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Attribute):
                        names.add(sub.attr)
                    elif isinstance(sub, ast.Name):
                        names.add(sub.id)
    return frozenset(n for n in names if _is_private(n))


def _shared_with(user: str, owner: str) -> bool:
    """Whether ``owner`` is a private module (or inside one) of a package ``user`` is in."""
    return _forbidden_path(user, owner) is None and any(
        _is_private(part) for part in owner.split(".")
    )


def _classes(module: str) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in _tree(module).body if isinstance(n, ast.ClassDef)}


def _find_class(module: str, name: str, seen: frozenset[str] = frozenset()) -> str | None:
    """The module of ours defining the class ``name`` seen in ``module`` (imports followed)."""
    if name in _classes(module):
        return module
    for imp in _imports(module):
        if imp.name == name and imp.target in _modules() and imp.target not in seen:
            return _find_class(imp.target, name, seen | {module})
    return None


def _base_classes(module: str, cls: ast.ClassDef) -> Iterator[tuple[str, str]]:
    """The bases of ``cls`` that are classes of ours: (module, class name)."""
    for base in cls.bases:
        if isinstance(base, ast.Subscript):  # Base[Engine], Generic[T]
            base = base.value
        if isinstance(base, ast.Name):
            found = _find_class(module, base.id)
            name = base.id
        elif isinstance(base, ast.Attribute):
            owner = _resolve_module(base.value, _module_names(module))
            found = _find_class(owner, base.attr) if owner else None
            name = base.attr
        else:
            continue
        if found:
            yield found, name


def _inherited_private_methods(module: str, name: str) -> dict[str, str]:
    """Private methods of our class ``module.name`` and of its bases of ours: method name ->
    the module defining the nearest one."""
    cls = _classes(module)[name]
    out: dict[str, str] = {}
    for base in reversed(list(_base_classes(module, cls))):
        out.update(_inherited_private_methods(*base))
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and _is_private(stmt.name):
            out[stmt.name] = module
    return out


KNOWN_PRIVATE_MEMBERS: set[str] = set()


def test_no_private_members_across_modules() -> None:
    definers: dict[str, set[str]] = defaultdict(set)
    for module in _modules():
        for name in _private_definitions(module):
            definers[name].add(module)
    offenders: dict[str, list[str]] = defaultdict(list)
    for module in _modules():
        names = _module_names(module)
        for node in ast.walk(_tree(module)):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            if _resolve_module(node.value, names) is not None:
                continue  # a module's private name: test_no_private_names_across_modules
            if node.attr in _private_definitions(module):
                continue
            others = [m for m in sorted(definers[node.attr]) if not _shared_with(module, m)]
            if others and len(others) == len(definers[node.attr] - {module}):
                offenders[_path(module)].append(
                    f"reads {ast.unparse(node)} (defined in {', '.join(map(_path, others))}):"
                    f" {_path(module)}:{node.lineno}"
                )
        for cls in _classes(module).values():
            inherited: dict[str, str] = {}
            for base in _base_classes(module, cls):
                inherited.update(_inherited_private_methods(*base))
            for stmt in cls.body:
                if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                origin = inherited.get(stmt.name)
                if origin and origin != module and not _shared_with(module, origin):
                    offenders[_path(module)].append(
                        f"{cls.name}.{stmt.name} overrides a private method of "
                        f"{_path(origin)}: {_path(module)}:{stmt.lineno}"
                    )
    _report(
        offenders,
        _new(offenders, KNOWN_PRIVATE_MEMBERS),
        "modules reading or overriding private members another module defines",
    )


# --- 4. file length -----------------------------------------------------------------------

#: Files of src/ still over the limit (the benchmark and the test utilities count too).
KNOWN_LONG_FILES: set[str] = set()


def test_every_module_says_what_it_holds() -> None:
    """Each file of src/ opens with a docstring."""
    missing = [
        _path(module)
        for module, path in _modules().items()
        if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not missing, f"modules without a docstring: {missing}"


def test_source_files_are_short() -> None:
    offenders = {}
    for module, path in _modules().items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            offenders[_path(module)] = [f"{lines} lines"]
    _report(
        offenders,
        _new(offenders, KNOWN_LONG_FILES),
        f"runtime source files over {MAX_LINES} lines",
    )
