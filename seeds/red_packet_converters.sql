-- Users who converted after receiving the most recent red-packet incentive (treatment group).
WITH last_campaign AS (
    SELECT campaign_id FROM campaigns WHERE incentive = 'red_packet' ORDER BY send_date DESC LIMIT 1
)
SELECT a.user_id
FROM campaign_assignments a JOIN last_campaign l ON a.campaign_id = l.campaign_id
WHERE a.treatment AND a.converted
