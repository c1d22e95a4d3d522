"""Arrays derived from the serving snapshot and the champions (every user's abuse score, probability of
default, conversion probability under each arm): computed by the first process that needs them, kept
as numpy files and memory-mapped by every other.

Two workers then hold one copy in the page cache instead of one each, the second waits for the first
instead of computing the same minutes of per-arm uplifts, and a restart of the server computes nothing.
An entry is named by a digest of what it was derived from (the snapshot's checksum, the models' run
ids, the arms), written whole under a temporary name and renamed, and checked against the checksums
it was written with before it is mapped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scoring.artifacts import ArtifactError, file_sha256

log = logging.getLogger(__name__)
MANIFEST = "derived.json"
# Part of every entry's name: raise it when what a build computes changes (segments, per-arm probabilities,
# scores), so that a server with the new code on the same snapshot and models does not map the old arrays.
VERSION = 4


def entry_name(key: dict) -> str:
    return hashlib.sha256(json.dumps({**key, "derived_version": VERSION}, sort_keys=True).encode()).hexdigest()[:20]


def derived(folder: Path, key: dict, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays `build` makes for `key`, mapped read-only: built here, under a lock that other
    processes wait on, unless an earlier process left them. An entry that fails its checksums is
    rebuilt, and the log says so."""
    folder.mkdir(parents=True, exist_ok=True)
    name = entry_name(key)
    target = folder / name
    with open(folder / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if target.is_dir():
                try:
                    return _mapped(target)
                except (ArtifactError, OSError, ValueError, KeyError) as e:
                    log.error("derived arrays %s are damaged (%s): computing them again", name, e)
                    shutil.rmtree(target)
            _write(target, key, build())
            return _mapped(target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(target: Path, key: dict, arrays: dict[str, np.ndarray]) -> None:
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for name, array in arrays.items():
        with open(partial / f"{name}.npy", "wb") as f:
            np.save(f, np.asarray(array))
            f.flush()
            os.fsync(f.fileno())
    sums = {f"{name}.npy": file_sha256(partial / f"{name}.npy") for name in arrays}
    (partial / MANIFEST).write_text(json.dumps({"key": key, "sha256": sums}, indent=2))
    os.rename(partial, target)


def _mapped(target: Path) -> dict[str, np.ndarray]:
    manifest = json.loads((target / MANIFEST).read_text())
    out = {}
    for file, digest in manifest["sha256"].items():
        if file_sha256(target / file) != digest:
            raise ArtifactError(f"{file} does not match its checksum")
        out[file.removesuffix(".npy")] = np.load(target / file, mmap_mode="r").view(np.ndarray)
    return out
