-- mdw schema v9 (PostgreSQL): bars from the vendor's WebSocket carry source 'stream' (provisional
-- until a REST pass confirms them: docs/stream.md). The CHECK constraint is replaced on the
-- partitioned parent, which replaces it on every partition (or hypertable chunk) too.

ALTER TABLE bars DROP CONSTRAINT IF EXISTS bars_source_check;
ALTER TABLE bars ADD CONSTRAINT bars_source_check
    CHECK (source IN ('rest', 'grouped', 'derived', 'flatfile', 'stream'));
