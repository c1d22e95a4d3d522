"""The batch lane: large calls run beside single-user traffic without starving it.

A risk engine deciding a loan waits on a one-user call; a campaign system's 10,000-user batch can
wait. So in each worker large calls run on their own few threads at a lower CPU priority, which
the event loop serving single users preempts; a bounded number may wait for them, and past that a
call is refused at once with 429 and a Retry-After estimated from how long batches take here.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from scoring.thresholds import INLINE_ROWS

T = TypeVar("T")


class LaneFull(RuntimeError):
    """No room on the batch lane; `retry_after` is whole seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"the batch lane is full; retry after {retry_after} s")
        self.retry_after = retry_after


def _lower_priority(nice: int) -> None:
    # Linux keeps a nice value per thread; threads this one starts (LightGBM's OpenMP team, the
    # attribution pool) inherit it, so all of a batch's work yields to the single-user threads.
    if hasattr(os, "setpriority"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class BatchLane:
    def __init__(self, slots: int, queue: int, nice: int):
        self.slots, self.capacity = slots, slots + queue
        self.admitted = 0  # running and waiting; only touched on the event loop
        self.seconds_per_call = 1.0  # moving average of a call's time on the lane
        self._executor = ThreadPoolExecutor(slots, thread_name_prefix="batch", initializer=_lower_priority,
                                            initargs=(nice,))

    def retry_after(self) -> int:
        return max(1, math.ceil(self.seconds_per_call * self.admitted / self.slots))

    async def call(self, rows: int, fn: Callable[..., T], *args) -> T:
        """A call of `rows` users: on the event loop up to INLINE_ROWS (well under a millisecond, less
        than the hop to a thread), on the lane above."""
        return fn(*args) if rows <= INLINE_ROWS else await self.run(fn, *args)

    async def run(self, fn: Callable[..., T], *args) -> T:
        if self.admitted >= self.capacity:
            raise LaneFull(self.retry_after())
        self.admitted += 1
        # The request's context (BentoML's ctx.request lives in context variables) goes with the call.
        context = contextvars.copy_context()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, self._timed, fn, args)
        finally:
            self.admitted -= 1

    def _timed(self, fn: Callable[..., T], args: tuple) -> T:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds_per_call += 0.2 * (time.perf_counter() - start - self.seconds_per_call)
