"""Write the notebooks in this folder from the cell sources below.

    python notebooks/build_notebooks.py          # rewrite the .ipynb files
    python notebooks/build_notebooks.py --check  # fail if they are out of date (the suite does)

Numbers and plots in the notebooks come from ``vd_bench`` (the benchmark command's own
code); the notebooks only choose what to run and show it. Outputs are not committed:
CI executes every notebook headless against the offline embeddings server.
"""

from __future__ import annotations

import sys
from pathlib import Path

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

SETUP = '''\
# Jupyter already runs an event loop; nest_asyncio lets loop.run_until_complete nest in it.
import logging

import nest_asyncio

nest_asyncio.apply()
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

# Set VD_NOTEBOOK_QUICK=1 for a short run (CI does); MILVUS_URI for a Milvus server.
QUICK = os.environ.get("VD_NOTEBOOK_QUICK") == "1"
COMPARE = os.environ.get("VD_NOTEBOOK_COMPARE", "1") == "1"
MILVUS_URI = os.environ.get("MILVUS_URI")  # None: embedded Milvus Lite files
N_VALUES = (10,) if QUICK else (10, 100, 1000)'''

EMBEDDINGS = '''\
# Real OpenAI embeddings when OPENAI_API_KEY is set; otherwise an OpenAI-compatible
# server on loopback with deterministic vectors and ~100 ms per request, like the service.
import contextlib

from vd_integrations.embedding_server import embedding_endpoint

stack = contextlib.ExitStack()
endpoint = stack.enter_context(embedding_endpoint(latency=0.1))
print("embeddings from", endpoint.base_url if endpoint.offline else "the OpenAI service")'''


