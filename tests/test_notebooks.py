"""Every notebook is up to date with its generator and executes headless without error.

The notebooks run against the offline embeddings server (no OPENAI_API_KEY) with
VD_NOTEBOOK_QUICK=1 (N=10). The LangChain notebook also runs its comparison with
langchain-milvus, which the test environment has installed; the LlamaIndex one skips
its comparison here because that integration needs its own virtualenv (pymilvus<3),
whose creation takes minutes (``python -m vd_bench --compare`` covers it).

Cells use top-level ``await``; some runs apply nest_asyncio first (as the tutorial does)
to show that both work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
COMPARE = {
    "langchain_async.ipynb": "1",
    "llama_index_async.ipynb": "0",
    "rag_quickstart.ipynb": "0",
}
#: (notebook, apply nest_asyncio first)
RUNS = [
    ("langchain_async.ipynb", "1"),
    ("llama_index_async.ipynb", "0"),
    ("rag_quickstart.ipynb", "0"),
    ("rag_quickstart.ipynb", "1"),
]


def test_notebooks_match_their_generator():
    result = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "build_notebooks.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("name", "nest_asyncio"), RUNS, ids=[f"{n}-nest{a}" for n, a in RUNS])
def test_notebook_executes(name, nest_asyncio, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("VD_NOTEBOOK_FULL", raising=False)
    monkeypatch.setenv("VD_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("VD_NOTEBOOK_NEST_ASYNCIO", nest_asyncio)
    monkeypatch.setenv("VD_NOTEBOOK_COMPARE", COMPARE[name])
    monkeypatch.setenv("VD_BENCH_VENVS", str(tmp_path / "venvs"))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert "colab.research.google.com" in notebook.cells[0].source
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    sources = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "run_until_complete(" not in sources  # top-level await instead
    if name != "rag_quickstart.ipynb":
        own = tmp_path / "bench_results" / name.removesuffix(".ipynb")  # its own folder
        assert (own / "results.json").exists()
        assert (own / "speedup.png").exists()
    else:
        assert "await Milvus.afrom_texts(" in sources
    assert os.listdir(tmp_path)
