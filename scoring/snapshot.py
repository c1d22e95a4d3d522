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


def id_array(ids: pd.Index | np.ndarray) -> np.ndarray:
    """User ids as numpy searches them fastest: int64 for whole numbers, fixed-width text otherwise."""
    ids = np.asarray(ids)
    return ids if ids.dtype.kind in "iu" else ids.astype(str)


@dataclass
class Snapshot:
    """Features of every user as of the snapshot date."""

    as_of: str
    frame: pd.DataFrame  # indexed by user_id, sorted
    ids: np.ndarray  # the same ids as `id_array` makes them: whole numbers or text, as the warehouse has them

    @classmethod
    def load(cls, folder: Path) -> Snapshot:
        manifest = json.loads((folder / "manifest.json").read_text())
        path = folder / "features.parquet"
        if file_sha256(path) != manifest["sha256"]["features.parquet"]:
            raise ArtifactError("feature snapshot does not match its manifest checksum")
        frame = pd.read_parquet(path).sort_index()
        return cls(manifest["as_of"], frame, id_array(frame.index))

    @property
    def text_ids(self) -> bool:
        return self.ids.dtype.kind == "U"

    def rows(self, user_ids: list) -> tuple[np.ndarray, np.ndarray]:
        """Row positions of requested ids and a mask of those found. An id is found only in the
        warehouse's type: 42 is not "42", in either direction."""
        ids = np.asarray(user_ids)
        if ids.dtype.kind == self.ids.dtype.kind:  # every id of the warehouse's type: the usual call
            return locate(self.ids, ids)
        kind = str if self.text_ids else int
        typed = np.array([type(u) is kind for u in user_ids], dtype=bool)
        ids = np.array([u if ok else kind() for u, ok in zip(user_ids, typed)],
                       dtype=None if self.text_ids else np.int64)
        pos, found = locate(self.ids, ids)
        return pos, found & typed

    def row(self, user_id: int | str) -> int | None:
        """`rows` of one id, as a plain int (None when unknown)."""
        if type(user_id) is not (str if self.text_ids else int):
            return None
        pos, found = locate_one(self.ids, user_id)
        return pos if found else None
