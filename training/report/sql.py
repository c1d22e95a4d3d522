"""The operating metrics, each one SQL query over the warehouse contract (training/data/schema.py), so
that a bank's own tables give its own figures. `$as_of` is the report's date: events strictly before it."""

from __future__ import annotations

# Users with a launch each day, launches, and the users with a launch in the 30 days to each day (MAU),
# for the 90 days before as_of. A launch on day a counts a user on the days from a until the day before
# their next launch, at most 30: summed over launches, each user once per day.
ACTIVITY = """
WITH launch AS (
    SELECT user_id, activity_date AS a, sum(launches) AS launches
    FROM daily_activity WHERE launches > 0 AND activity_date < $as_of AND activity_date >= $as_of - 120
    GROUP BY ALL
),
spans AS (
    SELECT a, least(coalesce(lead(a) OVER (PARTITION BY user_id ORDER BY a), a + 30), a + 30) AS until FROM launch
),
delta AS (
    SELECT a AS day, count(*) AS d FROM spans GROUP BY ALL
    UNION ALL SELECT until, -count(*) FROM spans GROUP BY ALL
),
days AS (SELECT CAST(g AS DATE) AS day FROM range($as_of - 120, $as_of, INTERVAL 1 DAY) t(g)),
mau AS (
    SELECT days.day, sum(coalesce(sum(delta.d), 0)) OVER (ORDER BY days.day) AS mau
    FROM days LEFT JOIN delta USING (day) GROUP BY days.day
),
dau AS (SELECT a AS day, count(*) AS dau, sum(launches) AS launches FROM launch GROUP BY ALL)
SELECT mau.day, coalesce(dau.dau, 0) AS dau, coalesce(dau.launches, 0) AS launches, mau.mau
FROM mau LEFT JOIN dau USING (day) WHERE mau.day >= $as_of - 90
ORDER BY mau.day
"""

# Share of each signup month's users with a launch on day 1, 7 and 30 after signup, over the users whose
# day is before as_of (NULL while none is).
RETENTION = """
WITH cohort AS (
    SELECT user_id, signup_date FROM users WHERE signup_date < $as_of AND signup_date >= $as_of - 210
),
back AS (
    SELECT c.user_id, bool_or(a.activity_date - c.signup_date = 1) AS d1, bool_or(a.activity_date - c.signup_date = 7) AS d7,
        bool_or(a.activity_date - c.signup_date = 30) AS d30
    FROM cohort c JOIN daily_activity a ON a.user_id = c.user_id AND a.launches > 0 AND a.activity_date < $as_of
    GROUP BY ALL
)
SELECT strftime(date_trunc('month', c.signup_date), '%Y-%m') AS cohort, count(*) AS users,
    avg(CAST(coalesce(b.d1, false) AS INT)) FILTER (WHERE c.signup_date + 1 < $as_of) AS day_1,
    avg(CAST(coalesce(b.d7, false) AS INT)) FILTER (WHERE c.signup_date + 7 < $as_of) AS day_7,
    avg(CAST(coalesce(b.d30, false) AS INT)) FILTER (WHERE c.signup_date + 30 < $as_of) AS day_30
FROM cohort c LEFT JOIN back b USING (user_id) GROUP BY ALL ORDER BY cohort
"""

# Among the users with a launch in the 30 days before as_of: the share under 30, and the share with a
# draw-down in the 90 days before; over every user signed up: the top 20% by money put in funds, and
# their share of it.
BASE = """
WITH active AS (
    SELECT DISTINCT user_id FROM daily_activity
    WHERE launches > 0 AND activity_date < $as_of AND activity_date >= $as_of - 30
),
drawn AS (
    SELECT DISTINCT user_id FROM transactions
    WHERE txn_type = 'loan_draw' AND txn_date < $as_of AND txn_date >= $as_of - 90
),
value AS (
    SELECT u.user_id, coalesce(sum(t.amount), 0) AS v,
        row_number() OVER (ORDER BY coalesce(sum(t.amount), 0) DESC, u.user_id) AS r, count(*) OVER () AS n
    FROM users u LEFT JOIN transactions t ON t.user_id = u.user_id AND t.txn_type = 'fund_purchase' AND t.txn_date < $as_of
    WHERE u.signup_date < $as_of GROUP BY u.user_id
)
SELECT
    (SELECT count(*) FROM active) AS mau,
    (SELECT avg(CAST(u.age < 30 AS INT)) FROM active JOIN users u USING (user_id)) AS young_share,
    (SELECT avg(CAST(d.user_id IS NOT NULL AS INT)) FROM active LEFT JOIN drawn d USING (user_id)) AS loan_penetration,
    (SELECT sum(v) FILTER (WHERE r <= ceil(0.2 * n)) / nullif(sum(v), 0) FROM value) AS top20_value_share
"""

# The lifecycle × value grid (scoring/segments.py) as of a date: stage from tenure and days since the
# last activity, value band from money put in funds against the quartiles of those with any.
GRID = """
WITH last AS (SELECT user_id, max(activity_date) AS seen FROM daily_activity WHERE activity_date < $day GROUP BY ALL),
funds AS (
    SELECT user_id, sum(amount) AS v FROM transactions
    WHERE txn_type = 'fund_purchase' AND txn_date < $day GROUP BY ALL
),
u AS (
    SELECT $day - u.signup_date AS tenure, $day - coalesce(last.seen, u.signup_date) AS silent, coalesce(funds.v, 0) AS v
    FROM users u LEFT JOIN last USING (user_id) LEFT JOIN funds USING (user_id) WHERE u.signup_date < $day
),
q AS (SELECT quantile_cont(v, [0.25, 0.5, 0.75]) AS e FROM u WHERE v > 0)
SELECT CASE WHEN tenure < 30 THEN 'new' WHEN silent < 7 THEN 'active' WHEN silent <= 21 THEN 'silent_7_21'
            WHEN silent <= 90 THEN 'silent_22_90' WHEN silent <= 360 THEN 'silent_91_360' ELSE 'silent_360_plus' END
           AS stage,
       'V' || CAST(CASE WHEN v <= 0 THEN 1 WHEN v <= e[1] THEN 2 WHEN v <= e[2] THEN 3 WHEN v <= e[3] THEN 4 ELSE 5 END
                   AS VARCHAR) AS band,
       count(*) AS users
FROM u, q GROUP BY ALL
"""

# The campaign section's one input: per campaign and arm (incentive/channel/window), its users and
# conversions ('treated') beside those of the campaign's randomised control ('control').
CAMPAIGN_GROUPS = """
WITH g AS (
    SELECT a.campaign_id, c.send_date, a.arm, count(*) AS users, sum(CAST(a.converted AS INT)) AS conversions
    FROM campaigns c JOIN campaign_assignments a USING (campaign_id)
    WHERE c.send_date < $as_of - 7
    GROUP BY ALL
),
arms AS (
    SELECT campaign_id, send_date, split_part(arm, '/', 1) AS incentive, split_part(arm, '/', 2) AS channel,
           split_part(arm, '/', 3) AS send_window, users, conversions
    FROM g WHERE arm <> 'control'
)
SELECT campaign_id, send_date, incentive, channel, send_window, 'treated' AS arm, users, conversions FROM arms
UNION ALL
SELECT a.campaign_id, a.send_date, a.incentive, a.channel, a.send_window, 'control', g.users, g.conversions
FROM arms a JOIN g ON g.campaign_id = a.campaign_id AND g.arm = 'control'
"""
