"""The narrow matrix reads back exactly what it was given, in the least space that holds it."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.matrix import NarrowMatrix, narrowest


@pytest.mark.parametrize(("integral", "lo", "hi", "dtype"), [
    (True, 0, 127, "int8"), (True, -127, 0, "int8"), (True, -128, 0, "int16"),  # -128 is int8's NaN
    (True, 0, 128, "int16"), (True, -32767, 32767, "int16"), (True, 0, 40_000, "int32"),
    (True, 0, 2**31, "float64"), (False, 0, 1, "float64"), (True, 1, 0, "int8"),  # empty: no value at all
])
def test_narrowest_type(integral, lo, hi, dtype):
    assert narrowest(integral, lo, hi) == dtype


def test_every_value_and_nan_reads_back_exactly_in_any_column_order():
    rng = np.random.default_rng(0)
    n = 200
    values = np.column_stack([rng.integers(-127, 128, n), rng.integers(-32767, 32768, n),
                              rng.integers(-2**31 + 1, 2**31, n), rng.normal(size=n), rng.integers(0, 2, n)]).astype(float)
    values[rng.random(values.shape) < 0.2] = np.nan
    dtypes = ["int8", "int16", "int32", "float64", "int8"]
    m = NarrowMatrix.of(values, dtypes)
    assert {k: v.dtype.name for k, v in m.blocks.items()} == {"int8": "int8", "int16": "int16", "int32": "int32",
                                                              "float64": "float64"}
    assert m.nbytes == n * (1 + 2 + 4 + 8 + 1)
    assert np.array_equal(m.to_numpy(), values, equal_nan=True)
    cols = np.array([4, 3, 0, 0, 2])
    rows = np.array([199, 0, 57, 57])
    assert np.array_equal(m.reader(cols).take(rows), values[np.ix_(rows, cols)], equal_nan=True)
    assert np.array_equal(m.reader(cols).take(slice(10, 13)), values[10:13][:, cols], equal_nan=True)


def test_a_block_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="int8"):
        NarrowMatrix(3, ["int8", "float64"], {"int8": np.zeros((3, 2), np.int8), "float64": np.zeros((3, 1))})
