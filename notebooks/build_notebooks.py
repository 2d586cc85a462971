"""Write the notebooks in this folder from the cell sources below.

    python notebooks/build_notebooks.py          # rewrite the .ipynb files
    python notebooks/build_notebooks.py --check  # fail if they are out of date (the suite does)

Numbers and plots in the notebooks come from ``vd_bench`` (the benchmark command's own
code); the notebooks only choose what to run and show it. Outputs are not committed:
CI executes every notebook headless against the offline embeddings server.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
#: The repository the Colab badge and the install cell point at.
REPOSITORY = "vd-integrations/vd-integrations"
BRANCH = "main"


def badge(name: str) -> str:
    url = f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/notebooks/{name}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


INSTALL = f'''\
# Install this package from the repository when it is not installed yet (Colab).
import importlib.util
import os

REPO = os.environ.get("VD_INTEGRATIONS_REPO", "https://github.com/{REPOSITORY}")
if importlib.util.find_spec("vd_bench") is None:
    %pip install -q "vd-integrations[bench,notebook,llama-index] @ git+{{REPO}}@{BRANCH}"'''


def setup(name: str) -> str:
    """The settings cell; ``name`` names the notebook's own results folder."""
    return f"""\
# Jupyter and Colab already run an event loop, so cells can `await` at top level.
# The tutorial applies nest_asyncio (for loop.run_until_complete in a notebook); every
# cell here works with or without it (VD_NOTEBOOK_NEST_ASYNCIO=1 applies it).
import logging

if os.environ.get("VD_NOTEBOOK_NEST_ASYNCIO") == "1":
    import nest_asyncio

    nest_asyncio.apply()
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

# A quick run by default (a few minutes): every workload at N 10 and 100, 100 documents.
# Set FULL = True for the full study (N up to 1000, 1000 documents: half an hour or more).
FULL = os.environ.get("VD_NOTEBOOK_FULL") == "1"
SMOKE = os.environ.get("VD_NOTEBOOK_QUICK") == "1"  # the test suite: N=10 only
COMPARE = os.environ.get("VD_NOTEBOOK_COMPARE", "1") == "1"
MILVUS_URI = os.environ.get("MILVUS_URI")  # None: embedded Milvus Lite files
OUT = "bench_results/{name}"  # this notebook's results: tables, JSON, plots"""


EMBEDDINGS = """\
# Real OpenAI embeddings when OPENAI_API_KEY is set; otherwise an OpenAI-compatible
# server on loopback with deterministic vectors and ~100 ms per request, like the service.
import contextlib

from vd_integrations.testing.embedding_server import embedding_endpoint

stack = contextlib.ExitStack()
endpoint = stack.enter_context(embedding_endpoint(latency=0.1))
print("embeddings from", endpoint.base_url if endpoint.offline else "the OpenAI service")"""


def benchmark_cells(integration: str) -> list:
    return [
        new_markdown_cell(
            "## The measurements\n\n"
            "`vd_bench.run_benchmark` is the code behind `python -m vd_bench`, the README's "
            "main job. For each workload and N it opens a fresh collection, runs N single-item "
            "operations one by one with the sync method, then all at once with the async twin "
            "(`asyncio.gather`), and checks every result. With `COMPARE` it runs the same "
            "workloads through the integration we replace, in its own environment if its "
            "pymilvus pin conflicts with ours: the first run installs that integration and "
            "this package into an isolated virtualenv (`.venv-bench/`, a minute or two). "
            "`await arun_benchmark(...)` runs the measurements on their own event loop in a "
            "worker thread, so the notebook's loop stays free."
        ),
        new_code_cell(
            "from IPython.display import Markdown, display\n\n"
            "from vd_bench import BenchConfig, arun_benchmark\n"
            "from vd_bench.estimate import describe\n"
            "from vd_bench.subjects import WORKLOADS\n\n"
            "options = dict(\n"
            f'    integrations=("{integration}",), workloads=WORKLOADS, compare=COMPARE,\n'
            "    uri=MILVUS_URI, out_dir=OUT,\n"
            ")\n"
            "if FULL:\n"
            "    config = BenchConfig.full(**options)\n"
            "elif SMOKE:\n"
            "    config = BenchConfig(n=(10,), **options)\n"
            "else:  # N 10 and 100, 100 documents\n"
            "    config = BenchConfig(**options)\n"
            'print("measuring", describe(config), "(estimate)")\n'
            "results = await arun_benchmark(config)\n"
            "paths = results.save(OUT)\n"
            "display(Markdown(results.summary()))"
        ),
        new_markdown_cell(
            "### The tutorial's three studies\n\n"
            "The tutorial measured add, search and delete at N = 10 and 100 against real OpenAI "
            "embeddings and a Milvus server: add 100 documents 2.77 s async vs 65.60 s sync; "
            "100 searches 3.72 s vs 54.22 s; 100 deletes 0.61 s vs 29.21 s."
        ),
        new_code_cell(
            'for workload in ("add", "search", "delete"):\n'
            '    display(Markdown(f"#### {workload}\\n\\n" + results.table([workload])))'
        ),
        new_markdown_cell("### Beyond the tutorial: upsert and MMR, speed-up, throughput, latency"),
        new_code_cell(
            "from vd_bench import plots\n\n"
            'display(Markdown(results.table(["upsert", "mmr"])))\n'
            "plots.speedup_figure(results);"
        ),
        new_code_cell("plots.time_figure(results);"),
        new_code_cell("plots.throughput_figure(results);"),
        new_code_cell("plots.latency_figure(results);"),
        new_markdown_cell(
            "### Against the integration we replace\n\n"
            "How many times faster ours was, per workload, N and mode (their seconds / ours). "
            "Where theirs failed on a fresh collection, the table says so and shows the "
            "measurement on a pre-created one."
        ),
        new_code_cell(
            "comparison = results.comparison_table()\n"
            'display(Markdown(comparison or "Run with COMPARE = True to compare."))'
        ),
        new_code_cell(
            "# Every operation succeeded and every collection holds what it should.\n"
            "failed = [m for m in results.measurements if not m.ok and not m.anchor]\n"
            "assert not failed, failed\n"
            "stack.close()"
        ),
    ]


