"""The per-leaf tree engine: raw scores and decision-path (Saabas) attributions from leaf indices.

LightGBM's TreeSHAP (`pred_contrib=True`) costs ~0.3 ms a row for a 100-tree model, too slow
for a 10,000-user batch. A leaf's path contributions (the change in the node's expected
output at each split, credited to the split's feature) are fixed per leaf, so they are
precomputed once and a batch's attributions become one sparse product over `pred_leaf`.
Like SHAP they add up to the raw score (less the trees' root values); the tests check
they agree with TreeSHAP on the top reason for most users.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, _c_str, _safe_call
from scipy.sparse import csr_matrix

from scoring.thresholds import DENSE_GATHER_ROWS, PARALLEL_ROWS, SINGLE_ROW_LEAVES

_PREDICT_LEAF_INDEX, _DTYPE_FLOAT64 = 2, 1


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="attribution")


class SingleRowLeaves:
    """Leaf indices of one row through LGBM_BoosterPredictForMatSingleRowFast, configured once.

    The C side keeps one output buffer per configuration, so calls are serialised by a lock
    (uncontended on the event loop, where single users are scored)."""

    def __init__(self, booster: lgb.Booster):
        self._config = ctypes.c_void_p()  # first, so that __del__ finds it whatever fails below
        self._booster = booster  # keeps the handle alive as long as the configuration
        self._n_features = booster.num_feature()
        # The trees Booster.predict and dump_model use: up to the best iteration when there is one.
        iterations = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(_PREDICT_LEAF_INDEX), ctypes.c_int(0), ctypes.c_int(iterations),
            ctypes.c_int(_DTYPE_FLOAT64), ctypes.c_int32(self._n_features), _c_str("num_threads=1"),
            ctypes.byref(self._config)))
        self.trees = iterations * booster.num_model_per_iteration()  # one leaf index per tree walked
        self._out = np.empty(self.trees, dtype=np.float64)
        self._no_offsets = np.zeros(self.trees)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.byref(ctypes.c_int64())
        # `one` copies its row here, so that every argument of its call is a ready-made pointer.
        self._in = np.empty(self._n_features, dtype=np.float64)
        self._in_ptr = ctypes.c_void_p(self._in.ctypes.data)
        self._lock = threading.Lock()

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Leaf indices of a few rows, one call each."""
        return np.array([self.one(x, self._no_offsets) for x in X], dtype=np.intp).reshape(len(X), self.trees)

    def one(self, x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """`self(x[None, :])[0] + offsets` as integers, in the fewest numpy calls: one user's request.
        `offsets` are floats, added to the leaf indices LightGBM writes as doubles."""
        if x.shape != self._in.shape:  # before LightGBM reads the buffer
            raise ValueError(f"expected a row of {self._n_features} features, got shape {x.shape}")
        with self._lock:
            self._in[:] = x
            _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFast(
                self._config, self._in_ptr, self._out_len, self._out_ptr))
            return (self._out + offsets).astype(np.intp)

    def __del__(self) -> None:
        if self._config:
            _LIB.LGBM_FastConfigFree(self._config)


class LeafAttribution:
    def __init__(self, booster: lgb.Booster):
        self.booster = booster
        trees = booster.dump_model()["tree_info"]
        n_features = booster.num_feature()
        rows: list[np.ndarray] = []
        values: list[float] = []
        for tree in trees:
            leaves: dict[int, tuple[np.ndarray, float]] = {}
            self._walk(tree["tree_structure"], np.zeros(n_features), leaves)
            rows.append(np.stack([leaves[i][0] for i in range(len(leaves))]))
            values.extend(leaves[i][1] for i in range(len(leaves)))
        self.offsets = np.cumsum([0] + [len(r) for r in rows[:-1]]).astype(np.int64)
        # One row per leaf: its path contributions, then its value. A row's leaves are summed in
        # tree order by every route (the sparse product, the dense gathers, the single row), so
        # they agree bit for bit, and the value column sums to the raw score exactly as
        # LightGBM's predict adds it. float64: in float32 a user's reasons moved in the 7th digit
        # with the batch (and near-tied ones could swap), for a quarter less time.
        self.matrix = np.column_stack([np.concatenate(rows), values]) if rows else np.zeros((0, n_features + 1))
        self.single_rows = SingleRowLeaves(booster)
        # For one row: the offsets of the trees the single-row call walks, as floats.
        self._offsets64 = self.offsets[:self.single_rows.trees].astype(np.float64)

    @staticmethod
    def _value(node: dict) -> float:
        return node["leaf_value"] if "leaf_index" in node else node["internal_value"]

    def _walk(self, node: dict, path: np.ndarray, leaves: dict[int, tuple[np.ndarray, float]]) -> None:
        if "leaf_index" in node:
            leaves[node["leaf_index"]] = (path, node["leaf_value"])
            return
        for child in (node["left_child"], node["right_child"]):
            step = path.copy()
            step[node["split_feature"]] += self._value(child) - self._value(node)
            self._walk(child, step, leaves)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.raw_and_contributions(X)[1]

    def raw_and_contributions(self, X: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The raw score (LightGBM's predict, bit for bit) and the attributions, from one
        `pred_leaf` call: on a single-user request the per-call overhead is most of the cost.
        `threads` applies to large batches only; a small one would pay OpenMP's start-up for nothing."""
        if len(X) <= SINGLE_ROW_LEAVES:
            leaf = self.single_rows(X)
        else:
            threads = threads if len(X) >= PARALLEL_ROWS else 1
            leaf = self.booster.predict(X, pred_leaf=True, num_threads=threads).astype(np.int64)
            if leaf.ndim == 1:
                leaf = leaf[:, None]
        n, t = leaf.shape
        gid = leaf + self.offsets[:t]
        if n <= DENSE_GATHER_ROWS:  # a dense gather beats building a sparse matrix for a handful of rows
            total = self.matrix[gid].sum(axis=1)
        elif threads > 1:  # scipy's product releases the GIL: row blocks on threads, 15 -> 8 ms for 10k rows
            total = np.concatenate(list(_pool(threads).map(self._paths_of, np.array_split(gid, threads))))
        else:
            total = self._paths_of(gid)
        return total[:, -1], total[:, :-1]

    def _paths_of(self, gid: np.ndarray) -> np.ndarray:
        """Each row's sum of its leaves' rows, as one sparse product (leaves in tree order)."""
        n, t = gid.shape
        onehot = csr_matrix((np.ones(n * t), gid.ravel(), np.arange(0, n * t + 1, t)), shape=(n, len(self.matrix)))
        return onehot @ self.matrix

    def raw_and_contributions_one(self, x: np.ndarray) -> tuple[np.float64, np.ndarray]:
        """`raw_and_contributions` of one row (1-D), bit for bit: a single user's request, where
        numpy's per-call overhead is most of the cost."""
        total = self.matrix.take(self.single_rows.one(x, self._offsets64), axis=0).sum(axis=0)
        return total[-1], total[:-1]
