"""Watch an event loop for blocking calls, telling them apart from a busy machine.

A heartbeat task on the loop records the gaps between its ticks; a control thread in the
same process ticks at the same pace. A blocking call on the loop (a sync network wait, a
``time.sleep``) stops the heartbeat while the control thread keeps ticking. A shared,
overloaded machine that does not schedule this process for a while stops both. So the
time the loop was *blocked* is, for each heartbeat gap, the gap minus the longest pause of
the control thread inside it: near the gap for a blocking call, near zero for starvation.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import threading
import time
from types import TracebackType

__all__ = ["LoopWatch"]

TICK = 0.005


class LoopWatch:
    """``async with LoopWatch() as watch: ...`` then ``watch.longest_block`` in seconds."""

    def __init__(self) -> None:
        self._beats: list[float] = []
        self._ticks: list[float] = []
        self._stop = threading.Event()
        self._beat: asyncio.Task[None] | None = None
        self._control = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        while not self._stop.is_set():
            self._ticks.append(time.perf_counter())
            time.sleep(TICK)

    async def _heartbeat(self) -> None:
        while not self._stop.is_set():
            self._beats.append(time.perf_counter())
            await asyncio.sleep(TICK)

    async def __aenter__(self) -> LoopWatch:
        self._control.start()
        self._beat = asyncio.create_task(self._heartbeat())
        await asyncio.sleep(0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._beats.append(time.perf_counter())  # the tail after the last beat counts too
        self._stop.set()
        assert self._beat is not None
        await self._beat
        self._control.join()

    def _control_pause(self, start: float, end: float) -> float:
        """The longest stretch of [start, end] without a control tick."""
        ticks = self._ticks
        inside = ticks[bisect.bisect_right(ticks, start) : bisect.bisect_left(ticks, end)]
        edges = [start, *inside, end]
        return max(b - a for a, b in itertools.pairwise(edges))

    @property
    def longest_block(self) -> float:
        """Seconds the loop stood still while the rest of the process kept running."""
        beats = self._beats
        return (
            max((b - a) - self._control_pause(a, b) for a, b in itertools.pairwise(beats))
            if len(beats) > 1
            else 0.0
        )

    @property
    def longest_gap(self) -> float:
        """The longest heartbeat gap, starvation included (for error messages)."""
        beats = self._beats
        return max((b - a for a, b in itertools.pairwise(beats)), default=0.0)
