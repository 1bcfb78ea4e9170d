-- mdw schema v5 (PostgreSQL): market-day coverage. One row says "every ticker of this asset class is
-- held at this timeframe over this day" (a vendor flat file holds the whole market's day: tickers
-- absent from it are confirmed empty), instead of one ledger row per ticker and day. The file's
-- ETag, size and Last-Modified are kept so a later replacement of the file can be found.
CREATE TABLE market_days (
    asset            TEXT    NOT NULL,
    timeframe        TEXT    NOT NULL,
    start_ms         BIGINT NOT NULL,
    end_ms           BIGINT NOT NULL CHECK (end_ms > start_ms),
    dataset          TEXT    NOT NULL,   -- the file's key prefix, e.g. us_stocks_sip/minute_aggs_v1
    etag             TEXT    NOT NULL,
    size             BIGINT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    fetched_at_ms    BIGINT NOT NULL,
    PRIMARY KEY (asset, timeframe, start_ms)
);
CREATE INDEX market_days_dataset ON market_days (dataset, start_ms);

-- Where one ticker's bars were deleted inside market-day coverage (delete_range, a purge): those
-- ranges are not held for that ticker, whatever the market-day rows say, until a file is stored
-- for the day again.
CREATE TABLE coverage_holes (
    ticker    TEXT    NOT NULL,
    asset     TEXT    NOT NULL,
    timeframe TEXT    NOT NULL,
    start_ms  BIGINT NOT NULL,
    end_ms    BIGINT NOT NULL CHECK (end_ms > start_ms),
    PRIMARY KEY (ticker, timeframe, start_ms)
);
CREATE INDEX coverage_holes_asset ON coverage_holes (asset, timeframe, start_ms);
