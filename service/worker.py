"""What one worker process holds: the snapshot, the verified champions, the lookalike index and the
pseudonym table, loaded once; and a scoring call from ids or records to JSON text and its audit record."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from scoring.answer import Layout, out_of_population
from scoring.answer_json import score_json
from scoring.artifacts import verify_folder
from scoring.campaign import Planning, build_planning
from scoring.derived import derived
from scoring.drift import read_previous, report, sample_frame
from scoring.lookalike import Lookalike
from scoring.population import Population
from scoring.registry import FORECAST_MODEL, MODEL_NAMES, SNAPSHOT_MODEL
from scoring.settings import Settings
from scoring.segments import LIFECYCLE, LIFECYCLE_COLUMNS, stage_index
from scoring.snapshot import Snapshot
from scoring.spec import numbers
from service.audiences import load_lookalike
from service.audit import PseudonymTable
from service.requests import RequestError
from service.served import NotReady, Preparing, ServedForecast, ServedModel, load_served_forecast, load_served_model
from service.tables import table_rows

log = logging.getLogger("opscore.service")
# A plan call made while the worker still computes the per-arm uplifts (minutes at 1M users) waits
# this long, then is answered 503 with a Retry-After, well inside the server's 60 s request timeout.
PLANNING_WAIT_S, PLANNING_RETRY_S = 10.0, 30


@dataclass
class Worker:
    settings: Settings
    problems: dict[str, str] = field(default_factory=dict)  # what failed to load, and why
    snapshot: Snapshot | None = None
    snapshot_path: Path | None = None
    models: dict[str, ServedModel] = field(default_factory=dict)
    tables: dict[str, ServedModel] = field(default_factory=dict)  # trained from a user's own table
    lookalike: Lookalike | None = None
    abuse_scores: np.ndarray | None = None
    pseudonyms: PseudonymTable | None = None
    answer_tail: bytes = b"]}"
    drift: dict | None = None  # the serving snapshot's drift report (scoring.drift.report), measured once
    planning: Planning | None = None  # per-arm probabilities and the rest campaign plans need, computed once
    planning_done: threading.Event = field(default_factory=threading.Event)
    forecast: ServedForecast | None = None

    @classmethod
    def load(cls, settings: Settings, snapshot_ref, model_refs: dict, table_refs: dict, forecast_ref=None) -> Worker:
        """Everything loads that can; whatever fails is named in `problems` and keeps readiness red."""
        w = cls(settings)
        w._load_snapshot(snapshot_ref)
        w._guard("forecast", lambda: w._load_forecast(forecast_ref))
        for endpoint in MODEL_NAMES:
            w._load_model(endpoint, model_refs.get(endpoint))
        for name, ref in table_refs.items():
            w._load_table_model(name, ref)
        if w.snapshot is not None:
            w._guard("pseudonyms", w._load_pseudonyms)
            w._load_lookalike()
            w._guard("seeds", w._verify_seeds)
            if "abuse" in w.models:
                w._guard("abuse scores", w._score_abuse)
            w._guard("drift", w._measure_drift)
        w.answer_tail = b'],"snapshot_as_of":' + orjson.dumps(w.snapshot.as_of if w.snapshot else None) + b"}"
        return w

    def _load_pseudonyms(self) -> None:
        """Every snapshot user's pseudonym for the audit log (about 2 s of hashing at 1M users), held in this
        worker's memory only: written beside the snapshot's ids, the table would undo the secret."""
        self.pseudonyms = PseudonymTable(self.settings.audit_secret.get_secret_value().encode(), self.snapshot.ids)

    def _score_abuse(self) -> None:
        """Every user's abuse score, which lookalike filters and plan exclusions read: shared by the
        workers (scoring.derived)."""
        model = self.models["abuse"]
        key = {"of": "abuse", "snapshot": self.snapshot.sha256, "run_id": model.run_id}
        if not self.snapshot.sha256:  # a snapshot read into memory: nothing to share it with
            self.abuse_scores = model.predict_all()
            return
        self.abuse_scores = derived(self.settings.derived_dir, key, lambda: {"score": model.predict_all()})["score"]

    def _guard(self, what: str, load) -> None:
        try:
            load()
        except Exception as e:  # noqa: BLE001 - any failure must keep readiness red, not kill the worker
            self.problems[what] = f"{type(e).__name__}: {e}"
            log.error("%s failed to load: %s", what, self.problems[what])

    def _load_snapshot(self, ref) -> None:
        def load() -> None:
            if ref is None:
                raise NotReady(f"{SNAPSHOT_MODEL} is not in the BentoML store")
            self.snapshot_path = Path(ref.path)
            self.snapshot = Snapshot.load(self.snapshot_path)

        self._guard("snapshot", load)

    def _load_forecast(self, ref) -> None:
        if ref is None:
            raise NotReady(f"{FORECAST_MODEL} is not in the BentoML store: train it (`python -m training train "
                           "forecast`), then `python -m service import-models`")
        self.forecast = load_served_forecast(ref)

    def _load_lookalike(self) -> None:
        def load() -> None:
            self.lookalike = load_lookalike(self.snapshot_path / "lookalike", self.snapshot)

        self._guard("lookalike", load)

    def _verify_seeds(self) -> None:
        folder = self.snapshot_path / "seeds"
        if not folder.is_dir():
            raise NotReady("no seeds with the snapshot: run `python -m training seeds`, then import-models")
        verify_folder(folder)

    def _measure_drift(self) -> None:
        """The snapshot does not change while the worker runs: its drift is measured once, at start."""
        manifest = json.loads((self.snapshot_path / "manifest.json").read_text())
        previous = read_previous(self.snapshot_path, manifest)
        models = {e: (m.identity, m.scorer, m.reference) for e, m in self.models.items()}
        self.drift = report(self.snapshot.as_of, sample_frame(self.snapshot, self.settings.drift_rows), models, previous,
                            self.settings.drift_rows)

    def start_planning(self) -> None:
        """Today's uplift model prices each arm with a pass of its boosters over the whole snapshot
        (minutes on a large one): computed once, from start, on a thread of its own, so that readiness
        and the scoring endpoints do not wait for it; a plan call waits a little, then is told when to
        come back (`planned_for`). Started by the service once its batch processes are forked."""
        if self.snapshot is None:
            return

        def load() -> None:
            models = {e: (m.identity, m.scorer, m.features) for e, m in self.models.items()}
            self.planning = build_planning(self.snapshot, self.snapshot_path, models, self.abuse_scores,
                                           cache=self.settings.derived_dir)

        def run() -> None:
            self._guard("campaigns", load)
            self.planning_done.set()

        threading.Thread(target=run, name="planning", daemon=True).start()

    def forked(self) -> None:
        """In a batch process (service/batches.py): OpenMP's thread team does not survive a fork (a
        LightGBM call on more than one thread hangs there), so this copy scores on one."""
        self.settings = self.settings.model_copy(update={"scoring_threads": 1})

    def planned_for(self, wait_s: float = PLANNING_WAIT_S) -> Planning:
        """The planning data, once computed; Preparing while it still is, NotReady if it failed or the
        snapshot is unavailable."""
        if self.snapshot is not None and not self.planning_done.wait(wait_s):
            raise Preparing("campaign plans are not available yet: the per-arm uplifts of the snapshot are "
                            "still being computed", PLANNING_RETRY_S)
        if self.planning is None:
            raise NotReady(f"campaign plans are not available: {self.problems.get('campaigns', 'not loaded')}")
        return self.planning

    def _load_model(self, endpoint: str, ref) -> None:
        def load() -> None:
            if ref is None:
                raise NotReady(f"{MODEL_NAMES[endpoint]} is not in the BentoML store")
            self.models[endpoint] = load_served_model(endpoint, ref, self.snapshot)

        if self.snapshot is None:
            self.problems[endpoint] = "not loaded: the feature snapshot is unavailable"
        else:
            self._guard(endpoint, load)

    def _load_table_model(self, name: str, ref) -> None:
        def load() -> None:
            if ref is None:
                raise NotReady(f"{name} is not in the BentoML store: run `python -m service import-models`")
            self.tables[name] = load_served_model(name, ref, None)

        self._guard(f"table model {name}", load)

    def score_table(self, name: str, body: object) -> tuple[bytes, dict]:
        """A table model's answer for the records in `body`; RequestError when they break the contract."""
        model = self.tables.get(name)
        if model is None:
            raise NotReady(f"model {name} is not available: {self.problems.get(f'table model {name}', 'not loaded')}")
        X, ids, reasons = table_rows(model.scorer.spec, body, self.settings.max_batch)
        results = score_json(model.layout, X, reasons, self.settings.scoring_threads, ids)
        audit = {"user_ids": [u for u in ids if u is not None], "n_users": len(ids), "models": {name: model.version},
                 "unknown": 0}
        return b'{"results":[' + results + b"]}", audit

    def score(self, endpoint: str, user_ids: list | None, records: list | None, reasons: int,
              arms: ArmQuery | None = None) -> tuple[bytes, dict]:
        """The answer's JSON text and the call's audit record; NotReady when the model is not loaded,
        RequestError for arms the model does not know."""
        model = self.models.get(endpoint)
        if model is None:
            raise NotReady(f"model {endpoint} is not available: {self.problems.get(endpoint, 'not loaded')}")
        layout = model.layout if arms is None or arms.everything else arms.layout(model)
        rows = self._snapshot_rows(model, list(user_ids)) if user_ids is not None else self._record_rows(model, records)
        scored_ids = rows.ids if rows.unscored is None else [u for u, item in zip(rows.ids, rows.unscored) if item is None]
        # Rows come as JSON text; with unscored items among them, one per line to slot those in.
        results = score_json(layout, rows.X, reasons, self.settings.scoring_threads, scored_ids,
                             sep=b"," if rows.unscored is None else b"\n")
        if rows.unscored is not None:
            scored = iter(results.split(b"\n"))
            results = b",".join(next(scored) if item is None else item for item in rows.unscored)
        audit = {**rows.audit_ids, "n_users": len(rows.ids), "models": {endpoint: model.version},
                 "unknown": rows.unknown, "out_of_population": len(rows.ids) - len(scored_ids) - rows.unknown}
        return b'{"results":[' + results + self.answer_tail, audit

    def _snapshot_rows(self, model: ServedModel, user_ids: list[int | str]) -> Rows:
        """The model's rows of the ids it scores, an item for each it does not, and the pseudonyms of all
        of them for the audit record."""
        inside = model.in_population
        if len(user_ids) == 1:  # the commonest call: scalar lookups rather than arrays of one
            row = self.snapshot.row(user_ids[0])
            if row is not None and (inside is None or inside[row]):
                return Rows(model.features.row(row), user_ids, {"user_hmacs": self.pseudonyms.at_row(row)})
        pos, found = self.snapshot.rows(user_ids)
        hmacs = self.pseudonyms.at(pos) if found.all() else self.pseudonyms.of(user_ids, pos, found)
        scored = found if inside is None else found & inside[pos]
        if scored.all():
            return Rows(model.features.take(pos), user_ids, {"user_hmacs": hmacs})
        unknown = orjson.dumps(f"unknown user_id: not in the feature snapshot as of {self.snapshot.as_of}")
        outside = found & ~scored
        stages = dict(zip(np.flatnonzero(outside).tolist(), self._lifecycle(pos[outside])))
        unscored = [None if ok else (_out_of_population(uid, stages[i], model.population) if i in stages
                                     else b'{"user_id":' + orjson.dumps(uid) + b',"error":' + unknown + b"}")
                    for i, (uid, ok) in enumerate(zip(user_ids, scored.tolist()))]
        return Rows(model.features.take(pos[scored]), user_ids, {"user_hmacs": hmacs}, unscored,
                    int((~found).sum()))

    def _lifecycle(self, rows: np.ndarray) -> list[str]:
        tenure, silent = (self.snapshot.at(rows, c) for c in LIFECYCLE_COLUMNS)
        return np.asarray(LIFECYCLE)[stage_index(tenure, silent)].tolist()

    @staticmethod
    def _record_rows(model: ServedModel, records: list) -> Rows:
        frame = pd.DataFrame([r.model_dump() for r in records])
        ids = [r.user_id for r in records]  # None where a record has none
        X = model.scorer.spec.to_matrix(frame.reindex(columns=model.scorer.spec.names))
        audit_ids = {"user_ids": [u for u in ids if u is not None]}
        population = model.population
        if population is None:
            return Rows(X, ids, audit_ids)
        scored = population.contains(numbers(frame[population.feature]))
        if scored.all():
            return Rows(X, ids, audit_ids)
        tenure, silent = (numbers(frame[c]).to_numpy() for c in LIFECYCLE_COLUMNS)
        stages = np.asarray(LIFECYCLE)[stage_index(tenure, silent)].tolist()
        unscored = [None if ok else _out_of_population(uid, stage, population)
                    for uid, ok, stage in zip(ids, scored.tolist(), stages)]
        return Rows(X[scored], ids, audit_ids, unscored)


