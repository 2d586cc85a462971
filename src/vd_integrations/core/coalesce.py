"""Request coalescing: concurrent calls with the same key become one batched call.

Many small independent calls at once (100 request handlers each adding one document,
an agent fanning out queries) would each cost an embedding request and an RPC. A
:class:`Coalescer` merges the calls that arrive together into one ``run(parts)`` call,
and hands every caller exactly its own result or its own exception.

When to send (group commit, like a database's log writer):

- calls for a key go out on the next turn of the event loop (or after ``window`` seconds
  if one is set) as one batch, as long as fewer than ``max_in_flight`` batches of that key
  are in flight: a lone call waits one loop iteration (microseconds), and a call arriving
  while a batch is in flight is not held back behind it;
- once ``max_in_flight`` batches are in flight, new calls queue up and go together as the
  next slot frees. Under load that is where the savings come from: about
  ``max_in_flight`` requests per round trip, and a queued call waits for the first of the
  slots to free, not for the whole batch ahead of it;
- but a queue that reaches ``max_queued`` items goes at once, as one more batch in flight:
  under more load than the slots carry, calls do not wait a round trip for a slot, and
  every extra request still merges ``max_queued`` calls or more (the slots adapt to the
  load). Keys whose backend performs one batch at a time (``serial``) never spill.

Rules every caller can rely on:

- ``run`` returns one result per part, in order, or an exception instance for a part
  that failed on its own; if ``run`` raises, every caller in the batch gets that error.

Cancellation (the semantics a cancelled writer gets):

- *not yet sent*: a caller cancelled while its part waits (in the window, behind a batch
  in flight, or in a full batch waiting for a slot) is left out of the batch: its part is
  never written;
- *sent*: a batch runs in its own task, so cancelling callers never interrupts it: the
  batch runs to completion and its ``run`` call is never cut short half-way. A cancelled
  caller whose part was sent therefore has its write *land whole* (unless ``run`` fails
  for the batch); only its result is dropped. The other callers of the batch are never
  affected. :meth:`Coalescer.drain` waits until such writes have landed.
- With coalescing disabled, ``run`` is awaited in the caller's own task and cancelling
  the caller cancels it; a write sent as one request is then applied whole or not at
  all by the server, but the caller cannot know which.

Whole means one part: a caller whose operation spans several parts (e.g. more rows than
one request takes) may be cancelled between them, leaving the earlier parts written.

One :class:`Coalescer` belongs to one event loop (futures are bound to their loop);
engines keep one per loop with :class:`vd_integrations.core.loops.PerLoop`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Coalescer", "CoalescingSettings"]

P = TypeVar("P")
R = TypeVar("R")
Run = Callable[[list[Any]], Awaitable[Sequence[Any]]]


@dataclass(frozen=True)
class CoalescingSettings:
    """How a store merges concurrent async calls (see the module docstring).

    ``enabled``: merge at all. ``window``: seconds a batch with nothing in flight waits for
    company (0 sends on the next loop iteration). ``max_batch``: most items (texts, rows,
    query vectors, ids) in one merged call. ``max_in_flight``: merged calls per kind that
    may run at once before new calls queue. ``max_queued``: items a queue may hold before
    it goes anyway, as one more merged call in flight (``None``: always wait for a slot).
    """

    enabled: bool = True
    window: float = 0.0
    max_batch: int = 512
    max_in_flight: int = 4
    max_queued: int | None = 8

    def __post_init__(self) -> None:
        if not isinstance(self.window, (int, float)) or self.window < 0:
            raise ValueError(f"window must be >= 0 seconds, got {self.window!r}")
        for name in ("max_batch", "max_in_flight"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        queued = self.max_queued
        if queued is not None and (
            not isinstance(queued, int) or isinstance(queued, bool) or queued < 1
        ):
            raise ValueError(f"max_queued must be a positive int or None, got {queued!r}")

    @classmethod
    def disabled(cls) -> CoalescingSettings:
        return cls(enabled=False)

    @classmethod
    def coerce(cls, value: CoalescingSettings | bool | None, **defaults: Any) -> CoalescingSettings:
        """The settings a ``coalescing=`` argument asks for: None/True mean the defaults
        (``defaults`` override the class's), False turns merging off."""
        if value is None or value is True:
            return cls(**defaults)
        if value is False:
            return cls.disabled()
        if isinstance(value, cls):
            return value
        raise ValueError(f"coalescing must be a CoalescingSettings or a bool, got {value!r}.")


@dataclass
class _Pending:
    run: Run
    parts: list[Any] = field(default_factory=list)
    futures: list[asyncio.Future[Any]] = field(default_factory=list)
    size: int = 0
    timer: asyncio.Handle | None = None


@dataclass
class _KeyState:
    key: Hashable
    #: The batch still taking callers.
    pending: _Pending | None = None
    #: Full batches waiting for an in-flight slot.
    sealed: list[_Pending] = field(default_factory=list)
    in_flight: int = 0
    #: Batches of this key that may run at once.
    max_in_flight: int = 1
    #: Items a queue may hold before it goes anyway (None: never; serial keys).
    max_queued: int | None = None

    @property
    def idle(self) -> bool:
        return self.pending is None and not self.sealed and self.in_flight == 0


class Coalescer(Generic[P, R]):
    """Merges concurrent :meth:`submit` calls that share a key (one event loop)."""

    def __init__(self, settings: CoalescingSettings | None = None) -> None:
        self.settings = settings or CoalescingSettings()
        self._keys: dict[Hashable, _KeyState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Merged calls sent so far (for tests and benchmarks).
        self.batches = 0

    async def submit(
        self, key: Hashable, part: P, run: Run, size: int = 1, *, serial: bool = False
    ) -> R:
        """Add ``part`` to the next ``run`` for ``key``; return this part's result.

        ``run`` receives the parts of one batch (callers sharing a key must pass
        equivalent ``run`` functions); ``size`` counts the items ``part`` carries.
        ``serial`` (decided by a key's first caller) means the backend performs these
        batches one at a time anyway (Milvus Lite's writes): one batch in flight, and
        everything arriving meanwhile goes in the next, instead of several smaller batches
        that would only queue behind each other.
        """
        if not self.settings.enabled:
            return _unwrap((await run([part]))[0])
        loop = asyncio.get_running_loop()
        state = self._keys.get(key)
        if state is None:
            limit = 1 if serial else self.settings.max_in_flight
            spill = None if serial else self.settings.max_queued
            state = self._keys[key] = _KeyState(key, max_in_flight=limit, max_queued=spill)
        if state.pending is not None and state.pending.size + size > self.settings.max_batch:
            self._seal(state)
        if state.pending is None:
            state.pending = _Pending(run)
        pending = state.pending
        future: asyncio.Future[Any] = loop.create_future()
        pending.parts.append(part)
        pending.futures.append(future)
        pending.size += size
        if pending.size >= self.settings.max_batch:
            self._seal(state)
        elif pending.timer is None and (self._has_slot(state) or _spills(state, pending)):
            delay = self.settings.window
            pending.timer = (
                loop.call_later(delay, self._on_timer, key, pending)
                if delay > 0
                else loop.call_soon(self._on_timer, key, pending)
            )
        return await future

    def _has_slot(self, state: _KeyState) -> bool:
        return state.in_flight + len(state.sealed) < state.max_in_flight

    def _on_timer(self, key: Hashable, pending: _Pending) -> None:
        state = self._keys.get(key)
        if state is not None and state.pending is pending:
            pending.timer = None
            if self._has_slot(state) or _spills(state, pending):
                self._seal(state)
            # else: every slot filled up meanwhile; the batch keeps taking callers and goes
            # when a slot frees (_after_batch)
            self._forget_if_idle(state)  # every caller of the batch was cancelled

    def _forget_if_idle(self, state: _KeyState) -> None:
        if state.idle and self._keys.get(state.key) is state:
            del self._keys[state.key]

    def _seal(self, state: _KeyState) -> None:
        """Close the pending batch to new callers; send it now or when a slot frees."""
        pending, state.pending = state.pending, None
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        state.sealed.append(pending)
        self._start_sealed(state)

    def _start_sealed(self, state: _KeyState) -> None:
        while state.sealed and (
            state.in_flight < state.max_in_flight or _spills(state, state.sealed[0])
        ):
            pending = state.sealed.pop(0)
            live = [
                (part, future)
                for part, future in zip(pending.parts, pending.futures, strict=True)
                if not future.done()  # cancelled before sending: left out
            ]
            if not live:
                continue
            state.in_flight += 1
            self.batches += 1
            task = asyncio.get_running_loop().create_task(self._run(state, pending.run, live))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(
        self, state: _KeyState, run: Run, live: list[tuple[Any, asyncio.Future[Any]]]
    ) -> None:
        try:
            results = await run([part for part, _ in live])
            if len(results) != len(live):
                raise RuntimeError(
                    f"a coalesced call returned {len(results)} results for {len(live)} callers"
                )
        except BaseException as exc:  # every caller in this batch gets the batch's error
            for _, future in live:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):  # the loop is shutting down
                    future.cancel()
                else:
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(live, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            state.in_flight -= 1
            self._after_batch(state)

    def _after_batch(self, state: _KeyState) -> None:
        self._start_sealed(state)
        if state.pending is not None and state.pending.timer is None and self._has_slot(state):
            self._seal(state)  # callers who queued while every slot was taken: go
        self._forget_if_idle(state)

    @property
    def in_flight(self) -> int:
        """Batches sent and not finished yet."""
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait until every batch sent or queued so far has finished, including the writes
        of callers cancelled after their part was sent."""
        while self._tasks or any(s.sealed or s.pending for s in self._keys.values()):
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:  # a batch waiting for its window or its loop turn
                await asyncio.sleep(min(self.settings.window, 0.01))

    async def aclose(self) -> None:
        """Wait for the batches in flight and queued (their callers get their results)."""
        await self.drain()


def _spills(state: _KeyState, pending: _Pending) -> bool:
    """Whether ``pending`` is a queue long enough to go without waiting for a slot."""
    return state.max_queued is not None and pending.size >= state.max_queued


def _unwrap(result: Any) -> Any:
    if isinstance(result, BaseException):
        raise result
    return result
