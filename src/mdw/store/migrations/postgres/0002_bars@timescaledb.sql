-- Variant of 0002 used when the timescaledb extension can be loaded: a hypertable chunked by
-- t (epoch ms, 30-day chunks) instead of native partitions.
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE TABLE bars (
    ticker    TEXT   NOT NULL,
    timeframe TEXT   NOT NULL,
    t         BIGINT NOT NULL,
    o         FLOAT8 NOT NULL,
    h         FLOAT8 NOT NULL,
    l         FLOAT8 NOT NULL,
    c         FLOAT8 NOT NULL,
    v         FLOAT8,
    vw        FLOAT8,
    n         BIGINT NOT NULL DEFAULT 0,
    source    TEXT   NOT NULL DEFAULT 'rest' CHECK (source IN ('rest', 'grouped', 'derived')),
    PRIMARY KEY (ticker, timeframe, t)
);
SELECT create_hypertable('bars', 't', chunk_time_interval => 2592000000);
