"""What a result was measured with: package versions and the machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform

__all__ = ["machine", "package_versions"]

PACKAGES = (
    "vd-integrations",
    "pymilvus",
    "milvus-lite",
    "langchain-core",
    "langchain-milvus",
    "llama-index-core",
    "llama-index-vector-stores-milvus",
    "openai",
    "vd",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that matter here (absent ones are left out)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def machine() -> dict[str, str | int | None]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
