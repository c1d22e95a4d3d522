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

from scoring.answer_json import score_json
from scoring.campaign import Planning, build_planning
from scoring.artifacts import verify_folder
from scoring.drift import read_previous, report
from scoring.lookalike import Lookalike
from scoring.registry import MODEL_NAMES, SNAPSHOT_MODEL
from scoring.settings import Settings
from scoring.snapshot import Snapshot
from service.audiences import load_lookalike
from service.audit import PseudonymTable
from service.served import NotReady, ServedModel, load_served_model
from service.tables import table_rows

log = logging.getLogger("opscore.service")


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

    @classmethod
    def load(cls, settings: Settings, snapshot_ref, model_refs: dict, table_refs: dict) -> Worker:
        """Everything loads that can; whatever fails is named in `problems` and keeps readiness red."""
        w = cls(settings)
        w._load_snapshot(snapshot_ref)
        for endpoint in MODEL_NAMES:
            w._load_model(endpoint, model_refs.get(endpoint))
        for name, ref in table_refs.items():
            w._load_table_model(name, ref)
        if w.snapshot is not None:
            w.pseudonyms = PseudonymTable(settings.audit_secret.get_secret_value().encode(), w.snapshot.ids)
            w._load_lookalike()
            w._guard("seeds", w._verify_seeds)
            if "abuse" in w.models:
                w.abuse_scores = w.models["abuse"].scorer.predict(w.models["abuse"].matrix)
            w._guard("drift", w._measure_drift)
            w._start_planning()
        w.answer_tail = b'],"snapshot_as_of":' + orjson.dumps(w.snapshot.as_of if w.snapshot else None) + b"}"
        return w

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
        self.drift = report(self.snapshot.as_of, self.snapshot.frame, models, previous, self.settings.drift_rows)

    def _start_planning(self) -> None:
        """Today's uplift model prices each arm with a pass of its boosters over the whole snapshot
        (minutes on a large one): computed once, from start, on a thread of its own, so that readiness
        and the scoring endpoints do not wait for it; a plan call does (`planned_for`)."""
        def load() -> None:
            models = {e: (m.identity, m.scorer, m.matrix) for e, m in self.models.items()}
            self.planning = build_planning(self.snapshot, self.snapshot_path, models, self.abuse_scores)

        def run() -> None:
            self._guard("campaigns", load)
            self.planning_done.set()

        threading.Thread(target=run, name="planning", daemon=True).start()

    def planned_for(self) -> Planning:
        """The planning data, once computed; NotReady if it failed or the snapshot is unavailable."""
        if self.snapshot is not None:
            self.planning_done.wait()
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
              offer: dict | None = None) -> tuple[bytes, dict]:
        """The answer's JSON text and the call's audit record; NotReady when the model is not loaded."""
        model = self.models.get(endpoint)
        if model is None:
            raise NotReady(f"model {endpoint} is not available: {self.problems.get(endpoint, 'not loaded')}")
        if user_ids is not None:
            id_list = list(user_ids)
            X, found, hmacs = self._snapshot_rows(model, id_list)
            audit_ids = {"user_hmacs": hmacs}
        else:
            id_list = [r.user_id for r in records]  # None where a record has none
            X, found = self._record_rows(model, records), None
            audit_ids = {"user_ids": [u for u in id_list if u is not None]}
        if offer:
            X = model.scorer.spec.with_values(X, offer)  # the campaign columns: the offer asked about
        scored_ids = id_list if found is None else [u for u, ok in zip(id_list, found) if ok]
        # Rows come as JSON text; with unknown ids among them, one per line to slot the errors in.
        results = score_json(model.layout, X, reasons, self.settings.scoring_threads, scored_ids,
                             sep=b"," if found is None else b"\n")
        if found is not None:
            results = self._with_unknown(results, id_list, found)
        audit = {**audit_ids, "n_users": len(id_list), "models": {endpoint: model.version},
                 "unknown": len(id_list) - len(scored_ids)}
        return b'{"results":[' + results + self.answer_tail, audit

    def _with_unknown(self, results: bytes, id_list: list, found: list[bool]) -> bytes:
        scored = iter(results.split(b"\n"))
        unknown = f"unknown user_id: not in the feature snapshot as of {self.snapshot.as_of}"
        return b",".join(next(scored) if ok else orjson.dumps({"user_id": uid, "error": unknown})
                         for uid, ok in zip(id_list, found))

    @staticmethod
    def _record_rows(model: ServedModel, records: list) -> np.ndarray:
        frame = pd.DataFrame([r.model_dump() for r in records])
        return model.scorer.spec.to_matrix(frame.reindex(columns=model.scorer.spec.names))

    def _snapshot_rows(self, model: ServedModel, user_ids: list[int | str]) -> tuple[np.ndarray, list[bool] | None,
                                                                                      orjson.Fragment]:
        """The model's rows of the known ids, which ids were found (None: all of them) and the
        pseudonyms of all of them for the audit record."""
        if len(user_ids) == 1:  # the commonest call: scalar lookups rather than arrays of one
            row = self.snapshot.row(user_ids[0])
            if row is not None:
                return model.matrix[row:row + 1], None, self.pseudonyms.at_row(row)
        pos, found = self.snapshot.rows(user_ids)
        if found.all():
            return np.take(model.matrix, pos, axis=0), None, self.pseudonyms.at(pos)  # take: half the time of X[pos]
        return np.take(model.matrix, pos[found], axis=0), found.tolist(), self.pseudonyms.of(user_ids, pos, found)

