"""The batch lane: large calls run beside single-user traffic without starving it.

A risk engine deciding a loan waits on a one-user call; a campaign system's 10,000-user batch can
wait. So in each worker large scoring calls run in child processes of their own under the idle
scheduling policy: a batch holds no interpreter lock the event loop needs, and the kernel preempts
it whenever a single user's call is ready. The children are forked once the worker has
loaded, so they share its pages (copy on write) instead of loading a copy. Calls that need what the
worker computes later (plans, lookalike) run on the lane's threads, at the same low priority.
A bounded number of large calls may wait; past that a call is refused at once with 429 and a
Retry-After estimated from how long batches take here.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Protocol, TypeVar

from scoring.thresholds import INLINE_ROWS

T = TypeVar("T")
log = logging.getLogger("opscore.service")


class LaneFull(RuntimeError):
    """No room on the batch lane; `retry_after` is whole seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"the batch lane is full; retry after {retry_after} s")
        self.retry_after = retry_after


class Forkable(Protocol):
    def forked(self) -> None:
        """Called first in each child: make what the fork did not carry safe (thread pools)."""


def _lower_priority(nice: int) -> None:
    # Linux keeps a nice value per thread; threads this one starts (LightGBM's OpenMP team, the
    # attribution pool) inherit it, so all of a batch's work yields to the single-user threads.
    if hasattr(os, "setpriority"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def _idle_policy() -> None:
    # A nice value only weighs the scheduler's shares: a single user's call waking up could still wait
    # a slice behind a batch. Under SCHED_IDLE the kernel preempts the batch as soon as any other task
    # is ready to run. Only for a batch process: a thread of the worker would hold the interpreter lock
    # while it waits for a CPU, and the event loop would wait behind it.
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:  # a kernel or container that refuses it: the nice value stays
            pass


def _serve(target: Forkable, conn: Connection, others: list[Connection], nice: int) -> None:
    """A child's loop: (method name, args) in, (True, result) or (False, exception) out, until the
    worker closes its end."""
    # Ctrl-C reaches the whole process group: the worker decides when its children stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for other in others:  # the worker's ends of the pipes (this child's and earlier ones'): not ours to hold
        other.close()
    _lower_priority(nice)
    _idle_policy()  # threads it starts later (LightGBM's OpenMP team) inherit it
    target.forked()
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = (True, getattr(target, name)(*args))
        except Exception as e:  # noqa: BLE001 - the worker raises it again, as if the call had run there
            reply = (False, e)
        try:
            conn.send(reply)
        except Exception:  # noqa: BLE001 - what pickle cannot carry goes back by its type's name only
            # (never its text: an answer or a message may hold ids or values)
            what = "answer" if reply[0] else "error"
            conn.send((False, RuntimeError(f"a batch process's {what} ({type(reply[1]).__name__}) does not pickle")))


class BatchProcesses:
    """Forked children running `target`'s methods, one call at a time each. A child that dies (killed,
    out of memory) is not replaced, since forking a worker that has started threads is unsafe: its
    calls run on the calling thread from then on."""

    def __init__(self, target: Forkable, count: int, nice: int):
        self.target = target
        self._idle: queue.SimpleQueue[tuple[mp.process.BaseProcess, Connection] | None] = queue.SimpleQueue()
        context, ends = mp.get_context("fork"), []
        for _ in range(count):
            mine, theirs = context.Pipe()
            # The child closes the worker's ends, its own among them: a child holding its own pipe's other
            # end would never read EOF when the worker dies, and would outlive it.
            child = context.Process(target=_serve, args=(target, theirs, [*ends, mine], nice), name="opscore-batch",
                                    daemon=True)
            child.start()
            theirs.close()
            ends.append(mine)
            self._idle.put((child, mine))

    def call(self, fn: Callable[..., T], *args) -> T:
        """`fn` (a method of the target) run in an idle child; blocks until one is free and answers."""
        slot = self._idle.get()
        if slot is None:  # a child died: this place runs on the caller's thread
            self._idle.put(None)
            return fn(*args)
        child, conn = slot
        try:
            conn.send((fn.__name__, args))
            ok, value = conn.recv()
        except (EOFError, OSError):
            child.join(1)
            log.error("a batch process stopped (exit code %s): its place on the lane runs on a thread from now on",
                      child.exitcode)
            conn.close()
            self._idle.put(None)
            return fn(*args)
        self._idle.put(slot)
        if not ok:
            raise value
        return value


class BatchLane:
    """`slots` large calls at once (the rest wait, up to `queue`); scoring calls of `processes`'s target
    run in its children, other calls on threads."""

    def __init__(self, slots: int, queue: int, nice: int, processes: BatchProcesses | None = None):
        self.slots, self.capacity = slots, slots + queue
        self.admitted = 0  # running and waiting; only touched on the event loop
        self.seconds_per_call = 1.0  # moving average of a call's time on the lane
        self.processes = processes
        self._executor = ThreadPoolExecutor(slots, thread_name_prefix="batch", initializer=_lower_priority,
                                            initargs=(nice,))

    def retry_after(self) -> int:
        return max(1, math.ceil(self.seconds_per_call * self.admitted / self.slots))

    async def call(self, rows: int, fn: Callable[..., T], *args) -> T:
        """A scoring call of `rows` users: on the event loop up to INLINE_ROWS (well under a millisecond,
        less than the hop to another process), in a batch process above (on a thread without one)."""
        if rows <= INLINE_ROWS:
            return fn(*args)
        if self.processes is None or getattr(fn, "__self__", None) is not self.processes.target:
            return await self.run(fn, *args)
        return await self.run(self.processes.call, fn, *args)

    async def run(self, fn: Callable[..., T], *args) -> T:
        """`fn` on one of the lane's threads."""
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
