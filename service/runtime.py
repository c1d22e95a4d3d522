"""What the service holds in memory: verified models, the feature snapshot, and vectorised scoring."""

from __future__ import annotations

import json
import logging
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from training.features import file_sha256, locate, locate_one
from training.models import (TOP_REASONS, BinaryScorer, Scorer, band_edges, bands, round_to, score_frame, segment,
                             segment_columns, top_reasons)

log = logging.getLogger("opscore.service")

SNAPSHOT_MODEL = "feature_snapshot"


class NotReady(RuntimeError):
    """A model or the snapshot failed to load or verify."""


@dataclass
class Snapshot:
    """Features of every user as of the snapshot date, looked up by id with a binary search."""

    as_of: str
    frame: pd.DataFrame  # indexed by user_id, sorted
    ids: np.ndarray

    @classmethod
    def load(cls, folder: Path) -> Snapshot:
        manifest = json.loads((folder / "manifest.json").read_text())
        path = folder / "features.parquet"
        if file_sha256(path) != manifest["sha256"]["features.parquet"]:
            raise NotReady("feature snapshot does not match its manifest checksum")
        frame = pd.read_parquet(path).sort_index()
        return cls(manifest["as_of"], frame, frame.index.to_numpy())

    def rows(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return locate(self.ids, user_ids)

    def row(self, user_id: int) -> int | None:
        """`rows` of one id, as a plain int (None when unknown)."""
        pos, found = locate_one(self.ids, user_id)
        return pos if found else None


@dataclass
class ServedModel:
    endpoint: str
    registry_name: str
    version: str
    run_id: str
    trained_at: str
    metrics: dict[str, float]
    scorer: Scorer
    matrix: np.ndarray = field(repr=False)  # the snapshot in this model's feature order

    @cached_property
    def identity(self) -> dict[str, str]:
        return {"name": self.registry_name, "version": self.version, "run_id": self.run_id}

    @cached_property
    def layout(self) -> Layout:
        return Layout.of(self.scorer, ring_size=self.endpoint == "abuse")


@dataclass(frozen=True)
class Layout:
    """What formatting a model's answers needs, worked out once per model instead of per call
    (for a single user, these lookups were a sixth of the formatting)."""

    names: np.ndarray  # feature names as an object array, to index by the reasons' columns
    labels: dict[int, np.ndarray]  # column → category labels, for categorical features
    band_edges: np.ndarray
    segment_columns: tuple[int, ...] | None
    ring_size_column: int | None  # abuse answers carry the size of the user's device/invite ring
    # The same, as plain Python values for the single-user path.
    name_list: list[str]
    label_lists: dict[int, list[str]]
    band_edge_list: list[float]
    # Pieces of JSON text for score_json: a reason's opening up to its value, per feature; the
    # JSON of each category label.
    reason_heads: np.ndarray
    label_json: dict[int, list[bytes]]

    @classmethod
    def of(cls, s: Scorer, ring_size: bool = False) -> Layout:
        first = len(s.spec.numeric)
        labels = {first + i: list(c) for i, c in enumerate(s.spec.categorical.values())}
        edges = band_edges(s.band_edges)
        names = list(s.spec.names)
        heads = np.array([b'{"feature":' + orjson.dumps(n) + b',"value":' for n in names], dtype=object)
        return cls(np.asarray(names, dtype=object), {j: np.asarray(c, dtype=object) for j, c in labels.items()},
                   edges, segment_columns(s), names.index("ring_size") if ring_size and "ring_size" in names else None,
                   names, labels, edges.tolist(), heads,
                   {j: [orjson.dumps(label) for label in c] for j, c in labels.items()})


def load_served_model(endpoint: str, bento_model, snapshot: Snapshot) -> ServedModel:
    """Load an imported champion, verify its checksums and warm it up on the logged input example."""
    import bentoml
    import mlflow

    path = Path(bento_model.path_of("mlflow_model"))
    pyfunc = bentoml.mlflow.load_model(bento_model)  # runs load_context, which verifies checksums
    scorer = pyfunc.unwrap_python_model().scorer
    example = mlflow.models.Model.load(str(path)).load_input_example(str(path))
    if example is None or len(score_frame(scorer, example)) != len(example):
        raise NotReady(f"{endpoint}: warm-up on the logged input example failed")
    labels, meta = bento_model.info.labels, bento_model.info.metadata
    served = ServedModel(
        endpoint=endpoint, registry_name=labels["registry_name"], version=labels["version"], run_id=labels["run_id"],
        trained_at=meta.get("trained_at", ""), metrics=json.loads(meta.get("metrics", "{}")), scorer=scorer,
        # Columns the snapshot lacks (the offer of an uplift model) are NaN until a request fills them.
        matrix=scorer.spec.to_matrix(snapshot.frame.reindex(columns=scorer.spec.names)),
    )
    # The serving path too (its per-leaf attribution tables are built on first use), so that the
    # first caller does not pay for it.
    if len(score_matrix(served, scorer.spec.to_matrix(example), TOP_REASONS)) != len(example):
        raise NotReady(f"{endpoint}: warm-up of the serving path failed")
    return served


def _reasons(layout: Layout, idx: np.ndarray, contrib: np.ndarray, raw: np.ndarray) -> list[list[dict]]:
    """Top-k (feature, value, contribution) per row, with values prepared column-wise before the dicts."""
    values = raw.astype(object)
    missing = np.isnan(raw)
    values[missing] = None
    for j, labels in layout.labels.items():
        hit = (idx == j) & ~missing
        if hit.any():
            values[hit] = labels[raw[hit].astype(int)]
    # One flat pass over all rows' reasons, then sliced per row: half the cost of a nested
    # comprehension, which pays a function call per row.
    feats = layout.names[idx].ravel().tolist()
    flat = [{"feature": f, "value": v, "contribution": c}
            for f, v, c in zip(feats, values.ravel().tolist(), contrib.ravel().tolist())]
    k = idx.shape[1]
    return [flat[i:i + k] for i in range(0, len(flat), k)]


def _score_and_contributions(s: Scorer, X: np.ndarray, reasons: int, threads: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The scorer's cheapest way to a score and, when asked for, its serving attributions."""
    if not reasons:
        return s.predict(X), None
    if hasattr(s, "score_and_reasons"):
        return s.score_and_reasons(X, threads)
    return s.predict(X), getattr(s, "reason_contributions", s.contributions)(X)


def _round6(x: float) -> float:
    """round_to(x, 6) on one value, bit for bit: Python's round() is rint's half-to-even, but
    returns an int, which loses the sign of a negative value rounded to zero."""
    r = round(x * 1e6) / 1e6
    return r if r else math.copysign(0.0, x)


def _score_one(model: ServedModel, x: np.ndarray, k: int, user_ids: list | None) -> dict:
    """`score_matrix` of one user of a binary model, formatted in plain Python once the trees have
    run: a single user's answer is a few dozen numbers, and numpy's per-call overhead made most of
    its cost. test_runtime holds it equal to the batch path, key for key and bit for bit."""
    s, layout = model.scorer, model.layout
    p, contrib = s.score_and_reasons_one(x)
    xs = x.tolist()
    row = {} if user_ids is None else {"user_id": user_ids[0]}
    row["score"] = _round6(p)
    row["band"] = 1 + bisect_right(layout.band_edge_list, round(p * 1e9) / 1e9)
    if layout.segment_columns is not None:
        tenure, silent, value = (xs[j] for j in layout.segment_columns)
        row["segment"] = s.segments.label(tenure, silent, value)
    row["model"] = model.identity
    reasons, c = [], contrib.tolist()
    # A stable sort, descending: ties keep the lower column first, as top_reasons does.
    for j in sorted(range(len(c)), key=c.__getitem__, reverse=True)[:k]:
        v = xs[j]
        if v != v:
            v = None
        elif j in layout.label_lists:
            v = layout.label_lists[j][int(v)]
        reasons.append({"feature": layout.name_list[j], "value": v, "contribution": _round6(c[j])})
    row["reasons"] = reasons
    if layout.ring_size_column is not None:
        size = xs[layout.ring_size_column]
        row["ring_size"] = None if size != size else int(size)
    return row


@dataclass
class Answer:
    """A batch's answer as columns: `score_matrix` renders it as dicts, `score_json` as JSON text."""

    columns: dict[str, np.ndarray]  # score, band, segment and the model's own columns, in answer order
    reasons: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # feature columns, contributions, values (n×k)
    per_feature: dict[str, tuple[np.ndarray, np.ndarray]]  # e.g. points: (feature columns shown, values)
    ring_size: np.ndarray | None


def answer(model: ServedModel, X: np.ndarray, reasons: int, threads: int = 1) -> Answer:
    """Score a batch in one vectorised pass, rounded as the contract sends it."""
    s, layout = model.scorer, model.layout
    score, contrib = _score_and_contributions(s, X, reasons, threads)
    columns = {"score": round_to(score, 6), "band": bands(score, layout.band_edges)}
    seg = segment(s, X, layout.segment_columns)
    if seg is not None:
        columns["segment"] = seg
    per_feature: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, values in s.extras(X).items():
        if values.ndim == 2:  # one value per feature: only the features that gave any are shown
            used = np.flatnonzero((values != 0).any(axis=0))
            per_feature[name] = (used, round_to(values[:, used], 3))
        else:
            columns[name] = round_to(values, 6)
    why = None
    if reasons:
        idx, vals = top_reasons(contrib, reasons)
        why = (idx, round_to(vals, 6), X[np.arange(len(X))[:, None], idx])
    ring = None if layout.ring_size_column is None else X[:, layout.ring_size_column]
    return Answer(columns, why, per_feature, ring)


def score_matrix(model: ServedModel, X: np.ndarray, reasons: int, threads: int = 1,
                 user_ids: list | None = None) -> list[dict]:
    """Score a batch and format one result dict per row (user id first)."""
    if not len(X):  # every id unknown: LightGBM refuses an empty matrix
        return []
    if len(X) == 1 and reasons and type(model.scorer) is BinaryScorer:
        return [_score_one(model, X[0], reasons, user_ids)]
    a, layout = answer(model, X, reasons, threads), model.layout
    columns: dict[str, list] = {} if user_ids is None else {"user_id": user_ids}
    columns.update((name, values.tolist()) for name, values in a.columns.items())
    reason_lists = _reasons(layout, *a.reasons) if a.reasons else [[]] * len(X)
    keys, identity = list(columns), model.identity
    rows = [dict(zip(keys, vals), model=identity, reasons=r) for vals, r in zip(zip(*columns.values()), reason_lists)]
    for name, (used, values) in a.per_feature.items():
        for row, vals in zip(rows, values.tolist()):
            row[name] = dict(zip(layout.names[used].tolist(), vals))
    if a.ring_size is not None:
        for row, size in zip(rows, a.ring_size.tolist()):
            row["ring_size"] = None if size != size else int(size)
    return rows


# Up to this many rows, score_json serialises score_matrix's dicts: cheaper than its column-wise
# set-up on a handful of rows.
DICT_ROWS = 32


def score_json(model: ServedModel, X: np.ndarray, reasons: int, threads: int = 1, user_ids: list | None = None,
               sep: bytes = b",") -> bytes:
    """score_matrix's rows as JSON text, joined by `sep`: byte for byte what orjson writes of those
    dicts (test_runtime holds it so), but written column by column. Building, serialising and
    freeing a 10,000-row answer's 40,000 dicts was a third of a 10k call."""
    if len(X) <= DICT_ROWS:
        return sep.join(map(orjson.dumps, score_matrix(model, X, reasons, threads, user_ids)))
    a, layout, n = answer(model, X, reasons, threads), model.layout, len(X)
    slots: list[bytes | list[bytes]] = [b"{"]
    if user_ids is not None:
        slots += [b'"user_id":', _texts(user_ids), b","]
    for i, (name, values) in enumerate(a.columns.items()):
        slots += [b"," if i else b"", orjson.dumps(name) + b":", _column_texts(values)]
    slots.append(b',"model":' + orjson.dumps(model.identity) + b',"reasons":[')
    if a.reasons:
        idx, contrib, raw = a.reasons
        k = idx.shape[1]
        values = _reason_value_texts(layout, idx, raw)
        contribs = _float_texts(contrib.ravel())
        for i in range(k):
            slots += [b"," if i else b"", layout.reason_heads[idx[:, i]].tolist(), values[i::k],
                      b',"contribution":', contribs[i::k], b"}"]
    slots.append(b"]")
    for name, (used, per_feature) in a.per_feature.items():
        slots.append(b"," + orjson.dumps(name) + b":{")
        for p, j in enumerate(used.tolist()):
            slots += [b"," if p else b"", orjson.dumps(layout.name_list[j]) + b":", _float_texts(per_feature[:, p])]
        slots.append(b"}")
    if a.ring_size is not None:
        slots += [b',"ring_size":', _ring_size_texts(a.ring_size)]
    slots.append(b"}" + sep)
    text = _join_rows(n, slots)
    return text[:len(text) - len(sep)]


def _float_texts(values: np.ndarray) -> list[bytes]:
    """orjson's text of each value, as it writes the same value as a Python float (NaN: null)."""
    return orjson.dumps(np.ascontiguousarray(values, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")


def _texts(values: list) -> list[bytes]:
    """orjson's text of each int or None of a list (ints only: a string could hold a comma)."""
    return orjson.dumps(values)[1:-1].split(b",")


def _column_texts(values: np.ndarray) -> list[bytes]:
    if values.dtype.kind == "f":
        return _float_texts(values)
    if values.dtype.kind in "iu":
        return _texts(values.tolist())
    labels = values.tolist()
    distinct = set(labels)
    if not all(type(label) is str for label in distinct):  # 0.0 == -0.0 == False: no shared cache
        return list(map(orjson.dumps, labels))
    cache = {label: orjson.dumps(label) for label in distinct}  # a few segment labels, each serialised once
    return list(map(cache.__getitem__, labels))


def _reason_value_texts(layout: Layout, idx: np.ndarray, raw: np.ndarray) -> list[bytes]:
    """Reason values, row by row: numbers, null where unknown, labels for categories."""
    texts = _float_texts(raw.ravel())
    flat_idx, flat_raw = idx.ravel(), raw.ravel()
    for j, labels in layout.label_json.items():
        hits = np.flatnonzero((flat_idx == j) & ~np.isnan(flat_raw))
        for p, code in zip(hits.tolist(), flat_raw[hits].astype(int).tolist()):
            texts[p] = labels[code]
    return texts


def _ring_size_texts(sizes: np.ndarray) -> list[bytes]:
    missing = np.isnan(sizes)
    texts = _texts(np.where(missing, 0, sizes).astype(np.int64).tolist())
    for p in np.flatnonzero(missing).tolist():
        texts[p] = b"null"
    return texts


def _join_rows(n: int, slots: list[bytes | list[bytes]]) -> bytes:
    """Rows from a template: constant pieces and per-row columns, interleaved with strided slice
    assignments and one join, all in C rather than a Python loop over rows."""
    merged: list[bytes | list[bytes]] = []
    for slot in slots:
        if isinstance(slot, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += slot
        elif slot != b"":
            merged.append(slot)
    width = len(merged)
    parts: list[bytes] = [b""] * (n * width)
    for i, slot in enumerate(merged):
        parts[i::width] = [slot] * n if isinstance(slot, bytes) else slot
    return b"".join(parts)


def load_lookalike(folder: Path, snapshot: Snapshot):
    from training.lookalike import Lookalike
    from training.models import CHECKSUMS, verify_checksums

    if not folder.exists():
        raise NotReady("no lookalike index with the snapshot: run `python -m training lookalike-index`")
    verify_checksums({p.name if p.name == CHECKSUMS else p.stem: str(p) for p in folder.iterdir()})
    lk = Lookalike.load(folder)
    if not np.array_equal(lk.user_ids, snapshot.ids):
        raise NotReady("lookalike index was built on another snapshot")
    return lk


class RequestError(ValueError):
    """A request the contract refuses: status and the field at fault."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status, self.field = status, field


def lookalike_audience(lk, snapshot: Snapshot, seeds_folder: Path, abuse_scores: np.ndarray | None,
                       min_seed: int, req: dict) -> tuple[dict, np.ndarray]:
    """Resolve the seed, apply guards and filters, expand, and self-check; RequestError on bad input."""
    from training.lookalike import expand
    from training.seeds import load_seed

    if req["seed_name"] is not None:
        try:
            seed_ids = load_seed(seeds_folder, req["seed_name"]).to_numpy()
        except KeyError as e:
            raise RequestError(404, "seed_name", str(e.args[0])) from e
        field = "seed_name"
    else:
        seed_ids, field = np.unique(np.asarray(req["seed_user_ids"], dtype=np.int64)), "seed_user_ids"
    rows, found = snapshot.rows(seed_ids)
    seed_rows = rows[found]
    if len(seed_rows) < min_seed:
        raise RequestError(400, field, f"{field}: a seed needs at least {min_seed} known users, got {len(seed_rows)} "
                                       f"({int((~found).sum())} unknown ids)")
    n = len(snapshot.ids)
    frame = snapshot.frame
    allowed = np.ones(n, dtype=bool)
    if req["city_tiers"]:
        allowed &= frame["city_tier"].isin(req["city_tiers"]).to_numpy()
    if req["age_min"] is not None:
        allowed &= (frame["age"] >= req["age_min"]).to_numpy()
    if req["age_max"] is not None:
        allowed &= (frame["age"] <= req["age_max"]).to_numpy()
    if req["max_abuse_score"] is not None:
        if abuse_scores is None:
            raise RequestError(503, "max_abuse_score", "max_abuse_score: the abuse model is not available")
        allowed &= abuse_scores <= req["max_abuse_score"]
    pool = int(allowed.sum()) - (len(seed_rows) if req["exclude_seeds"] else 0)
    k = req["k"] or (int(round(req["share"] * n)) if req["share"] else min(10 * len(seed_rows), n // 2))
    k = max(1, min(k, pool))
    if pool <= 0:
        raise RequestError(400, "filters", "filters leave no users to choose from")
    out = expand(lk, frame, seed_rows, k, allowed, exclude_seeds=req["exclude_seeds"],
                 protected_off=req["credit_offer"], method=req["method"])
    sims = np.round(out.similarity.astype(np.float64), 6).tolist()
    return {
        "seed": {"name": req["seed_name"], "size": int(len(seed_rows)), "unknown_ids": int((~found).sum())},
        "k": k,
        "method": req["method"],
        "protected_attributes_used": not req["credit_offer"],
        "results": [{"user_id": u, "rank": i + 1, "similarity": s} for i, (u, s) in enumerate(zip(out.ids.tolist(), sims))],
        "distinguishing_features": out.distinguishing,
        "self_check": {"heldout_share": 0.2, "recall": round(out.recall_heldout, 4),
                       "random_recall": round(out.recall_random, 4),
                       "lift": round(out.recall_heldout / max(out.recall_random, 1e-9), 2)},
        "snapshot_as_of": snapshot.as_of,
    }, seed_rows
