"""The root of the exception hierarchy, in a module that imports nothing.

Light modules (``retry``, ``loops``, the offline embeddings server) derive their errors
from it without importing ``vd`` (which imports every backend). Import it as
``vd_integrations.VdIntegrationsError`` or from :mod:`vd_integrations.core.errors`.
"""

from __future__ import annotations

__all__ = ["VdIntegrationsError"]


class VdIntegrationsError(Exception):
    """Base class of every exception defined by vd-integrations.

    Each subclass also keeps its standard base (``ValueError``, ``RuntimeError``,
    ``LookupError``...), so ``except ValueError`` still catches what it caught before.
    """


# its public home (repr, tracebacks, pickling)
VdIntegrationsError.__module__ = "vd_integrations.core.errors"
