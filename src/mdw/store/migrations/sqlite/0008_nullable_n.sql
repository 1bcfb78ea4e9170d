-- mdw schema v8 (SQLite): a trade count ``n`` the vendor left out is stored as NULL, not as 0.
-- SQLite cannot drop NOT NULL in place, so bars and quarantine are rebuilt once (ALTER TABLE's
-- documented procedure: new table, copy, drop, rename). Rows stored before hold 0 where n was
-- missing; they cannot be told apart from a real 0 and are left as they are.

CREATE TABLE bars_v8 (
    ticker    TEXT    NOT NULL,
    timeframe TEXT    NOT NULL,
    t         INTEGER NOT NULL,
    o         REAL    NOT NULL,
    h         REAL    NOT NULL,
    l         REAL    NOT NULL,
    c         REAL    NOT NULL,
    v         REAL,
    vw        REAL,
    n         INTEGER,
    -- OR, not IN: SQLite evaluates a CHECK ... IN (list) per row at twice the insert cost.
    source    TEXT    NOT NULL DEFAULT 'rest'
              CHECK (source = 'rest' OR source = 'grouped' OR source = 'derived' OR source = 'flatfile'
                     OR source = 'stream'),
    PRIMARY KEY (ticker, timeframe, t)
) WITHOUT ROWID;

INSERT INTO bars_v8 (ticker, timeframe, t, o, h, l, c, v, vw, n, source)
    SELECT ticker, timeframe, t, o, h, l, c, v, vw, n, source FROM bars;

DROP TABLE bars;

ALTER TABLE bars_v8 RENAME TO bars;

CREATE TABLE quarantine_v8 (
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
    n                 INTEGER,
    reason            TEXT    NOT NULL,
    run_id            TEXT    NOT NULL DEFAULT '',
    url               TEXT    NOT NULL DEFAULT '',
    quarantined_at_ms INTEGER NOT NULL
);

INSERT INTO quarantine_v8 (id, ticker, timeframe, t, o, h, l, c, v, vw, n, reason, run_id, url,
                           quarantined_at_ms)
    SELECT id, ticker, timeframe, t, o, h, l, c, v, vw, n, reason, run_id, url, quarantined_at_ms
    FROM quarantine;

DROP TABLE quarantine;

ALTER TABLE quarantine_v8 RENAME TO quarantine;

CREATE INDEX quarantine_ticker ON quarantine (ticker, quarantined_at_ms);
CREATE INDEX quarantine_at ON quarantine (quarantined_at_ms);
