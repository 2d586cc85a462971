"""Per-call deadlines: a caller's ``timeout=`` bounds the whole call, setup included.

Sync calls carry a :class:`Deadline` down to every lock wait and RPC (each RPC gets the
time that is left as its gRPC timeout). Async calls run inside :func:`timeout_scope`
(``asyncio.timeout``, or the ``async-timeout`` backport on Python 3.10), which also
bounds waits for shared setup, the connection and coalesced batches; both raise
:class:`~vd_integrations.core.errors.OperationTimeoutError` (a ``TimeoutError``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from vd_integrations.core.errors import OperationTimeoutError

if sys.version_info >= (3, 11):
    from asyncio import timeout as _asyncio_timeout
else:  # pragma: no cover - Python 3.10
    from async_timeout import timeout as _asyncio_timeout

__all__ = ["Deadline", "timeout_scope"]


def _timeout_error(timeout: float, what: str) -> OperationTimeoutError:
    return OperationTimeoutError(
        f"{what} did not finish within its timeout of {timeout:g} s (setup and connecting "
        f"included). Raise timeout=, or check that the server is up and not overloaded."
    )


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a sync call must be done, as ``time.monotonic()``; ``at=None`` never expires."""

    at: float | None = None
    timeout: float | None = None

    @classmethod
    def after(cls, timeout: float | None) -> Deadline:
        if timeout is None:
            return NO_DEADLINE
        return cls(time.monotonic() + float(timeout), float(timeout))

    def remaining(self, what: str) -> float | None:
        """Seconds left (None without a deadline); raises once none are left."""
        if self.at is None:
            return None
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.error(what)
        return left

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def error(self, what: str) -> OperationTimeoutError:
        return _timeout_error(self.timeout or 0.0, what)


NO_DEADLINE = Deadline()


@contextlib.asynccontextmanager
async def timeout_scope(timeout: float | None, what: str) -> AsyncIterator[None]:
    """Bound the awaits inside to ``timeout`` seconds (no bound for None)."""
    if timeout is None:
        yield
        return
    try:
        async with _asyncio_timeout(float(timeout)):
            yield
    except TimeoutError as exc:
        if isinstance(exc, OperationTimeoutError):
            raise
        raise _timeout_error(float(timeout), what) from exc
