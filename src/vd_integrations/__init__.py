"""Framework-free core shared by ``langchain_vd`` and ``llama_index_vd``."""

from vd_integrations.retry import RetryError, RetrySettings

__all__ = ["RetryError", "RetrySettings"]