@dataclass
class Rows:
    """What a scoring call scores: the model's rows, every requested id (None for a record without one),
    and, when some are not scored, the JSON item of each of those in request order (None where scored)."""

    X: np.ndarray
    ids: list
    audit_ids: dict
    unscored: list[bytes | None] | None = None
    unknown: int = 0  # of the unscored, ids not in the snapshot; the rest are outside the model's population


def _out_of_population(user_id: int | str | None, lifecycle: str, population: Population) -> bytes:
    return orjson.dumps(out_of_population(user_id, lifecycle, population.reason))


@dataclass(frozen=True)
class ArmQuery:
    """What a response call asks of the arms: which (None: all the model knows), and the value per
    conversion and cost overrides that choose the best by net value."""

    arms: list[str] | None = None
    value: float | None = None
    incentive_cost: dict[str, float] | None = None
    contact_cost: dict[str, float] | None = None

    @property
    def everything(self) -> bool:
        """The model's own answer: every arm, the best by uplift."""
        return self.arms is None and self.value is None

    def layout(self, model: ServedModel) -> Layout:
        try:
            scorer = model.scorer.narrowed(self.arms, self.value, self.incentive_cost, self.contact_cost)
        except KeyError as e:
            raise RequestError(400, "arms", "arms: the model was not trained on some of the arms named") from e
        return model.layout.for_scorer(scorer)
