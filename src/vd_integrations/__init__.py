"""Framework-free core shared by ``langchain_vd`` and ``llama_index_vd``.

The public names below are imported on first use, so ``import vd_integrations`` stays
light (the offline embeddings server and the Milvus Lite launcher start without importing
``vd``, which imports every backend). Every exception of ours derives from
:class:`VdIntegrationsError`; see :mod:`vd_integrations.errors` for the hierarchy.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__: str = version("vd-integrations")
except PackageNotFoundError:  # pragma: no cover - running from a source tree, not installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from vd_integrations._base_error import VdIntegrationsError as VdIntegrationsError
    from vd_integrations.coalesce import CoalescingSettings as CoalescingSettings
    from vd_integrations.errors import CollectionNotFoundError as CollectionNotFoundError
    from vd_integrations.errors import (
        InvalidFilterExpressionError as InvalidFilterExpressionError,
    )
    from vd_integrations.errors import InvalidInputError as InvalidInputError
    from vd_integrations.errors import MilvusOperationError as MilvusOperationError
    from vd_integrations.errors import OperationTimeoutError as OperationTimeoutError
    from vd_integrations.errors import ServerUnreachableError as ServerUnreachableError
    from vd_integrations.errors import StoreClosedError as StoreClosedError
    from vd_integrations.errors import UnsupportedFilterError as UnsupportedFilterError
    from vd_integrations.loops import UnsupportedEventLoopError as UnsupportedEventLoopError
    from vd_integrations.retry import RetryError as RetryError
    from vd_integrations.retry import RetrySettings as RetrySettings

#: public name -> the module defining it
_EXPORTS = {
    "CoalescingSettings": "vd_integrations.coalesce",
    "CollectionNotFoundError": "vd_integrations.errors",
    "InvalidFilterExpressionError": "vd_integrations.errors",
    "InvalidInputError": "vd_integrations.errors",
    "MilvusOperationError": "vd_integrations.errors",
    "OperationTimeoutError": "vd_integrations.errors",
    "RetryError": "vd_integrations.retry",
    "RetrySettings": "vd_integrations.retry",
    "ServerUnreachableError": "vd_integrations.errors",
    "StoreClosedError": "vd_integrations.errors",
    "UnsupportedEventLoopError": "vd_integrations.loops",
    "UnsupportedFilterError": "vd_integrations.errors",
    "VdIntegrationsError": "vd_integrations._base_error",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vd_integrations' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
