"""The S-learner of a campaign grid: one LightGBM on the features and the arm's parts.

Trained with interaction constraints so that no branch reads two parts, then kept as groups of its
trees by the parts they read, which `scoring.uplift` combines into every arm at a fraction of the
cost of walking the whole booster once per arm.
"""

from __future__ import annotations

import re

import lightgbm as lgb
import numpy as np

from scoring.spec import FeatureSpec
from scoring.uplift import ARM_PARTS, ARM_PARTS_NAMES, arm_codes
from training.fit.binary import LGBM_PARAMS

# It sees every arm's rows at once: more rows, so more capacity than a per-arm learner. Its 48 arms are
# walked at snapshot load for every user: fewer, larger steps keep that under a minute.
S_PARAMS = {**LGBM_PARAMS, "num_leaves": 15, "min_data_in_leaf": 100, "learning_rate": 0.08, "lambda_l2": 10.0,
            "num_threads": 1}
S_ROUNDS = 250
ARM_CODE_NAMES = tuple(f"arm_{part}" for part in ARM_PARTS_NAMES)


def coded_names(spec: FeatureSpec) -> tuple[list[str], list[int]]:
    """Feature names and categorical columns of the S-learner's (and the ceiling's) input."""
    n = len(spec.names)
    return [*spec.names, *ARM_CODE_NAMES], [*spec.categorical_index, *range(n, n + len(ARM_PARTS))]


def coded(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The features with each row's arm codes appended (control: zeros)."""
    codes = {label: arm_codes([label])[0] for label in np.unique(labels)}
    return np.hstack([X, np.stack([codes[label] for label in labels])])


def fit_s_learner(X: np.ndarray, y: np.ndarray, labels: np.ndarray, spec: FeatureSpec) -> dict[str, lgb.Booster]:
    """One booster on the features and the arm's parts, no branch reading two parts (see scoring.uplift),
    kept as groups of its trees by the parts they read (`scoring.uplift.booster_reads`)."""
    names, categorical = coded_names(spec)
    users = list(range(len(spec.names)))
    constraints = [[*users, len(users) + part] for part in range(len(ARM_PARTS))]
    data = lgb.Dataset(coded(X, labels), y, feature_name=names, categorical_feature=categorical)
    booster = lgb.train({**S_PARAMS, "interaction_constraints": constraints}, data, S_ROUNDS)
    trees = booster.trees_to_dataframe()
    reads = trees[trees["split_feature"].isin(ARM_CODE_NAMES)].groupby("tree_index")["split_feature"].unique()
    group = {k: "outcome" for k in range(booster.num_trees())}
    group.update({k: "outcome_base" for k in range(booster.num_trees()) if k not in reads.index})
    for k, parts in reads.items():
        if len(parts) == 1:
            group[k] = f"outcome_{ARM_PARTS_NAMES[ARM_CODE_NAMES.index(parts[0])]}"
    return split_trees(booster, group)


def split_trees(booster: lgb.Booster, group: dict[int, str]) -> dict[str, lgb.Booster]:
    """The booster's trees as one booster per group name (tree index → name): their raw outputs add up
    to the booster's."""
    text = booster.model_to_string()
    start, end = text.index("\nTree=0\n") + 1, text.index("end of trees")
    # Without tree_sizes LightGBM reads the trees one after the other instead of by their byte sizes.
    head = re.sub(r"(?m)^tree_sizes=.*\n", "", text[:start])
    blocks = [b for b in re.split(r"(?m)^(?=Tree=\d+$)", text[start:end]) if b.strip()]
    out = {}
    for name in sorted(set(group.values())):
        keep = [k for k in range(len(blocks)) if group[k] == name]
        body = "".join(re.sub(r"^Tree=\d+", f"Tree={i}", blocks[k], count=1) for i, k in enumerate(keep))
        out[name] = lgb.Booster(model_str=head + body + text[end:])
    return out
