"""LangChain vector stores with real async I/O: Milvus (native) and any vd backend."""

from langchain_vd.milvus import Milvus

__all__ = ["Milvus"]
