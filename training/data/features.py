"""Point-in-time features and labels, written as SQL run by DuckDB.

Features at an as-of date read only events strictly before it; labels read the window after it.
The SQL sticks to ANSI constructs (CASE inside aggregates, no FILTER, no macros) so that Spark
SQL can run the same definitions; only the day arithmetic (`date - date`) may need a dialect shim.
The columns it yields are declared in `scoring.vocabulary.SNAPSHOT_COLUMNS` (a test holds them equal).
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import duckdb
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from scoring.arms import CONTACT_CHANNELS, SEND_WINDOWS
from scoring.vocabulary import CATEGORICAL, GRAPH_FEATURES, PROTECTED
from training.data.schema import TABLES

FEATURE_SQL = """
WITH pop AS (
    SELECT * FROM users WHERE signup_date < {as_of}
),
act AS (
    SELECT user_id,
        max(CASE WHEN launches > 0 THEN activity_date END) AS last_active,
        sum(CASE WHEN launches > 0 AND activity_date >= {as_of} - INTERVAL 7 DAY THEN 1 ELSE 0 END) AS active_days_7,
        sum(CASE WHEN launches > 0 AND activity_date >= {as_of} - INTERVAL 14 DAY THEN 1 ELSE 0 END) AS active_days_14,
        sum(CASE WHEN launches > 0 AND activity_date >= {as_of} - INTERVAL 30 DAY THEN 1 ELSE 0 END) AS active_days_30,
        sum(CASE WHEN launches > 0 AND activity_date >= {as_of} - INTERVAL 60 DAY
                 AND activity_date < {as_of} - INTERVAL 30 DAY THEN 1 ELSE 0 END) AS active_days_31_60,
        -- Recency-weighted activity (two-week half-life): the best single estimate of today's habit.
        sum(CASE WHEN launches > 0 AND activity_date >= {as_of} - INTERVAL 90 DAY
                 THEN exp(-0.0495 * ({as_of} - activity_date)) ELSE 0 END) AS active_ewm_14,
        sum(CASE WHEN launches > 0 AND activity_date >= {as_of} - INTERVAL 90 DAY THEN 1 ELSE 0 END) AS active_days_90,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 30 DAY THEN launches ELSE 0 END) AS launches_30,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 90 DAY THEN launches ELSE 0 END) AS launches_90,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 90 DAY THEN pv_loans ELSE 0 END) AS pv_loans_90,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 90 DAY THEN pv_wealth ELSE 0 END) AS pv_wealth_90,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 90 DAY THEN pv_credit_card ELSE 0 END) AS pv_credit_card_90,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 90 DAY THEN pv_activity ELSE 0 END) AS pv_activity_90,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 30 DAY THEN push_received ELSE 0 END) AS push_received_30,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 90 DAY THEN push_received ELSE 0 END) AS push_received_90,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 90 DAY THEN push_opened ELSE 0 END) AS push_opened_90,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 30 DAY THEN sms_received ELSE 0 END) AS sms_received_30,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 90 DAY THEN sms_received ELSE 0 END) AS sms_received_90,
        sum(CASE WHEN activity_date >= {as_of} - INTERVAL 90 DAY THEN sms_opened ELSE 0 END) AS sms_opened_90
    FROM daily_activity
    WHERE activity_date < {as_of}
    GROUP BY user_id
),
txn AS (
    SELECT user_id,
        sum(CASE WHEN txn_type = 'fund_purchase' AND txn_date >= {as_of} - INTERVAL 90 DAY THEN 1 ELSE 0 END) AS fund_cnt_90,
        sum(CASE WHEN txn_type = 'fund_purchase' AND txn_date >= {as_of} - INTERVAL 90 DAY THEN amount ELSE 0 END) AS fund_amt_90,
        sum(CASE WHEN txn_type = 'fund_purchase' THEN amount ELSE 0 END) AS fund_amt_all,
        sum(CASE WHEN txn_type = 'loan_draw' AND txn_date >= {as_of} - INTERVAL 90 DAY THEN 1 ELSE 0 END) AS loan_draw_cnt_90,
        sum(CASE WHEN txn_type = 'loan_draw' AND txn_date >= {as_of} - INTERVAL 90 DAY THEN amount ELSE 0 END) AS loan_draw_amt_90,
        sum(CASE WHEN txn_type = 'repayment' AND txn_date >= {as_of} - INTERVAL 90 DAY THEN 1 ELSE 0 END) AS repay_cnt_90,
        sum(CASE WHEN txn_type = 'repayment' AND txn_date >= {as_of} - INTERVAL 90 DAY AND days_late > 0 THEN 1 ELSE 0 END) AS repay_late_cnt_90,
        max(CASE WHEN txn_type = 'repayment' AND txn_date >= {as_of} - INTERVAL 90 DAY THEN days_late END) AS repay_max_late_90,
        sum(CASE WHEN txn_type = 'repayment' THEN 1 ELSE 0 END) AS repay_cnt_all,
        avg(CASE WHEN txn_type = 'repayment' THEN days_late END) AS repay_mean_late_all,
        min(CASE WHEN txn_type = 'offer_redeem' THEN txn_date END) AS first_redeem,
        max(txn_date) AS last_txn
    FROM transactions
    WHERE txn_date < {as_of}
    GROUP BY user_id
),
camp AS (
    -- A send's 7-day outcome is only known once the week is over.
    SELECT a.user_id,
        sum(CASE WHEN a.arm <> 'control' THEN 1 ELSE 0 END) AS camp_treated_all,
        sum(CASE WHEN a.arm <> 'control' AND a.converted THEN 1 ELSE 0 END) AS camp_conv_treated_all,
        sum(CASE WHEN a.arm = 'control' THEN 1 ELSE 0 END) AS camp_control_all,
        sum(CASE WHEN a.arm = 'control' AND a.converted THEN 1 ELSE 0 END) AS camp_conv_control_all,
        sum(CASE WHEN a.arm <> 'control' AND c.send_date >= {as_of} - INTERVAL 30 DAY THEN 1 ELSE 0 END) AS camp_treated_30,
        -- Conversions under an incentive (not a plain reminder): how the user has used offers before.
        sum(CASE WHEN a.arm <> 'control' AND a.arm NOT LIKE 'none/%' AND a.converted THEN 1 ELSE 0 END)
            AS camp_conv_incentive_all
    FROM campaign_assignments a JOIN campaigns c ON a.campaign_id = c.campaign_id
    WHERE c.send_date < {as_of} - INTERVAL 7 DAY
    GROUP BY a.user_id
),
cont AS (
    SELECT user_id,
{contact_aggregates}
    FROM (
        SELECT user_id, contact_time, channel, opened, CAST(contact_time AS DATE) AS contact_date,
            CASE WHEN EXTRACT(HOUR FROM contact_time) < 11 THEN 'morning'
                 WHEN EXTRACT(HOUR FROM contact_time) < 15 THEN 'noon' ELSE 'evening' END AS send_window
        FROM contacts WHERE contact_time < {as_of}
    ) sends
    GROUP BY user_id
),
loans AS (
    SELECT user_id,
        count(*) AS loan_apps_all,
        sum(CASE WHEN applied_date >= {as_of} - INTERVAL 90 DAY THEN 1 ELSE 0 END) AS loan_apps_90,
        sum(CASE WHEN outcome_date < {as_of} AND default_90d THEN 1 ELSE 0 END) AS loan_defaults_known
    FROM loan_applications
    WHERE applied_date < {as_of}
    GROUP BY user_id
),
dev AS (SELECT device_id, count(*) AS n FROM pop GROUP BY device_id),
ips AS (SELECT ip, count(*) AS n FROM pop GROUP BY ip),
invites AS (
    SELECT inviter_id AS user_id, count(*) AS invitees,
        max(signup_date) - min(signup_date) AS invitee_signup_span_days
    FROM pop WHERE inviter_id IS NOT NULL GROUP BY inviter_id
)
SELECT
    p.user_id,
    p.gender,
    p.age,
    p.city_tier,
    p.income_band,
    p.kyc_level,
    CAST(p.bound_card AS INTEGER) AS bound_card,
    p.credit_line,
    CAST(p.is_virtual_carrier AS INTEGER) AS is_virtual_carrier,
    p.acquisition_channel,
    CAST(p.inviter_id IS NOT NULL AS INTEGER) AS invited,
    {as_of} - p.signup_date AS tenure_days,
    coalesce({as_of} - act.last_active, {as_of} - p.signup_date) AS days_since_last_active,
    coalesce(act.active_days_7, 0) AS active_days_7,
    coalesce(act.active_days_14, 0) AS active_days_14,
    coalesce(act.active_days_30, 0) AS active_days_30,
    coalesce(act.active_days_31_60, 0) AS active_days_31_60,
    coalesce(act.active_ewm_14, 0) AS active_ewm_14,
    coalesce(act.active_days_90, 0) AS active_days_90,
    coalesce(act.launches_30, 0) AS launches_30,
    coalesce(act.launches_90, 0) AS launches_90,
    coalesce(act.launches_90, 0) / (coalesce(act.active_days_90, 0) + 1.0) AS launches_per_active_day_90,
    coalesce(act.active_days_30, 0) / (coalesce(act.active_days_90, 0) / 3.0 + 1.0) AS activity_trend,
    coalesce(act.pv_loans_90, 0) AS pv_loans_90,
    coalesce(act.pv_wealth_90, 0) AS pv_wealth_90,
    coalesce(act.pv_credit_card_90, 0) AS pv_credit_card_90,
    coalesce(act.pv_activity_90, 0) AS pv_activity_90,
    coalesce(act.pv_activity_90, 0) / (coalesce(act.pv_loans_90 + act.pv_wealth_90 + act.pv_credit_card_90 + act.pv_activity_90, 0) + 1.0) AS pv_activity_share_90,
    coalesce(act.push_received_30, 0) AS push_received_30,
    coalesce(act.sms_received_30, 0) AS sms_received_30,
    coalesce(act.push_opened_90, 0) / (coalesce(act.push_received_90, 0) + 1.0) AS push_open_rate_90,
    coalesce(act.sms_opened_90, 0) / (coalesce(act.sms_received_90, 0) + 1.0) AS sms_open_rate_90,
    coalesce(txn.fund_cnt_90, 0) AS fund_cnt_90,
    coalesce(txn.fund_amt_90, 0) AS fund_amt_90,
    coalesce(txn.fund_amt_all, 0) AS fund_amt_all,
    coalesce(txn.loan_draw_cnt_90, 0) AS loan_draw_cnt_90,
    coalesce(txn.loan_draw_amt_90, 0) AS loan_draw_amt_90,
    CASE WHEN p.credit_line > 0 THEN coalesce(txn.loan_draw_amt_90, 0) / p.credit_line END AS utilisation_90,
    coalesce(txn.repay_cnt_90, 0) AS repay_cnt_90,
    coalesce(txn.repay_late_cnt_90, 0) AS repay_late_cnt_90,
    txn.repay_max_late_90,
    coalesce(txn.repay_cnt_all, 0) AS repay_cnt_all,
    txn.repay_mean_late_all,
    CAST(txn.first_redeem IS NOT NULL AS INTEGER) AS redeemed_offer,
    txn.first_redeem - p.signup_date AS days_signup_to_redeem,
    act.last_active - txn.first_redeem AS days_redeem_to_last_active,
    coalesce({as_of} - txn.last_txn, {as_of} - p.signup_date) AS days_since_last_txn,
    coalesce(camp.camp_treated_all, 0) AS camp_treated_all,
    coalesce(camp.camp_conv_treated_all, 0) AS camp_conv_treated_all,
    coalesce(camp.camp_control_all, 0) AS camp_control_all,
    coalesce(camp.camp_conv_control_all, 0) AS camp_conv_control_all,
    coalesce(camp.camp_treated_30, 0) AS camp_treated_30,
    coalesce(camp.camp_conv_incentive_all, 0) AS camp_conv_incentive_all,
{contact_columns}
    coalesce(loans.loan_apps_all, 0) AS loan_apps_all,
    coalesce(loans.loan_apps_90, 0) AS loan_apps_90,
    coalesce(loans.loan_defaults_known, 0) AS loan_defaults_known,
    dev.n AS device_users,
    ips.n AS ip_users,
    coalesce(invites.invitees, 0) AS invitees,
    invites.invitee_signup_span_days
