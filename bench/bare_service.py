"""The reference point: a bare BentoML endpoint that parses the same body and returns a constant."""

from __future__ import annotations

import bentoml


@bentoml.service(name="bare", traffic={"timeout": 60})
class Bare:
    @bentoml.api(route="/v1/churn/score")
    def churn(self, user_ids: list[int]) -> dict:
        return {"results": [{"user_id": user_ids[0], "score": 0.5}]}
