-- mdw schema v10 (PostgreSQL): a trade count ``n`` the vendor left out is stored as NULL, not as 0.
-- Dropping NOT NULL on the partitioned parent (or hypertable) drops it on every partition or chunk;
-- no row is rewritten. Rows stored before hold 0 where n was missing; they cannot be told apart
-- from a real 0 and are left as they are.

ALTER TABLE bars ALTER COLUMN n DROP NOT NULL;
ALTER TABLE bars ALTER COLUMN n DROP DEFAULT;
ALTER TABLE quarantine ALTER COLUMN n DROP NOT NULL;
ALTER TABLE quarantine ALTER COLUMN n DROP DEFAULT;
