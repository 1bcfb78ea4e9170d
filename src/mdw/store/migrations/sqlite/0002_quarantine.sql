-- mdw schema v2 (SQLite): bars the vendor served that break an invariant, kept for inspection.
-- Never read as data: they are what a run refused to store. NULL prices or volumes: NaN or omitted.

CREATE TABLE quarantine (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    ticker            TEXT    NOT NULL,
    timeframe         TEXT    NOT NULL,
    t                 INTEGER NOT NULL,
    o                 REAL,
    h                 REAL,
    l                 REAL,
    c                 REAL,
    v                 REAL,
    vw                REAL,
    n                 INTEGER NOT NULL DEFAULT 0,
    reason            TEXT    NOT NULL,
    run_id            TEXT    NOT NULL DEFAULT '',
    url               TEXT    NOT NULL DEFAULT '',
    quarantined_at_ms INTEGER NOT NULL
);
CREATE INDEX quarantine_ticker ON quarantine (ticker, quarantined_at_ms);
CREATE INDEX quarantine_at ON quarantine (quarantined_at_ms);