def benchmark_cells(integration: str) -> list:
    return [
        new_markdown_cell(
            "## The measurements\n\n"
            "`vd_bench.run_benchmark` is the code behind `python -m vd_bench`, the README's "
            "main job. For each workload and N it opens a fresh collection, runs N single-item "
            "operations one by one with the sync method, then all at once with the async twin "
            "(`asyncio.gather`), and checks every result. With `COMPARE` it runs the same "
            "workloads through the integration we replace, in its own environment if its "
            "pymilvus pin conflicts with ours (the first run installs it, about a minute)."
        ),
        new_code_cell(
            "from IPython.display import Markdown, display\n\n"
            "from vd_bench import BenchConfig, run_benchmark\n\n"
            "config = BenchConfig(\n"
            f'    integrations=("{integration}",), n=N_VALUES, compare=COMPARE,\n'
            '    uri=MILVUS_URI, out_dir="bench_results",\n'
            ")\n"
            "results = run_benchmark(config)\n"
            'paths = results.save("bench_results")\n'
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
        new_markdown_cell(
            "### Beyond the tutorial: upsert and MMR, speed-up, throughput, latency"
        ),
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


def langchain_async() -> list:
    return [
        new_markdown_cell(
            "# Async LangChain + Milvus, measured\n\n"
            f"{badge('langchain_async.ipynb')}\n\n"
            "The langchain-milvus async tutorial, reproduced with `langchain_vd.Milvus`: the "
            "same code with one import changed, then the same study (and more) measured by the "
            "benchmark."
        ),
        new_code_cell(INSTALL),
        new_code_cell(SETUP),
        new_code_cell(EMBEDDINGS),
        new_markdown_cell(
            "## The tutorial's code, with one import changed\n\n"
            "```python\n"
            "from langchain_milvus import Milvus      # before\n"
            "from langchain_vd import Milvus          # after\n"
            "```"
        ),
        new_code_cell(
            "import asyncio\n"
            "import time\n\n"
            "from langchain_core.documents import Document\n\n"
            "from langchain_vd import Milvus, OpenAIEmbeddings\n\n"
            'URI = MILVUS_URI or "./milvus_tutorial.db"\n'
            "embeddings = OpenAIEmbeddings(base_url=endpoint.base_url, api_key=endpoint.api_key)\n\n\n"
            "def init_vector_store():\n"
            "    return Milvus(\n"
            "        embedding_function=embeddings,\n"
            '        collection_name="langchain_perf_test",\n'
            '        connection_args={"uri": URI},\n'
            "        auto_id=True,\n"
            "        drop_old=True,\n"
            "    )\n\n\n"
            "async def async_add(milvus_store, num_adding):\n"
            '    docs = [Document(f"This is test document {i}", metadata={"id": f"doc_{i}"})\n'
            "            for i in range(num_adding)]\n"
            "    start_time = time.time()\n"
            "    await asyncio.gather(*(milvus_store.aadd_documents([doc]) for doc in docs))\n"
            "    return time.time() - start_time\n\n\n"
            "loop = asyncio.get_event_loop()\n"
            "milvus_store = init_vector_store()\n"
            "seconds = loop.run_until_complete(async_add(milvus_store, 10))\n"
            'print(f"Async add for 10 documents took {seconds:.2f} seconds")\n'
            "found = loop.run_until_complete(milvus_store.asimilarity_search(\"test document 3\", k=3))\n"
            "print([doc.page_content for doc in found])\n"
            "assert len(found) == 3\n"
            "milvus_store.close()"
        ),
        *benchmark_cells("langchain"),
    ]


def llama_index_async() -> list:
    return [
        new_markdown_cell(
            "# Async LlamaIndex + Milvus, measured\n\n"
            f"{badge('llama_index_async.ipynb')}\n\n"
            "The same study for LlamaIndex: `llama_index_vd.MilvusVectorStore` in a "
            "`VectorStoreIndex`, then N single-node adds, queries, deletes, upserts and MMR "
            "queries, sync one by one and async concurrently."
        ),
        new_code_cell(INSTALL),
        new_code_cell(SETUP),
        new_code_cell(EMBEDDINGS),
        new_markdown_cell(
            "## A VectorStoreIndex over the native-async store\n\n"
            "```python\n"
            "from llama_index.vector_stores.milvus import MilvusVectorStore  # before\n"
            "from llama_index_vd import MilvusVectorStore                    # after\n"
            "```"
        ),
        new_code_cell(
            "from llama_index.core import Document, StorageContext, VectorStoreIndex\n\n"
            "from llama_index_vd import MilvusVectorStore, OpenAIEmbedding\n\n"
            "embed_model = OpenAIEmbedding(base_url=endpoint.base_url, api_key=endpoint.api_key)\n"
            "vector_store = MilvusVectorStore(\n"
            '    uri=MILVUS_URI or "./milvus_llamaindex.db", collection_name="llama_tutorial",\n'
            '    dim=len(embed_model.get_query_embedding("probe")), overwrite=True,\n'
            ")\n"
            "documents = [Document(text=f\"This is test document {i}\", metadata={\"n\": i})\n"
            "             for i in range(20)]\n"
            "index = VectorStoreIndex.from_documents(\n"
            "    documents, storage_context=StorageContext.from_defaults(vector_store=vector_store),\n"
            "    embed_model=embed_model,\n"
            ")\n"
            "retriever = index.as_retriever(similarity_top_k=3)\n"
            'nodes = asyncio.get_event_loop().run_until_complete(retriever.aretrieve("document 7"))\n'
            "print([n.get_content() for n in nodes])\n"
            "assert len(nodes) == 3\n"
            "vector_store.close()"
        ),
        *benchmark_cells("llama_index"),
    ]


def rag_quickstart() -> list:
    return [
        new_markdown_cell(
            "# RAG quickstart: `await Milvus.afrom_texts(...)` behind an LCEL chain\n\n"
            f"{badge('rag_quickstart.ipynb')}\n\n"
            "Index a few texts with the native-async store, turn it into a retriever, and "
            "answer questions with an LCEL chain. Without `OPENAI_API_KEY` the embeddings come "
            "from the offline server and the LLM is a fake that answers from the retrieved "
            "context, so the notebook runs anywhere."
        ),
        new_code_cell(INSTALL),
        new_code_cell(SETUP),
        new_code_cell(EMBEDDINGS),
        new_code_cell(
            "import asyncio\n\n"
            "from langchain_vd import Milvus, OpenAIEmbeddings\n\n"
            "texts = [\n"
            '    "Milvus Lite runs embedded in the Python process and stores data in one file.",\n'
            '    "The async methods of langchain_vd use AsyncMilvusClient on the running loop.",\n'
            '    "Product code XR-2041 is the blue kettle with a 1.7 litre capacity.",\n'
            '    "Reciprocal rank fusion merges dense and keyword rankings.",\n'
            '    "A retriever returns the documents most similar to the question.",\n'
            "]\n"
            "embeddings = OpenAIEmbeddings(base_url=endpoint.base_url, api_key=endpoint.api_key)\n\n\n"
            "async def build():\n"
            "    return await Milvus.afrom_texts(\n"
            '        texts, embeddings, metadatas=[{"source": f"note-{i}"} for i in range(len(texts))],\n'
            '        connection_args={"uri": MILVUS_URI or "./milvus_rag.db"},\n'
            '        collection_name="rag_quickstart", drop_old=True,\n'
            "    )\n\n\n"
            "loop = asyncio.get_event_loop()\n"
            "vectorstore = loop.run_until_complete(build())\n"
            'retriever = vectorstore.as_retriever(search_kwargs={"k": 2})'
        ),
        new_code_cell(
            "from langchain_core.messages import AIMessage\n"
            "from langchain_core.output_parsers import StrOutputParser\n"
            "from langchain_core.prompts import ChatPromptTemplate\n"
            "from langchain_core.runnables import RunnableLambda, RunnablePassthrough\n\n\n"
            "def fake_llm(prompt):\n"
            '    """Answers with the first line of the context: a stand-in for a chat model."""\n'
            "    text = prompt.to_string()\n"
            '    context = text.split("Context:", 1)[1].split("Question:", 1)[0].strip()\n'
            '    return AIMessage(content=f"From the notes: {context.splitlines()[0]}")\n\n\n'
            "if os.environ.get(\"OPENAI_API_KEY\") and importlib.util.find_spec(\"langchain_openai\"):\n"
            "    from langchain_openai import ChatOpenAI\n\n"
            '    llm = ChatOpenAI(model="gpt-4o-mini")\n'
            "else:\n"
            "    llm = RunnableLambda(fake_llm)\n\n"
            "prompt = ChatPromptTemplate.from_template(\n"
            '    "Answer from the context.\\nContext:\\n{context}\\nQuestion: {question}"\n'
            ")\n\n\n"
            "def format_docs(docs):\n"
            '    return "\\n".join(doc.page_content for doc in docs)\n\n\n'
            "chain = (\n"
            '    {"context": retriever | format_docs, "question": RunnablePassthrough()}\n'
            "    | prompt\n"
            "    | llm\n"
            "    | StrOutputParser()\n"
            ")"
        ),
        new_code_cell(
            'questions = ["What is product code XR-2041?", "How do the async methods work?",\n'
            '             "Where does Milvus Lite keep its data?"]\n'
            "answers = loop.run_until_complete(chain.abatch(questions))  # concurrent retrievals\n"
            "for question, answer in zip(questions, answers):\n"
            '    print(f"Q: {question}\\nA: {answer}\\n")\n'
            "assert all(answers)"
        ),
        new_code_cell(
            'docs = loop.run_until_complete(retriever.ainvoke("XR-2041 kettle"))\n'
            "print([d.metadata for d in docs])\n"
            'assert any("XR-2041" in d.page_content for d in docs)\n'
            "vectorstore.close()\n"
            "stack.close()"
        ),
    ]


NOTEBOOKS = {
    "langchain_async.ipynb": langchain_async,
    "llama_index_async.ipynb": llama_index_async,
    "rag_quickstart.ipynb": rag_quickstart,
}


def render(cells: list) -> str:
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata["colab"] = {"provenance": []}
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"
    return nbformat.writes(notebook) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name, build in NOTEBOOKS.items():
        path = HERE / name
        text = render(build())
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python notebooks/build_notebooks.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
