-- Users who converted after receiving a red packet in the most recent campaign that sent one.
WITH last_campaign AS (
    SELECT a.campaign_id FROM campaign_assignments a JOIN campaigns c ON a.campaign_id = c.campaign_id
    WHERE a.arm LIKE 'red_packet/%' ORDER BY c.send_date DESC LIMIT 1
)
SELECT DISTINCT a.user_id
FROM campaign_assignments a JOIN last_campaign l ON a.campaign_id = l.campaign_id
WHERE a.arm LIKE 'red_packet/%' AND a.converted
