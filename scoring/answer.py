"""The answer to a scoring call, declared once: its fields in order, computed per batch as columns.

Every rendering follows `FIELDS`: the service's dicts (`rows`) and JSON text
(`scoring.answer_json`), the single-user path (`one`) and the MLflow model's frame
(`scoring.pyfunc`). Tests hold the dicts, the JSON text and the single user equal byte for byte.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import orjson

from scoring.population import OUT_OF_POPULATION
from scoring.scorer import Scorer, band_edges, bands, round6, round_to, top_reasons, top_reasons_one
from scoring.segments import grid_columns

# A result's fields in the order every rendering writes them. COLUMNS: score, band, segment (when
# the model has the lifecycle/value grid), then the model's own one-per-row columns; best_arm and
# arms (each arm's per_arm values: uplift, P(convert), net value) for a model of campaign arms;
# PER_FEATURE: the model's one-per-feature fields. user_id, model and ring_size appear where the
# caller has them.
COLUMNS, PER_FEATURE = "<columns>", "<per_feature>"
FIELDS = ("user_id", COLUMNS, "best_arm", "arms", "model", "reasons", PER_FEATURE, "ring_size")
SCORE_DECIMALS, PER_FEATURE_DECIMALS = 6, 3
# A user outside the population the model was trained on gets this item in place of a score.
OUT_OF_POPULATION_FIELDS = ("user_id", "lifecycle", "status", "reason")


@dataclass(frozen=True)
class Layout:
    """What rendering a model's answers needs, worked out once per model instead of per call
    (for a single user, these lookups were a sixth of the formatting)."""

    scorer: Scorer
    identity: dict[str, str] | None  # name, version, run id; None in the MLflow model, which has no registry
    columns: tuple[str, ...]
    names: np.ndarray  # feature names as an object array, to index by the reasons' columns
    labels: dict[int, np.ndarray]  # column → category labels, for categorical features
    band_edges: np.ndarray
    segment_columns: tuple[int, int, int] | None
    ring_size_column: int | None  # abuse answers carry the size of the user's device/invite ring
    # The same, as plain Python values for the single-user path.
    name_list: list[str]
    label_lists: dict[int, list[str]]
    band_edge_list: list[float]
    # Pieces of JSON text: a reason's opening up to its value, per feature; each category label's JSON.
    reason_heads: np.ndarray
    label_json: dict[int, list[bytes]]
    # Per arm of the scorer: its id as JSON (best_arm) and its key in `arms` up to the first value.
    arm_json: list[bytes]
    arm_heads: list[bytes]

    @classmethod
    def of(cls, s: Scorer, identity: dict[str, str] | None = None, ring_size: bool = False) -> Layout:
        first = len(s.spec.numeric)
        labels = {first + i: list(c) for i, c in enumerate(s.spec.categorical.values())}
        edges = band_edges(s.band_edges)
        names = list(s.spec.names)
        segments = grid_columns(names) if s.segments is not None else None
        columns = ("score", "band", *(("segment",) if segments else ()), *s.columns)
        heads = np.array([b'{"feature":' + orjson.dumps(n) + b',"value":' for n in names], dtype=object)
        return cls(s, identity, columns, np.asarray(names, dtype=object),
                   {j: np.asarray(c, dtype=object) for j, c in labels.items()}, edges, segments,
                   names.index("ring_size") if ring_size and "ring_size" in names else None,
                   names, labels, edges.tolist(), heads,
                   {j: [orjson.dumps(label) for label in c] for j, c in labels.items()}, *_arm_texts(s))

    def for_scorer(self, s: Scorer) -> Layout:
        """This layout for a narrowed copy of its scorer (other arms, or the best chosen by net value)."""
        return replace(self, scorer=s, arm_json=_arm_texts(s)[0], arm_heads=_arm_texts(s)[1])

    def fields(self, user_ids: bool) -> list[str]:
        """FIELDS resolved for this model: the keys of one result, in order."""
        return self._fields[user_ids]

    @cached_property
    def _fields(self) -> dict[bool, list[str]]:
        return {with_ids: self._resolve(with_ids) for with_ids in (False, True)}

    def _resolve(self, user_ids: bool) -> list[str]:
        arms = bool(self.scorer.arms)
        present = {"user_id": user_ids, "model": self.identity is not None, "reasons": True,
                   "ring_size": self.ring_size_column is not None, "best_arm": arms, "arms": arms}
        out: list[str] = []
        for f in FIELDS:
            if f == COLUMNS:
                out += self.columns
            elif f == PER_FEATURE:
                out += self.scorer.per_feature
            elif present[f]:
                out.append(f)
        return out


def _arm_texts(s: Scorer) -> tuple[list[bytes], list[bytes]]:
    return ([orjson.dumps(a) for a in s.arms],
            [orjson.dumps(a) + b":{" + orjson.dumps(s.per_arm[0]) + b":" for a in s.arms] if s.per_arm else [])


@dataclass
class Answer:
    """A batch's answer as columns, rounded as the contract sends it."""

    columns: dict[str, np.ndarray]  # every name of layout.columns
    reasons: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # feature columns, contributions, values (n×k)
    per_feature: dict[str, tuple[np.ndarray, np.ndarray]]  # e.g. points: (feature columns shown, values)
    ring_size: np.ndarray | None
    arms: tuple[np.ndarray, dict[str, np.ndarray]] | None = None  # best arm's index (-1: none), per_arm values

    def __getitem__(self, rows: slice) -> Answer:
        """The same answer for a run of its rows (per-feature columns shown stay the batch's)."""
        return Answer({k: v[rows] for k, v in self.columns.items()},
                      None if self.reasons is None else tuple(part[rows] for part in self.reasons),
                      {k: (used, values[rows]) for k, (used, values) in self.per_feature.items()},
                      None if self.ring_size is None else self.ring_size[rows],
                      None if self.arms is None else (self.arms[0][rows], {k: v[rows] for k, v in self.arms[1].items()}))


