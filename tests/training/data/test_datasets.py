"""A table's label: which value is the event is said, never guessed (fast: no warehouse, no MLflow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.data.datasets import binary_target


@pytest.mark.parametrize("labels,expected", [
    ([0, 1, 1, 0], [0, 1, 1, 0]),
    ([True, False, True, True], [1, 0, 1, 1]),
    (["true", "False", "TRUE", "false"], [1, 0, 1, 0]),
    ([1.0, 0.0, 0.0, 1.0], [1, 0, 0, 1]),
])
def test_labels_that_say_which_is_the_event_need_no_help(labels, expected):
    assert binary_target(pd.Series(labels), "y").tolist() == expected


def test_two_other_labels_are_refused_listing_them():
    with pytest.raises(ValueError, match=r"'status' has values \['bad', 'good'\].*--positive"):
        binary_target(pd.Series(["good", "bad", "good"]), "status")


def test_the_named_event_is_the_positive_class_whichever_sorts_first():
    labels = pd.Series(["good", "bad", "good", "bad", "bad"])
    np.testing.assert_array_equal(binary_target(labels, "status", positive="bad"), [0, 1, 0, 1, 1])
    np.testing.assert_array_equal(binary_target(labels, "status", positive="good"), [1, 0, 1, 0, 0])


def test_an_event_that_is_not_a_label_is_refused_listing_the_labels():
    with pytest.raises(ValueError, match=r"--positive 'default' is not a value.*\['bad', 'good'\]"):
        binary_target(pd.Series(["good", "bad"]), "status", positive="default")


@pytest.mark.parametrize("labels,why", [([0, 1, 2], "binary"), ([0, None, 1], "missing")])
def test_labels_that_are_not_two_clean_values_are_refused(labels, why):
    with pytest.raises(ValueError, match=why):
        binary_target(pd.Series(labels), "y")
