"""The warehouse contract refuses bad tables naming the table, the column and the rows (fast: no warehouse)."""

from __future__ import annotations

import pandas as pd

from training.data.schema import TABLES, validate

CAMPAIGNS = TABLES["campaigns"]


def good() -> pd.DataFrame:
    return pd.DataFrame({"campaign_id": [1, 2], "send_date": ["2025-01-01", "2025-01-08"],
                         "incentive": ["coupon", "red_packet"], "channel": ["push", "sms"], "send_hour": [9, 20]})


def test_a_good_table_has_no_problems():
    assert validate(CAMPAIGNS, good()) == []


def test_missing_columns_are_named():
    assert validate(CAMPAIGNS, good().drop(columns=["channel"])) == ["campaigns: missing columns ['channel']"]


def test_bad_values_name_table_column_and_rows():
    df = good()
    df.loc[1, "send_hour"] = 30
    df.loc[0, "channel"] = "telepathy"
    df.loc[1, "send_date"] = "not a date"
    problems = "\n".join(validate(CAMPAIGNS, df))
    assert "campaigns.send_hour: above 23" in problems and "first: [1]" in problems
    assert "campaigns.channel" in problems and "campaigns.send_date: not a date" in problems


def test_instalments_are_checked_like_every_table():
    """Days past due and instalment numbers have floors, and an unpaid instalment may leave its payment empty."""
    inst = pd.DataFrame({"loan_id": [1, 1], "instalment_no": [1, 0], "user_id": [7, 7],
                         "due_date": ["2025-01-31", "2025-03-02"], "amount_due": [100.0, 100.0],
                         "amount_paid": [100.0, 0.0], "paid_date": ["2025-02-10", None],
                         "days_past_due": [-3, None], "balance": [200.0, 100.0]})
    problems = "\n".join(validate(TABLES["instalments"], inst))
    assert "instalments.instalment_no: below 1" in problems and "first: [1]" in problems
    assert "instalments.days_past_due: below 0" in problems and "first: [0]" in problems
    assert "paid_date" not in problems
    inst.loc[1, "instalment_no"], inst.loc[0, "days_past_due"] = 2, 10
    assert validate(TABLES["instalments"], inst) == []
