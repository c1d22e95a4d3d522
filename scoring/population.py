"""The users a model was trained on, as a lower bound on one snapshot feature.

Outside it a model's number means nothing (churn is learnt on users active in the last 30 days,
not on users silent for a year): the service answers those users with their lifecycle state and
this reason instead of a score, and drift compares only the snapshot rows inside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

OUT_OF_POPULATION = "out_of_population"


@dataclass(frozen=True)
class Population:
    feature: str
    at_least: float
    description: str = ""  # whom the bound stands for, in words

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Inside, per row; a missing value cannot place a row outside, so it counts as inside."""
        values = np.asarray(values, dtype=float)
        return ~(values < self.at_least)

    @property
    def reason(self) -> str:
        who = f"{self.description}: " if self.description else ""
        return f"outside the model's training population ({who}{self.feature} at least {self.at_least:g})"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Population | None:
        return None if d is None else cls(d["feature"], float(d["at_least"]), d.get("description", ""))
