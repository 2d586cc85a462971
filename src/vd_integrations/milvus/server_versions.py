"""What a server's ``get_server_version()`` says about it: Milvus Lite or a Milvus release.

Milvus Lite 3.x (the ``milvus-lite`` package, embedded or ``milvus-lite server``) reports
``milvus_lite-3.2.2``. The older PyPI package ``milvus`` (a real Milvus standalone binary
for Python) reports ``v2.3.5-lite``: despite the suffix it is Milvus 2.3.5, with Milvus'
storage and features, not Milvus Lite's, so only the ``milvus_lite`` prefix counts as Lite.
"""

from __future__ import annotations

import re

__all__ = ["is_milvus_lite", "release"]


def is_milvus_lite(server_version: str | None) -> bool | None:
    """Whether ``get_server_version()`` came from Milvus Lite (None: not known)."""
    if server_version is None:
        return None
    text = str(server_version).strip().lower()
    return text.startswith(("milvus_lite", "milvus-lite"))


def release(server_version: str | None) -> tuple[int, int] | None:
    """(major, minor) of the version string, or None (e.g. Zilliz Cloud's)."""
    match = re.search(r"(\d+)\.(\d+)", str(server_version or ""))
    return None if match is None else (int(match.group(1)), int(match.group(2)))
