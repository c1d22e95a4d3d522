-- High-value users (top 20% by lifetime fund purchases) whose last launch fell in the previous
-- quarter (90 to 180 days before the end of the data): the win-back campaign's seed.
WITH last_day AS (SELECT max(activity_date) AS d FROM daily_activity),
value AS (
    SELECT user_id, sum(amount) AS amount FROM transactions WHERE txn_type = 'fund_purchase' GROUP BY user_id
),
top AS (
    SELECT user_id FROM (SELECT user_id, percent_rank() OVER (ORDER BY amount DESC) AS pr FROM value) WHERE pr < 0.2
),
last_seen AS (SELECT user_id, max(activity_date) AS last_launch FROM daily_activity WHERE launches > 0 GROUP BY user_id)
SELECT top.user_id
FROM top JOIN last_seen ON last_seen.user_id = top.user_id, last_day
WHERE last_seen.last_launch <= last_day.d - INTERVAL 90 DAY AND last_seen.last_launch > last_day.d - INTERVAL 180 DAY
