"""The batch lane: large calls wait in a bounded queue on low-priority threads; past it, 429 with Retry-After."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from service.batches import BatchLane, BatchProcesses, LaneFull
from service.launch import ROOT
from service.requests import RequestError
from tests.service.conftest import start_server, stop_server


def test_a_full_lane_refuses_at_once_and_frees_its_place():
    release = threading.Event()

    async def scenario() -> tuple[int, int, int, int]:
        lane = BatchLane(slots=1, queue=1, nice=7)
        running = asyncio.ensure_future(lane.run(lambda: (release.wait(5), os.getpriority(os.PRIO_PROCESS, 0))[1]))
        waiting = asyncio.ensure_future(lane.run(lambda: 1))
        await asyncio.sleep(0.05)
        with pytest.raises(LaneFull) as refused:
            await lane.run(lambda: 2)
        release.set()
        nice, _ = await running, await waiting
        return nice, refused.value.retry_after, lane.admitted, await lane.run(lambda: 3)

    nice, retry_after, admitted, later = asyncio.run(scenario())
    assert nice == 7, "the lane's thread runs at the lane's nice value"
    assert retry_after >= 1
    assert admitted == 0 and later == 3, "finished calls give their places back"


class _Target:
    """Stands for the worker: what a batch process runs, and what tells it apart from the parent."""

    def __init__(self) -> None:
        self.threads = 2

    def forked(self) -> None:
        self.threads = 1

    def where(self, x: int) -> tuple[int, int, int, int]:
        return os.getpid(), os.getpriority(os.PRIO_PROCESS, 0), self.threads, 2 * x

    def policy(self) -> int:
        return os.sched_getscheduler(0)

    def refuse(self) -> None:
        raise RequestError(400, "user_ids", "user_ids: not these")

    def unpicklable(self) -> object:
        return _Unpicklable()


class _Unpicklable:
    """An answer pickle refuses, whose text holds an id."""

    def __reduce__(self):
        raise TypeError("not this one")

    def __str__(self) -> str:
        return "user 10000042"


def test_large_calls_run_in_a_forked_child_at_the_lanes_priority_and_small_ones_inline():
    target = _Target()
    lane = BatchLane(slots=1, queue=1, nice=7, processes=BatchProcesses(target, 1, nice=7))

    async def scenario():
        return await lane.call(1000, target.where, 21), await lane.call(1, target.where, 1)

    (pid, nice, threads, doubled), (inline_pid, _, inline_threads, _) = asyncio.run(scenario())
    assert pid != os.getpid() and nice == 7 and doubled == 42
    assert threads == 1, "the child has been told it is one (forked), the parent has not"
    assert lane.processes.call(target.policy) == os.SCHED_IDLE, "any other task preempts a batch"
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    assert inline_pid == os.getpid() and inline_threads == 2
    with pytest.raises(RequestError) as refused:  # the worker's refusals cross back as themselves
        lane.processes.call(target.refuse)
    assert (refused.value.status, refused.value.field, str(refused.value)) == (400, "user_ids", "user_ids: not these")
    with pytest.raises(RuntimeError) as lost:  # named by its type, never by its text
        lane.processes.call(target.unpicklable)
    assert "_Unpicklable" in str(lost.value) and "10000042" not in str(lost.value)


def test_a_batch_process_killed_leaves_its_calls_answered_on_the_thread(caplog):
    target = _Target()
    processes = BatchProcesses(target, 1, nice=7)
    child, *_ = processes.call(target.where, 0)
    os.kill(child, signal.SIGKILL)
    with caplog.at_level(logging.ERROR, logger="opscore.service"):
        after = [processes.call(target.where, i) for i in range(2)]
    assert [(pid, x) for pid, _, _, x in after] == [(os.getpid(), 0), (os.getpid(), 2)]
    assert "batch process stopped" in caplog.text


@pytest.fixture(scope="module")
def narrow_server(all_champions, broken_home, tmp_path_factory):
    """One worker whose lane runs one large call, in a batch process, and lets none wait. On a copy of the
    store: a server stopping clears the metrics folder it shares with any other server on the same
    BENTOML_HOME."""
    s = start_server(all_champions, broken_home("narrow"), tmp_path_factory.mktemp("narrow") / "serve.log",
                     extra_env={"OPSCORE_SERVE_WORKERS": "1", "OPSCORE_BATCH_QUEUE": "0",
                                "OPSCORE_BATCH_PROCESSES": "true"})
    yield s
    stop_server(s)


def test_batches_past_the_lane_get_429_while_single_users_are_answered(narrow_server, keys, snapshot):
    ids = snapshot.index.tolist()
    batch = {"user_ids": (ids * (5000 // len(ids) + 1))[:5000]}
    headers = {"Authorization": f"Bearer {keys['campaign']}"}

    async def burst() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=narrow_server.url, headers=headers, timeout=60) as client:
            batches = [client.post("/v1/churn/score", json=batch) for _ in range(6)]
            singles = [client.post("/v1/churn/score", json={"user_ids": [ids[i]]}) for i in range(6)]
            done = await asyncio.gather(*batches, *singles)
            return done[:6], done[6:]

    batches, singles = asyncio.run(burst())
    assert {r.status_code for r in batches} <= {200, 429}
    refused = [r for r in batches if r.status_code == 429]
    assert refused and any(r.status_code == 200 for r in batches)
    assert all(int(r.headers["Retry-After"]) >= 1 and "batch lane" in r.json()["error"] for r in refused)
    assert [r.status_code for r in singles] == [200] * 6, "single users never wait on the lane"
    answered = next(r for r in batches if r.status_code == 200).json()["results"]
    assert answered[:6] == [r.json()["results"][0] for r in singles], "a batch process answers as the worker does"


def test_batch_processes_leave_when_their_worker_dies():
    # A worker (here a plain process) with two batch processes, killed without a chance to clean up.
    code = ("import os, sys, time\n"
            "from service.batches import BatchProcesses\n"
            "class T:\n"
            "    def forked(self): pass\n"
            "    def pid(self): return os.getpid()\n"
            "t = T(); p = BatchProcesses(t, 2, nice=7)\n"
            "print(p.call(t.pid), p.call(t.pid), flush=True); time.sleep(60)\n")
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    children = [int(x) for x in worker.stdout.readline().split()]
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{c}").exists() and "Z" not in _state(c) for c in children):
        time.sleep(0.1)
    assert all(not Path(f"/proc/{c}").exists() or "Z" in _state(c) for c in children), "a batch process outlived its worker"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
