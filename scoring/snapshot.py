"""The serving snapshot: every user's features as of one date, looked up by id with a binary search."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.artifacts import ArtifactError, file_sha256
from scoring.thresholds import SORTED_SEARCH_IDS


def locate_one(sorted_ids: np.ndarray, user_id: int) -> tuple[int, bool]:
    """`locate` of one id, as plain Python values: a single user's request, where one scalar
    search costs a third of the array calls."""
    pos = min(int(sorted_ids.searchsorted(user_id)), len(sorted_ids) - 1)
    return pos, bool(sorted_ids[pos] == user_id)


def locate(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of ids in a snapshot's sorted id column, and a mask of those found."""
    if len(ids) == 1:
        pos, found = locate_one(sorted_ids, ids[0])
        return np.array([pos]), np.array([found])
    if len(ids) > SORTED_SEARCH_IDS:
        order = np.argsort(ids, kind="stable")
        pos = np.empty(len(ids), dtype=np.intp)
        pos[order] = np.searchsorted(sorted_ids, ids[order])
    else:
        pos = np.searchsorted(sorted_ids, ids)
    # searchsorted never returns < 0; np.minimum rather than np.clip, which costs 5x more.
    pos = np.minimum(pos, len(sorted_ids) - 1)
    return pos, sorted_ids[pos] == ids


@dataclass
class Snapshot:
    """Features of every user as of the snapshot date."""

    as_of: str
    frame: pd.DataFrame  # indexed by user_id, sorted
    ids: np.ndarray

    @classmethod
    def load(cls, folder: Path) -> Snapshot:
        manifest = json.loads((folder / "manifest.json").read_text())
        path = folder / "features.parquet"
        if file_sha256(path) != manifest["sha256"]["features.parquet"]:
            raise ArtifactError("feature snapshot does not match its manifest checksum")
        frame = pd.read_parquet(path).sort_index()
        return cls(manifest["as_of"], frame, frame.index.to_numpy())

    def rows(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return locate(self.ids, user_ids)

    def row(self, user_id: int) -> int | None:
        """`rows` of one id, as a plain int (None when unknown)."""
        pos, found = locate_one(self.ids, user_id)
        return pos if found else None