FROM pop p
LEFT JOIN act ON act.user_id = p.user_id
LEFT JOIN txn ON txn.user_id = p.user_id
LEFT JOIN camp ON camp.user_id = p.user_id
LEFT JOIN cont ON cont.user_id = p.user_id
LEFT JOIN loans ON loans.user_id = p.user_id
LEFT JOIN dev ON dev.device_id = p.device_id
LEFT JOIN ips ON ips.ip = p.ip
LEFT JOIN invites ON invites.user_id = p.user_id
ORDER BY p.user_id
"""

# Edges of the abuse graph: accounts sharing a device, and invite links.
EDGES_SQL = """
WITH pop AS (SELECT user_id, device_id, inviter_id FROM users WHERE signup_date < {as_of}),
first_on_device AS (SELECT device_id, min(user_id) AS root FROM pop GROUP BY device_id)
SELECT p.user_id AS a, f.root AS b FROM pop p JOIN first_on_device f ON p.device_id = f.device_id
WHERE p.user_id <> f.root
UNION ALL
SELECT user_id AS a, inviter_id AS b FROM pop WHERE inviter_id IN (SELECT user_id FROM pop)
"""

LABEL_SQL = """
WITH pop AS (SELECT user_id FROM users WHERE signup_date < {as_of}),
future AS (
    SELECT user_id, max(launches) AS launched FROM daily_activity
    WHERE activity_date >= {as_of} AND activity_date < {as_of} + INTERVAL {window} DAY AND launches > 0
    GROUP BY user_id
),
recent AS (
    SELECT DISTINCT user_id FROM daily_activity
    WHERE activity_date >= {as_of} - INTERVAL 30 DAY AND activity_date < {as_of} AND launches > 0
),
apps AS (
    SELECT user_id, application_id, default_90d,
        row_number() OVER (PARTITION BY user_id ORDER BY applied_date, application_id) AS rn
    FROM loan_applications
    WHERE applied_date >= {as_of} AND applied_date < {as_of} + INTERVAL {window} DAY
)
SELECT pop.user_id,
    CAST(recent.user_id IS NOT NULL AS BOOLEAN) AS churn_eligible,
    CAST(future.user_id IS NULL AS INTEGER) AS churn,
    apps.application_id,
    CAST(apps.default_90d AS INTEGER) AS default_90d,
    CAST(r.user_id IS NOT NULL AS INTEGER) AS abuse_confirmed
