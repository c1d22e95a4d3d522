"""A real BentoML server over the session's trained champions, started as a subprocess on a free port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from scoring.settings import Settings
from service.keys import KeyStore
from service.launch import Server, bentoml_serve, free_port, start, stop

ROOT = Path(__file__).resolve().parents[2]


def server_env(settings: Settings, bentoml_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSCORE_", "MLFLOW_", "BENTOML_"))}
    env.update({
        "BENTOML_HOME": str(bentoml_home),
        "BENTOML_DO_NOT_TRACK": "True",
        "OPSCORE_DATA_DIR": str(settings.data_dir),
        "OPSCORE_MLRUNS_DIR": str(settings.mlruns_dir),
        "OPSCORE_KEYS_FILE": str(settings.keys_file),
        "OPSCORE_AUDIT_LOG": str(settings.audit_log),
        "OPSCORE_AUDIT_SECRET": "test-audit-secret",
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    })
    return env


def start_server(settings: Settings, bentoml_home: Path, log: Path, wait_ready: bool = True,
                 extra_env: dict[str, str] | None = None) -> Server:
    return start_server_of("service.service:Opscore", settings, bentoml_home, log, wait_ready, extra_env)


def start_server_of(target: str, settings: Settings, bentoml_home: Path, log: Path, wait_ready: bool = True,
                    extra_env: dict[str, str] | None = None) -> Server:
    """`target` (a BentoML service) served over the session's store and world."""
    port = free_port()
    return start(bentoml_serve(target, port), {**server_env(settings, bentoml_home), **(extra_env or {})},
                 port, log, wait_ready=wait_ready)


def stop_server(server: Server) -> None:
    stop(server)


@pytest.fixture(scope="session")
def bento_home(all_champions, tmp_path_factory) -> Path:
    """A BentoML store holding the four champions and the snapshot, imported by the real CLI."""
    home = tmp_path_factory.mktemp("bentoml")
    r = subprocess.run([sys.executable, "-m", "service", "import-models"], cwd=ROOT,
                       env=server_env(all_champions, home), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return home


@pytest.fixture(scope="session")
def keys(all_champions) -> dict[str, str]:
    store = KeyStore(all_champions.keys_file)
    return {"campaign": store.add("campaign-system", ["campaign"]), "risk": store.add("risk-engine", ["risk"])}


@pytest.fixture(scope="session")
def snapshot(all_champions) -> pd.DataFrame:
    return pd.read_parquet(all_champions.snapshot_dir / "features.parquet")


@pytest.fixture(scope="session")
def server(all_champions, bento_home, keys, tmp_path_factory):
    s = start_server(all_champions, bento_home, tmp_path_factory.mktemp("server") / "serve.log")
    yield s
    stop_server(s)


@pytest.fixture(scope="session")
def broken_home(bento_home, tmp_path_factory):
    """Copy the store, so a test can break a model without touching the good server's."""

    def make(name: str) -> Path:
        home = tmp_path_factory.mktemp(f"broken-{name}")
        shutil.copytree(bento_home, home, dirs_exist_ok=True)
        return home

    return make
