"""What fitting hands to tracking: one candidate's run, as plain data (no MLflow here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from scoring.scorer import Scorer


@dataclass
class Candidate:
    """A fitted model (or a reference ranking without one) with everything its MLflow run records."""

    run_name: str
    scorer: Scorer | None  # None for references that are compared but never served
    test_scores: np.ndarray  # on the dataset's test rows
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)  # name → figure, logged as plots/<name>.png
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # artifact path → table, logged as CSV
    dicts: dict[str, dict] = field(default_factory=dict)  # artifact path → JSON document