def code(source: str) -> Any:
    return new_code_cell(textwrap.dedent(source).strip("\n"))


def markdown(source: str) -> Any:
    return new_markdown_cell(textwrap.dedent(source).strip("\n"))


def langchain_async() -> list:
    return [
        markdown(f"""
            # Async LangChain + Milvus, measured

            {badge("langchain_async.ipynb")}

            The langchain-milvus async tutorial, reproduced with `langchain_vd.Milvus`: the
            same code with one import changed, then the same study (and more) measured by
            the benchmark.
            """),
        new_code_cell(INSTALL),
        new_code_cell(setup("langchain_async")),
        new_code_cell(EMBEDDINGS),
        markdown("""
            ## The tutorial's code, with one import changed

            ```python
            from langchain_milvus import Milvus      # before
            from langchain_vd import Milvus          # after
            ```

            Where the tutorial calls `loop.run_until_complete(...)`, a notebook cell can
            simply `await` (both work here).
            """),
        code("""
            import asyncio
            import time

            from langchain_core.documents import Document

            from langchain_vd import Milvus, OpenAIEmbeddings

            URI = MILVUS_URI or "./milvus_tutorial.db"
            embeddings = OpenAIEmbeddings(base_url=endpoint.base_url, api_key=endpoint.api_key)


            def init_vector_store():
                return Milvus(
                    embedding_function=embeddings,
                    collection_name="langchain_perf_test",
                    connection_args={"uri": URI},
                    auto_id=True,
                    drop_old=True,
                )


            async def async_add(milvus_store, num_adding):
                docs = [Document(f"This is test document {i}", metadata={"id": f"doc_{i}"})
                        for i in range(num_adding)]
                start_time = time.time()
                await asyncio.gather(*(milvus_store.aadd_documents([doc]) for doc in docs))
                return time.time() - start_time


            milvus_store = init_vector_store()
            seconds = await async_add(milvus_store, 10)
            print(f"Async add for 10 documents took {seconds:.2f} seconds")
            found = await milvus_store.asimilarity_search("test document 3", k=3)
            print([doc.page_content for doc in found])
            assert len(found) == 3
            await milvus_store.aclose()
            milvus_store.close()
            """),
        *benchmark_cells("langchain"),
    ]


def llama_index_async() -> list:
    return [
        markdown(f"""
            # Async LlamaIndex + Milvus, measured

            {badge("llama_index_async.ipynb")}

            The same study for LlamaIndex: `llama_index_vd.MilvusVectorStore` in a
            `VectorStoreIndex`, then N single-node adds, queries, deletes, upserts and MMR
            queries, sync one by one and async concurrently.
            """),
        new_code_cell(INSTALL),
        new_code_cell(setup("llama_index_async")),
        new_code_cell(EMBEDDINGS),
        markdown("""
            ## A VectorStoreIndex over the native-async store

            ```python
            from llama_index.vector_stores.milvus import MilvusVectorStore  # before
            from llama_index_vd import MilvusVectorStore                    # after
            ```
            """),
        code("""
            from llama_index.core import Document, StorageContext, VectorStoreIndex

            from llama_index_vd import MilvusVectorStore, OpenAIEmbedding

            embed_model = OpenAIEmbedding(base_url=endpoint.base_url, api_key=endpoint.api_key)
            vector_store = MilvusVectorStore(
                uri=MILVUS_URI or "./milvus_llamaindex.db",
                collection_name="llama_tutorial",
                dim=len(embed_model.get_query_embedding("probe")),
                overwrite=True,
            )
            documents = [
                Document(text=f"This is test document {i}", metadata={"n": i}) for i in range(20)
            ]
            storage = StorageContext.from_defaults(vector_store=vector_store)
            index = VectorStoreIndex.from_documents(
                documents, storage_context=storage, embed_model=embed_model
            )
            retriever = index.as_retriever(similarity_top_k=3)
            nodes = await retriever.aretrieve("document 7")
            print([n.get_content() for n in nodes])
            assert len(nodes) == 3
            await vector_store.aclose()
            vector_store.close()
            """),
        *benchmark_cells("llama_index"),
    ]


