"""LlamaIndex vector stores with real async I/O: Milvus (native) and any vd backend."""

from llama_index_vd.embeddings import OpenAIEmbedding
from llama_index_vd.milvus import IndexManagement, MilvusVectorStore
from llama_index_vd.vd_store import VDVectorStore

__all__ = ["IndexManagement", "MilvusVectorStore", "OpenAIEmbedding", "VDVectorStore"]
