-- The campaign audience: one row per customer, with the treatment group they were assigned to.
-- 'control' is the control group: counted, never sent. Here the assignment is a stable function of
-- the customer id; in real life it usually comes from an experiment table. People who unsubscribed
-- from or bounced on any ActiveCampaign list (written back by dags/activecampaign_unsubscribes.py)
-- are left out.
SELECT
    c.email,
    c.first_name,
    c.last_name,
    c.plan,
    CASE c.customer_id % 3 WHEN 0 THEN 'control' WHEN 1 THEN 'A' ELSE 'B' END AS treatment_group
FROM customers c
WHERE c.opted_in = 1
  AND NOT EXISTS (SELECT 1 FROM activecampaign_unsubscribes u WHERE u.email = lower(trim(c.email)))
ORDER BY c.customer_id