def rag_quickstart() -> list:
    return [
        markdown(f"""
            # RAG quickstart: `await Milvus.afrom_texts(...)` behind an LCEL chain

            {badge("rag_quickstart.ipynb")}

            Index a few texts with the native-async store, turn it into a retriever, and
            answer questions with an LCEL chain. Without `OPENAI_API_KEY` the embeddings
            come from the offline server and the LLM is a fake that answers from the
            retrieved context, so the notebook runs anywhere.
            """),
        new_code_cell(INSTALL),
        new_code_cell(setup("rag_quickstart")),
        new_code_cell(EMBEDDINGS),
        code("""
            from langchain_vd import Milvus, OpenAIEmbeddings

            texts = [
                "Milvus Lite runs embedded in the Python process and keeps data in one file.",
                "The async methods of langchain_vd use AsyncMilvusClient on the running loop.",
                "Product code XR-2041 is the blue kettle with a 1.7 litre capacity.",
                "Reciprocal rank fusion merges dense and keyword rankings.",
                "A retriever returns the documents most similar to the question.",
            ]
            embeddings = OpenAIEmbeddings(base_url=endpoint.base_url, api_key=endpoint.api_key)

            vectorstore = await Milvus.afrom_texts(
                texts,
                embeddings,
                metadatas=[{"source": f"note-{i}"} for i in range(len(texts))],
                connection_args={"uri": MILVUS_URI or "./milvus_rag.db"},
                collection_name="rag_quickstart",
                drop_old=True,
            )
            retriever = vectorstore.as_retriever(search_kwargs={"k": 2})
            """),
        code("""
            from langchain_core.messages import AIMessage
            from langchain_core.output_parsers import StrOutputParser
            from langchain_core.prompts import ChatPromptTemplate
            from langchain_core.runnables import RunnableLambda, RunnablePassthrough


            def fake_llm(prompt):
                \"\"\"Answers with the first line of the context: a stand-in for a chat model.\"\"\"
                text = prompt.to_string()
                context = text.split("Context:", 1)[1].split("Question:", 1)[0].strip()
                return AIMessage(content=f"From the notes: {context.splitlines()[0]}")


            if os.environ.get("OPENAI_API_KEY") and importlib.util.find_spec("langchain_openai"):
                from langchain_openai import ChatOpenAI

                llm = ChatOpenAI(model="gpt-4o-mini")
            else:
                llm = RunnableLambda(fake_llm)

            prompt = ChatPromptTemplate.from_template(
                "Answer from the context.\\nContext:\\n{context}\\nQuestion: {question}"
            )


            def format_docs(docs):
                return "\\n".join(doc.page_content for doc in docs)


            chain = (
                {"context": retriever | format_docs, "question": RunnablePassthrough()}
                | prompt
                | llm
                | StrOutputParser()
            )
            """),
        code("""
            questions = [
                "What is product code XR-2041?",
                "How do the async methods work?",
                "Where does Milvus Lite keep its data?",
            ]
            answers = await chain.abatch(questions)  # concurrent retrievals
            for question, answer in zip(questions, answers, strict=True):
                print(f"Q: {question}\\nA: {answer}\\n")
            assert all(answers)
            """),
        code("""
            docs = await retriever.ainvoke("XR-2041 kettle")
            print([d.metadata for d in docs])
            assert any("XR-2041" in d.page_content for d in docs)
            await vectorstore.aclose()
            vectorstore.close()
            stack.close()
            """),
    ]


NOTEBOOKS = {
    "langchain_async.ipynb": langchain_async,
    "llama_index_async.ipynb": llama_index_async,
    "rag_quickstart.ipynb": rag_quickstart,
}


def render(cells: list) -> str:
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata["colab"] = {"provenance": []}
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"
    return nbformat.writes(notebook) + "\n"


def write_all(folder: Path) -> list[Path]:
    """Write every notebook into ``folder`` and format its code cells with ruff."""
    paths = []
    for name, build in NOTEBOOKS.items():
        path = folder / name
        path.write_text(render(build()))
        paths.append(path)
    subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--quiet", *map(str, paths)], check=True
    )
    return paths


def main(argv: list[str]) -> int:
    if "--check" not in argv:
        write_all(HERE)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        stale = [
            path.name
            for path in write_all(Path(tmp))
            if not (HERE / path.name).exists() or (HERE / path.name).read_text() != path.read_text()
        ]
    if stale:
        print(f"out of date: {', '.join(stale)}; run python notebooks/build_notebooks.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
