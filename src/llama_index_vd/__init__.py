"""LlamaIndex vector stores with real async I/O: Milvus (native) and any vd backend."""

from vd_integrations import __version__

try:
    from llama_index_vd.embeddings import OpenAIEmbedding
    from llama_index_vd.milvus import IndexManagement, MilvusVectorStore
    from llama_index_vd.vd_store import VDVectorStore
except ModuleNotFoundError as exc:  # llama-index-core is an optional dependency
    if exc.name != "llama_index" and not (exc.name or "").startswith("llama_index."):
        raise
    raise ImportError(
        f"llama_index_vd needs llama-index-core ({exc}). Install the extra: "
        'pip install "vd-integrations[llama-index]"'
    ) from exc

__all__ = [
    "IndexManagement",
    "MilvusVectorStore",
    "OpenAIEmbedding",
    "VDVectorStore",
    "__version__",
]
