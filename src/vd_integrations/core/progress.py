"""Optional progress bars for long ingests (tqdm when installed, silent otherwise)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(
    total: int | None, enabled: bool, desc: str = "Ingesting"
) -> Iterator[Callable[[int], None] | None]:
    """Yield a callback ``advance(n)`` that moves a bar, or ``None`` when disabled.

    Raises ImportError with the fix when a bar is asked for and tqdm is missing.
    """
    if not enabled:
        yield None
        return
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "show_progress=True needs tqdm: pip install 'vd-integrations[progress]'"
        ) from exc
    bar = tqdm(total=total, desc=desc, unit="doc")
    try:
        yield bar.update
    finally:
        bar.close()
