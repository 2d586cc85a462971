"""The loop watch of the "async never blocks" tests: blocks count, a paused process does not."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from tests.loop_watch import LoopWatch


async def test_a_blocking_call_on_the_loop_is_seen() -> None:
    async with LoopWatch() as watch:
        await asyncio.sleep(0.05)
        time.sleep(0.8)  # a sync wait on the loop thread
        await asyncio.sleep(0.05)
    assert watch.longest_block > 0.5


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP is POSIX")
async def test_a_process_the_machine_does_not_schedule_is_not_blocked() -> None:
    """SIGSTOP stands in for an overloaded machine: every thread stops, the loop was not blocked."""
    pid = os.getpid()
    async with LoopWatch() as watch:
        pause = subprocess.Popen(
            ["sh", "-c", f"sleep 0.1; kill -STOP {pid}; sleep 0.8; kill -CONT {pid}"]
        )
        while pause.poll() is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
    assert watch.longest_gap > 0.7  # the process was stopped, heartbeat and all
    assert watch.longest_block < 0.5
