"""LangChain vector stores with real async I/O: Milvus (native) and any vd backend."""

from langchain_vd.embeddings import OpenAIEmbeddings
from langchain_vd.milvus import BM25BuiltInFunction, Milvus
from langchain_vd.vd_store import VDVectorStore
from vd_integrations import __version__

__all__ = ["BM25BuiltInFunction", "Milvus", "OpenAIEmbeddings", "VDVectorStore", "__version__"]
