"""The names requests and models share: the snapshot's features, their categories and bounds.

Declared here once; `training.data.features` computes exactly these columns (a test holds the SQL to it)
and `training.data.schema` builds the warehouse contract on the same vocabularies (the campaign arms'
incentives, channels and windows are `scoring.arms`').
"""

from __future__ import annotations

from scoring.arms import CONTACT_CHANNELS, SEND_WINDOWS

ACQUISITION_CHANNELS = ("organic", "app_store", "ads", "partner", "invite")

CATEGORICAL = ("acquisition_channel",)
# Kept in the snapshot for filters and lookalike guards, never fed to a model.
PROTECTED = ("gender",)
# Never model inputs: keys, protected attributes, labels.
NOT_FEATURES = frozenset({"user_id", *PROTECTED})

GRAPH_FEATURES = ("ring_size", "ring_redeem_share")
# From the contacts table: sends and opens per channel in 7 and 30 days, and the last response (days
# since the last open) and open rate per channel and per send window.
CONTACT_FEATURES = (
    *(f"{what}_{c}_{days}" for c in CONTACT_CHANNELS for what in ("contacts", "opens") for days in (7, 30)),
    *(f"days_since_open_{c}" for c in (*CONTACT_CHANNELS, *SEND_WINDOWS)),
    *(f"open_rate_{c}" for c in (*CONTACT_CHANNELS, *SEND_WINDOWS)),
)

# Every column of a feature snapshot, in the order the feature SQL yields them (graph features last).
SNAPSHOT_COLUMNS = (
    "gender", "age", "city_tier", "income_band", "kyc_level", "bound_card", "credit_line", "is_virtual_carrier",
    "acquisition_channel", "invited", "tenure_days", "days_since_last_active", "active_days_7", "active_days_14",
    "active_days_30", "active_days_31_60", "active_ewm_14", "active_days_90", "launches_30", "launches_90",
    "launches_per_active_day_90", "activity_trend", "pv_loans_90", "pv_wealth_90", "pv_credit_card_90",
    "pv_activity_90", "pv_activity_share_90", "push_received_30", "sms_received_30", "push_open_rate_90",
    "sms_open_rate_90", "fund_cnt_90", "fund_amt_90", "fund_amt_all", "loan_draw_cnt_90", "loan_draw_amt_90",
    "utilisation_90", "repay_cnt_90", "repay_late_cnt_90", "repay_max_late_90", "repay_cnt_all",
    "repay_mean_late_all", "redeemed_offer", "days_signup_to_redeem", "days_redeem_to_last_active",
    "days_since_last_txn", "camp_treated_all", "camp_conv_treated_all", "camp_control_all", "camp_conv_control_all",
    "camp_treated_30", "camp_conv_incentive_all", *CONTACT_FEATURES,
    "loan_apps_all", "loan_apps_90", "loan_defaults_known", "months_on_book", "open_loans",
    "loan_balance", "loan_utilisation", "loan_utilisation_trend_90", "dpd_now", "worst_dpd_3m", "worst_dpd_6m",
    "worst_dpd_12m", "instalments_due_12m", "instalments_late_12m", "instalments_30dpd_12m", "late_share_12m", "partial_share_12m",
    "instalments_due_all", "late_share_all", "late_rate_shrunk", "partial_share_all",
    "device_users", "ip_users",
    "invitees", "invitee_signup_span_days", *GRAPH_FEATURES,
)
LOAN_BOOK_FEATURES = SNAPSHOT_COLUMNS[SNAPSHOT_COLUMNS.index("loan_apps_all"):SNAPSHOT_COLUMNS.index("device_users")]
# What the behaviour scorecard reads: the borrower's profile and the loan book. Credit trains on snapshots a
# year and more back, before the app's activity tables begin, where the other features are empty or mean
# something else (days since the last launch is the tenure there).
CREDIT_FEATURES = ("age", "city_tier", "income_band", "kyc_level", "bound_card", "credit_line", "is_virtual_carrier",
                   "acquisition_channel", "invited", "tenure_days", *LOAN_BOOK_FEATURES)
NUMERIC_FEATURES = tuple(c for c in SNAPSHOT_COLUMNS if c not in CATEGORICAL + PROTECTED)

# Valid ranges of the numeric features, for request validation. Unlisted ones are counts,
# amounts or day spans: zero or more.
FEATURE_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "age": (18, 100),
    "city_tier": (1, 5),
    "income_band": (1, 5),
    "kyc_level": (0, 2),
    **{f: (0, 1) for f in ("bound_card", "is_virtual_carrier", "invited", "redeemed_offer", "pv_activity_share_90",
                           "push_open_rate_90", "sms_open_rate_90", "ring_redeem_share", "late_share_12m", "partial_share_12m",
                           "late_share_all", "late_rate_shrunk", "partial_share_all",
                           *(f for f in CONTACT_FEATURES if f.startswith("open_rate_")))},
    "days_redeem_to_last_active": (None, None),  # last launch may precede the redemption
    "loan_utilisation_trend_90": (None, None),  # balances fall as loans are repaid
}
