-- mdw schema v4 (PostgreSQL): bars from the vendor's flat files carry source 'flatfile'.
-- The column's CHECK constraint (named bars_source_check by PostgreSQL) is replaced on the
-- partitioned parent, which replaces it on every partition (or hypertable chunk) too.

ALTER TABLE bars DROP CONSTRAINT IF EXISTS bars_source_check;
ALTER TABLE bars ADD CONSTRAINT bars_source_check
    CHECK (source IN ('rest', 'grouped', 'derived', 'flatfile'));
