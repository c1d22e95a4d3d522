"""The warehouse contract: tables, columns, types, meaning and keys.

A bank's own data is loaded against this contract (`python -m training load DIR`);
the simulator is just one producer of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from scoring.arms import ARMS, CONTACT_CHANNELS, CONTROL
from scoring.vocabulary import ACQUISITION_CHANNELS


# User ids are whole numbers or text, as the bank's warehouse has them: every user-id column takes
# the type of users.user_id (BIGINT or VARCHAR) when the warehouse's views are made.
USER_ID = "USER_ID"


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # DuckDB type, or USER_ID
    description: str
    nullable: bool = False
    allowed: tuple | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    # A warehouse may lack an optional table: it is then installed empty.
    optional: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def sql_types(self, user_id_type: str) -> dict[str, str]:
        return {c.name: user_id_type if c.dtype == USER_ID else c.dtype for c in self.columns}


# Default, as the credit label reads the instalments: 90 or more days past due within 12 months of the application.
DEFAULT_DPD, DEFAULT_WITHIN_DAYS = 90, 365

TXN_TYPES = ("fund_purchase", "fund_redeem", "loan_draw", "repayment", "offer_redeem")

USERS = Table(
    "users",
    "One row per registered user; static attributes captured at signup.",
    ("user_id",),
    (
        Column("user_id", USER_ID, "Stable user identifier: a whole number or text."),
        Column("signup_date", "DATE", "Registration date."),
        Column("age", "SMALLINT", "Age in years at signup.", min=18, max=100),
        Column("gender", "VARCHAR", "Self-declared gender (protected attribute).", allowed=("F", "M")),
        Column("city_tier", "SMALLINT", "1 (tier-1 city) to 5.", min=1, max=5),
        Column("acquisition_channel", "VARCHAR", "How the user arrived.", allowed=ACQUISITION_CHANNELS),
        Column("inviter_id", USER_ID, "User who invited this one (invite channel only).", nullable=True),
        Column("device_id", "VARCHAR", "Device fingerprint at signup."),
        Column("ip", "VARCHAR", "IP address at signup."),
        Column("phone_prefix", "VARCHAR", "First three digits of the phone number."),
        Column("is_virtual_carrier", "BOOLEAN", "Phone range belongs to a virtual carrier (MVNO)."),
        Column("income_band", "SMALLINT", "Declared income band, 1 (lowest) to 5.", min=1, max=5),
        Column("kyc_level", "SMALLINT", "0 none, 1 ID verified, 2 ID + face.", min=0, max=2),
        Column("bound_card", "BOOLEAN", "A bank card is bound to the account."),
        Column("credit_line", "DOUBLE", "Granted credit line in CNY (0 when none).", min=0),
    ),
)

ACTIVITY = Table(
    "daily_activity",
    "One row per user and day with any app launch or message received.",
    ("user_id", "activity_date"),
    (
        Column("user_id", USER_ID, "User."),
        Column("activity_date", "DATE", "Calendar day."),
        Column("launches", "SMALLINT", "App launches that day.", min=0),
        Column("pv_loans", "SMALLINT", "Page views in the loans section.", min=0),
        Column("pv_wealth", "SMALLINT", "Page views in the wealth section.", min=0),
        Column("pv_credit_card", "SMALLINT", "Page views in the credit-card section.", min=0),
        Column("pv_activity", "SMALLINT", "Page views in the activity centre.", min=0),
        Column("push_received", "SMALLINT", "Push notifications received.", min=0),
        Column("push_opened", "SMALLINT", "Push notifications opened.", min=0),
        Column("sms_received", "SMALLINT", "Marketing SMS received.", min=0),
        Column("sms_opened", "SMALLINT", "Marketing SMS links opened.", min=0),
    ),
)

TRANSACTIONS = Table(
    "transactions",
    "Money movements: fund purchases/redemptions, loan draw-downs and repayments, offer redemptions.",
    ("txn_id",),
    (
        Column("txn_id", "BIGINT", "Transaction identifier."),
        Column("user_id", USER_ID, "User."),
        Column("txn_date", "DATE", "Booking date."),
        Column("txn_type", "VARCHAR", "Kind of movement.", allowed=TXN_TYPES),
        Column("amount", "DOUBLE", "Amount in CNY.", min=0),
        Column("days_late", "SMALLINT", "Repayments only: days past due.", nullable=True, min=0),
    ),
)

# An assignment's arm: `incentive/channel/window` (scoring.arms) or `control` (not contacted).
ARM_VALUES = (*(a.id for a in ARMS), CONTROL)

CAMPAIGNS = Table(
    "campaigns",
    "Randomised multi-arm marketing campaigns: each user targeted is assigned control or one arm at random.",
    ("campaign_id",),
    (
        Column("campaign_id", "INTEGER", "Campaign identifier."),
        Column("send_date", "DATE", "Day the campaign was sent."),
        Column("arms", "SMALLINT", "Arms randomised over besides control.", min=1, max=len(ARMS)),
    ),
)

ASSIGNMENTS = Table(
    "campaign_assignments",
    "Users in a campaign, each randomly assigned an arm or control, with the 7-day outcome.",
    ("campaign_id", "user_id"),
    (
        Column("campaign_id", "INTEGER", "Campaign."),
        Column("user_id", USER_ID, "User."),
        Column("arm", "VARCHAR", "incentive/channel/window, or control (random assignment).", allowed=ARM_VALUES),
        Column("converted", "BOOLEAN", "Converted within 7 days of the send date."),
    ),
)

CONTACTS = Table(
    "contacts",
    "Every send of every campaign: when, which arm and channel, and whether it was opened (a call answered).",
    ("user_id", "campaign_id"),
    (
        Column("user_id", USER_ID, "User contacted."),
        Column("contact_time", "TIMESTAMP", "Time of the send (local)."),
        Column("campaign_id", "INTEGER", "Campaign."),
        Column("arm", "VARCHAR", "Arm sent.", allowed=ARM_VALUES[:-1]),
        Column("channel", "VARCHAR", "Contact channel.", allowed=CONTACT_CHANNELS),
        Column("opened", "BOOLEAN", "Opened: a push or link tapped, a call answered."),
    ),
)

LOANS = Table(
    "loans",
    "Instalment loans, one row per application (all approved), known from the application date.",
    ("loan_id",),
    (
        Column("loan_id", "BIGINT", "Loan (and application) identifier."),
        Column("user_id", USER_ID, "Borrower."),
        Column("applied_date", "DATE", "Application and disbursement date."),
        Column("amount", "DOUBLE", "Principal in CNY.", min=0),
        Column("term_months", "SMALLINT", "Number of monthly instalments.", min=1),
        Column("instalment", "DOUBLE", "Scheduled monthly amount in CNY (principal and fee).", min=0),
    ),
)

INSTALMENTS = Table(
    "instalments",
    "The repayment schedule: a row per instalment once it falls due (none after a charge-off at 90+ days past due).",
    ("loan_id", "instalment_no"),
    (
        Column("loan_id", "BIGINT", "Loan."),
        Column("instalment_no", "SMALLINT", "1 for the first instalment.", min=1),
        Column("user_id", USER_ID, "Borrower."),
        Column("due_date", "DATE", "Day the instalment falls due."),
        Column("amount_due", "DOUBLE", "Amount due in CNY (with any shortfall rolled over from the instalment before).",
               min=0),
        Column("amount_paid", "DOUBLE", "Amount paid in CNY: below amount_due for a partial payment.", min=0),
        Column("paid_date", "DATE", "Day of the payment; empty while unpaid.", nullable=True),
        Column("days_past_due", "SMALLINT", "Days between due and payment; empty while unpaid.", nullable=True,
               min=0),
        Column("balance", "DOUBLE", "Owed on the loan when the instalment fell due, before its payment.", min=0),
    ),
)

ABUSE_REPORTS = Table(
    "abuse_reports",
    "Accounts confirmed as promo abusers by the investigations team (a fraction of all abusers).",
    ("user_id",),
    (
        Column("user_id", USER_ID, "Confirmed abuser."),
        Column("reported_date", "DATE", "Day the confirmation was recorded."),
    ),
)

OPT_OUTS = Table(
    "opt_outs",
    "Users who asked not to be contacted on a channel, from a day on; the campaign planner never plans them there.",
    ("user_id", "channel"),
    (
        Column("user_id", USER_ID, "User."),
        Column("channel", "VARCHAR", "Contact channel opted out of.", allowed=CONTACT_CHANNELS),
        Column("since", "DATE", "Day the opt-out took effect."),
    ),
    optional=True,
)

TABLES: dict[str, Table] = {
    t.name: t for t in (USERS, ACTIVITY, TRANSACTIONS, CAMPAIGNS, ASSIGNMENTS, CONTACTS, LOANS, INSTALMENTS,
                        ABUSE_REPORTS, OPT_OUTS)
}


def validate(table: Table, df: pd.DataFrame) -> list[str]:
    """Problems with df against the contract, each naming table, column and offending rows."""
    problems: list[str] = []
    missing = [c for c in table.column_names if c not in df.columns]
    if missing:
        return [f"{table.name}: missing columns {missing}"]
    extra = [c for c in df.columns if c not in table.column_names]
    if extra:
        problems.append(f"{table.name}: unexpected columns {extra}")

    def rows(mask: pd.Series) -> str:
        idx = list(mask[mask].index[:5])
        return f"{int(mask.sum())} rows (first: {idx})"

    for col in table.columns:
        s = df[col.name]
        nulls = s.isna()
        if not col.nullable and nulls.any():
            problems.append(f"{table.name}.{col.name}: nulls not allowed, {rows(nulls)}")
        present = s[~nulls]
        if col.dtype in ("BIGINT", "INTEGER", "SMALLINT", "DOUBLE"):
            num = pd.to_numeric(present, errors="coerce")
            bad = num.isna()
            if bad.any():
                problems.append(f"{table.name}.{col.name}: not numeric, {rows(bad)}")
                continue
            if col.dtype != "DOUBLE" and ((num % 1) != 0).any():
                problems.append(f"{table.name}.{col.name}: not an integer, {rows((num % 1) != 0)}")
            if col.min is not None and (num < col.min).any():
                problems.append(f"{table.name}.{col.name}: below {col.min}, {rows(num < col.min)}")
            if col.max is not None and (num > col.max).any():
                problems.append(f"{table.name}.{col.name}: above {col.max}, {rows(num > col.max)}")
        elif col.dtype in ("DATE", "TIMESTAMP"):
            bad = pd.to_datetime(present, errors="coerce").isna()
            if bad.any():
                problems.append(f"{table.name}.{col.name}: not a {col.dtype.lower()}, {rows(bad)}")
        elif col.dtype == USER_ID:
            bad = present.astype(str).str.strip() == ""
            if bad.any():
                problems.append(f"{table.name}.{col.name}: empty ids, {rows(bad)}")
        elif col.dtype == "BOOLEAN":
            bad = ~present.isin([True, False, 0, 1, "true", "false", "True", "False"])
            if bad.any():
                problems.append(f"{table.name}.{col.name}: not a boolean, {rows(bad)}")
        if col.allowed is not None:
            bad = ~present.isin(col.allowed)
            if bad.any():
                problems.append(
                    f"{table.name}.{col.name}: values outside {list(col.allowed)}, {rows(bad)}"
                )
    if not problems and df.duplicated(list(table.key)).any():
        problems.append(f"{table.name}: duplicate key {list(table.key)}, {rows(df.duplicated(list(table.key)))}")
    return problems
