"""Framework-free core shared by ``langchain_vd`` and ``llama_index_vd``.

The public names below are imported on first use, so ``import vd_integrations`` stays
light (the offline embeddings server and the Milvus Lite launcher start without importing
``vd``, which imports every backend). Every exception of ours derives from
:class:`VdIntegrationsError`; see :mod:`vd_integrations.core.errors` for the hierarchy.
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
    from vd_integrations.core.base_error import VdIntegrationsError as VdIntegrationsError
    from vd_integrations.core.coalesce import CoalescingSettings as CoalescingSettings
    from vd_integrations.core.errors import CollectionNotFoundError as CollectionNotFoundError
    from vd_integrations.core.errors import IdMismatchError as IdMismatchError
    from vd_integrations.core.errors import (
        InvalidFilterExpressionError as InvalidFilterExpressionError,
    )
    from vd_integrations.core.errors import InvalidInputError as InvalidInputError
    from vd_integrations.core.errors import MilvusOperationError as MilvusOperationError
    from vd_integrations.core.errors import OperationTimeoutError as OperationTimeoutError
    from vd_integrations.core.errors import ServerUnreachableError as ServerUnreachableError
    from vd_integrations.core.errors import StoreClosedError as StoreClosedError
    from vd_integrations.core.errors import UnsupportedFilterError as UnsupportedFilterError
    from vd_integrations.core.loops import UnsupportedEventLoopError as UnsupportedEventLoopError
    from vd_integrations.core.retry import RetryError as RetryError
    from vd_integrations.core.retry import RetrySettings as RetrySettings

#: public name -> the module defining it
_EXPORTS = {
    "CoalescingSettings": "vd_integrations.core.coalesce",
    "CollectionNotFoundError": "vd_integrations.core.errors",
    "IdMismatchError": "vd_integrations.core.errors",
    "InvalidFilterExpressionError": "vd_integrations.core.errors",
    "InvalidInputError": "vd_integrations.core.errors",
    "MilvusOperationError": "vd_integrations.core.errors",
    "OperationTimeoutError": "vd_integrations.core.errors",
    "RetryError": "vd_integrations.core.retry",
    "RetrySettings": "vd_integrations.core.retry",
    "ServerUnreachableError": "vd_integrations.core.errors",
    "StoreClosedError": "vd_integrations.core.errors",
    "UnsupportedEventLoopError": "vd_integrations.core.loops",
    "UnsupportedFilterError": "vd_integrations.core.errors",
    "VdIntegrationsError": "vd_integrations.core.base_error",
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
