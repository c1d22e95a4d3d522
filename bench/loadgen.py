"""A lean closed-loop HTTP/1.1 load generator: N keep-alive connections, one request in flight each.

Written on raw asyncio streams so the client spends as little of the shared CPU as possible;
every target in a comparison is driven by this same client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np


# A round's connections are opened one at a time, this far apart. Opened all at once, they all
# wait on the listening socket together and the first BentoML worker to wake accepts every one
# of them, so a round measured one worker of two; apart, each lands on whichever worker wakes
# for it, as a server's independent clients do.
CONNECT_GAP_S = 0.005


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


@dataclass
class Target:
    """A server and the requests to cycle through on it."""

    host: str
    port: int
    requests: list[bytes]


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: keep-alive"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, chunked = None, False
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.lower() == "content-length":
            length = int(v)
        elif k.lower() == "transfer-encoding" and "chunked" in v.lower():
            chunked = True
    if length is not None:
        await reader.readexactly(length)
    elif chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _worker(conn, requests: list[bytes], stop_at: float, lat: list, errs: list, i: int,
                  interval: float = 0.0):
    """One connection's requests, back to back, or one every `interval` seconds (a paced client)."""
    reader, writer = conn
    n = 0
    begin = time.perf_counter()
    while time.perf_counter() < stop_at:
        req = requests[(i + n) % len(requests)]
        t = time.perf_counter()
        writer.write(req)
        status = await _read_response(reader)
        lat.append((time.perf_counter() - t) * 1000)
        if status != 200:
            errs.append(status)
        n += 1
        if interval:
            await asyncio.sleep(max(0.0, begin + n * interval - time.perf_counter()))
    writer.close()


async def _round(t: Target, concurrency: int, seconds: float, lat: list, errs: list) -> float:
    conns = []
    for _ in range(concurrency):
        conns.append(await asyncio.open_connection(t.host, t.port))
        await asyncio.sleep(CONNECT_GAP_S)
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(_worker(c, t.requests, stop_at, lat, errs, i) for i, c in enumerate(conns)))
    return time.perf_counter() - start


async def _interleaved(targets: dict[str, Target], concurrency: int, seconds: float, warmup: float,
                       rounds: int) -> dict[str, LoadResult]:
    for t in targets.values():
        if warmup:
            await _round(t, concurrency, warmup, [], [])
    lat: dict[str, list[float]] = {name: [] for name in targets}
    errs: dict[str, list[int]] = {name: [] for name in targets}
    elapsed = dict.fromkeys(targets, 0.0)
    order = list(targets)
    for r in range(rounds):
        # ABBA: alternating the order cancels a linear drift in the machine's background load.
        for name in order if r % 2 == 0 else order[::-1]:
            elapsed[name] += await _round(targets[name], concurrency, seconds / rounds, lat[name], errs[name])
    return {name: LoadResult(len(lat[name]), len(errs[name]), elapsed[name], np.asarray(lat[name])) for name in targets}


def run_load(host: str, port: int, requests: list[bytes], concurrency: int = 8, seconds: float = 15,
             warmup: float = 3, rounds: int = 3) -> LoadResult:
    """Closed-loop load for `seconds`, in `rounds` with fresh connections each: a multi-worker server
    hands each new connection to whichever worker accepts first, so a round's split of connections
    between workers is luck; several rounds average it out."""
    return compare({"target": Target(host, port, requests)}, concurrency, seconds, warmup, rounds)["target"]


def compare(targets: dict[str, Target], concurrency: int = 8, seconds: float = 15, warmup: float = 3,
            rounds: int = 12) -> dict[str, LoadResult]:
    """`run_load` on several servers in turn, round by round, so that the shared machine's changing
    background load falls on all of them alike rather than on whichever ran last. Many short
    rounds, because how a round's connections fall between the workers moves its throughput by
    up to a third."""
    return asyncio.run(_interleaved(targets, concurrency, seconds, warmup, rounds))


@dataclass
class Load:
    """A kind of traffic: `concurrency` connections to a target, paced at one request per `interval`
    seconds each (0: back to back)."""

    target: Target
    concurrency: int
    interval: float = 0.0


async def _together(loads: dict[str, Load], seconds: float) -> dict[str, LoadResult]:
    conns = {}
    for name, load in loads.items():
        conns[name] = []
        for _ in range(load.concurrency):
            conns[name].append(await asyncio.open_connection(load.target.host, load.target.port))
            await asyncio.sleep(CONNECT_GAP_S)
    lat = {name: [] for name in loads}
    errs = {name: [] for name in loads}
    start = time.perf_counter()
    await asyncio.gather(*(_worker(c, load.target.requests, start + seconds, lat[name], errs[name], i, load.interval)
                           for name, load in loads.items() for i, c in enumerate(conns[name])))
    elapsed = time.perf_counter() - start
    return {name: LoadResult(len(lat[name]), len(errs[name]), elapsed, np.asarray(lat[name])) for name in loads}


def together(loads: dict[str, Load], seconds: float) -> dict[str, LoadResult]:
    """Several kinds of traffic on the same server at the same time, for `seconds`."""
    return asyncio.run(_together(loads, seconds))


def merge(results: list[LoadResult]) -> LoadResult:
    return LoadResult(sum(r.requests for r in results), sum(r.errors for r in results),
                      sum(r.seconds for r in results), np.concatenate([r.latencies_ms for r in results]))
