"""The S-learner of a campaign grid: one LightGBM on the features and the arm's parts.

Trained with interaction constraints so that no branch reads two parts, then kept as groups of its
trees by the parts they read, which `scoring.uplift` combines into every arm at a fraction of the
cost of walking the whole booster once per arm.

Least squares on the 0/1 outcome, so that the trees sum to P(convert) and an arm's uplift is the sum
of its part terms' differences from control, and leaves of at least half as many rows as the log has
control rows: every uplift is a contrast with the control rows (a ninth of a campaign log), and
smaller leaves fit their noise. Ranking scored against the true uplift (OOT, mean over arms) it took
the learner from 0.35 to 0.52 of the feature ceiling at 50,000 users (0.44 to 0.58 on a second seed) and
from 0.60 to 0.64 at 200,000; log-odds (binary objective) with the same large leaves reached 0.39 at
50,000 users, least squares with leaves of 100 rows 0.19. The logged `qini_vs_ceiling_ratio` (realised
outcomes) went 0.35 -> 0.91 at 200,000 users, but one draw of the OOT outcomes moves it by ~0.17 (sd):
its expectation went from about 0.42 to 0.61.
"""

from __future__ import annotations

import re

import lightgbm as lgb
import numpy as np

from scoring.arms import CONTROL
from scoring.spec import FeatureSpec
from scoring.uplift import ARM_PARTS, ARM_PARTS_NAMES, arm_codes
from training.fit.binary import LGBM_PARAMS

# It sees every arm's rows at once: more rows, so more capacity than a per-arm learner. Its 48 arms are
# walked at snapshot load for every user: fewer, larger steps keep that under a minute.
S_PARAMS = {**LGBM_PARAMS, "objective": "regression", "num_leaves": 15, "min_data_in_leaf": 100,
            "learning_rate": 0.08, "lambda_l2": 10.0, "num_threads": 1}
S_ROUNDS = 250
# A leaf holds at least this share of the log's control rows (and at least S_PARAMS' min_data_in_leaf rows).
LEAF_CONTROL_SHARE = 0.5
ARM_CODE_NAMES = tuple(f"arm_{part}" for part in ARM_PARTS_NAMES)


def coded_names(spec: FeatureSpec) -> tuple[list[str], list[int]]:
    """Feature names and categorical columns of the S-learner's (and the ceiling's) input."""
    n = len(spec.names)
    return [*spec.names, *ARM_CODE_NAMES], [*spec.categorical_index, *range(n, n + len(ARM_PARTS))]


def coded(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The features with each row's arm codes appended (control: zeros)."""
    codes = {label: arm_codes([label])[0] for label in np.unique(labels)}
    return np.hstack([X, np.stack([codes[label] for label in labels])])


def s_params(labels: np.ndarray) -> dict:
    """The S-learner's parameters on a log with these arm labels: S_PARAMS with leaves of at least
    LEAF_CONTROL_SHARE of its control rows."""
    leaf = max(S_PARAMS["min_data_in_leaf"], int(LEAF_CONTROL_SHARE * np.sum(labels == CONTROL)))
    return {**S_PARAMS, "min_data_in_leaf": leaf}


def fit_s_learner(X: np.ndarray, y: np.ndarray, labels: np.ndarray, spec: FeatureSpec) -> dict[str, lgb.Booster]:
    """One booster on the features and the arm's parts, no branch reading two parts (see scoring.uplift),
    kept as groups of its trees by the parts they read (`scoring.uplift.booster_reads`); their outputs
    sum to P(convert) (`scoring.uplift.IDENTITY`)."""
    names, categorical = coded_names(spec)
    users = list(range(len(spec.names)))
    constraints = [[*users, len(users) + part] for part in range(len(ARM_PARTS))]
    data = lgb.Dataset(coded(X, labels), y, feature_name=names, categorical_feature=categorical)
    booster = lgb.train({**s_params(labels), "interaction_constraints": constraints}, data, S_ROUNDS)
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
