"""The adaptive-batching variant of single-user churn scoring, kept apart for the benchmark.

BentoML merges concurrent single-user calls into one batch (`batchable=True`); the benchmark
compares it with the plain endpoint on the same model, store and load.
"""

from __future__ import annotations

from pathlib import Path

import bentoml
from bentoml.models import BentoModel

from service.runtime import Snapshot, load_served_model, score_matrix


@bentoml.service(name="batched", traffic={"timeout": 60})
class Batched:
    churn_ref = BentoModel(bentoml.models.get("churn:latest").tag)
    snapshot_ref = BentoModel(bentoml.models.get("feature_snapshot:latest").tag)

    def __init__(self) -> None:
        self.snapshot = Snapshot.load(Path(self.snapshot_ref.path))
        self.model = load_served_model("churn", self.churn_ref, self.snapshot)

    @bentoml.api(route="/v1/churn/score", batchable=True, max_batch_size=64, max_latency_ms=50)
    def churn(self, user_ids: list[int]) -> list[dict]:
        import numpy as np

        pos, found = self.snapshot.rows(np.asarray(user_ids, dtype=np.int64))
        rows = score_matrix(self.model, self.model.matrix[pos], 3)
        for uid, ok, row in zip(user_ids, found.tolist(), rows):
            row["user_id"] = uid
            if not ok:
                row.clear()
                row.update(user_id=uid, error="unknown user_id")
        return rows
