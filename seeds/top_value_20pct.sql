-- The top 20% of investing users by fund purchases over the last 90 days of data.
WITH last_day AS (SELECT max(txn_date) AS d FROM transactions),
value AS (
    SELECT t.user_id, sum(t.amount) AS amount
    FROM transactions t, last_day
    WHERE t.txn_type = 'fund_purchase' AND t.txn_date > last_day.d - INTERVAL 90 DAY
    GROUP BY t.user_id
),
ranked AS (SELECT user_id, percent_rank() OVER (ORDER BY amount DESC) AS pr FROM value)
SELECT user_id FROM ranked WHERE pr < 0.2
