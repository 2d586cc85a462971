"""One public error hierarchy: every exception class defined under src/ derives from
``VdIntegrationsError`` and keeps its standard base; all are exported by ``vd_integrations``.

Exempt: warning categories, and ``BaseException``-only control-flow signals (a benchmark's
internal cancellation, like ``asyncio.CancelledError``), which are not errors."""

from __future__ import annotations

import ast
import importlib
import inspect
import pickle
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import vd

import vd_integrations
from vd_integrations import VdIntegrationsError
from vd_integrations.core import errors as errors_module

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = ("vd_integrations", "langchain_vd", "llama_index_vd", "vd_bench")

#: The standard base each of our errors must keep (code catching it must not break).
KEPT_BASES: dict[str, tuple[type[BaseException], ...]] = {
    "InvalidInputError": (ValueError,),
    "IdMismatchError": (ValueError, AssertionError),
    "UnsupportedFilterError": (vd.UnsupportedFilterError, ValueError),
    "InvalidFilterExpressionError": (vd.UnsupportedFilterError, ValueError),
    "MilvusOperationError": (RuntimeError,),
    "CollectionNotFoundError": (LookupError,),
    "StoreClosedError": (RuntimeError,),
    "OperationTimeoutError": (TimeoutError,),
    "ServerUnreachableError": (ConnectionError,),
    "RetryError": (RuntimeError,),
    "UnsupportedEventLoopError": (RuntimeError,),
    "BenchmarkCheckError": (AssertionError,),
    "MissingDependencyError": (ImportError,),
}


def _modules() -> tuple[list[ModuleType], dict[str, str]]:
    """Every module of our packages (``__main__`` modules are not imported: they run), and
    the modules that could not be imported for a missing optional dependency."""
    found, missing = [], {}
    for package in PACKAGES:
        try:
            root = importlib.import_module(package)
        except ImportError as exc:  # e.g. llama-index-core not installed
            missing[package] = str(exc)
            continue
        found.append(root)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue
            try:
                found.append(importlib.import_module(info.name))
            except ModuleNotFoundError as exc:
                missing[info.name] = str(exc)
    return found, missing


def _classes_in(namespace: object, module: str) -> list[type]:
    out = []
    for value in vars(namespace).values():
        if inspect.isclass(value) and value.__module__ == module:
            out.append(value)
            out.extend(_classes_in(value, module))  # nested classes
    return out


def _exception_classes() -> tuple[dict[str, type[BaseException]], dict[str, str]]:
    modules, missing = _modules()
    found: dict[str, type[BaseException]] = {}
    for module in modules:
        for cls in _classes_in(module, module.__name__):
            if issubclass(cls, BaseException) and not issubclass(cls, Warning):
                found[f"{module.__name__}.{cls.__qualname__}"] = cls
    return found, missing


def test_every_exception_class_derives_from_the_base() -> None:
    found, missing = _exception_classes()
    assert "vd_integrations.core.errors.InvalidInputError" in found, sorted(found)
    # BaseException-only control-flow signals (like asyncio.CancelledError) are not errors
    bad = sorted(
        name
        for name, cls in found.items()
        if issubclass(cls, Exception) and not issubclass(cls, VdIntegrationsError)
    )
    assert not bad, f"exception classes not deriving from VdIntegrationsError: {bad}"
    # nothing escaped the walk: every class statement naming an exception-looking base in
    # src/ (also inside functions and __main__ modules) is one of the classes checked above
    checked = {cls.__name__ for cls in found.values()} | {"VdIntegrationsError"}
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        if any(module == m or module.startswith(f"{m}.") for m in missing):
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [ast.unparse(b) for b in node.bases]
            looks_like_error = any(
                b.rsplit(".", 1)[-1].endswith(("Error", "Exception")) for b in bases
            )
            if looks_like_error:
                assert node.name in checked, f"{path}:{node.lineno} {node.name}({bases})"


@pytest.mark.parametrize("name", sorted(KEPT_BASES))
def test_standard_bases_are_kept(name: str) -> None:
    found, _ = _exception_classes()
    matches = [cls for cls in found.values() if cls.__name__ == name]
    if not matches:
        pytest.skip(f"{name} is not defined in this checkout")
    for cls in matches:
        assert issubclass(cls, VdIntegrationsError)
        for base in KEPT_BASES[name]:
            assert issubclass(cls, base), f"{cls} lost its base {base}"


def test_errors_are_exported_from_the_package() -> None:
    public_errors = [n for n in errors_module.__all__ if n != "error_chain"]
    for name in [*public_errors, "CoalescingSettings", "RetrySettings", "RetryError"]:
        assert name in vd_integrations.__all__, name
        assert getattr(vd_integrations, name) is getattr(
            importlib.import_module(vd_integrations._EXPORTS[name]), name
        )
    for name in public_errors:
        assert getattr(vd_integrations, name) is getattr(errors_module, name)
    assert vd_integrations.UnsupportedEventLoopError.__module__ == "vd_integrations.core.loops"
    namespace: dict[str, object] = {}
    exec("from vd_integrations import *", namespace)
    assert set(vd_integrations.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vd_integrations.nope  # noqa: B018


def test_the_base_pickles_and_names_its_public_home() -> None:
    assert VdIntegrationsError.__module__ == "vd_integrations.core.errors"
    assert errors_module.VdIntegrationsError is VdIntegrationsError
    for exc in (
        VdIntegrationsError("x"),
        vd_integrations.InvalidInputError("y"),
        vd_integrations.StoreClosedError("z"),
    ):
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc)


def test_filter_translation_raises_our_filter_error() -> None:
    from vd_integrations.core.filters import translate_filter

    with pytest.raises(vd_integrations.UnsupportedFilterError) as info:
        translate_filter({"year": {"$regex": "x"}})
    assert isinstance(info.value, vd.UnsupportedFilterError)
    assert isinstance(info.value, ValueError)


def test_light_modules_do_not_import_vd() -> None:
    """``import vd_integrations`` and the offline embeddings server (started as a
    subprocess by the benchmark and the tests) stay light: ``vd`` imports every backend."""
    code = (
        "import sys, vd_integrations, vd_integrations.testing.embedding_server, "
        "vd_integrations.testing.lite_server, vd_integrations.core.retry, "
        "vd_integrations.core.loops\n"
        "assert 'vd' not in sys.modules and 'pymilvus' not in sys.modules, "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('vd', 'pymilvus'))\n"
        "assert vd_integrations.RetryError.__mro__[1].__name__ == 'VdIntegrationsError'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
