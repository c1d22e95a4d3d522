"""The warehouse contract refuses bad tables naming the table, the column and the rows (fast: no warehouse)."""

from __future__ import annotations

import pandas as pd

from training.data.schema import TABLES, validate

CAMPAIGNS, CONTACTS = TABLES["campaigns"], TABLES["contacts"]


def good() -> pd.DataFrame:
    return pd.DataFrame({"campaign_id": [1, 2], "send_date": ["2025-01-01", "2025-01-08"], "arms": [8, 4]})


def good_contacts() -> pd.DataFrame:
    return pd.DataFrame({"user_id": [7, 8], "contact_time": ["2025-01-01 08:41:00", "2025-01-01 19:02:00"],
                         "campaign_id": [1, 1], "arm": ["coupon/sms/morning", "none/push/evening"],
                         "channel": ["sms", "push"], "opened": [True, False]})


def test_a_good_table_has_no_problems():
    assert validate(CAMPAIGNS, good()) == []
    assert validate(CONTACTS, good_contacts()) == []


def test_missing_columns_are_named():
    assert validate(CAMPAIGNS, good().drop(columns=["arms"])) == ["campaigns: missing columns ['arms']"]


def test_bad_values_name_table_column_and_rows():
    df = good()
    df.loc[1, "arms"] = 49
    df.loc[1, "send_date"] = "not a date"
    problems = "\n".join(validate(CAMPAIGNS, df))
    assert "campaigns.arms: above 48" in problems and "first: [1]" in problems
    assert "campaigns.send_date: not a date" in problems


def test_contacts_refuse_unknown_arms_channels_and_times():
    df = good_contacts()
    df.loc[0, "arm"] = "control"  # control is never sent
    df.loc[1, "channel"] = "telepathy"
    df.loc[1, "contact_time"] = "teatime"
    problems = "\n".join(validate(CONTACTS, df))
    assert "contacts.arm: values outside" in problems and "first: [0]" in problems
    assert "contacts.channel: values outside" in problems
    assert "contacts.contact_time: not a timestamp" in problems


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
