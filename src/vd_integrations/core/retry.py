"""Retry policy: exponential backoff with jitter, a total deadline and server hints.

The decision logic is pure (:meth:`RetrySettings.delay_for`, :meth:`RetrySettings.next_delay`,
:class:`RetryState`); :func:`call_with_retry` and :func:`acall_with_retry` are thin sync/async
shells around it. What counts as *transient* is decided by the caller's ``is_retryable``
predicate, so the same policy serves HTTP (embeddings) and gRPC (Milvus) calls.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TypeVar

from vd_integrations.core.base_error import VdIntegrationsError

__all__ = [
    "RetryError",
    "RetrySettings",
    "RetryState",
    "acall_with_retry",
    "call_with_retry",
    "parse_retry_after",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

Predicate = Callable[[BaseException], bool]
HintFn = Callable[[BaseException], float | None]
DescribeFn = Callable[[BaseException], str]


class RetryError(VdIntegrationsError, RuntimeError):
    """A transient error persisted through every attempt the policy allowed.

    ``attempts`` is how many calls were made and ``last_error`` the final failure
    (also chained as ``__cause__``).
    """

    def __init__(self, message: str, *, attempts: int, last_error: BaseException) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_error = last_error


@dataclass(frozen=True)
class RetrySettings:
    """How often and how long to retry a transient failure.

    Attempt ``n`` (1-based) that fails is followed by a sleep of
    ``min(max_backoff, initial_backoff * multiplier ** (n - 1))``, reduced by a random
    fraction of up to ``jitter`` (``jitter=1`` is "full jitter", ``0`` is deterministic).
    A server hint (``Retry-After``) replaces the computed delay, capped at ``max_backoff``.
    ``deadline`` bounds the total time: no retry is started whose sleep would end after
    ``deadline`` seconds from the first attempt (in-flight calls are bounded by their own
    timeouts, not by this).
    """

    max_attempts: int = 5
    initial_backoff: float = 0.25
    max_backoff: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5
    deadline: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError(
                f"max_attempts must be an int >= 1, got {self.max_attempts!r}; "
                "use RetrySettings.disabled() for a single attempt."
            )
        if self.max_attempts < 1:
            raise ValueError(
                f"max_attempts must be >= 1 (1 = no retries), got {self.max_attempts}; "
                "use RetrySettings.disabled() for a single attempt."
            )
        _check_number("initial_backoff", self.initial_backoff, minimum=0.0)
        _check_number("max_backoff", self.max_backoff, minimum=0.0)
        _check_number("multiplier", self.multiplier, minimum=1.0)
        _check_number("jitter", self.jitter, minimum=0.0, maximum=1.0)
        if self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"max_backoff ({self.max_backoff}) must be >= initial_backoff "
                f"({self.initial_backoff}); raise max_backoff or lower initial_backoff."
            )
        if self.deadline is not None:
            _check_number("deadline", self.deadline, minimum=0.0, allow_zero=False)

    @classmethod
    def disabled(cls) -> RetrySettings:
        """One attempt, no retries."""
        return cls(max_attempts=1)

    def backoff(self, attempt: int) -> float:
        """The un-jittered sleep after failed attempt ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt}.")
        # Cap the exponent first so huge attempt numbers cannot overflow.
        if self.multiplier > 1.0 and self.initial_backoff > 0.0:
            cap = math.log(self.max_backoff / self.initial_backoff, self.multiplier) + 1
            if attempt - 1 > cap:
                return self.max_backoff
        return min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))

    def delay_for(
        self,
        attempt: int,
        retry_after: float | None = None,
        *,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to sleep after failed attempt ``attempt``.

        A non-negative ``retry_after`` (the server's hint) wins, capped at ``max_backoff``;
        otherwise the exponential backoff, minus up to ``jitter`` of it at random.
        """
        if retry_after is not None and retry_after >= 0 and math.isfinite(retry_after):
            return min(float(retry_after), self.max_backoff)
        base = self.backoff(attempt)
        if self.jitter == 0.0:
            return base
        return base * (1.0 - self.jitter * rng())

    def next_delay(
        self,
        retryable: bool,
        attempt: int,
        elapsed: float,
        retry_after: float | None = None,
        *,
        rng: Callable[[], float] = random.random,
    ) -> float | None:
        """The sleep before the next attempt, or ``None`` to give up.

        ``attempt`` is the number of the attempt that just failed (1-based) and
        ``elapsed`` the seconds since the first attempt started.
        """
        if not retryable or attempt >= self.max_attempts:
            return None
        delay = self.delay_for(attempt, retry_after, rng=rng)
        if self.deadline is not None and elapsed + delay > self.deadline:
            return None
        return delay


def _check_number(
    name: str,
    value: object,
    *,
    minimum: float,
    maximum: float | None = None,
    allow_zero: bool = True,
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number of seconds/factor, got {value!r}.")
    if value < minimum or (not allow_zero and value == 0):
        bound = f"> {minimum}" if not allow_zero else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}.")


@dataclass
class RetryState:
    """Sans-I/O bookkeeping for one logical call: feed it failures, it says how long to wait.

    ``clock`` is injectable for tests; the shells use ``time.monotonic``.
    """

    settings: RetrySettings
    clock: Callable[[], float] = time.monotonic
    rng: Callable[[], float] = random.random
    attempt: int = 0
    started: float = field(default=0.0)
    give_up_reason: str = ""

    def begin(self) -> int:
        """Record the start of an attempt; returns its 1-based number."""
        if self.attempt == 0:
            self.started = self.clock()
        self.attempt += 1
        return self.attempt

    def failed(self, retryable: bool, retry_after: float | None = None) -> float | None:
        """The current attempt failed: the sleep before the next one, or ``None`` to stop.

        When it returns ``None`` for a retryable error, ``give_up_reason`` says why.
        """
        elapsed = self.clock() - self.started
        delay = self.settings.next_delay(
            retryable, self.attempt, elapsed, retry_after, rng=self.rng
        )
        if delay is None and retryable:
            if self.attempt >= self.settings.max_attempts:
                self.give_up_reason = f"max_attempts={self.settings.max_attempts} reached"
            else:
                self.give_up_reason = (
                    f"the next retry would pass the {self.settings.deadline:g}s deadline"
                )
        return delay

    def exhausted_error(
        self, exc: BaseException, operation: str, describe: DescribeFn
    ) -> BaseException:
        """The exception to raise after giving up on the retryable ``exc``.

        With a single attempt (retries disabled) that is ``exc`` itself; otherwise a
        :class:`RetryError` saying how many attempts were made and what failed last.
        """
        if self.attempt <= 1:
            return exc
        return RetryError(
            f"{operation} failed after {self.attempt} attempts ({self.give_up_reason}); "
            f"last error: {describe(exc)}. The failure looks transient: retry later, lower "
            "the request rate/concurrency, or allow more time with "
            "RetrySettings(max_attempts=..., deadline=...).",
            attempts=self.attempt,
            last_error=exc,
        )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _no_hint(exc: BaseException) -> float | None:
    return None


def _log_retry(
    operation: str, state: RetryState, delay: float, exc: BaseException, describe: DescribeFn
) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "%s: attempt %d/%d failed (%s); retrying in %.3fs",
            operation,
            state.attempt,
            state.settings.max_attempts,
            describe(exc),
            delay,
        )


def call_with_retry(
    fn: Callable[[], T],
    settings: RetrySettings,
    is_retryable: Predicate,
    *,
    retry_after: HintFn = _no_hint,
    describe: DescribeFn = _describe,
    operation: str = "call",
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Call ``fn()`` until it succeeds, a non-retryable error occurs, or the policy gives up.

    Non-retryable errors propagate unchanged at once; a retryable error that outlasts the
    policy raises :class:`RetryError` (or the error itself if only one attempt was allowed).
    ``describe`` renders an error for logs and messages: it must not include secrets.
    """
    state = RetryState(settings)
    while True:
        state.begin()
        try:
            return fn()
        except Exception as exc:
            retryable = is_retryable(exc)
            delay = state.failed(retryable, retry_after(exc) if retryable else None)
            if delay is None:
                error = state.exhausted_error(exc, operation, describe) if retryable else exc
                if error is exc:
                    raise
                raise error from exc
            _log_retry(operation, state, delay, exc, describe)
        sleep(delay)


async def acall_with_retry(
    fn: Callable[[], Awaitable[T]],
    settings: RetrySettings,
    is_retryable: Predicate,
    *,
    retry_after: HintFn = _no_hint,
    describe: DescribeFn = _describe,
    operation: str = "call",
) -> T:
    """Async twin of :func:`call_with_retry`; ``fn`` returns a fresh awaitable per attempt.

    Backoff uses ``asyncio.sleep``, so cancelling the caller interrupts it immediately
    (``CancelledError`` is never treated as a failure to retry).
    """
    state = RetryState(settings)
    while True:
        state.begin()
        try:
            return await fn()
        except Exception as exc:
            retryable = is_retryable(exc)
            delay = state.failed(retryable, retry_after(exc) if retryable else None)
            if delay is None:
                error = state.exhausted_error(exc, operation, describe) if retryable else exc
                if error is exc:
                    raise
                raise error from exc
            _log_retry(operation, state, delay, exc, describe)
        await asyncio.sleep(delay)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait according to HTTP ``retry-after-ms`` / ``Retry-After`` headers.

    ``retry-after-ms`` (OpenAI) takes precedence; ``Retry-After`` may be seconds or an
    HTTP date. Returns ``None`` when absent or unparsable. ``headers`` lookups should be
    case-insensitive (httpx headers are); lowercase names are tried first.
    """

    def get(name: str) -> str | None:
        value = headers.get(name)
        if value is None:
            value = headers.get(name.title())
        return value

    ms = get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        current = datetime.now(timezone.utc).timestamp() if now is None else now
        return max(0.0, when.timestamp() - current)
    return value if math.isfinite(value) and value >= 0 else None
