import numpy as np

from scoring.answer import OUT_OF_POPULATION_FIELDS, out_of_population
from scoring.drift import Reference
from scoring.population import Population

CHURN = Population("active_days_30", 1, "users active in the 30 days before the snapshot")


def test_the_bound_is_inclusive_and_a_missing_value_counts_as_inside():
    assert CHURN.contains(np.array([0, 1, 5, np.nan])).tolist() == [False, True, True, True]


def test_the_reason_names_the_feature_and_the_bound():
    assert "active_days_30 at least 1" in CHURN.reason and CHURN.description in CHURN.reason


def test_the_item_has_the_declared_fields_in_order():
    item = out_of_population(42, "silent_91_360", CHURN.reason)
    assert tuple(item) == OUT_OF_POPULATION_FIELDS and item["status"] == "out_of_population"


def test_a_reference_keeps_its_population_through_json_and_reads_the_old_form():
    ref = Reference(10, "rows", {}, None, {}, CHURN)
    d = ref.to_dict()
    assert Population.from_dict(d["population"]) == CHURN
    assert Population.from_dict({"feature": "active_days_30", "at_least": 1}) == Population("active_days_30", 1.0)
    assert Population.from_dict(None) is None
