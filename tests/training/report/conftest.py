"""A tiny hand-made warehouse whose operating figures are worked out by hand in the tests."""

from __future__ import annotations

import pandas as pd
import pytest

from scoring.settings import Settings
from tests.conftest import make_settings
from training.data.schema import TABLES
from training.data.warehouse import write_tables

AS_OF = pd.Timestamp("2026-03-01").date()
USERS = [  # id, signup, age, launch days, fund purchases, draw-down days
    (1, "2026-01-01", 25, ["2026-01-02", "2026-01-08", "2026-01-31", "2026-02-28"], 1000.0, ["2026-02-10"]),
    (2, "2026-01-01", 40, ["2026-01-02", "2026-02-20"], 100.0, []),
    (3, "2026-01-15", 22, ["2026-01-16"], 0.0, []),
    (4, "2025-06-01", 35, ["2026-02-27"], 5000.0, ["2025-10-01"]),
    (5, "2025-01-01", 50, ["2025-03-01"], 0.0, []),
]


def tiny_tables() -> dict[str, pd.DataFrame]:
    users = pd.DataFrame({"user_id": [u[0] for u in USERS], "signup_date": pd.to_datetime([u[1] for u in USERS]),
                          "age": [u[2] for u in USERS], "gender": "F", "city_tier": 2, "acquisition_channel": "organic",
                          "inviter_id": pd.array([None] * 5, dtype="Int64"), "device_id": ["d1", "d2", "d3", "d4", "d5"],
                          "ip": "10.0.0.1", "phone_prefix": "138", "is_virtual_carrier": False, "income_band": 3,
                          "kyc_level": 1, "bound_card": True, "credit_line": 5000.0})
    act = pd.DataFrame([(u[0], pd.Timestamp(d)) for u in USERS for d in u[3]], columns=["user_id", "activity_date"])
    act = act.assign(launches=2, **{c.name: 0 for c in TABLES["daily_activity"].columns[3:]})
    txn = [(u[0], pd.Timestamp("2025-12-15"), "fund_purchase", u[4]) for u in USERS if u[4]]
    txn += [(u[0], pd.Timestamp(d), "loan_draw", 500.0) for u in USERS for d in u[5]]
    txn = pd.DataFrame(txn, columns=["user_id", "txn_date", "txn_type", "amount"])
    txn = txn.assign(txn_id=range(1, len(txn) + 1), days_late=pd.array([None] * len(txn), dtype="Int64"))
    campaigns = pd.DataFrame({"campaign_id": [1], "send_date": [pd.Timestamp("2026-02-01")], "arms": [1]})
    assignments = pd.DataFrame({"campaign_id": 1, "user_id": [1, 2, 3, 4],
                                "arm": ["coupon/sms/noon", "coupon/sms/noon", "control", "control"],
                                "converted": [True, False, False, False]})
    contacts = pd.DataFrame({"user_id": [1, 2], "contact_time": pd.Timestamp("2026-02-01 12:00"), "campaign_id": 1,
                             "arm": "coupon/sms/noon", "channel": "sms", "opened": [True, False]})
    empty = {name: pd.DataFrame({c.name: pd.Series(dtype="datetime64[s]" if c.dtype in ("DATE", "TIMESTAMP") else "float")
                                 for c in TABLES[name].columns}) for name in ("loans", "instalments", "abuse_reports")}
    return {"users": users, "daily_activity": act, "transactions": txn, "campaigns": campaigns,
            "campaign_assignments": assignments, "contacts": contacts, **empty}


@pytest.fixture()
def tiny(tmp_path) -> Settings:
    s = make_settings(tmp_path)
    write_tables(tiny_tables(), s)
    return s
