"""The answer of a large batch written as JSON text column by column, in the order of `answer.FIELDS`.

Byte for byte what orjson writes of `answer.rows` (tests hold it so). Building, serialising and
freeing a 10,000-row answer's 40,000 dicts was a third of a 10k call; here orjson formats each
numeric column at once and the rows are interleaved from those pieces in C.
"""

from __future__ import annotations

import numpy as np
import orjson

from scoring.answer import Answer, Layout, answer, rows
from scoring.thresholds import DICT_ROWS, WRITE_ROWS

Slots = list[bytes | list[bytes]]


def score_json(layout: Layout, X: np.ndarray, reasons: int, threads: int = 1, user_ids: list | None = None,
               sep: bytes = b",") -> bytes:
    """`rows` as JSON text, the rows joined by `sep`."""
    if len(X) <= DICT_ROWS:
        return sep.join(map(orjson.dumps, rows(layout, X, reasons, threads, user_ids)))
    a = answer(layout, X, reasons, threads)
    return sep.join(_write(layout, a[i:i + WRITE_ROWS], None if user_ids is None else user_ids[i:i + WRITE_ROWS], sep)
                    for i in range(0, len(X), WRITE_ROWS))


def _write(layout: Layout, a: Answer, user_ids: list | None, sep: bytes) -> bytes:
    slots: Slots = [b"{"]
    for i, name in enumerate(layout.fields(user_ids is not None)):
        slots.append((b"," if i else b"") + orjson.dumps(name) + b":")
        slots += _field(layout, a, name, user_ids)
    slots.append(b"}" + sep)
    text = _join_rows(len(a.columns["score"]), slots)
    return text[:len(text) - len(sep)]


def _field(layout: Layout, a: Answer, name: str, user_ids: list | None) -> Slots:
    if name in a.columns:
        return [_column_texts(a.columns[name])]
    if name in a.per_feature:
        return _per_feature(layout, *a.per_feature[name])
    if name == "user_id":
        return [_id_texts(user_ids)]
    if name == "model":
        return [orjson.dumps(layout.identity)]
    if name == "reasons":
        return _reasons(layout, a.reasons)
    if name == "ring_size":
        return [_ring_size_texts(a.ring_size)]
    if name == "best_arm":
        ids = [*layout.arm_json, b"null"]  # index -1: no arm is positive
        return [[ids[b] for b in a.arms[0].tolist()]]
    if name == "arms":
        return _arms(layout, a.arms[1])
    raise KeyError(f"no JSON writer for answer field {name!r}")


def _reasons(layout: Layout, reasons: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> Slots:
    if reasons is None:
        return [b"[]"]
    idx, contrib, raw = reasons
    k = idx.shape[1]
    values, contribs = _reason_value_texts(layout, idx, raw), _float_texts(contrib.ravel())
    slots: Slots = [b"["]
    for i in range(k):
        slots += [b"," if i else b"", layout.reason_heads[idx[:, i]].tolist(), values[i::k],
                  b',"contribution":', contribs[i::k], b"}"]
    return [*slots, b"]"]


def _per_feature(layout: Layout, used: np.ndarray, values: np.ndarray) -> Slots:
    slots: Slots = [b"{"]
    for p, j in enumerate(used.tolist()):
        slots += [b"," if p else b"", orjson.dumps(layout.name_list[j]) + b":", _float_texts(values[:, p])]
    return [*slots, b"}"]


def _arms(layout: Layout, values: dict[str, np.ndarray]) -> Slots:
    """{"<arm>":{"uplift":u,"p_convert":p,...},...}: one strided column of texts per arm and value."""
    names = list(values)
    slots: Slots = [b"{"]
    for j, head in enumerate(layout.arm_heads):
        slots += [b"," if j else b"", head, _float_texts(values[names[0]][:, j])]
        for name in names[1:]:
            slots += [b"," + orjson.dumps(name) + b":", _float_texts(values[name][:, j])]
        slots.append(b"}")
    return [*slots, b"}"]


def _float_texts(values: np.ndarray) -> list[bytes]:
    """orjson's text of each value, as it writes the same value as a Python float (NaN: null)."""
    return orjson.dumps(np.ascontiguousarray(values, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")


def _texts(values: list) -> list[bytes]:
    """orjson's text of each int or None of a list (ints only: a string could hold a comma)."""
    return orjson.dumps(values)[1:-1].split(b",")


def _id_texts(ids: list) -> list[bytes]:
    """orjson's text of each id (a whole number, text or None): split at commas when no text id
    holds one (then the pieces are as many as the ids), one by one otherwise."""
    texts = orjson.dumps(ids)[1:-1].split(b",")
    return texts if len(texts) == len(ids) else [orjson.dumps(u) for u in ids]


def _column_texts(values: np.ndarray) -> list[bytes]:
    if values.dtype.kind == "f":
        return _float_texts(values)
    if values.dtype.kind in "iu":
        return _texts(values.tolist())
    labels = values.tolist()
    distinct = set(labels)
    if not all(type(label) is str for label in distinct):  # 0.0 == -0.0 == False: no shared cache
        return list(map(orjson.dumps, labels))
    cache = {label: orjson.dumps(label) for label in distinct}  # a few segment labels, each serialised once
    return list(map(cache.__getitem__, labels))


def _reason_value_texts(layout: Layout, idx: np.ndarray, raw: np.ndarray) -> list[bytes]:
    """Reason values, row by row: numbers, null where unknown, labels for categories."""
    texts = _float_texts(raw.ravel())
    flat_idx, flat_raw = idx.ravel(), raw.ravel()
    for j, labels in layout.label_json.items():
        hits = np.flatnonzero((flat_idx == j) & ~np.isnan(flat_raw))
        for p, code in zip(hits.tolist(), flat_raw[hits].astype(int).tolist()):
            texts[p] = labels[code]
    return texts


def _ring_size_texts(sizes: np.ndarray) -> list[bytes]:
    missing = np.isnan(sizes)
    texts = _texts(np.where(missing, 0, sizes).astype(np.int64).tolist())
    for p in np.flatnonzero(missing).tolist():
        texts[p] = b"null"
    return texts


def _join_rows(n: int, slots: Slots) -> bytes:
    """Rows from a template: constant pieces and per-row columns, interleaved with strided slice
    assignments and one join, all in C rather than a Python loop over rows."""
    merged: Slots = []
    for slot in slots:
        if isinstance(slot, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += slot
        elif slot != b"":
            merged.append(slot)
    width = len(merged)
    parts: list[bytes] = [b""] * (n * width)
    for i, slot in enumerate(merged):
        parts[i::width] = [slot] * n if isinstance(slot, bytes) else slot
    return b"".join(parts)
