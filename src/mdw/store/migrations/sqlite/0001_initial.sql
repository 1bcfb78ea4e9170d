-- mdw schema v1 (SQLite). Times are UTC epoch ms; ranges are half-open [start_ms, end_ms).

CREATE TABLE symbols (
    ticker      TEXT PRIMARY KEY,
    asset_class TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    active      INTEGER NOT NULL DEFAULT 1,
    timeframes  TEXT NOT NULL DEFAULT '',   -- comma-separated, e.g. '1m,1h,1d'
    start_date  TEXT                        -- ISO date tracking starts from
);

-- Unadjusted bars; t is the window start. NULL v/vw: the vendor omitted them.
CREATE TABLE bars (
    ticker    TEXT    NOT NULL,
    timeframe TEXT    NOT NULL,
    t         INTEGER NOT NULL,
    o         REAL    NOT NULL,
    h         REAL    NOT NULL,
    l         REAL    NOT NULL,
    c         REAL    NOT NULL,
    v         REAL,
    vw        REAL,
    n         INTEGER NOT NULL DEFAULT 0,
    -- OR, not IN: SQLite evaluates a CHECK ... IN (list) per row at twice the insert cost.
    source    TEXT    NOT NULL DEFAULT 'rest'
              CHECK (source = 'rest' OR source = 'grouped' OR source = 'derived'),
    PRIMARY KEY (ticker, timeframe, t)
) WITHOUT ROWID;

CREATE TABLE dividends (
    id               TEXT PRIMARY KEY,      -- the vendor's id
    ticker           TEXT NOT NULL,
    ex_dividend_date TEXT NOT NULL,
    cash_amount      REAL NOT NULL,
    currency         TEXT NOT NULL DEFAULT 'USD',
    declaration_date TEXT,
    record_date      TEXT,
    pay_date         TEXT,
    frequency        INTEGER NOT NULL DEFAULT 0,
    dividend_type    TEXT NOT NULL DEFAULT 'CD'
);
CREATE INDEX dividends_ticker ON dividends (ticker, ex_dividend_date);

CREATE TABLE splits (
    id             TEXT PRIMARY KEY,        -- the vendor's id
    ticker         TEXT NOT NULL,
    execution_date TEXT NOT NULL,
    split_from     REAL NOT NULL,
    split_to       REAL NOT NULL
);
CREATE INDEX splits_ticker ON splits (ticker, execution_date);

-- The ledger: merged ranges fetched (bars present or confirmed empty), with when.
CREATE TABLE coverage (
    ticker        TEXT    NOT NULL,
    dataset       TEXT    NOT NULL CHECK (dataset IN ('bars', 'dividends', 'splits')),
    timeframe     TEXT    NOT NULL DEFAULT '',
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL CHECK (end_ms > start_ms),
    fetched_at_ms INTEGER NOT NULL,
    PRIMARY KEY (ticker, dataset, timeframe, start_ms)
) WITHOUT ROWID;

CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    kind           TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER,
    params         TEXT    NOT NULL DEFAULT '{}',
    report         TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_started ON runs (started_at_ms);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    scope         TEXT    NOT NULL,
    salt          TEXT    NOT NULL,
    hash          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    name          TEXT    NOT NULL DEFAULT '',
    revoked_at_ms INTEGER
);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms  INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    detail TEXT    NOT NULL DEFAULT '{}'
);
