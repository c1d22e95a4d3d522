"""What every part of the benchmark shares: its log line, the environment of a world, timed commands, servers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.config import SERVICE_CONFIG
from service.launch import bentoml_serve, descendants, free_port, start, stop

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
GIB = 1024**3


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def env_for(data: Path, mlruns: Path, bentoml_home: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSCORE_", "MLFLOW_", "BENTOML_"))}
    env.update(OPSCORE_DATA_DIR=str(data), OPSCORE_MLRUNS_DIR=str(mlruns), BENTOML_DO_NOT_TRACK="True",
               OPSCORE_KEYS_FILE=str(data / "keys.json"), OPSCORE_AUDIT_LOG=str(data / "audit.log"),
               PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    if bentoml_home:
        env["BENTOML_HOME"] = str(bentoml_home)
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak memory (GiB) and stdout of one command. The peak is the larger of its own peak
    RSS and the largest proportional set size summed over it and its children, sampled every 2 s
    (`simulate` runs its chunks in processes of their own)."""
    start = time.perf_counter()
    errors = tempfile.TemporaryFile(mode="w+")  # progress bars go there too: read only when the command fails
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
    peak, done = [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(2.0):
            peak[0] = max(peak[0], tree_pss_gib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read()
    done.set()
    sampler.join()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        errors.seek(0)
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out[-2000:]}\n{errors.read()[-3000:]}")
    errors.close()
    return time.perf_counter() - start, max(usage.ru_maxrss * 1024 / GIB, peak[0]), out


def tree_pss_gib(pid: int) -> float:
    """Proportional set size summed over a process and those below it: a page shared by k processes
    counts 1/k in each."""
    total_kb = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    return total_kb * 1024 / GIB


def pss_by_mapping_gib(pid: int, top: int = 8) -> dict[str, float]:
    """`tree_pss_gib` by what is mapped (a file's name, or [anon] and the like), the largest first."""
    by: dict[str, int] = {}
    for p in descendants(pid):
        try:
            name = ""
            for line in Path(f"/proc/{p}/smaps").read_text().splitlines():
                head = line.split(maxsplit=5)
                if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
                    name = Path(head[5]).name if len(head) == 6 else "[anon]"
                elif line.startswith("Pss:"):
                    by[name] = by.get(name, 0) + int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    ranked = sorted(by.items(), key=lambda kv: -kv[1])
    return {k: v * 1024 / GIB for k, v in ranked[:top]}


def add_key(env: dict[str, str], name: str, scopes: str) -> str:
    """A new API key in the world's keys file; the key itself."""
    return subprocess.run(py("-m", "service", "keys", "add", name, "--scopes", scopes), cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True).stdout.strip()


def py(*args: str) -> list[str]:
    return [sys.executable, *args]


def server_log() -> Path:
    return Path(tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False).name)


@contextmanager
def serving(target: str, env: dict[str, str]) -> Iterator[int]:
    """A BentoML service on a free port, every worker initialised; yields the port."""
    port = free_port()
    server = start(bentoml_serve(target, port, HOST), env, port, server_log(), timeout=900,
                   workers=SERVICE_CONFIG["workers"])
    try:
        yield port
    finally:
        stop(server)
        server.log.unlink(missing_ok=True)
