"""Models trained from a user's own table, served from its rows as they are: records in, the answer out.

Such a model has no snapshot to look ids up in, so it scores records only. The record's columns
are the table's own (ints, floats, true/false, text, null); `user_id`, if sent, is echoed back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError

from scoring.contract import UserId
from scoring.spec import FeatureSpec
from service.requests import RequestError

ID_FIELD = "user_id"
PLAIN = (bool, int, float, str, type(None))
# The contract's user id, as the champions' requests declare it (strict: true is no id).
USER_ID = TypeAdapter(UserId | None)


def _checked_ids(records: list, names: set[str]) -> list:
    ids = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise RequestError(400, f"records[{i}]", f"records[{i}]: a record is an object of column: value")
        unknown = sorted(k for k in record if k not in names and k != ID_FIELD)
        if unknown:
            raise RequestError(400, f"records[{i}].{unknown[0]}", f"records[{i}].{unknown[0]}: not a column of this model")
        bad = next((k for k, v in record.items() if not isinstance(v, PLAIN)), None)
        if bad is not None:
            raise RequestError(400, f"records[{i}].{bad}", f"records[{i}].{bad}: must be a number, text, true/false or null")
        try:
            ids.append(USER_ID.validate_python(record.get(ID_FIELD)))
        except ValidationError:
            raise RequestError(400, f"records[{i}].{ID_FIELD}", f"records[{i}].{ID_FIELD}: a whole number from 1, "
                                                                 "or text of 1 to 128 characters") from None
    return ids


def table_rows(spec: FeatureSpec, body: object, max_batch: int) -> tuple[np.ndarray, list, int]:
    """The records' feature matrix, their ids (None where a record has none) and the reasons asked for."""
    if not isinstance(body, dict) or set(body) - {"records", "reasons"}:
        raise RequestError(400, "body", 'send {"records": [...], "reasons": n}: records only, as this model has no snapshot')
    records, reasons = body.get("records"), body.get("reasons", 3)
    if not isinstance(records, list) or not 1 <= len(records) <= max_batch:
        raise RequestError(400, "records", f"records: a list of 1 to {max_batch} records")
    if isinstance(reasons, bool) or not isinstance(reasons, int) or not 0 <= reasons <= 10:
        raise RequestError(400, "reasons", "reasons: a whole number from 0 to 10")
    ids = _checked_ids(records, set(spec.names))
    frame = pd.DataFrame(records)
    frame = frame[[c for c in spec.names if c in frame.columns]]
    required = [c for c in spec.names if c not in frame.columns and c not in spec.optional]
    if required:
        raise RequestError(400, f"records.{required[0]}", f"records.{required[0]}: a required column (never missing "
                                                          "in training) is in no record")
    unreadable = spec.unreadable(frame)
    if unreadable:
        col, row = unreadable
        raise RequestError(400, f"records[{row}].{col}", f"records[{row}].{col}: not a number")
    return spec.to_matrix(frame), ids, reasons
