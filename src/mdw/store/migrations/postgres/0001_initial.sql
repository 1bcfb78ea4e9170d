-- mdw schema v1 (PostgreSQL). Times are UTC epoch ms; ranges are half-open [start_ms, end_ms).
-- bars is created by 0002 (range-partitioned, or a TimescaleDB hypertable when available).

CREATE TABLE symbols (
    ticker      TEXT PRIMARY KEY,
    asset_class TEXT    NOT NULL,
    name        TEXT    NOT NULL DEFAULT '',
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    timeframes  TEXT[]  NOT NULL DEFAULT '{}',
    start_date  DATE
);

CREATE TABLE dividends (
    id               TEXT PRIMARY KEY,      -- the vendor's id
    ticker           TEXT    NOT NULL,
    ex_dividend_date DATE    NOT NULL,
    cash_amount      FLOAT8  NOT NULL,
    currency         TEXT    NOT NULL DEFAULT 'USD',
    declaration_date DATE,
    record_date      DATE,
    pay_date         DATE,
    frequency        INTEGER NOT NULL DEFAULT 0,
    dividend_type    TEXT    NOT NULL DEFAULT 'CD'
);
CREATE INDEX dividends_ticker ON dividends (ticker, ex_dividend_date);

CREATE TABLE splits (
    id             TEXT PRIMARY KEY,        -- the vendor's id
    ticker         TEXT   NOT NULL,
    execution_date DATE   NOT NULL,
    split_from     FLOAT8 NOT NULL,
    split_to       FLOAT8 NOT NULL
);
CREATE INDEX splits_ticker ON splits (ticker, execution_date);

-- The ledger: merged ranges fetched (bars present or confirmed empty), with when.
CREATE TABLE coverage (
    ticker        TEXT   NOT NULL,
    dataset       TEXT   NOT NULL CHECK (dataset IN ('bars', 'dividends', 'splits')),
    timeframe     TEXT   NOT NULL DEFAULT '',
    start_ms      BIGINT NOT NULL,
    end_ms        BIGINT NOT NULL CHECK (end_ms > start_ms),
    fetched_at_ms BIGINT NOT NULL,
    PRIMARY KEY (ticker, dataset, timeframe, start_ms)
);

CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    kind           TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT,
    params         JSONB  NOT NULL DEFAULT '{}',
    report         JSONB  NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_started ON runs (started_at_ms);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    scope         TEXT   NOT NULL,
    salt          TEXT   NOT NULL,
    hash          TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    name          TEXT   NOT NULL DEFAULT '',
    revoked_at_ms BIGINT
);

CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at_ms  BIGINT NOT NULL,
    actor  TEXT   NOT NULL,
    action TEXT   NOT NULL,
    detail JSONB  NOT NULL DEFAULT '{}'
);
