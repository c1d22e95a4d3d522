"""The fitted preprocessing: column order, category codes, and the refusal of a frame that lacks a feature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoring.spec import FeatureSpec


def test_ids_protected_attributes_and_excluded_columns_are_never_features():
    df = pd.DataFrame({"user_id": [1, 2], "gender": ["F", "M"], "age": [30, 40], "label": [0, 1],
                       "channel": ["a", "b"], "flag": [True, False]})
    spec = FeatureSpec.fit(df, exclude={"label"})
    assert spec.names == ["age", "flag", "channel"] and spec.categorical == {"channel": ["a", "b"]}
    assert spec.categorical_index == [2]


def test_unseen_categories_and_missing_values_become_nan():
    spec = FeatureSpec(numeric=["x"], categorical={"c": ["a", "b"]})
    X = spec.to_matrix(pd.DataFrame({"x": [1.5, None, 3], "c": ["b", "zzz", None]}))
    np.testing.assert_array_equal(X, [[1.5, 1.0], [np.nan, np.nan], [3.0, np.nan]])


def test_a_frame_without_a_feature_is_refused_naming_it():
    spec = FeatureSpec(numeric=["x", "y"], categorical={"c": ["a"]})
    with pytest.raises(KeyError, match=r"\['y', 'c'\]"):
        spec.to_matrix(pd.DataFrame({"x": [1.0]}))


def test_round_trip_through_its_dict():
    spec = FeatureSpec(numeric=["x"], categorical={"c": ["a", "b"]})
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_booleans_and_numbers_as_text_read_as_the_numbers_they_stand_for():
    spec = FeatureSpec(numeric=["flag", "n"])
    as_trained = spec.to_matrix(pd.DataFrame({"flag": [True, False, None], "n": [5, 7, None]}))
    from_a_csv = spec.to_matrix(pd.DataFrame({"flag": ["True", "false", ""], "n": ["5", " 7 ", "n/a"]}))
    np.testing.assert_array_equal(from_a_csv, as_trained)

