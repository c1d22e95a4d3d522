"""Start a server as a child process and wait until it answers: one helper for the tests and the benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bentoml_serve(target: str, port: int, host: str = "127.0.0.1") -> list[str]:
    return [str(BIN / "bentoml"), "serve", target, "-p", str(port), "--host", host]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text()


def start(cmd: list[str], env: dict[str, str], port: int, log: Path, ready_path: str = "/readyz",
          timeout: float = 180, wait_ready: bool = True, workers: int = 0, cwd: Path = ROOT) -> Server:
    """Start `cmd` (its output in `log`) and wait until `ready_path` answers 200, or, without
    `wait_ready`, answers at all. With `workers`, also until that many BentoML workers say they
    are initialised: a worker still loading accepts no connections, so keep-alive connections
    opened before would all land on the first one ready."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited while starting:\n{server.log_text()[-3000:]}")
        try:
            status = httpx.get(server.url + ready_path, timeout=2).status_code
        except httpx.HTTPError:
            status = None
        answered = status == 200 or (status is not None and not wait_ready)
        if answered and server.log_text().count(" initialized") >= workers:
            return server
        time.sleep(0.5)
    stop(server)
    raise RuntimeError(f"{' '.join(cmd)} not ready in {timeout:.0f} s:\n{server.log_text()[-3000:]}")


def parent(pid: int) -> int | None:
    """A process's parent, from /proc (None once it has ended)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # after the name: state, ppid
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (BentoML's workers and their batch processes), read from /proc:
    the workers are not in the server's process group, so a group is not enough to find them."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*"):
        ppid = parent(int(stat.name))
        if ppid is not None:
            children.setdefault(ppid, []).append(int(stat.name))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo.extend(children.get(out[-1], []))
    return out


def stop(server: Server) -> None:
    """SIGTERM to the server's process group (its arbiter stops the workers, which are not in the group),
    SIGKILL if it lingers."""
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
