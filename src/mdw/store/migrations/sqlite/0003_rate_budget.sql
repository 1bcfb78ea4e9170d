-- mdw schema v3 (SQLite): one rate budget per vendor API key (name = a digest of the key, never
-- the key), shared by every process on this host that uses the warehouse: `mdw serve` and its
-- scheduler, CLI backfills, the Python API. ``state`` is the limiter's JSON, read and rewritten
-- inside BEGIN IMMEDIATE by mdw.budget.
CREATE TABLE rate_budget (
    name           TEXT PRIMARY KEY,
    configured     REAL NOT NULL,
    period_s       REAL NOT NULL,
    state          TEXT NOT NULL DEFAULT '{}',
    updated_at_ms  INTEGER NOT NULL DEFAULT 0
);
