-- The audience: one row per customer who should be on the list. Column names decide what is sent:
-- email (required), first_name, last_name, phone go to the contact; tags adds tags; every other
-- column (here: plan, lifetime_value) becomes a custom field whose personalization tag is its name
-- upper-cased (%PLAN%, %LIFETIME_VALUE%).
SELECT
    email,
    first_name,
    last_name,
    phone,
    plan,
    lifetime_value,
    CASE WHEN lifetime_value >= 1000 THEN 'vip,newsletter' ELSE 'newsletter' END AS tags
FROM customers
WHERE opted_in = 1
ORDER BY customer_id