FROM pop
LEFT JOIN future ON future.user_id = pop.user_id
LEFT JOIN recent ON recent.user_id = pop.user_id
LEFT JOIN apps ON apps.user_id = pop.user_id AND apps.rn = 1
LEFT JOIN abuse_reports r ON r.user_id = pop.user_id
ORDER BY pop.user_id
"""

RESPONSE_SQL = """
SELECT a.user_id, a.campaign_id, a.arm, CAST(a.converted AS INTEGER) AS converted
FROM campaign_assignments a JOIN campaigns c ON a.campaign_id = c.campaign_id
JOIN users u ON u.user_id = a.user_id
WHERE c.send_date >= {as_of} AND c.send_date < {as_of} + INTERVAL {window} DAY AND u.signup_date < {as_of}
ORDER BY a.campaign_id, a.user_id
"""


def _contact_sql() -> tuple[str, str]:
    """The contacts CTE's aggregates and the outer SELECT's columns, one set per channel and window."""
    aggregates, columns = [], []
    for c in CONTACT_CHANNELS:
        for what, opened in (("contacts", ""), ("opens", " AND opened")):
            for days in (7, 30):
                name = f"{what}_{c}_{days}"
                aggregates.append(f"sum(CASE WHEN channel = '{c}'{opened} AND contact_time >= {{as_of}} - INTERVAL "
                                  f"{days} DAY THEN 1 ELSE 0 END) AS {name}")
                columns.append(f"coalesce(cont.{name}, 0) AS {name}")
    groups = [("channel", c) for c in CONTACT_CHANNELS] + [("send_window", w) for w in SEND_WINDOWS]
    for column, value in groups:
        aggregates.append(f"{{as_of}} - max(CASE WHEN {column} = '{value}' AND opened THEN contact_date END) "
                          f"AS days_since_open_{value}")
        columns.append(f"cont.days_since_open_{value}")
    for column, value in groups:
        aggregates.append(f"sum(CASE WHEN {column} = '{value}' AND opened THEN 1 ELSE 0 END) / "
                          f"(sum(CASE WHEN {column} = '{value}' THEN 1 ELSE 0 END) + 1.0) AS open_rate_{value}")
        columns.append(f"cont.open_rate_{value}")
    indent = " " * 8
    return ",\n".join(indent + a for a in aggregates), ",\n".join("    " + c for c in columns) + ","


CONTACT_AGGREGATES, CONTACT_COLUMNS = _contact_sql()


def feature_sql(as_of: str) -> str:
    """FEATURE_SQL with its contact aggregates filled in, as of a date literal."""
    sql = FEATURE_SQL.replace("{contact_aggregates}", CONTACT_AGGREGATES).replace("{contact_columns}", CONTACT_COLUMNS)
    return sql.format(as_of=as_of)


@lru_cache
def feature_columns() -> tuple[str, ...]:
    """Columns the feature SQL yields (plus graph features), found by running it on empty tables."""
    with duckdb.connect() as con:
        for t in TABLES.values():
            con.execute(f"CREATE TABLE {t.name} ({', '.join(f'{c} {d}' for c, d in t.sql_types('BIGINT').items())})")
        cols = con.execute(feature_sql("DATE '2000-01-01'") + " LIMIT 0").description
    return tuple(c[0] for c in cols if c[0] != "user_id") + GRAPH_FEATURES


def _date_literal(as_of: date) -> str:
    return f"DATE '{pd.Timestamp(as_of).date().isoformat()}'"


def components(con: duckdb.DuckDBPyConnection, as_of: date, user_ids: np.ndarray) -> np.ndarray:
    """Connected-component label of each user over shared devices and invite links."""
    edges = con.execute(EDGES_SQL.format(as_of=_date_literal(as_of))).fetchnumpy()
    pos = pd.Index(user_ids)
    a, b = pos.get_indexer(edges["a"]), pos.get_indexer(edges["b"])
    n = len(user_ids)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def compute_features(con: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    df = con.execute(feature_sql(_date_literal(as_of))).df()
    comp = components(con, as_of, df["user_id"].to_numpy())
    df["ring_size"] = np.bincount(comp)[comp]
    # Rings redeem the new-user offer together, so the component's redemption share tells.
    redeemed = np.bincount(comp, weights=df["redeemed_offer"].to_numpy())
    df["ring_redeem_share"] = redeemed[comp] / df["ring_size"]
    for col in CATEGORICAL + PROTECTED:
        df[col] = df[col].astype(str)
    return df.set_index("user_id")


def compute_labels(con: duckdb.DuckDBPyConnection, as_of: date, window: int) -> pd.DataFrame:
    return con.execute(LABEL_SQL.format(as_of=_date_literal(as_of), window=window)).df().set_index("user_id")


def compute_response(con: duckdb.DuckDBPyConnection, as_of: date, window: int) -> pd.DataFrame:
    return con.execute(RESPONSE_SQL.format(as_of=_date_literal(as_of), window=window)).df()
