"""Derived arrays: built once whatever the number of processes asking, mapped read-only, rebuilt when damaged."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest

from scoring.derived import derived, entry_name

KEY = {"of": "test", "snapshot": "abc", "run_id": "r1"}


def _build(marker: Path):
    def build() -> dict[str, np.ndarray]:
        with open(marker, "a") as f:
            f.write("built\n")
        time.sleep(0.5)  # long enough for the other processes to be waiting on the lock
        return {"score": np.arange(1000, dtype=np.float64) / 7, "labels": np.array(["a", "bb"] * 500)}
    return build


def _ask(folder: str, marker: str, out: mp.Queue) -> None:
    arrays = derived(Path(folder), KEY, _build(Path(marker)))
    out.put(float(arrays["score"].sum()))


def test_three_processes_asking_at_once_build_once_and_read_the_same(tmp_path):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_ask, args=(str(tmp_path / "derived"), str(tmp_path / "marker"), out)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    sums = [out.get(timeout=5) for _ in procs]
    assert (tmp_path / "marker").read_text().count("built") == 1
    assert sums == [pytest.approx(np.arange(1000).sum() / 7)] * 3


def test_arrays_are_mapped_read_only_and_a_damaged_entry_is_built_again(tmp_path):
    marker = tmp_path / "marker"
    arrays = derived(tmp_path, KEY, _build(marker))
    assert not arrays["score"].flags.writeable and arrays["labels"][1] == "bb"
    with pytest.raises(ValueError):
        arrays["score"][0] = 1.0
    path = tmp_path / entry_name(KEY) / "score.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    again = derived(tmp_path, KEY, _build(marker))
    assert marker.read_text().count("built") == 2 and again["score"][-1] == pytest.approx(999 / 7)
    derived(tmp_path, {**KEY, "run_id": "r2"}, _build(marker))  # another model: another entry
    assert marker.read_text().count("built") == 3
