-- The campaign audience: one row per customer, with the treatment group they were assigned to.
-- 'control' is the control group: counted, never sent. Here the assignment is a stable function of
-- the customer id; in real life it usually comes from an experiment table.
SELECT
    email,
    first_name,
    last_name,
    plan,
    CASE customer_id % 3 WHEN 0 THEN 'control' WHEN 1 THEN 'A' ELSE 'B' END AS treatment_group
FROM customers
WHERE opted_in = 1
ORDER BY customer_id
