-- mdw schema v5 (SQLite): reference data (#17). Tickers as validity ranges, so "what was listed
-- on day D" is one indexed question; ticker changes; option contracts; named universes.

-- One row per ticker per listing: a ticker reused by another security later is a second row.
-- valid_from is the first day the ticker was listed (1900-01-01 when the vendor gives no date),
-- valid_to the last (NULL while it is still listed). Dates are ISO text.
CREATE TABLE ref_tickers (
    ticker           TEXT    NOT NULL,
    valid_from       TEXT    NOT NULL,
    valid_to         TEXT,
    name             TEXT    NOT NULL DEFAULT '',
    market           TEXT    NOT NULL DEFAULT '',
    locale           TEXT    NOT NULL DEFAULT '',
    primary_exchange TEXT,
    type             TEXT,
    active           INTEGER NOT NULL,
    currency         TEXT,
    cik              TEXT,
    composite_figi   TEXT,
    share_class_figi TEXT,
    list_date        TEXT,
    delisted_date    TEXT,
    PRIMARY KEY (ticker, valid_from)
);
CREATE INDEX ref_tickers_span ON ref_tickers (valid_from, valid_to);
CREATE INDEX ref_tickers_figi ON ref_tickers (composite_figi);
CREATE INDEX ref_tickers_cik ON ref_tickers (cik);

-- The vendor's ticker events: the security (composite FIGI) used `ticker` from `date` on.
CREATE TABLE ref_ticker_changes (
    composite_figi TEXT NOT NULL,
    date           TEXT NOT NULL,
    ticker         TEXT NOT NULL,
    cik            TEXT,
    PRIMARY KEY (composite_figi, date, ticker)
);
CREATE INDEX ref_ticker_changes_ticker ON ref_ticker_changes (ticker);

CREATE TABLE ref_option_contracts (
    ticker              TEXT NOT NULL PRIMARY KEY,
    underlying          TEXT NOT NULL,
    expiration_date     TEXT NOT NULL,
    contract_type       TEXT NOT NULL,
    strike_price        REAL NOT NULL,
    shares_per_contract REAL,
    exercise_style      TEXT,
    primary_exchange    TEXT,
    as_of               TEXT NOT NULL
);
CREATE INDEX ref_option_contracts_chain ON ref_option_contracts (underlying, expiration_date);

-- When each kind of reference data was last refreshed, and how many rows it holds.
CREATE TABLE ref_refreshes (
    kind          TEXT    NOT NULL PRIMARY KEY,
    refreshed_at_ms INTEGER NOT NULL,
    row_count     INTEGER NOT NULL,
    requests      INTEGER NOT NULL
);

-- Named universes: the definition as JSON (see mdw.backfill.universe.UniverseSpec).
CREATE TABLE universes (
    name          TEXT    NOT NULL PRIMARY KEY,
    spec          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
