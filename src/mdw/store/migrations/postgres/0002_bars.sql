-- Unadjusted bars; t is the window start. NULL v/vw: the vendor omitted them.
-- Range-partitioned by t (one partition per UTC year, created on demand by the store before
-- it writes; there is deliberately no DEFAULT partition, so adding one never scans old rows).
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
) PARTITION BY RANGE (t);
