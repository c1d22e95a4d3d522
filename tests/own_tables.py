"""A bank's own tables, as its warehouse holds them: the shared input of the table-path tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

N = 4000


def own_table(seed: int = 0) -> pd.DataFrame:
    """Features as a bank's warehouse holds them, with a risk that rises with late payments."""
    rng = np.random.default_rng(seed)
    late = rng.poisson(1.0, N)
    income = rng.normal(5000, 1500, N)
    df = pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(N)],  # a text id, never a feature
        "tenure_months": rng.integers(1, 120, N),  # int64
        "has_card": rng.random(N) < 0.5,  # bool
        "late_payments": pd.array(np.where(rng.random(N) < 0.1, -1, late), dtype="Int64"),  # nullable int
        "region": rng.choice(["north", "south", "east"], N),  # text
        "income": np.where(rng.random(N) < 0.2, np.nan, income),  # optional: missing in training
    })
    df["late_payments"] = df["late_payments"].mask(df["late_payments"] < 0)
    # Thresholds and an interaction, as risk often has them: a straight line in the features misses them.
    east = (df["region"] == "east").to_numpy()
    logit = (-2.0 + 1.6 * (late >= 2) + 1.2 * ((late >= 1) & east) - 0.8 * (income > 6000)
             - 1.0 * (df["tenure_months"] > 60) + 0.8 * (late >= 2) * (df["tenure_months"] < 24))
    df["status"] = np.where(rng.random(N) < 1 / (1 + np.exp(-logit)), "bad", "good")
    df["treated"] = (rng.random(N) < 0.5).astype(int)
    df["converted"] = (rng.random(N) < 0.05 + 0.05 * df["treated"] * (late > 1)).astype(int)
    return df
