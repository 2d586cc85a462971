"""A real package: license, typing marker, versions, URLs, and a clear error for a missing
optional dependency."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vd_integrations", "langchain_vd", "llama_index_vd", "vd_bench")


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("package", PACKAGES)
def test_py_typed_ships_in_every_package(package: str) -> None:
    assert (ROOT / "src" / package / "py.typed").is_file()
    wheel_packages = pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert f"src/{package}" in wheel_packages  # hatch ships every file of these folders


def test_license_file_matches_the_metadata() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    project = pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert "LICENSE" in project["license-files"]
    meta = importlib.metadata.metadata("vd-integrations")
    assert meta.get("License-Expression", meta.get("License")) == "Apache-2.0"


@pytest.mark.parametrize("package", PACKAGES)
def test_version_is_single_sourced(package: str) -> None:
    module = importlib.import_module(package)
    installed = importlib.metadata.version("vd-integrations")
    assert module.__version__ == installed
    assert installed == pyproject()["project"]["version"]


def test_project_urls_and_changelog() -> None:
    project = pyproject()["project"]
    urls = project["urls"]
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{project['version']}]" in changelog and "## [Unreleased]" in changelog
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    for command in ("python3 dev.py test", "python3 dev.py main", "ruff check", "ruff format"):
        assert command in contributing, command


BLOCK_LLAMA_INDEX = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "llama_index" or name.startswith("llama_index."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Block())
try:
    import llama_index_vd
except ImportError as exc:
    assert type(exc) is ImportError, type(exc)
    print(exc)
else:
    raise SystemExit("imported without llama-index-core")
"""


def test_llama_index_vd_without_the_extra_names_it() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_LLAMA_INDEX], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install "vd-integrations[llama-index]"' in result.stdout
