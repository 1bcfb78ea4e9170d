-- mdw schema v3 (PostgreSQL): bars the vendor served that break an invariant, kept for inspection.
-- Never read as data: they are what a run refused to store. NULL prices or volumes: NaN or omitted.

CREATE TABLE quarantine (
    id                BIGSERIAL PRIMARY KEY,
    ticker            TEXT   NOT NULL,
    timeframe         TEXT   NOT NULL,
    t                 BIGINT NOT NULL,
    o                 FLOAT8,
    h                 FLOAT8,
    l                 FLOAT8,
    c                 FLOAT8,
    v                 FLOAT8,
    vw                FLOAT8,
    n                 BIGINT NOT NULL DEFAULT 0,
    reason            TEXT   NOT NULL,
    run_id            TEXT   NOT NULL DEFAULT '',
    url               TEXT   NOT NULL DEFAULT '',
    quarantined_at_ms BIGINT NOT NULL
);
CREATE INDEX quarantine_ticker ON quarantine (ticker, quarantined_at_ms);
CREATE INDEX quarantine_at ON quarantine (quarantined_at_ms);