def out_of_population(user_id: int | str | None, lifecycle: str, reason: str) -> dict:
    """The item of a user the model does not score (scoring.population), in OUT_OF_POPULATION_FIELDS' order."""
    return dict(zip(OUT_OF_POPULATION_FIELDS, (user_id, lifecycle, OUT_OF_POPULATION, reason)))


def segment_labels(layout: Layout, X: np.ndarray) -> np.ndarray | None:
    if layout.segment_columns is None:
        return None
    tenure, silent, value = layout.segment_columns
    return layout.scorer.segments.assign(X[:, tenure], X[:, silent], X[:, value])


def answer(layout: Layout, X: np.ndarray, reasons: int, threads: int = 1) -> Answer:
    """Score a batch in one vectorised pass."""
    s = layout.scorer
    score, contrib = s.score_and_reasons(X, threads) if reasons else (s.predict(X), None)
    columns = {"score": round_to(score, SCORE_DECIMALS), "band": bands(score, layout.band_edges)}
    seg = segment_labels(layout, X)
    if seg is not None:
        columns["segment"] = seg
    extras = s.extras(X)
    columns.update((name, round_to(extras[name], SCORE_DECIMALS)) for name in s.columns)
    per_feature = {}
    for name in s.per_feature:  # only the features that gave any are shown
        used = np.flatnonzero((extras[name] != 0).any(axis=0))
        per_feature[name] = (used, round_to(extras[name][:, used], PER_FEATURE_DECIMALS))
    why = None
    if reasons:
        idx, vals = top_reasons(contrib, reasons)
        why = (idx, round_to(vals, SCORE_DECIMALS), X[np.arange(len(X))[:, None], idx])
    ring = None if layout.ring_size_column is None else X[:, layout.ring_size_column]
    arms = None
    if s.arms:
        arms = (extras["best_arm"], {name: round_to(extras[name], SCORE_DECIMALS) for name in s.per_arm})
    return Answer(columns, why, per_feature, ring, arms)


