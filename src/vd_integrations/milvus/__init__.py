"""Milvus engine; importing it registers the native async ``vd`` backend ``"milvus"``."""

from vd_integrations.milvus import vd_backend as vd_backend
