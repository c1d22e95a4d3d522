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

from scoring.vocabulary import CATEGORICAL, GRAPH_FEATURES, PROTECTED
from training.data.contact_features import CONTACT_AGGREGATES, CONTACT_COLUMNS
from training.data.schema import DEFAULT_DPD, DEFAULT_WITHIN_DAYS, TABLES

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
-- An instalment's days past due as of the as-of date: at its payment if paid before, else still running.
inst AS (
    SELECT loan_id, user_id, due_date, paid_date, amount_due, amount_paid,
        CASE WHEN paid_date < {as_of} THEN days_past_due ELSE {as_of} - due_date END AS dpd
    FROM instalments
    WHERE due_date < {as_of}
),
delinquency AS (
    -- Worst days past due an instalment reached in the window: those settled before it do not count.
    SELECT user_id,
        max(CASE WHEN paid_date IS NULL OR paid_date >= {as_of} THEN dpd ELSE 0 END) AS dpd_now,
        max(CASE WHEN paid_date IS NULL OR paid_date >= {as_of} - INTERVAL 90 DAY THEN dpd END) AS worst_dpd_3m,
        max(CASE WHEN paid_date IS NULL OR paid_date >= {as_of} - INTERVAL 180 DAY THEN dpd END) AS worst_dpd_6m,
        max(CASE WHEN paid_date IS NULL OR paid_date >= {as_of} - INTERVAL 365 DAY THEN dpd END) AS worst_dpd_12m,
        sum(CASE WHEN due_date >= {as_of} - INTERVAL 365 DAY THEN 1 ELSE 0 END) AS instalments_due_12m,
        sum(CASE WHEN due_date >= {as_of} - INTERVAL 365 DAY AND dpd > 0 THEN 1 ELSE 0 END) AS instalments_late_12m,
        sum(CASE WHEN due_date >= {as_of} - INTERVAL 365 DAY AND dpd > 30 THEN 1 ELSE 0 END) AS instalments_30dpd_12m,
        count(*) AS instalments_due_all,
        sum(CASE WHEN dpd > 0 THEN 1 ELSE 0 END) AS instalments_late_all,
        sum(CASE WHEN paid_date < {as_of} AND amount_paid < amount_due THEN 1 ELSE 0 END)
            / nullif(sum(CASE WHEN paid_date < {as_of} THEN 1 ELSE 0 END), 0) AS partial_share_all,
        sum(CASE WHEN paid_date < {as_of} AND due_date >= {as_of} - INTERVAL 365 DAY AND amount_paid < amount_due
                 THEN 1 ELSE 0 END)
            / nullif(sum(CASE WHEN paid_date < {as_of} AND due_date >= {as_of} - INTERVAL 365 DAY THEN 1 ELSE 0 END), 0)
            AS partial_share_12m
    FROM inst
    GROUP BY user_id
),
book AS (
    -- Each loan's outstanding amount now and 90 days ago: the repayable total less the payments made by then,
    -- in cents, so that a repaid loan owes exactly 0 whichever order an engine adds its payments in.
    SELECT l.loan_id, l.user_id, l.applied_date, round(l.instalment * l.term_months, 2) AS repayable,
        round(sum(CASE WHEN i.paid_date < {as_of} THEN i.amount_paid ELSE 0 END), 2) AS paid_now,
        round(sum(CASE WHEN i.paid_date < {as_of} - INTERVAL 90 DAY THEN i.amount_paid ELSE 0 END), 2) AS paid_90,
        max(CASE WHEN i.dpd >= {default_dpd} THEN 1 ELSE 0 END) AS defaulted
    FROM loans l LEFT JOIN inst i ON i.loan_id = l.loan_id
    WHERE l.applied_date < {as_of}
    GROUP BY l.loan_id, l.user_id, l.applied_date, l.instalment, l.term_months
),
borrowing AS (
    SELECT user_id,
        count(*) AS loan_apps_all,
        sum(CASE WHEN applied_date >= {as_of} - INTERVAL 90 DAY THEN 1 ELSE 0 END) AS loan_apps_90,
        min(applied_date) AS first_loan,
        sum(defaulted) AS loan_defaults_known,
        sum(CASE WHEN repayable - paid_now > 1 THEN 1 ELSE 0 END) AS open_loans,
        sum(greatest(repayable - paid_now, 0)) AS loan_balance,
        sum(CASE WHEN applied_date < {as_of} - INTERVAL 90 DAY THEN greatest(repayable - paid_90, 0) ELSE 0 END)
            AS loan_balance_90
    FROM book
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
    coalesce(borrowing.loan_apps_all, 0) AS loan_apps_all,
    coalesce(borrowing.loan_apps_90, 0) AS loan_apps_90,
    coalesce(borrowing.loan_defaults_known, 0) AS loan_defaults_known,
    ({as_of} - borrowing.first_loan) / 30.0 AS months_on_book,
    coalesce(borrowing.open_loans, 0) AS open_loans,
    coalesce(borrowing.loan_balance, 0) AS loan_balance,
    CASE WHEN p.credit_line > 0 THEN coalesce(borrowing.loan_balance, 0) / p.credit_line END AS loan_utilisation,
    CASE WHEN p.credit_line > 0 THEN (coalesce(borrowing.loan_balance, 0) - coalesce(borrowing.loan_balance_90, 0))
         / p.credit_line END AS loan_utilisation_trend_90,
    delinquency.dpd_now,
    delinquency.worst_dpd_3m,
    delinquency.worst_dpd_6m,
    delinquency.worst_dpd_12m,
    coalesce(delinquency.instalments_due_12m, 0) AS instalments_due_12m,
    coalesce(delinquency.instalments_late_12m, 0) AS instalments_late_12m,
    coalesce(delinquency.instalments_30dpd_12m, 0) AS instalments_30dpd_12m,
    CAST(delinquency.instalments_late_12m AS DOUBLE) / nullif(delinquency.instalments_due_12m, 0) AS late_share_12m,
    delinquency.partial_share_12m,
    coalesce(delinquency.instalments_due_all, 0) AS instalments_due_all,
    CAST(delinquency.instalments_late_all AS DOUBLE) / nullif(delinquency.instalments_due_all, 0) AS late_share_all,
    -- The late share shrunk towards 15% (about the book's) by four instalments' worth: a short history says
    -- less than a long one, which a card's additive points cannot learn from the share and the count apart.
    (coalesce(delinquency.instalments_late_all, 0) + 0.6) / (coalesce(delinquency.instalments_due_all, 0) + 4.0)
        AS late_rate_shrunk,
    delinquency.partial_share_all,
    dev.n AS device_users,
    ips.n AS ip_users,
    coalesce(invites.invitees, 0) AS invitees,
    invites.invitee_signup_span_days
FROM pop p
LEFT JOIN act ON act.user_id = p.user_id
LEFT JOIN txn ON txn.user_id = p.user_id
LEFT JOIN camp ON camp.user_id = p.user_id
LEFT JOIN cont ON cont.user_id = p.user_id
LEFT JOIN borrowing ON borrowing.user_id = p.user_id
LEFT JOIN delinquency ON delinquency.user_id = p.user_id
LEFT JOIN dev ON dev.device_id = p.device_id
LEFT JOIN ips ON ips.ip = p.ip
LEFT JOIN invites ON invites.user_id = p.user_id
ORDER BY p.user_id
"""

# Edges of the abuse graph: accounts sharing a device, and invite links. Two queries, not one UNION ALL:
# at 10M users DuckDB 1.5 hung fetching the union's rows, every thread parked (a union with an IN-subquery
# arm, as duckdb/duckdb#24961 reports); each half alone takes a second or two.
EDGES_SQL = (
    """
WITH pop AS (SELECT user_id, device_id FROM users WHERE signup_date < {as_of}),
first_on_device AS (SELECT device_id, min(user_id) AS root FROM pop GROUP BY device_id)
SELECT p.user_id AS a, f.root AS b FROM pop p JOIN first_on_device f ON p.device_id = f.device_id
WHERE p.user_id <> f.root
""",
    """
WITH pop AS (SELECT user_id, inviter_id FROM users WHERE signup_date < {as_of})
SELECT user_id AS a, inviter_id AS b FROM pop WHERE inviter_id IN (SELECT user_id FROM pop)
""",
)

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
    SELECT user_id, loan_id, applied_date,
        row_number() OVER (PARTITION BY user_id ORDER BY applied_date, loan_id) AS rn
    FROM loans
    WHERE applied_date >= {as_of} AND applied_date < {as_of} + INTERVAL {window} DAY
),
-- Default: an instalment that reached {default_dpd} days past due within {within} days of the application; known
-- only once those days are over by the data's end (unpaid instalments have no paid_date).
outcome AS (
    SELECT a.loan_id,
        max(CASE WHEN (i.paid_date IS NULL OR i.days_past_due >= {default_dpd})
                 AND i.due_date + INTERVAL {default_dpd} DAY <= a.applied_date + INTERVAL {within} DAY
                 THEN 1 ELSE 0 END) AS defaulted
    FROM apps a JOIN instalments i ON i.loan_id = a.loan_id
    WHERE a.rn = 1
    GROUP BY a.loan_id
)
SELECT pop.user_id,
    CAST(recent.user_id IS NOT NULL AS BOOLEAN) AS churn_eligible,
    CAST(future.user_id IS NULL AS INTEGER) AS churn,
    apps.loan_id,
    CASE WHEN apps.applied_date + INTERVAL {within} DAY <= {data_end} THEN coalesce(outcome.defaulted, 0) END
        AS default_12m,
    CAST(r.user_id IS NOT NULL AS INTEGER) AS abuse_confirmed
FROM pop
LEFT JOIN future ON future.user_id = pop.user_id
LEFT JOIN recent ON recent.user_id = pop.user_id
LEFT JOIN apps ON apps.user_id = pop.user_id AND apps.rn = 1
LEFT JOIN outcome ON outcome.loan_id = apps.loan_id
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


@lru_cache
def feature_columns() -> tuple[str, ...]:
    """Columns the feature SQL yields (plus graph features), found by running it on empty tables."""
    with duckdb.connect() as con:
        for t in TABLES.values():
            con.execute(f"CREATE TABLE {t.name} ({', '.join(f'{c} {d}' for c, d in t.sql_types('BIGINT').items())})")
        cols = con.execute(feature_sql(date(2000, 1, 1)) + " LIMIT 0").description
    return tuple(c[0] for c in cols if c[0] != "user_id") + GRAPH_FEATURES


def date_literal(as_of: date) -> str:
    return f"DATE '{pd.Timestamp(as_of).date().isoformat()}'"


def components(con: duckdb.DuckDBPyConnection, as_of: date, user_ids: np.ndarray) -> np.ndarray:
    """Connected-component label of each user over shared devices and invite links."""
    edges = [con.execute(sql.format(as_of=date_literal(as_of))).fetchnumpy() for sql in EDGES_SQL]
    pos = pd.Index(user_ids)
    a, b = (pos.get_indexer(np.concatenate([e[end] for e in edges])) for end in ("a", "b"))
    n = len(user_ids)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def feature_sql(as_of: date) -> str:
    """The feature SQL as of a date, its contact aggregates filled in, as DuckDB runs it (Spark runs it transpiled)."""
    sql = FEATURE_SQL.replace("{contact_aggregates}", CONTACT_AGGREGATES).replace("{contact_columns}", CONTACT_COLUMNS)
    return sql.format(as_of=date_literal(as_of), default_dpd=DEFAULT_DPD)


def label_sql(as_of: date, window: int, data_end: date) -> str:
    """Labels of the window after `as_of`; a loan's default is empty unless its 12 months end by `data_end`."""
    return LABEL_SQL.format(as_of=date_literal(as_of), window=window, data_end=date_literal(data_end),
                            default_dpd=DEFAULT_DPD, within=DEFAULT_WITHIN_DAYS)


def response_sql(as_of: date, window: int) -> str:
    return RESPONSE_SQL.format(as_of=date_literal(as_of), window=window)


def opt_outs_sql(as_of: date) -> str:
    """The (user, channel) opt-outs in force on `as_of`, which the serving snapshot carries for the planner."""
    return f"SELECT user_id, channel FROM opt_outs WHERE since < {date_literal(as_of)} ORDER BY user_id, channel"


def compute_features(con: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    df = con.execute(feature_sql(as_of)).df()
    return finish_features(df, components(con, as_of, df["user_id"].to_numpy()))


def finish_features(df: pd.DataFrame, comp: np.ndarray) -> pd.DataFrame:
    """The feature SQL's rows with the graph features of their components (0..n-1 labels, one per row)
    added, categories as text, indexed by user id: the snapshot whichever engine ran the SQL."""
    return finish_rows(df, *graph_features(comp, df["redeemed_offer"].to_numpy()))


def graph_features(comp: np.ndarray, redeemed_offer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ring size and its ring's share of users who redeemed the new-user offer (rings do, together)."""
    size = np.bincount(comp)[comp]
    return size, np.bincount(comp, weights=redeemed_offer)[comp] / size


def finish_rows(df: pd.DataFrame, ring_size: np.ndarray, ring_redeem_share: np.ndarray) -> pd.DataFrame:
    df["ring_size"] = ring_size
    df["ring_redeem_share"] = ring_redeem_share
    for col in CATEGORICAL + PROTECTED:
        df[col] = df[col].astype(str)
    return df.set_index("user_id")


def compute_labels(con: duckdb.DuckDBPyConnection, as_of: date, window: int, data_end: date) -> pd.DataFrame:
    return con.execute(label_sql(as_of, window, data_end)).df().set_index("user_id")


def compute_response(con: duckdb.DuckDBPyConnection, as_of: date, window: int) -> pd.DataFrame:
    return con.execute(response_sql(as_of, window)).df()