def arm_dicts(layout: Layout, best: list[int], values: dict[str, list[list[float]]]) -> tuple[list, list[dict]]:
    """best_arm (an id, or None when no arm is positive) and arms ({arm: {value: ...}}) of each row."""
    ids, names = layout.scorer.arms, list(values)
    columns = [values[name] for name in names]
    best_arm = [ids[b] if b >= 0 else None for b in best]
    arms = [{arm: dict(zip(names, (column[i][j] for column in columns))) for j, arm in enumerate(ids)}
            for i in range(len(best))]
    return best_arm, arms


def _reason_dicts(layout: Layout, idx: np.ndarray, contrib: np.ndarray, raw: np.ndarray) -> list[list[dict]]:
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


def _ring_size(size: float) -> int | None:
    return None if size != size else int(size)


def rows(layout: Layout, X: np.ndarray, reasons: int, threads: int = 1, user_ids: list | None = None) -> list[dict]:
    """Score a batch and render one result dict per row."""
    if not len(X):  # every id unknown: LightGBM refuses an empty matrix
        return []
    if len(X) == 1 and reasons:
        return [one(layout, X[0], reasons, user_ids)]
    a, n = answer(layout, X, reasons, threads), len(X)
    per_row: dict[str, list] = {name: values.tolist() for name, values in a.columns.items()}
    per_row["user_id"] = user_ids
    per_row["model"] = [layout.identity] * n
    per_row["reasons"] = _reason_dicts(layout, *a.reasons) if a.reasons else [[]] * n
    for name, (used, values) in a.per_feature.items():
        shown = layout.names[used].tolist()
        per_row[name] = [dict(zip(shown, vals)) for vals in values.tolist()]
    if a.ring_size is not None:
        per_row["ring_size"] = [_ring_size(size) for size in a.ring_size.tolist()]
    if a.arms is not None:
        per_row["best_arm"], per_row["arms"] = arm_dicts(
            layout, a.arms[0].tolist(), {name: v.tolist() for name, v in a.arms[1].items()})
    keys = layout.fields(user_ids is not None)
    return [dict(zip(keys, vals)) for vals in zip(*(per_row[k] for k in keys))]


def one(layout: Layout, x: np.ndarray, k: int, user_ids: list | None) -> dict:
    """`rows` of one user, rendered in plain Python once the model has run: a single user's answer
    is a few dozen numbers, and numpy's per-call overhead made most of its cost. Tests hold it equal
    to the batch path, key for key and bit for bit."""
    s = layout.scorer
    p, contrib = s.score_one(x)
    xs = x.tolist()
    value: dict = {"user_id": None if user_ids is None else user_ids[0], "score": round6(p),
                   "band": 1 + bisect_right(layout.band_edge_list, round(p * 1e9) / 1e9), "model": layout.identity}
    if layout.segment_columns is not None:
        tenure, silent, amount = (xs[j] for j in layout.segment_columns)
        value["segment"] = s.segments.label(tenure, silent, amount)
    if s.columns or s.per_feature:
        extras = s.extras(x[None, :])
        value.update((name, round_to(extras[name], SCORE_DECIMALS).tolist()[0]) for name in s.columns)
        if s.arms:
            best_arm, arms = arm_dicts(layout, extras["best_arm"].tolist(),
                                       {name: round_to(extras[name], SCORE_DECIMALS).tolist() for name in s.per_arm})
            value["best_arm"], value["arms"] = best_arm[0], arms[0]
        for name in s.per_feature:
            used = np.flatnonzero(extras[name][0] != 0)
            shown = round_to(extras[name][:, used], PER_FEATURE_DECIMALS).tolist()[0]
            value[name] = dict(zip(layout.names[used].tolist(), shown))
    c = contrib.tolist()
    value["reasons"] = [_reason_one(layout, xs, j, c[j]) for j in top_reasons_one(c, k)]
    if layout.ring_size_column is not None:
        value["ring_size"] = _ring_size(xs[layout.ring_size_column])
    return {key: value[key] for key in layout.fields(user_ids is not None)}


def _reason_one(layout: Layout, xs: list[float], j: int, contribution: float) -> dict:
    v = xs[j]
    if v != v:
        v = None
    elif j in layout.label_lists:
        v = layout.label_lists[j][int(v)]
    return {"feature": layout.name_list[j], "value": v, "contribution": round6(contribution)}
